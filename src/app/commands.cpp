#include "app/commands.hpp"

#include "auth/passwd_edit.hpp"
#include "auth/passwd_file.hpp"
#include "auth/password.hpp"
#include "core/config.hpp"
#include "core/log.hpp"
#include "core/mail_location.hpp"
#include "dkim/dkim.hpp"
#include "proto/smtp/service_config.hpp"
#include "server/privileges.hpp"
#include "server/server.hpp"
#include "store/maildir/maildirsize.hpp"

#include <fmt/format.h>

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace buzon::app {

namespace {

std::optional<Config> load(const Options& opt) {
  auto cfg = load_config(opt.config);
  if (!cfg) {
    std::cerr << "buzon: " << cfg.error().str() << "\n";
    return std::nullopt;
  }
  return std::move(*cfg);
}

auth::NameRules rules_of(const Config& cfg) { return {cfg.users.default_domain, cfg.users.lowercase}; }

std::string strip_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The password: from --password-file, else a prompt on a terminal (no echo, twice), else stdin.
std::expected<std::string, std::string> read_password(const UserOptions& u) {
  if (!u.password_file.empty()) {
    std::ifstream in(u.password_file, std::ios::binary);
    if (!in) return std::unexpected("cannot read password file " + u.password_file);
    std::string line;
    std::getline(in, line);
    return strip_newline(line);
  }
  if (::isatty(0)) {
    auto prompt = [](const char* text) {
      std::cerr << text << std::flush;
      termios old{};
      tcgetattr(0, &old);
      termios quiet = old;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(0, TCSANOW, &quiet);
      std::string line;
      std::getline(std::cin, line);
      tcsetattr(0, TCSANOW, &old);
      std::cerr << "\n";
      return strip_newline(line);
    };
    auto a = prompt("Password: ");
    auto b = prompt("Again: ");
    if (a != b) return std::unexpected("the passwords do not match");
    return a;
  }
  std::string line;
  std::getline(std::cin, line);
  return strip_newline(line);
}

std::expected<std::string, std::string> hashed(const Config& cfg, const UserOptions& u) {
  auto pw = read_password(u);
  if (!pw) return pw;
  if (pw->empty()) return std::unexpected("empty password refused");
  return auth::hash_password(*pw, u.scheme.empty() ? cfg.users.default_scheme : u.scheme);
}

int fail(std::string_view what) {
  std::cerr << "buzon: " << what << "\n";
  return 1;
}

}  // namespace

int cmd_serve(const Options& opt) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  if (auto r = init_logging(cfg->log); !r) return fail(r.error());
  // Decided before anything is bound: as root without an account to switch to, refuse (SECURITY.md).
  auto plan = server::plan_privileges(cfg->server, cfg->file.string());
  if (!plan) {
    spdlog::error("{}", plan.error());
    return fail(plan.error());
  }
  const auto nofile = server::raise_fd_limit();
  const std::uint64_t need = 2ull * cfg->server.max_connections + 64;  // socket + maildrop lock each
  if (nofile < need)
    spdlog::warn("open-file limit {} is below what max_connections={} needs (about {}); raise the hard "
                 "limit (LimitNOFILE= in the systemd unit, ulimit -Hn) or lower max_connections",
                 nofile, cfg->server.max_connections, need);
  server::Server s(*cfg);
  if (auto r = s.start(); !r) {
    spdlog::error("{}", r.error());
    return fail(r.error());
  }
  if (auto r = s.finish_start(*plan); !r) {  // metrics endpoint, then privileges are dropped for good
    spdlog::error("{}", r.error());
    return fail(r.error());
  }
  return s.run();
}

// Issue 7: who `serve` will run as and whether that account reaches its files; metrics and PROXY.
int doctor_operations(const Config& cfg, const std::vector<auth::User>* users) {
  int problems = 0;
  auto plan = server::plan_privileges(cfg.server, cfg.file.string());
  if (!plan) {
    std::cout << "privileges: " << plan.error() << "\n";
    return 1;
  }
  std::cout << "privileges: " << plan->note << "\n";
  if (plan->action == server::PrivilegePlan::Action::drop) {
    auto need = [&](const std::filesystem::path& p, int mode, std::string_view what, std::string_view why) {
      std::error_code ec;
      if (!std::filesystem::exists(p, ec)) return;
      if (!server::accessible_as(*plan, p.string(), mode))
        std::cout << "warning: user " << plan->user << " cannot " << what << " " << p.string() << ": " << why
                  << " (fix: chgrp " << plan->user << " " << p.string() << " and give the group access)\n";
    };
    need(cfg.file, R_OK, "read", "SIGHUP reloads will be refused");
    need(cfg.resolve(cfg.users.passwd_file), R_OK, "read", "SIGHUP reloads will be refused");
    if (users) {
      std::size_t other_ids = 0;
      for (auto& u : *users)
        if ((u.uid && *u.uid != plan->uid) || (u.gid && *u.gid != plan->gid)) ++other_ids;
      if (other_ids)
        std::cout << "warning: " << other_ids << " users have uid/gid fields other than " << plan->user
                  << "'s: buzon accesses all mail as " << plan->user << " (one mail uid, docs/SECURITY.md)\n";
    }
  }
  if (cfg.metrics.enabled) std::cout << "metrics: listen " << cfg.metrics.listen.str() << " (http: /metrics /status)\n";
  for (auto& a : cfg.proxy.listeners) std::cout << "proxy: PROXY protocol expected on " << a.str() << "\n";
  return problems;
}

int cmd_doctor(const Options& opt) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  int problems = 0;
  std::cout << "config: " << cfg->file.string() << ": ok\n";
  auto users_path = cfg->resolve(cfg->users.passwd_file);
  auto users = auth::load_passwd_file(users_path, rules_of(*cfg));
  if (!users) {
    std::cout << "users: " << users.error() << "\n";
    ++problems;
  } else {
    std::cout << "users: " << users_path.string() << ": " << users->size() << " users\n";
    for (auto& w : auth::passwd_warnings(*users)) std::cout << "warning: " << w << "\n";
    for (auto& user : *users) {
      auto where = mail_location(cfg->mail.location, cfg->dir, user.name, user.mail, user.home);
      if (!where) {
        std::cout << "user " << user.name << ": " << where.error() << "\n";
        ++problems;
      }
    }
  }
  if (cfg->pop3.autologout < 600)
    std::cout << "warning: " << cfg->file.string() << ": [pop3] autologout = " << cfg->pop3.autologout
              << " is below the 10 minutes RFC 1939 §3 asks for\n";
  for (auto& a : cfg->pop3.listen) std::cout << "pop3: listen " << a.str() << "\n";
  for (auto& a : cfg->smtp.listen) std::cout << "smtp: listen " << a.str() << "\n";
  for (auto& a : cfg->lmtp.listen) std::cout << "lmtp: listen " << a.str() << "\n";
  if (!cfg->lmtp.socket.empty()) std::cout << "lmtp: socket " << cfg->resolve(cfg->lmtp.socket).string() << "\n";
  if (!cfg->smtp.listen.empty()) {
    if (cfg->smtp.local_domains.empty()) {
      std::cout << "warning: " << cfg->file.string()
                << ": [smtp] local_domains is empty: every recipient will be refused (list your domains)\n";
    } else {
      std::string domains;
      for (auto& d : cfg->smtp.local_domains) domains += (domains.empty() ? "" : ", ") + d;
      std::cout << "smtp: local domains " << domains << "\n";
    }
  }
  // Aliases (issue 10): loaded and checked as `serve` does.
  if (!cfg->aliases.file.empty()) {
    const auto path = cfg->resolve(cfg->aliases.file);
    auto t = smtp::load_server_aliases(path, smtp::settings_from_config(*cfg, smtp::Mode::smtp).recipients,
                                       smtp::forwarding_configured(*cfg), cfg->file.string());
    if (!t) {
      std::cout << "aliases: " << t.error() << "\n";
      ++problems;
    } else {
      std::cout << "aliases: " << path.string() << ": " << t->size() << " aliases\n";
    }
  }
  // TLS and authentication (issue 3).
  if (auto tls = server::check_tls(*cfg); !tls) {
    std::cout << "tls: " << tls.error() << "\n";
    ++problems;
  } else {
    for (auto& line : *tls) std::cout << "tls: certificate " << line << "\n";
    for (auto& a : cfg->pop3.listen_tls) std::cout << "pop3s: listen " << a.str() << "\n";
    if (cfg->tls.enabled() && cfg->pop3.stls) std::cout << "pop3: STLS offered on the plain listeners\n";
    std::error_code ec;
    if (cfg->tls.enabled()) {
      auto perms = std::filesystem::status(cfg->resolve(cfg->tls.main.key), ec).permissions();
      if (!ec && (perms & std::filesystem::perms::others_read) != std::filesystem::perms::none)
        std::cout << "warning: " << cfg->resolve(cfg->tls.main.key).string()
                  << " (the TLS private key) is readable by every user (fix: chmod 600 it)\n";
    }
  }
  if (users) {
    // Mechanisms that need a particular stored scheme: say who cannot use them.
    auto count_without = [&](std::initializer_list<std::string_view> schemes) {
      std::size_t n = 0;
      for (auto& user : *users) {
        auto sc = auth::scheme_of(user.password);
        if (std::find(schemes.begin(), schemes.end(), sc) == schemes.end()) ++n;
      }
      return n;
    };
    for (auto& m : cfg->auth.mechanisms) {
      std::size_t n = 0;
      if (m == "CRAM-MD5") n = count_without({"PLAIN", "CLEAR", "CLEARTEXT", "CRAM-MD5"});
      if (m.starts_with("SCRAM-SHA-256")) n = count_without({"PLAIN", "CLEAR", "CLEARTEXT", "SCRAM-SHA-256"});
      if (n > 0)
        std::cout << "warning: " << n << " of " << users->size() << " users cannot log in with " << m
                  << " (their stored scheme cannot serve it; fix: `buzon user passwd NAME --scheme "
                  << (m == "CRAM-MD5" ? "CRAM-MD5" : "SCRAM-SHA-256") << "`, or remove " << m
                  << " from [auth] mechanisms)\n";
    }
  }
  // Submission (issue 8): listeners and the DKIM keys, loaded as the server will load them.
  for (auto& a : cfg->submission.listen)
    std::cout << "submission: listen " << a.str()
              << (cfg->tls.enabled() ? " (STARTTLS)" : " (no [tls]: no STARTTLS, PLAIN/LOGIN refused)") << "\n";
  for (auto& a : cfg->submission.listen_tls) std::cout << "submissions: listen " << a.str() << " (implicit TLS)\n";
  for (auto& k : cfg->dkim_keys) {
    const auto path = cfg->resolve(k.key);
    if (auto key = dkim::Key::load(path); !key) {
      std::cout << cfg->file.string() << ":" << k.line << ": cannot load the DKIM key " << path.string() << ": "
                << key.error() << "\n";
      ++problems;
    } else {
      std::cout << "dkim: " << k.selector << "._domainkey." << k.domain << " signs with " << path.string() << "\n";
    }
  }
  if (!cfg->auth.plaintext_requires_tls)
    std::cout << "warning: [auth] plaintext_requires_tls = false: passwords may cross the network unencrypted\n";
  problems += doctor_operations(*cfg, users ? &*users : nullptr);
  std::cout << (problems ? "doctor: problems found\n" : "doctor: ok\n");
  return problems ? 1 : 0;
}

int cmd_user_add(const Options& opt, const UserOptions& u) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  auto name = auth::canonical_username(u.name, rules_of(*cfg));
  if (!name) return fail("invalid user name: " + name.error());
  auto h = hashed(*cfg, u);
  if (!h) return fail(h.error());
  if (auto r = auth::add_user(cfg->resolve(cfg->users.passwd_file), *name, *h, rules_of(*cfg)); !r) return fail(r.error());
  std::cout << "added " << *name << "\n";
  return 0;
}

int cmd_user_passwd(const Options& opt, const UserOptions& u) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  auto name = auth::canonical_username(u.name, rules_of(*cfg));
  if (!name) return fail("invalid user name: " + name.error());
  auto h = hashed(*cfg, u);
  if (!h) return fail(h.error());
  if (auto r = auth::set_password(cfg->resolve(cfg->users.passwd_file), *name, *h, rules_of(*cfg)); !r)
    return fail(r.error());
  std::cout << "password changed for " << *name << "\n";
  return 0;
}

int cmd_user_del(const Options& opt, const UserOptions& u) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  auto name = auth::canonical_username(u.name, rules_of(*cfg));
  if (!name) return fail("invalid user name: " + name.error());
  if (auto r = auth::delete_user(cfg->resolve(cfg->users.passwd_file), *name, rules_of(*cfg)); !r)
    return fail(r.error());
  std::cout << "deleted " << *name << " (the mailbox is kept)\n";
  return 0;
}

int cmd_user_list(const Options& opt) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  auto users = auth::load_passwd_file(cfg->resolve(cfg->users.passwd_file), rules_of(*cfg));
  if (!users) return fail(users.error());
  for (auto& user : *users) std::cout << user.name << "\n";
  return 0;
}

int cmd_user_show(const Options& opt, const UserOptions& u) {
  auto cfg = load(opt);
  if (!cfg) return 1;
  auto name = auth::canonical_username(u.name, rules_of(*cfg));
  if (!name) return fail("invalid user name: " + name.error());
  auto users = auth::load_passwd_file(cfg->resolve(cfg->users.passwd_file), rules_of(*cfg));
  if (!users) return fail(users.error());
  for (auto& user : *users) {
    if (user.name != *name) continue;
    auto where = mail_location(cfg->mail.location, cfg->dir, user.name, user.mail, user.home);
    if (!where) return fail(where.error());
    std::cout << "name: " << user.name << "\n";
    std::cout << "scheme: " << auth::scheme_of(user.password) << "\n";
    std::cout << "maildir: " << where->string() << "\n";
    std::cout << store::maildir::describe_maildir_quota(*where);  // usage and quota (issue 10)
    if (user.uid) std::cout << "uid: " << *user.uid << "\n";
    if (user.gid) std::cout << "gid: " << *user.gid << "\n";
    if (!user.home.empty()) std::cout << "home: " << user.home << "\n";
    return 0;
  }
  return fail("no such user: " + *name);
}

}  // namespace buzon::app
