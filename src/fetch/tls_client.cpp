// fetch/tls_client.cpp — client-side TLS (see tls_client.hpp).
#include "fetch/tls_client.hpp"

#include "net/tcp_stream.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/address.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace buzon::fetch {

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string cert_fingerprint(X509* cert) {
  if (!cert) return {};
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return {};
  std::string fp = der_fingerprint(std::string_view(reinterpret_cast<char*>(der), static_cast<std::size_t>(len)));
  OPENSSL_free(der);
  return fp;
}

// What the verify callback saw, for the error message.
struct VerifyNote {
  int error = X509_V_OK;
  int depth = 0;
  std::string leaf_fingerprint;
  std::string pin;  // non-empty: accept exactly this leaf certificate
  bool pin_ok = false;
};

class TlsClientStream final : public net::Stream {
 public:
  TlsClientStream(std::shared_ptr<asio::ssl::context> ctx, asio::ip::tcp::socket sock, std::string peer, bool loopback)
      : ctx_(std::move(ctx)), ssl_(std::move(sock), *ctx_), peer_(std::move(peer)), loopback_(loopback) {}
  asio::ssl::stream<asio::ip::tcp::socket>& ssl() { return ssl_; }

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
    auto* s = const_cast<asio::ssl::stream<asio::ip::tcp::socket>&>(ssl_).native_handle();
    return fmt::format("{} {}", SSL_get_version(s), SSL_get_cipher_name(s));
  }

  VerifyNote note;

 private:
  std::shared_ptr<asio::ssl::context> ctx_;
  asio::ssl::stream<asio::ip::tcp::socket> ssl_;
  std::string peer_;
  bool loopback_;
};

}  // namespace

std::string der_fingerprint(std::string_view der) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(der.data(), der.size(), md, &len, EVP_sha256(), nullptr);
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{}{:02X}", i ? ":" : "", md[i]);
  return out;
}

TlsConnect make_tls_client(const TlsClientOptions& o) {
  return [o](std::unique_ptr<net::Stream> plain) -> asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>> {
    auto* tcp = dynamic_cast<net::TcpStream*>(plain.get());
    if (!tcp) co_return std::unexpected(std::string("TLS needs a TCP connection"));
    const std::string peer = tcp->peer();
    const bool loopback = tcp->peer_is_loopback();
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
    asio::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (!o.ca_file.empty()) {
      ctx->load_verify_file(o.ca_file.string(), ec);
      if (ec) co_return std::unexpected(fmt::format("cannot load ca_file {}: {}", o.ca_file.string(), ec.message()));
    }
    auto stream = std::make_unique<TlsClientStream>(ctx, std::move(tcp->socket()), peer, loopback);
    plain.reset();
    SSL* ssl = stream->ssl().native_handle();
    asio::error_code addr_ec;
    (void)asio::ip::make_address(o.host, addr_ec);  // a literal address gets no SNI and an IP check
    if (addr_ec) SSL_set_tlsext_host_name(ssl, o.host.c_str());  // SNI for names only (RFC 6066 §3)
    auto* param = SSL_get0_param(ssl);
    if (o.fingerprint.empty()) {
      if (addr_ec) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, o.host.c_str(), o.host.size());
      } else {
        X509_VERIFY_PARAM_set1_ip_asc(param, o.host.c_str());
      }
    }
    VerifyNote* note = &stream->note;
    note->pin = o.fingerprint;
    stream->ssl().set_verify_mode(asio::ssl::verify_peer);
    stream->ssl().set_verify_callback([note](bool preverified, asio::ssl::verify_context& vc) {
      X509_STORE_CTX* sc = vc.native_handle();
      const int depth = X509_STORE_CTX_get_error_depth(sc);
      if (depth == 0) note->leaf_fingerprint = cert_fingerprint(X509_STORE_CTX_get_current_cert(sc));
      if (!note->pin.empty()) {
        // Pinned: only the leaf counts, and only by its fingerprint.
        if (depth == 0) note->pin_ok = note->leaf_fingerprint == note->pin;
        return depth == 0 ? note->pin_ok : true;
      }
      if (!preverified && note->error == X509_V_OK) {
        note->error = X509_STORE_CTX_get_error(sc);
        note->depth = depth;
      }
      return preverified;
    });

    auto ex = stream->get_executor();
    asio::steady_timer timer(ex);
    timer.expires_after(o.timeout);
    using namespace asio::experimental::awaitable_operators;
    auto r = co_await (stream->ssl().async_handshake(asio::ssl::stream_base::client, kTuple) || timer.async_wait(kTuple));
    if (r.index() == 1) {
      stream->close();
      co_return std::unexpected(fmt::format("TLS handshake with {} timed out", o.host));
    }
    auto [hec] = std::get<0>(r);
    if (hec) {
      const std::string fix = fmt::format("(fix: ca_file = \"<CA that signed it>\" / --ca-file, or pin it: fingerprint = "
                                          "\"{}\" / --fingerprint, after checking it out of band)",
                                          note->leaf_fingerprint.empty() ? "sha256:..." : note->leaf_fingerprint);
      if (!note->pin.empty() && !note->pin_ok)
        co_return std::unexpected(fmt::format("the certificate of {} does not match the pinned fingerprint {} (it is {})",
                                              o.host, note->pin, note->leaf_fingerprint));
      if (note->error == X509_V_ERR_HOSTNAME_MISMATCH || note->error == X509_V_ERR_IP_ADDRESS_MISMATCH)
        co_return std::unexpected(fmt::format("the certificate of {} is not valid for the name \"{}\" {}", peer, o.host, fix));
      if (note->error != X509_V_OK)
        co_return std::unexpected(fmt::format("the certificate of {} is not trusted: {} {}", o.host,
                                              X509_verify_cert_error_string(note->error), fix));
      co_return std::unexpected(fmt::format("TLS handshake with {} failed: {}", o.host, hec.message()));
    }
    co_return std::unique_ptr<net::Stream>(std::move(stream));
  };
}

}  // namespace buzon::fetch
