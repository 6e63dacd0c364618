// fetch/tls_client.hpp — the client side of TLS for `buzon fetch` and `buzon send`: a net::Stream
// over asio::ssl with certificate verification that cannot be switched off.
//
// SECURITY  TLS 1.2 is the floor. The server certificate must chain to a trusted CA (the system's,
//           plus ca_file) and match the host name (RFC 6125 via OpenSSL's X509_check_host; an IP
//           address must match an IP SAN) — or, when a fingerprint is pinned, the leaf certificate's
//           SHA-256 must equal the pin (then chain and name are not consulted, as mpop's
//           tls_fingerprint). A failure names the cause, the certificate's fingerprint and the fix.
//           STLS/STARTTLS: the plain TcpStream is consumed; nothing buffered before the upgrade is
//           used after it (the sessions check that).
// STANDARDS RFC 8314 (implicit TLS), RFC 6125 (service identity), RFC 6066 §3 (SNI, names only).
// LIMITS    The handshake is bounded by the timeout of TlsClientOptions.
#pragma once

#include "fetch/connect.hpp"

namespace buzon::fetch {

// Implemented in tls_client.cpp; connect.cpp's tls_client() returns it.
TlsConnect make_tls_client(const TlsClientOptions& options);

// "sha256:AB:CD:..." of a DER certificate.
std::string der_fingerprint(std::string_view der);

}  // namespace buzon::fetch
