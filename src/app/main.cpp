// buzon — one binary, subcommands: serve, doctor, user, fetch, send, queue. Wiring only; the logic lives in the layers.
#include "app/client_commands.hpp"
#include "app/cmd_queue.hpp"
#include "app/commands.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  using namespace buzon::app;
  CLI::App app{"buzon — a mail server: POP3, SMTP (MX, submission, LMTP), outbound queue and relay"};
  app.require_subcommand(1);
  Options opt;
  if (const char* env = std::getenv("BUZON_CONFIG")) opt.config = env;
  // Installed as "sendmail" (a symlink): behave as `buzon send` (mutt, cron, mail(1)).
  if (invoked_as_sendmail(argv[0])) return cmd_send(opt, std::vector<std::string>(argv + 1, argv + argc));
  app.add_option("-c,--config", opt.config, "configuration file (default: ./var/buzon.toml or $BUZON_CONFIG)");
  app.set_version_flag("--version", std::string("buzon ") + kVersion);

  auto* serve = app.add_subcommand("serve", "run the servers in the foreground");
  auto* doctor = app.add_subcommand("doctor", "check the configuration and the user file without starting");

  auto* user = app.add_subcommand("user", "manage users in the passwd-file");
  user->require_subcommand(1);
  UserOptions u;
  auto add_pw_opts = [&](CLI::App* c) {
    c->add_option("--password-file", u.password_file, "read the password from this file (default: standard input)");
    c->add_option("--scheme", u.scheme, "password scheme (default: [users] default_scheme)");
  };
  auto* uadd = user->add_subcommand("add", "add a user");
  uadd->add_option("name", u.name, "user name")->required();
  add_pw_opts(uadd);
  auto* upasswd = user->add_subcommand("passwd", "change a user's password");
  upasswd->add_option("name", u.name, "user name")->required();
  add_pw_opts(upasswd);
  auto* udel = user->add_subcommand("del", "delete a user (the mailbox is kept)");
  udel->add_option("name", u.name, "user name")->required();
  auto* ulist = user->add_subcommand("list", "list users");
  auto* ushow = user->add_subcommand("show", "show a user and where the mail is");
  ushow->add_option("name", u.name, "user name")->required();

  FetchCli* fetch_cli = nullptr;
  auto* fetch = add_fetch_command(app, fetch_cli);
  auto* send = add_send_command(app);
  QueueCli* queue_cli = nullptr;
  auto* queue = add_queue_command(app, queue_cli);
  DkimCli* dkim_cli = nullptr;
  auto* dkim = add_dkim_command(app, dkim_cli);
  AliasCli* alias_cli = nullptr;
  auto* alias = add_alias_command(app, alias_cli);
  QuotaCli* quota_cli = nullptr;
  auto* quota = add_quota_command(app, quota_cli);

  CLI11_PARSE(app, argc, argv);

  if (*serve) return cmd_serve(opt);
  if (*fetch) return cmd_fetch(opt, *fetch_cli);
  if (*send) return cmd_send(opt, send->remaining());
  if (*queue) return cmd_queue(opt, *queue_cli);
  if (*dkim) return cmd_dkim(*dkim_cli);
  if (*alias) return cmd_alias(opt, *alias_cli);
  if (*quota) return cmd_quota(opt, *quota_cli);
  if (*doctor) return cmd_doctor(opt);
  if (*uadd) return cmd_user_add(opt, u);
  if (*upasswd) return cmd_user_passwd(opt, u);
  if (*udel) return cmd_user_del(opt, u);
  if (*ulist) return cmd_user_list(opt);
  if (*ushow) return cmd_user_show(opt, u);
  return 2;
}
