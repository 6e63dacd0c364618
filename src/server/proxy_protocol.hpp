// server/proxy_protocol.hpp — the PROXY protocol header (HAProxy, versions 1 and 2) that a trusted
// load balancer sends before the client's bytes, so that buzon logs and limits the real client.
//
// SECURITY  A PROXY header is believed only on listeners that opt in ([proxy] listeners) and only
//           from a connection whose own peer is in [proxy] trusted; anyone else could claim any
//           address. The parser is pure and bounded; the reader consumes exactly the header's
//           octets (peek, then read), so the protocol bytes after it reach the session untouched
//           (an implicit-TLS ClientHello may follow immediately).
// STANDARDS "The PROXY protocol", versions 1 & 2 (haproxy doc/proxy-protocol.txt, 2020/03/05):
//           v1 is one text line of at most 107 octets; v2 is a 16-octet binary preamble
//           (12-octet signature, version/command, family/transport, length) then addresses and TLVs.
// LIMITS    v1: 107 octets. v2: 16 + kMaxV2Payload octets (TLVs are skipped). The whole header must
//           arrive within [proxy] timeout seconds.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <expected>
#include <optional>
#include <span>
#include <string>

namespace buzon::server::proxy {

inline constexpr std::size_t kMaxV1 = 107;
inline constexpr std::size_t kMaxV2Payload = 4096;
inline constexpr std::size_t kMaxHeader = 16 + kMaxV2Payload;

struct Header {
  int version = 0;      // 1 or 2
  bool local = false;   // v1 UNKNOWN, v2 LOCAL or an unsupported family: keep the connection's own addresses
  std::optional<asio::ip::tcp::endpoint> source;       // the real client (when !local)
  std::optional<asio::ip::tcp::endpoint> destination;  // the address the client connected to
  std::size_t length = 0;                              // octets of the header
};

enum class Status { need_more, done, invalid };

struct ParseResult {
  Status status = Status::need_more;
  Header header;      // when done
  std::string error;  // when invalid: what was wrong, for the log
};

// Parses a header at the start of `buf`. need_more: `buf` is a proper prefix of a header that may
// still be valid; done: header.length octets form the header (octets after it are not looked at).
ParseResult parse(std::span<const unsigned char> buf);

// Reads exactly one header from `sock` within `timeout`. The error says why (for the log).
asio::awaitable<std::expected<Header, std::string>> read_header(asio::ip::tcp::socket& sock,
                                                                std::chrono::milliseconds timeout);

}  // namespace buzon::server::proxy
