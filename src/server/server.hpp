// server/server.hpp — `buzon serve`: listeners, event loops, limits, drain and reload.
//
// One io_context per core, each with its own acceptor per address (SO_REUSEPORT: the kernel spreads
// connections), a shared worker pool for blocking work, global and per-address connection caps,
// SIGTERM/SIGINT drain (stop accepting, let sessions finish for `shutdown_grace`, then close them),
// SIGHUP reload of the user directory.
//
// Start-up is three steps (docs/SECURITY.md): start() binds every listener (or takes them from
// systemd socket activation) and reads every secret, still as root when started as root;
// finish_start() binds the metrics endpoint and drops privileges for good; run() serves.
// SIGHUP re-reads the config file: users, connection limits and log level change live, and each
// registered reload hook (TLS certificates...) may take its part; a config that does not load, or
// that a hook refuses, changes nothing and is reported in one log line.
#pragma once

#include "core/config.hpp"
#include "server/privileges.hpp"

#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace buzon::server {

// A part of the server that can take a new config on SIGHUP. prepare() checks and builds
// everything it needs from `next` without changing what runs (e.g. loads the new certificate into a
// new context) and returns the commit that switches to it, or an error that refuses the reload.
// Commits run on the control thread after every prepare() succeeded.
struct ReloadHook {
  std::string name;
  std::function<std::expected<std::function<void()>, std::string>(const Config& next)> prepare;
};

// Loads the [tls] certificates and keys as `serve` would (for `doctor`): one description per
// certificate, or the error with its config line and fix. No TLS configured: an empty list.
std::expected<std::vector<std::string>, std::string> check_tls(const Config& cfg);

class Server {
 public:
  explicit Server(Config cfg);
  ~Server();
  // Loads users, binds every listener. Errors name what failed and how to fix it.
  std::expected<void, std::string> start();
  // After start(): binds the metrics endpoint, checks that every inherited socket and PROXY
  // listener found its service, then carries out `plan` (drops privileges) and checks what the
  // unprivileged process can still reach (users file, config file, mail root).
  std::expected<void, std::string> finish_start(const PrivilegePlan& plan);
  void add_reload_hook(ReloadHook hook);
  // Serves until a terminating signal; returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace buzon::server
