#include "server/systemd.hpp"

#include <fmt/format.h>

#include <systemd/sd-daemon.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace buzon::server {

std::expected<InheritedSockets, std::string> InheritedSockets::from_environment() {
  char** names = nullptr;
  int n = sd_listen_fds_with_names(1, &names);  // 1: unset LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES
  if (n < 0) return std::unexpected(fmt::format("socket activation: {}", std::strerror(-n)));
  std::vector<InheritedSocket> out;
  std::string error;
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    std::string name = names && names[i] ? names[i] : "";
    if (error.empty()) {
      if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
        error = fmt::format("socket activation: descriptor {} ('{}') is not a listening TCP socket (fix: use "
                            "ListenStream= with an address or port in the socket unit)", fd, name);
      } else {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
          error = fmt::format("socket activation: getsockname({}) failed: {}", fd, std::strerror(errno));
        } else {
          asio::ip::tcp::endpoint ep;
          const std::size_t n = std::min<std::size_t>(len, ep.capacity());
          std::memcpy(ep.data(), &ss, n);
          ep.resize(n);
          ::fcntl(fd, F_SETFD, FD_CLOEXEC);
          out.push_back(InheritedSocket{fd, name, ep});
          continue;
        }
      }
    }
    ::close(fd);
  }
  if (names) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(static_cast<void*>(names));
  }
  if (!error.empty()) {
    for (auto& s : out) ::close(s.fd);
    return std::unexpected(error);
  }
  return InheritedSockets(std::move(out));
}

std::vector<InheritedSocket> InheritedSockets::take_named(std::string_view name) {
  std::vector<InheritedSocket> out;
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (it->name == name) {
      out.push_back(*it);
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::optional<InheritedSocket> InheritedSockets::take_address(const asio::ip::tcp::endpoint& ep) {
  for (auto it = sockets_.begin(); it != sockets_.end(); ++it) {
    if (it->local == ep) {
      auto s = *it;
      sockets_.erase(it);
      return s;
    }
  }
  return std::nullopt;
}

void InheritedSockets::close_rest() {
  for (auto& s : sockets_) ::close(s.fd);
  sockets_.clear();
}

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

}  // namespace buzon::server
