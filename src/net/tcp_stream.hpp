// net/tcp_stream.hpp — Stream over a connected TCP socket.
#pragma once

#include "net/stream.hpp"

#include <asio/ip/tcp.hpp>

namespace buzon::net {

class TcpStream final : public Stream {
 public:
  explicit TcpStream(asio::ip::tcp::socket socket);
  // `client` is reported by peer() instead of the socket's peer: the real client named by a trusted
  // PROXY protocol header (server/proxy_protocol.hpp).
  TcpStream(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& client);
  asio::awaitable<IoResult> read_some(std::span<char> buf) override;
  asio::awaitable<IoResult> write_all(std::span<const char> buf) override;
  void close() override;
  asio::any_io_executor get_executor() override { return socket_.get_executor(); }
  std::string peer() const override { return peer_; }
  bool peer_is_loopback() const override { return loopback_; }
  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  void set_peer(const asio::ip::tcp::endpoint& ep);
  asio::ip::tcp::socket socket_;
  std::string peer_;
  bool loopback_ = false;
};

}  // namespace buzon::net
