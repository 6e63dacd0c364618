// app/client_commands.hpp — CLI wiring of the client subcommands `buzon fetch` and `buzon send`
// (the logic is in src/fetch and src/send).
#pragma once

#include "app/commands.hpp"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace buzon::app {

struct FetchCli;

// Registers `fetch` on `app`; the returned options object lives as long as the program.
CLI::App* add_fetch_command(CLI::App& app, FetchCli*& cli);
int cmd_fetch(const Options& opt, const FetchCli& cli);

// Registers `send` (every argument after it is passed on verbatim: sendmail flags such as -oi).
CLI::App* add_send_command(CLI::App& app);
int cmd_send(const Options& opt, const std::vector<std::string>& args);

// Registers `dkim keygen` and `dkim sign` (src/app/cmd_dkim.cpp); runs the one given.
struct DkimCli;
CLI::App* add_dkim_command(CLI::App& app, DkimCli*& cli);
int cmd_dkim(const DkimCli& cli);

// Registers `alias add|del|list` (src/app/cmd_alias.cpp); runs the one given.
struct AliasCli;
CLI::App* add_alias_command(CLI::App& app, AliasCli*& cli);
int cmd_alias(const Options& opt, const AliasCli& cli);

// Registers `quota USER [--bytes SIZE] [--messages N]` (src/app/cmd_quota.cpp).
struct QuotaCli;
CLI::App* add_quota_command(CLI::App& app, QuotaCli*& cli);
int cmd_quota(const Options& opt, const QuotaCli& cli);

// True when the program was started as "sendmail" (a symlink): then it behaves as `buzon send`.
bool invoked_as_sendmail(const char* argv0);

}  // namespace buzon::app
