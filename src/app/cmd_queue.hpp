// app/cmd_queue.hpp — CLI wiring of `buzon queue ...` (the logic is queue::Spool; cmd_queue.cpp).
#pragma once

#include "app/commands.hpp"

#include <CLI/CLI.hpp>

namespace buzon::app {

struct QueueCli;

// Registers `queue` and its subcommands on `app`; the options object lives as long as the program.
CLI::App* add_queue_command(CLI::App& app, QueueCli*& cli);
int cmd_queue(const Options& opt, const QueueCli& cli);

}  // namespace buzon::app
