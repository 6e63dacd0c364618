// app/cmd_client.cpp — `buzon fetch` and `buzon send`: flags -> src/fetch, src/send.
#include "app/client_commands.hpp"

#include "fetch/fetcher.hpp"
#include "send/sender.hpp"

#include <filesystem>
#include <iostream>
#include <sstream>

namespace buzon::app {

struct FetchCli {
  std::vector<std::string> accounts;
  bool all = false, keep = false, no_keep = false, quiet = false, no_progress = false;
  unsigned daemon = 0;
  std::string state_dir;
  // One-off account.
  std::string name, host, user, password_file, password_command, tls, auth, ca_file, fingerprint, maildir, mbox, mda;
  unsigned port = 0, timeout = 60;
  std::uint64_t limit = 0;
  bool allow_plaintext = false, no_pipelining = false;
};

CLI::App* add_fetch_command(CLI::App& app, FetchCli*& out) {
  static FetchCli f;
  out = &f;
  auto* c = app.add_subcommand("fetch", "download mail from POP3 accounts (config [[fetch.account]] or --host ...)");
  c->add_option("accounts", f.accounts, "names of the configured accounts to poll (default: all)");
  c->add_flag("--all", f.all, "also fetch messages fetched before");
  c->add_flag("-k,--keep", f.keep, "leave the messages on the server");
  c->add_flag("--no-keep", f.no_keep, "delete the messages on the server after saving them");
  c->add_flag("-q,--quiet", f.quiet, "no summary line (errors are still printed)");
  c->add_flag("--no-progress", f.no_progress, "no progress bar even on a terminal");
  c->add_option("-d,--daemon", f.daemon, "poll every SECONDS until SIGTERM/SIGINT")->check(CLI::Range(1u, 86400u * 7));
  c->add_option("--state-dir", f.state_dir, "where the per-account state lives");
  c->add_option("--name", f.name, "one-off: label of the account (state file name)");
  c->add_option("--host", f.host, "one-off: the POP3 server");
  c->add_option("--port", f.port, "one-off: port (default 995 with --tls implicit, else 110)")->check(CLI::Range(1u, 65535u));
  c->add_option("--user", f.user, "one-off: user name");
  c->add_option("--password-file", f.password_file, "one-off: file whose first line is the password");
  c->add_option("--password-command", f.password_command, "one-off: command that prints the password");
  c->add_option("--tls", f.tls, "one-off: implicit | stls | none (default implicit)");
  c->add_flag("--allow-plaintext", f.allow_plaintext, "allow USER/PASS, PLAIN, LOGIN without TLS");
  c->add_option("--auth", f.auth, "one-off: methods in order, e.g. scram-sha-256,plain,apop,user");
  c->add_option("--ca-file", f.ca_file, "one-off: trust this CA (PEM)");
  c->add_option("--fingerprint", f.fingerprint, "one-off: pin the server certificate (sha256:AB:CD:...)");
  c->add_option("--maildir", f.maildir, "one-off: deliver into this Maildir");
  c->add_option("--mbox", f.mbox, "one-off: append to this mbox file");
  c->add_option("--mda", f.mda, "one-off: pipe each message to this command");
  c->add_option("--limit", f.limit, "skip messages larger than this many octets");
  c->add_flag("--no-pipelining", f.no_pipelining, "one command at a time even if the server offers PIPELINING");
  c->add_option("--timeout", f.timeout, "seconds without progress before giving up")->check(CLI::Range(1u, 86400u));
  return c;
}

int cmd_fetch(const Options& opt, const FetchCli& f) {
  auto usage = [](const std::string& m) {
    std::cerr << "buzon fetch: " << m << "\n";
    return fetch::kExitUsage;
  };
  std::vector<fetch::Account> accounts;
  std::filesystem::path state_dir = f.state_dir;
  if (!f.host.empty()) {
    fetch::Account a;
    a.name = f.name;
    a.host = f.host;
    a.port = static_cast<std::uint16_t>(f.port);
    a.user = f.user;
    a.password_file = f.password_file;
    a.password_command = f.password_command;
    if (!f.tls.empty()) {
      auto m = fetch::parse_tls_mode(f.tls);
      if (!m) return usage("--tls must be implicit, stls or none");
      a.tls = *m;
    }
    a.allow_plaintext = f.allow_plaintext;
    if (!f.auth.empty()) {
      a.auth.clear();
      std::stringstream ss(f.auth);
      std::string item;
      while (std::getline(ss, item, ',')) {
        auto m = pop3::parse_auth_method(item);
        if (!m) return usage("unknown --auth method '" + item + "' (scram-sha-256, plain, login, apop, user)");
        a.auth.push_back(*m);
      }
    }
    a.ca_file = f.ca_file;
    if (!f.fingerprint.empty()) {
      auto fp = fetch::normalize_fingerprint(f.fingerprint);
      if (!fp) return usage(fp.error());
      a.fingerprint = *fp;
    }
    int dests = !f.maildir.empty() + !f.mbox.empty() + !f.mda.empty();
    if (dests > 1) return usage("give one of --maildir, --mbox, --mda");
    if (!f.maildir.empty()) a.dest = fetch::DestKind::maildir, a.dest_path = std::filesystem::absolute(f.maildir).string();
    if (!f.mbox.empty()) a.dest = fetch::DestKind::mbox, a.dest_path = std::filesystem::absolute(f.mbox).string();
    if (!f.mda.empty()) a.dest = fetch::DestKind::mda, a.dest_path = f.mda;
    a.limit = f.limit;
    a.pipelining = !f.no_pipelining;
    a.timeout = std::chrono::seconds(f.timeout);
    a.origin = "command line";
    if (auto ok = fetch::validate(a); !ok) return usage(ok.error());
    accounts.push_back(std::move(a));
  } else {
    if (!f.user.empty() || !f.maildir.empty() || !f.mbox.empty() || !f.mda.empty() || !f.password_file.empty() ||
        !f.password_command.empty() || !f.tls.empty() || f.port)
      return usage("--user, --password-*, --tls, --port and --maildir/--mbox/--mda describe a one-off account: "
                   "add --host (or configure [[fetch.account]])");
    auto cfg = fetch::load_fetch_config(opt.config);
    if (!cfg) return usage(cfg.error().str());
    if (state_dir.empty()) state_dir = cfg->state_dir;
    for (auto& a : cfg->accounts) {
      bool wanted = f.accounts.empty();
      for (auto& n : f.accounts) wanted = wanted || n == a.label();
      if (!wanted) continue;
      if (f.limit) a.limit = f.limit;
      if (f.no_pipelining) a.pipelining = false;
      accounts.push_back(a);
    }
    for (auto& n : f.accounts) {
      bool found = false;
      for (auto& a : cfg->accounts) found = found || n == a.label();
      if (!found) return usage("no account named '" + n + "' in " + opt.config);
    }
    if (accounts.empty())
      return usage("no accounts: add [[fetch.account]] to " + opt.config + " or give --host ... for a one-off fetch");
  }
  if (state_dir.empty()) state_dir = fetch::default_state_dir();
  fetch::RunOptions ro;
  ro.all = f.all;
  if (f.keep && f.no_keep) return usage("--keep and --no-keep contradict each other");
  if (f.keep) ro.keep = true;
  if (f.no_keep) ro.keep = false;
  ro.quiet = f.quiet;
  ro.progress = !f.no_progress;
  return fetch::run_fetch(accounts, ro, state_dir, f.daemon ? std::optional<unsigned>(f.daemon) : std::nullopt);
}

CLI::App* add_send_command(CLI::App& app) {
  auto* c = app.add_subcommand("send", "submit one message (stdin or --file) over SMTP; sendmail-compatible flags");
  c->prefix_command();
  c->allow_extras();
  return c;
}

int cmd_send(const Options& opt, const std::vector<std::string>& args) {
  std::filesystem::path cfg;
  std::error_code ec;
  if (std::filesystem::exists(opt.config, ec)) cfg = opt.config;
  return send::run_send(cfg, args);
}

bool invoked_as_sendmail(const char* argv0) {
  if (!argv0) return false;
  auto base = std::filesystem::path(argv0).filename().string();
  return base == "sendmail";
}

}  // namespace buzon::app
