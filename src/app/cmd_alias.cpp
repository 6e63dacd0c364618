// app/cmd_alias.cpp — `buzon alias add|del|list`: edits the [aliases] file (auth/aliases.hpp) with
// the passwd-file's transaction (lock, check, tmp + fsync + rename), then says how to reload.
//
// SECURITY  The file must parse before and after an edit, and an edit that creates a cycle is
//           refused; the server re-checks everything on SIGHUP and keeps the old table on error.
#include "app/client_commands.hpp"

#include "auth/aliases.hpp"
#include "core/config.hpp"
#include "proto/smtp/service_config.hpp"

#include <iostream>

namespace buzon::app {

struct AliasCli {
  CLI::App* add = nullptr;
  CLI::App* del = nullptr;
  CLI::App* list = nullptr;
  std::string alias;
  std::vector<std::string> targets;
};

CLI::App* add_alias_command(CLI::App& app, AliasCli*& out) {
  static AliasCli a;
  out = &a;
  auto* c = app.add_subcommand("alias", "manage the virtual aliases file ([aliases] file)");
  c->require_subcommand(1);
  a.add = c->add_subcommand("add", "add an alias: ALIAS TARGET... (\"@domain\" is the domain's catch-all)");
  a.add->add_option("alias", a.alias, "alias@domain or @domain")->required();
  a.add->add_option("targets", a.targets, "target addresses")->required();
  a.del = c->add_subcommand("del", "delete an alias");
  a.del->add_option("alias", a.alias, "alias@domain or @domain")->required();
  a.list = c->add_subcommand("list", "list the aliases: alias: targets");
  return c;
}

namespace {

int fail(const std::string& what) {
  std::cerr << "buzon alias: " << what << "\n";
  return 1;
}

}  // namespace

int cmd_alias(const Options& opt, const AliasCli& a) {
  auto cfg = load_config(opt.config);
  if (!cfg) return fail(cfg.error().str());
  if (cfg->aliases.file.empty())
    return fail(cfg->file.string() + ": no aliases file is configured (fix: set file = \"aliases\" in [aliases])");
  const auto path = cfg->resolve(cfg->aliases.file);
  if (*a.list) {
    auto t = auth::load_aliases(path);
    if (!t) return fail(t.error());
    for (const auto& [key, entry] : *t) {
      std::cout << key << ":";
      for (std::size_t i = 0; i < entry.targets.size(); ++i) std::cout << (i ? ", " : " ") << entry.targets[i];
      std::cout << "\n";
    }
    return 0;
  }
  auto done = *a.add ? auth::add_alias(path, a.alias, a.targets) : auth::delete_alias(path, a.alias);
  if (!done) return fail(done.error());
  // What the server would say about the new file (it refuses what it cannot deliver).
  const auto policy = smtp::settings_from_config(*cfg, smtp::Mode::smtp).recipients;
  if (auto check = smtp::load_server_aliases(path, policy, smtp::forwarding_configured(*cfg), cfg->file.string()); !check)
    std::cerr << "buzon alias: warning: the server will refuse this file: " << check.error() << "\n";
  std::cerr << "buzon alias: " << path.string() << " updated; reload the server (SIGHUP, systemctl reload buzon)\n";
  return 0;
}

}  // namespace buzon::app
