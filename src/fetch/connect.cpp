// fetch/connect.cpp — resolve + connect with a deadline; the TLS hook (see connect.hpp).
#include "fetch/connect.hpp"

#include "fetch/tls_client.hpp"
#include "net/tcp_stream.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

namespace buzon::fetch {

namespace {
constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
}

asio::awaitable<std::expected<std::unique_ptr<net::Stream>, ConnectError>> connect_tcp(
    const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(ex);
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  auto res = co_await (resolver.async_resolve(host, std::to_string(port), kTuple) || timer.async_wait(kTuple));
  if (res.index() == 1)
    co_return std::unexpected(ConnectError{true, fmt::format("resolving {} timed out", host)});
  auto [rec, endpoints] = std::get<0>(res);
  if (rec) co_return std::unexpected(ConnectError{true, fmt::format("cannot resolve {}: {}", host, rec.message())});
  std::string last = "no address";
  for (const auto& ep : endpoints) {
    asio::ip::tcp::socket sock(ex);
    timer.expires_after(timeout);
    auto r = co_await (sock.async_connect(ep.endpoint(), kTuple) || timer.async_wait(kTuple));
    if (r.index() == 1) {
      last = fmt::format("connecting to {} port {} timed out", ep.endpoint().address().to_string(), port);
      continue;
    }
    auto [ec] = std::get<0>(r);
    if (ec) {
      last = fmt::format("cannot connect to {} port {}: {}", ep.endpoint().address().to_string(), port, ec.message());
      continue;
    }
    co_return std::make_unique<net::TcpStream>(std::move(sock));
  }
  co_return std::unexpected(ConnectError{false, last});
}

TlsConnect tls_client(const TlsClientOptions& options) { return make_tls_client(options); }

}  // namespace buzon::fetch
