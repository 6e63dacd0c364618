// net/unix_stream.cpp — Stream over a unix-domain socket (see unix_stream.hpp).
//
// SECURITY  See unix_stream.hpp.
// STANDARDS None.
// LIMITS    None.
#include "net/unix_stream.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace buzon::net {

namespace {
constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
}

asio::awaitable<IoResult> UnixStream::read_some(std::span<char> buf) {
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), kTuple);
  co_return IoResult{ec, n};
}

asio::awaitable<IoResult> UnixStream::write_all(std::span<const char> buf) {
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(buf.data(), buf.size()), kTuple);
  co_return IoResult{ec, n};
}

void UnixStream::close() {
  asio::error_code ec;
  socket_.shutdown(asio::local::stream_protocol::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace buzon::net
