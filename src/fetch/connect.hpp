// fetch/connect.hpp — opening the connection of a client session (`buzon fetch`, `buzon send`):
// name resolution and TCP connect with a deadline, and the TLS hook.
//
// SECURITY  Certificate verification is on whenever TLS is used: the system CAs (or ca_file) and
//           the host name, or a pinned SHA-256 fingerprint. There is no switch to turn it off.
// STANDARDS RFC 8314 (implicit TLS), RFC 6125 (host name check), RFC 2595 / RFC 3207 (STLS,
//           STARTTLS: the upgrade consumes the plain stream).
// LIMITS    One connect attempt per resolved address, each within the timeout.
#pragma once

#include "net/stream.hpp"

#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace buzon::fetch {

struct ConnectError {
  bool dns = false;  // the name did not resolve
  std::string message;
};

asio::awaitable<std::expected<std::unique_ptr<net::Stream>, ConnectError>> connect_tcp(
    const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);

struct TlsClientOptions {
  std::string host;                  // for SNI and the certificate name check
  std::filesystem::path ca_file;     // extra trust anchors ("" = system CAs only)
  std::string fingerprint;           // "sha256:AB:..." pins the server certificate
  std::chrono::milliseconds timeout{60'000};
};

using TlsConnect = std::function<asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>>(
    std::unique_ptr<net::Stream>)>;

// The client-side TLS upgrade for these options, or an empty function when this build has no
// client TLS yet (callers then fail with a clear message instead of falling back to plaintext).
TlsConnect tls_client(const TlsClientOptions& options);

}  // namespace buzon::fetch
