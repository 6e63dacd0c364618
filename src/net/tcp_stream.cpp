#include "net/tcp_stream.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>

namespace buzon::net {

namespace {
constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
}

TcpStream::TcpStream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
  asio::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) set_peer(ep);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

TcpStream::TcpStream(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& client) : socket_(std::move(socket)) {
  set_peer(client);
  asio::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

void TcpStream::set_peer(const asio::ip::tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  peer_ = addr.is_v6() ? fmt::format("[{}]:{}", addr.to_string(), ep.port()) : fmt::format("{}:{}", addr.to_string(), ep.port());
  loopback_ = addr.is_loopback();
}

asio::awaitable<IoResult> TcpStream::read_some(std::span<char> buf) {
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), kTuple);
  co_return IoResult{ec, n};
}

asio::awaitable<IoResult> TcpStream::write_all(std::span<const char> buf) {
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(buf.data(), buf.size()), kTuple);
  co_return IoResult{ec, n};
}

void TcpStream::close() {
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace buzon::net
