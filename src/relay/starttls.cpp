// relay/starttls.cpp — the relay's STARTTLS client and TCP connect (see relay.hpp).
//
// SECURITY  Opportunistic TLS (RFC 7435, RFC 3207 §4.1: a public MX usually cannot be
//           authenticated) encrypts without checking the certificate: it protects against passive
//           eavesdropping only, as Postfix's "may". With verify the chain must lead to a system CA
//           and the certificate must match the host name (RFC 6125). TLS 1.2 is the floor. The plain
//           stream is consumed by the upgrade; the session refuses octets sent ahead of the
//           handshake (client_session.cpp).
// STANDARDS RFC 3207, RFC 7435, RFC 6125, RFC 6066 §3 (SNI for names only).
// LIMITS    Connect and handshake each bounded by their timeout.
#include "net/tcp_stream.hpp"
#include "relay/relay.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/address.hpp>
#include <asio/ssl.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace buzon::relay {

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
using SslStream = asio::ssl::stream<asio::ip::tcp::socket>;

class RelayTlsStream final : public net::Stream {
 public:
  RelayTlsStream(std::shared_ptr<asio::ssl::context> ctx, asio::ip::tcp::socket sock, std::string peer, bool loopback)
      : ctx_(std::move(ctx)), ssl_(std::move(sock), *ctx_), peer_(std::move(peer)), loopback_(loopback) {}
  SslStream& ssl() { return ssl_; }

  asio::awaitable<net::IoResult> read_some(std::span<char> buf) override {
    auto [ec, n] = co_await ssl_.async_read_some(asio::buffer(buf.data(), buf.size()), kTuple);
    co_return net::IoResult{ec, n};
  }
  asio::awaitable<net::IoResult> write_all(std::span<const char> buf) override {
    auto [ec, n] = co_await asio::async_write(ssl_, asio::buffer(buf.data(), buf.size()), kTuple);
    co_return net::IoResult{ec, n};
  }
  void close() override {
    asio::error_code ec;
    ssl_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    ssl_.lowest_layer().close(ec);
  }
  asio::any_io_executor get_executor() override { return ssl_.get_executor(); }
  std::string peer() const override { return peer_; }
  bool peer_is_loopback() const override { return loopback_; }
  bool is_tls() const override { return true; }
  std::string tls_summary() const override {
    auto* s = const_cast<SslStream&>(ssl_).native_handle();
    return fmt::format("{} {}", SSL_get_version(s), SSL_get_cipher_name(s));
  }

 private:
  std::shared_ptr<asio::ssl::context> ctx_;
  SslStream ssl_;
  std::string peer_;
  bool loopback_;
};

}  // namespace

asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>> tcp_connect(
    std::string address, std::uint16_t port, std::chrono::milliseconds timeout, std::string source) {
  using Result = std::expected<std::unique_ptr<net::Stream>, std::string>;
  asio::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) co_return Result(std::unexpected(fmt::format("bad address {}", address)));
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::socket sock(ex);
  if (!source.empty()) {
    auto src = asio::ip::make_address(source, ec);
    if (ec) co_return Result(std::unexpected(fmt::format("bad source address {}", source)));
    if (src.is_v4() != ip.is_v4()) {
      // The other address family: let the kernel choose the source.
    } else {
      sock.open(ip.is_v4() ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), ec);
      if (!ec) sock.bind(asio::ip::tcp::endpoint(src, 0), ec);
      if (ec) co_return Result(std::unexpected(fmt::format("cannot bind to source address {}: {}", source, ec.message())));
    }
  }
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  using namespace asio::experimental::awaitable_operators;
  auto r = co_await (sock.async_connect(asio::ip::tcp::endpoint(ip, port), kTuple) || timer.async_wait(kTuple));
  if (r.index() == 1) co_return Result(std::unexpected(std::string("connection timed out")));
  auto [cec] = std::get<0>(r);
  if (cec) co_return Result(std::unexpected(cec.message()));
  co_return Result(std::make_unique<net::TcpStream>(std::move(sock)));
}

smtp::TlsUpgrade starttls_client(std::string host, bool verify, std::chrono::milliseconds timeout) {
  return [host, verify, timeout](std::unique_ptr<net::Stream> plain)
             -> asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>> {
    auto* tcp = dynamic_cast<net::TcpStream*>(plain.get());
    if (!tcp) co_return std::unexpected(std::string("STARTTLS needs a TCP connection"));
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
    if (verify) {
      asio::error_code ec;
      ctx->set_default_verify_paths(ec);
    }
    auto stream = std::make_unique<RelayTlsStream>(ctx, std::move(tcp->socket()), tcp->peer(), tcp->peer_is_loopback());
    plain.reset();
    SSL* ssl = stream->ssl().native_handle();
    asio::error_code addr_ec;
    (void)asio::ip::make_address(host, addr_ec);
    if (addr_ec) SSL_set_tlsext_host_name(ssl, host.c_str());
    if (verify) {
      auto* param = SSL_get0_param(ssl);
      if (addr_ec) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
      } else {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
      }
      stream->ssl().set_verify_mode(asio::ssl::verify_peer);
    } else {
      stream->ssl().set_verify_mode(asio::ssl::verify_none);
    }
    asio::steady_timer timer(stream->get_executor());
    timer.expires_after(timeout);
    using namespace asio::experimental::awaitable_operators;
    auto r = co_await (stream->ssl().async_handshake(asio::ssl::stream_base::client, kTuple) || timer.async_wait(kTuple));
    if (r.index() == 1) {
      stream->close();
      co_return std::unexpected(fmt::format("TLS handshake with {} timed out", host));
    }
    auto [hec] = std::get<0>(r);
    if (hec) {
      stream->close();
      const long v = SSL_get_verify_result(ssl);
      if (verify && v != X509_V_OK)
        co_return std::unexpected(fmt::format("the certificate of {} is not trusted: {}", host, X509_verify_cert_error_string(v)));
      co_return std::unexpected(fmt::format("TLS handshake with {} failed: {}", host, hec.message()));
    }
    co_return std::unique_ptr<net::Stream>(std::move(stream));
  };
}

}  // namespace buzon::relay
