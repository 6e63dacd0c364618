// net/tls_context.hpp — the server's TLS configuration as OpenSSL contexts: certificates (the
// default one and others chosen by SNI), protocol floor, cipher lists; reloaded on SIGHUP; and the
// two ways a connection becomes TLS: accept() for implicit TLS (POP3S, RFC 8314) and start_tls()
// for STLS/STARTTLS, which consumes the plain stream.
//
// SECURITY  TLS 1.2 is the floor (TLS 1.3 configurable), with AEAD + forward-secret cipher suites
//           by default; compression and renegotiation are off. The key and certificate must match
//           (checked at load). reload() builds a complete new set of contexts first and swaps it
//           in only when everything loaded, so a broken file never leaves the server without TLS;
//           sessions keep the contexts they started with (shared ownership), new handshakes use
//           the new ones. Handshakes are bounded by handshake_timeout. start_tls() takes the plain
//           stream by value: after it, no code holds a way to read plaintext from the socket, and
//           the caller must drop what it had buffered (RFC 2595 §4, RFC 3207 §4.2, CVE-2011-0411).
// STANDARDS RFC 8314 (implicit TLS for POP3, §3.3 certificate use), RFC 2595 §4 (STLS), RFC 8446
//           and RFC 5246 (TLS 1.3/1.2), RFC 6066 §3 (SNI), RFC 9325 (recommendations: TLS 1.2+,
//           AEAD suites), RFC 6125 (wildcard names cover one label).
// LIMITS    handshake_timeout per handshake; one certificate chain per name.
#pragma once

#include "net/stream.hpp"

#include <asio/ip/tcp.hpp>

#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace buzon::net {

// Mozilla "intermediate" TLS 1.2 suites without DHE (no dhparams to manage): ECDHE + AEAD only.
inline constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// TLS 1.3 suites (all AEAD; OpenSSL's own default set).
inline constexpr const char* kDefaultCiphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

struct TlsCertFiles {
  std::filesystem::path cert;   // PEM: the certificate, optionally followed by its chain
  std::filesystem::path key;    // PEM private key
  std::filesystem::path chain;  // optional PEM with intermediate certificates
  std::vector<std::string> names;  // SNI entries: host names, "*.example.org" for one label
  std::string origin;              // where it was configured ("buzon.toml:12"), for errors
};

struct TlsSettings {
  TlsCertFiles main;              // the default certificate (no SNI, or no name matched)
  std::vector<TlsCertFiles> sni;  // chosen by the client's server_name, first match wins
  std::string min_version = "TLSv1.2";  // "TLSv1.2" or "TLSv1.3"
  std::string ciphers = kDefaultCiphers;
  std::string ciphersuites = kDefaultCiphersuites;
  std::chrono::milliseconds handshake_timeout{30'000};
};

// One complete, immutable set of contexts (what a handshake uses from start to end).
struct TlsContexts;

class TlsServerContext {
 public:
  // Loads every certificate and key; errors name the file, the config line and the fix.
  static std::expected<std::shared_ptr<TlsServerContext>, std::string> create(TlsSettings settings);
  ~TlsServerContext();

  // Re-reads every file (SIGHUP). On error the old contexts stay in force and the error is
  // returned. Thread-safe with respect to concurrent handshakes.
  std::expected<void, std::string> reload();
  // The two halves of reload() for an all-or-nothing config reload: loads `next` completely and
  // returns the commit that switches to it (new handshakes only), or the error.
  std::expected<std::function<void()>, std::string> prepare(TlsSettings next);

  // Implicit TLS: the handshake on a freshly accepted socket. `client`, when given, is the peer to
  // report instead of the socket's (the client named by a trusted PROXY header).
  asio::awaitable<UpgradeResult> accept(asio::ip::tcp::socket socket,
                                        std::optional<asio::ip::tcp::endpoint> client = std::nullopt);
  // STLS/STARTTLS: consumes a plain TcpStream (anything else: operation_not_supported).
  asio::awaitable<UpgradeResult> start_tls(StreamPtr plain);

  TlsSettings settings() const;
  // "subject CN=..., expires ..." of each loaded certificate, for the log.
  std::vector<std::string> describe() const;

 private:
  explicit TlsServerContext(TlsSettings s) : settings_(std::move(s)) {}
  std::shared_ptr<TlsContexts> current() const;

  TlsSettings settings_;
  mutable std::mutex mu_;
  std::shared_ptr<TlsContexts> contexts_;
};

// True when `pattern` (lower case; "*.example.org" = exactly one more label) covers `host`.
bool sni_name_matches(std::string_view pattern, std::string_view host);

}  // namespace buzon::net
