// server/server.hpp — `buzon serve`: listeners, event loops, limits, drain and reload.
//
// One io_context per core, each with its own acceptor per address (SO_REUSEPORT: the kernel spreads
// connections), a shared worker pool for blocking work, global and per-address connection caps,
// SIGTERM/SIGINT drain (stop accepting, let sessions finish for `shutdown_grace`, then close them),
// SIGHUP reload of the user directory.
#pragma once

#include "core/config.hpp"

#include <expected>
#include <memory>
#include <string>

namespace buzon::server {

class Server {
 public:
  explicit Server(Config cfg);
  ~Server();
  // Loads users, binds every listener. Errors name what failed and how to fix it.
  std::expected<void, std::string> start();
  // Serves until a terminating signal; returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace buzon::server
