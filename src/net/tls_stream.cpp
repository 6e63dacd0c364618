// net/tls_stream.cpp — see tls_stream.hpp.
#include "net/tls_stream.hpp"

#include "net/tls_contexts.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>

#include <openssl/ssl.h>

namespace buzon::net {

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

// Closes the socket if the guarded operation has not finished when the timer fires. Everything
// runs on the stream's executor, so `finished` needs no lock.
struct Deadline {
  asio::steady_timer timer;
  bool finished = false;
  explicit Deadline(const asio::any_io_executor& ex) : timer(ex) {}
};

std::shared_ptr<Deadline> arm(asio::ip::tcp::socket& sock, std::chrono::milliseconds timeout) {
  auto d = std::make_shared<Deadline>(sock.get_executor());
  d->timer.expires_after(timeout);
  d->timer.async_wait([d, s = &sock](asio::error_code ec) {
    if (ec || d->finished) return;  // cancelled, or the operation completed: `s` may be gone
    asio::error_code ig;
    s->close(ig);
  });
  return d;
}

void disarm(const std::shared_ptr<Deadline>& d) {
  d->finished = true;
  d->timer.cancel();
}

}  // namespace

std::pair<std::string, bool> describe_peer(const asio::ip::tcp::socket& socket) {
  asio::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return {"", false};
  return describe_endpoint(ep);
}

std::pair<std::string, bool> describe_endpoint(const asio::ip::tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  auto text = addr.is_v6() ? fmt::format("[{}]:{}", addr.to_string(), ep.port())
                           : fmt::format("{}:{}", addr.to_string(), ep.port());
  return {text, addr.is_loopback()};
}

TlsStream::TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<TlsContexts> contexts, std::string peer,
                     bool loopback)
    : contexts_(std::move(contexts)), ssl_(std::move(socket), *contexts_->main), peer_(std::move(peer)),
      loopback_(loopback) {}

TlsStream::~TlsStream() = default;

asio::awaitable<std::error_code> TlsStream::handshake(std::chrono::milliseconds timeout) {
  auto d = arm(ssl_.next_layer(), timeout);
  auto [ec] = co_await ssl_.async_handshake(asio::ssl::stream_base::server, kTuple);
  const bool timed_out = !ssl_.next_layer().is_open();
  disarm(d);
  if (!ec) {
    handshaken_ = true;
    co_return std::error_code{};
  }
  co_return timed_out ? std::make_error_code(std::errc::timed_out) : ec;
}

asio::awaitable<IoResult> TlsStream::read_some(std::span<char> buf) {
  auto [ec, n] = co_await ssl_.async_read_some(asio::buffer(buf.data(), buf.size()), kTuple);
  co_return IoResult{ec, n};
}

asio::awaitable<IoResult> TlsStream::write_all(std::span<const char> buf) {
  auto [ec, n] = co_await asio::async_write(ssl_, asio::buffer(buf.data(), buf.size()), kTuple);
  co_return IoResult{ec, n};
}

void TlsStream::close() {
  asio::error_code ec;
  ssl_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  ssl_.next_layer().close(ec);
}

asio::awaitable<void> TlsStream::shutdown() {
  if (handshaken_ && ssl_.next_layer().is_open()) {
    // close_notify, then wait (briefly) for the peer's answer or its FIN.
    auto d = arm(ssl_.next_layer(), kTlsShutdownTimeout);
    co_await ssl_.async_shutdown(kTuple);
    disarm(d);
  }
  close();
}

std::string TlsStream::tls_summary() const {
  SSL* ssl = const_cast<TlsStream*>(this)->ssl_.native_handle();
  if (!handshaken_) return {};
  return fmt::format("{} {}", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

std::string TlsStream::server_name() const {
  SSL* ssl = const_cast<TlsStream*>(this)->ssl_.native_handle();
  const char* n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  return n ? n : "";
}

std::string TlsStream::channel_binding(std::string_view type) const {
  if (!handshaken_) return {};
  SSL* ssl = const_cast<TlsStream*>(this)->ssl_.native_handle();
  const bool tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
  if (type == "tls-exporter") {
    // RFC 9266 §3: on TLS 1.2 only with the extended master secret (RFC 7627).
    if (!tls13 && SSL_get_extms_support(ssl) != 1) return {};
    static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
    std::string out(32, '\0');
    if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(out.data()), out.size(), kLabel,
                                   sizeof kLabel - 1, nullptr, 0, 0) != 1)
      return {};
    return out;
  }
  if (type == "tls-unique") {
    if (tls13) return {};  // RFC 9266 §4.2: not defined for TLS 1.3
    // RFC 5929 §3.1: the first Finished message of the handshake: the client's in a full
    // handshake, ours in an abbreviated (resumed) one.
    unsigned char buf[EVP_MAX_MD_SIZE];
    const std::size_t n = SSL_session_reused(ssl) ? SSL_get_finished(ssl, buf, sizeof buf)
                                                  : SSL_get_peer_finished(ssl, buf, sizeof buf);
    return std::string(reinterpret_cast<const char*>(buf), std::min(n, sizeof buf));
  }
  return {};
}

}  // namespace buzon::net
