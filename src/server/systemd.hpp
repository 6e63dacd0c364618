// server/systemd.hpp — the two things buzon takes from systemd (libsystemd): listening sockets
// passed by socket activation (sd_listen_fds, LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), and readiness
// notification for Type=notify units (sd_notify: READY=1, RELOADING=1, STOPPING=1, STATUS=...).
//
// How inherited sockets are matched to services (docs/SECURITY.md, packaging/systemd/buzon.socket):
//   1. a socket whose FileDescriptorName= is a service's name ("pop3", "metrics", later "smtp"...)
//      belongs to that service, and that service's configured `listen` addresses are then not bound
//      by buzon (the socket unit decides where it listens);
//   2. otherwise a socket whose local address equals a configured listen address is used for it
//      instead of binding that address;
//   3. a socket that matches nothing is refused at start-up (a unit/config mismatch must be seen).
// Without LISTEN_FDS (or when LISTEN_PID is another process) buzon binds everything itself.
#pragma once

#include <asio/ip/tcp.hpp>

#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::server {

struct InheritedSocket {
  int fd = -1;
  std::string name;  // FileDescriptorName=, or the socket unit's name when unset
  asio::ip::tcp::endpoint local;
};

class InheritedSockets {
 public:
  // Takes the sockets systemd passed (and unsets LISTEN_* so children do not see them). Errors for
  // a passed descriptor that is not a listening TCP socket.
  static std::expected<InheritedSockets, std::string> from_environment();
  // For tests: sockets given directly.
  explicit InheritedSockets(std::vector<InheritedSocket> s = {}) : sockets_(std::move(s)) {}

  bool empty() const { return sockets_.empty(); }
  std::size_t size() const { return sockets_.size(); }
  // Every socket named `name` (rule 1), removed from the set.
  std::vector<InheritedSocket> take_named(std::string_view name);
  // The socket bound to exactly `ep` (rule 2), removed from the set.
  std::optional<InheritedSocket> take_address(const asio::ip::tcp::endpoint& ep);
  // What is left (rule 3).
  const std::vector<InheritedSocket>& rest() const { return sockets_; }
  // Closes what is left.
  void close_rest();

 private:
  std::vector<InheritedSocket> sockets_;
};

// sd_notify(0, state) when NOTIFY_SOCKET is set; a no-op otherwise.
void notify(const std::string& state);

}  // namespace buzon::server
