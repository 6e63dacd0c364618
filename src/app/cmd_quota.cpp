// app/cmd_quota.cpp — `buzon quota USER [--bytes SIZE] [--messages N]`: shows a user's usage and
// Maildir++ quota, or sets it (the limits line of the Maildir's maildirsize, as Courier's
// `maildirmake -q` does; the deliverer and other Maildir++ tools read it from there).
//
// SECURITY  The Maildir is found as the server finds it (passwd-file + [mail] location); the file
//           is written tmp + fsync + rename.
#include "app/client_commands.hpp"

#include "auth/passwd_file.hpp"
#include "core/config.hpp"
#include "core/mail_location.hpp"
#include "store/maildir/maildirsize.hpp"

#include <iostream>

namespace buzon::app {

struct QuotaCli {
  std::string user;
  std::string bytes;     // "" = unchanged
  std::string messages;  // "" = unchanged
};

CLI::App* add_quota_command(CLI::App& app, QuotaCli*& out) {
  static QuotaCli q;
  out = &q;
  auto* c = app.add_subcommand("quota", "show or set a user's quota (Maildir++ maildirsize)");
  c->add_option("user", q.user, "user name")->required();
  c->add_option("--bytes", q.bytes, "storage limit: 1G, 500M, 20k or octets; 0 = none");
  c->add_option("--messages", q.messages, "message count limit; 0 = none");
  return c;
}

namespace {

int fail(const std::string& what) {
  std::cerr << "buzon quota: " << what << "\n";
  return 1;
}

}  // namespace

int cmd_quota(const Options& opt, const QuotaCli& q) {
  namespace md = store::maildir;
  auto cfg = load_config(opt.config);
  if (!cfg) return fail(cfg.error().str());
  const auth::NameRules rules{cfg->users.default_domain, cfg->users.lowercase};
  auto name = auth::canonical_username(q.user, rules);
  if (!name) return fail("invalid user name: " + name.error());
  auto users = auth::load_passwd_file(cfg->resolve(cfg->users.passwd_file), rules);
  if (!users) return fail(users.error());
  for (const auto& user : *users) {
    if (user.name != *name) continue;
    auto where = mail_location(cfg->mail.location, cfg->dir, user.name, user.mail, user.home);
    if (!where) return fail(where.error());
    if (!q.bytes.empty() || !q.messages.empty()) {
      auto current = md::read_maildirsize(*where, std::chrono::system_clock::now());
      md::QuotaLimits limits = current ? current->limits : md::QuotaLimits{};
      if (!q.bytes.empty()) {
        auto b = md::parse_quota_size(q.bytes);
        if (!b) return fail("--bytes " + q.bytes + " is not a size (fix: 1G, 500M, 20k or a number of octets)");
        limits.bytes = *b;
      }
      if (!q.messages.empty()) {
        auto m = md::parse_quota_size(q.messages);
        if (!m || q.messages.find_first_not_of("0123456789") != std::string::npos)
          return fail("--messages " + q.messages + " is not a number");
        limits.messages = *m;
      }
      if (auto set = md::set_maildir_quota(*where, limits); !set) return fail(set.error());
    }
    std::cout << "user: " << user.name << "\nmaildir: " << where->string() << "\n"
              << md::describe_maildir_quota(*where);
    return 0;
  }
  return fail("no such user: " + *name);
}

}  // namespace buzon::app
