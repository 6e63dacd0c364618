// net/stream.hpp — the byte stream a protocol session sees: plain TCP, TLS, or an in-memory test
// stream. Sessions are written against this interface only (DESIGN.md principle 1).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/error_code.hpp>

#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace buzon::net {

using IoResult = std::pair<asio::error_code, std::size_t>;

class Stream {
 public:
  virtual ~Stream() = default;
  // Reads at least one octet, or returns an error (asio::error::eof at end of stream).
  virtual asio::awaitable<IoResult> read_some(std::span<char> buf) = 0;
  // Writes every octet, or returns an error.
  virtual asio::awaitable<IoResult> write_all(std::span<const char> buf) = 0;
  // Aborts pending operations and closes; safe to call more than once and from a timer.
  virtual void close() = 0;
  virtual asio::any_io_executor get_executor() = 0;
  // "ip:port" of the peer, for logs and per-address limits; "" when unknown.
  virtual std::string peer() const = 0;
  // True when the peer address is loopback (policy for plaintext auth).
  virtual bool peer_is_loopback() const = 0;
  virtual bool is_tls() const { return false; }
  // TLS details for logs, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" for plain streams.
  virtual std::string tls_summary() const { return {}; }
  // Channel-binding data for SASL (RFC 5056): "tls-exporter" (RFC 9266) or "tls-unique"
  // (RFC 5929); "" when this stream cannot offer that type (plain TCP, or e.g. tls-unique on 1.3).
  virtual std::string channel_binding(std::string_view type) const {
    (void)type;
    return {};
  }
  // Ends the stream politely (TLS: sends close_notify), bounded in time, then closes.
  virtual asio::awaitable<void> shutdown() {
    close();
    co_return;
  }
};

using StreamPtr = std::unique_ptr<Stream>;
using UpgradeResult = std::expected<StreamPtr, std::error_code>;
// STARTTLS/STLS: takes the plain stream (nothing can read it afterwards, so no plaintext octets
// can leak into the TLS session) and returns the TLS stream after the handshake, or an error (the
// plain stream is gone either way: the connection is over).
using StartTls = std::function<asio::awaitable<UpgradeResult>(StreamPtr)>;

}  // namespace buzon::net
