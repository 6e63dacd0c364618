// net/stream.hpp — the byte stream a protocol session sees: plain TCP, TLS, or an in-memory test
// stream. Sessions are written against this interface only (DESIGN.md principle 1).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/error_code.hpp>

#include <cstddef>
#include <span>
#include <string>
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
};

}  // namespace buzon::net
