// net/unix_stream.hpp — Stream over a connected unix-domain stream socket (LMTP from a local MTA).
//
// SECURITY  Who may connect is decided by the socket file's permissions (server: [lmtp]
//           socket_mode); the peer is reported as "unix" (no address), and as loopback.
// STANDARDS None (POSIX AF_UNIX).
// LIMITS    None.
#pragma once

#include "net/stream.hpp"

#include <asio/local/stream_protocol.hpp>

namespace buzon::net {

class UnixStream final : public Stream {
 public:
  explicit UnixStream(asio::local::stream_protocol::socket socket) : socket_(std::move(socket)) {}
  asio::awaitable<IoResult> read_some(std::span<char> buf) override;
  asio::awaitable<IoResult> write_all(std::span<const char> buf) override;
  void close() override;
  asio::any_io_executor get_executor() override { return socket_.get_executor(); }
  std::string peer() const override { return "unix"; }
  bool peer_is_loopback() const override { return true; }

 private:
  asio::local::stream_protocol::socket socket_;
};

}  // namespace buzon::net
