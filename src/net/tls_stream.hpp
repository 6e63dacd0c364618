// net/tls_stream.hpp — Stream over TLS (OpenSSL via asio::ssl) on a TCP socket.
//
// SECURITY  Reads and writes go through the TLS record layer only; close() aborts everything
//           (the watchdog calls it); shutdown() sends close_notify and waits at most
//           kTlsShutdownTimeout for the peer. Channel-binding data is only offered where it is
//           sound: tls-exporter on TLS 1.3, or on TLS 1.2 with the extended master secret
//           (RFC 9266 §3, RFC 7627); tls-unique on TLS 1.2 only (RFC 9266 §4.2 forbids it on 1.3).
// STANDARDS RFC 8446/5246 (TLS), RFC 9266 (tls-exporter: 32 octets of keying material, label
//           "EXPORTER-Channel-Binding", no context), RFC 5929 §3.1 (tls-unique: the first Finished
//           message of the latest handshake).
// LIMITS    Not thread safe: one reader and one writer, never at the same time (the sessions
//           alternate by design).
#pragma once

#include "net/stream.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>

#include <chrono>
#include <memory>

namespace buzon::net {

struct TlsContexts;

inline constexpr std::chrono::milliseconds kTlsShutdownTimeout{1000};

class TlsStream final : public Stream {
 public:
  TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<TlsContexts> contexts, std::string peer, bool loopback);
  ~TlsStream() override;

  // The server side of the handshake, bounded by `timeout` (the socket is closed when it passes).
  asio::awaitable<std::error_code> handshake(std::chrono::milliseconds timeout);

  asio::awaitable<IoResult> read_some(std::span<char> buf) override;
  asio::awaitable<IoResult> write_all(std::span<const char> buf) override;
  void close() override;
  asio::any_io_executor get_executor() override { return ssl_.get_executor(); }
  std::string peer() const override { return peer_; }
  bool peer_is_loopback() const override { return loopback_; }
  bool is_tls() const override { return true; }
  std::string tls_summary() const override;
  std::string channel_binding(std::string_view type) const override;
  asio::awaitable<void> shutdown() override;

  // The server name the client asked for (SNI), "" if none.
  std::string server_name() const;

 private:
  std::shared_ptr<TlsContexts> contexts_;  // keeps the SNI table alive for the callback
  asio::ssl::stream<asio::ip::tcp::socket> ssl_;
  std::string peer_;
  bool loopback_ = false;
  bool handshaken_ = false;
};

// "ip:port" / "[v6]:port" and loopback-ness of a connected socket ("" / false when unknown), or of
// an endpoint (IPv4-mapped addresses are shown as IPv4).
std::pair<std::string, bool> describe_peer(const asio::ip::tcp::socket& socket);
std::pair<std::string, bool> describe_endpoint(const asio::ip::tcp::endpoint& ep);

}  // namespace buzon::net
