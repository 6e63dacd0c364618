// dkim/dkim.hpp — DKIM signing (RFC 6376) of outgoing messages: rsa-sha256 and ed25519-sha256
// (RFC 8463), relaxed/relaxed canonicalization, keys from PEM files.
//
// SECURITY  Private keys are read once at start-up (before dropping privileges) and never logged.
//           The message is untrusted text: canonicalization is bounded by its size, header names are
//           matched case-insensitively, and only fields present are signed (h= lists each once,
//           plus the recommended over-signing of From).
// STANDARDS RFC 6376 §3.4.2 (relaxed header), §3.4.4 (relaxed body), §3.5 (tags), §3.7 (hash
//           computation), §5.4 (which fields to sign); RFC 8463 (Ed25519); RFC 8301 (rsa-sha256
//           only, RSA keys >= 1024 bits, 2048 by default).
// THREADS   sign() is pure CPU work (hash + signature): call it from the worker pool, not a loop.
// LIMITS    The message is in memory (bounded by the submission max_message_size).
#pragma once

#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace buzon::dkim {

enum class Algorithm { rsa_sha256, ed25519_sha256 };

class Key {
 public:
  // Loads a PEM private key (RSA or Ed25519); the algorithm follows from the key.
  static std::expected<Key, std::string> load(const std::filesystem::path& pem);
  static std::expected<Key, std::string> from_pem(std::string_view pem);
  Algorithm algorithm() const;
  // The DNS TXT record value: "v=DKIM1; k=rsa; p=MIIB..." (or k=ed25519).
  std::string dns_record() const;
  struct Impl;
  std::shared_ptr<const Impl> impl;
};

struct Signer {
  std::string domain;    // d=
  std::string selector;  // s=
  Key key;
};

// Returns the complete "DKIM-Signature: ...\r\n" field (folded, CRLF-terminated) to prepend to
// `message` (RFC 5322 text with CRLF line ends). `now` is the t= value (Unix seconds).
std::expected<std::string, std::string> sign(const Signer& signer, std::string_view message, long long now);

// Pure canonicalization steps, exposed for unit tests (RFC 6376 §3.4.2, §3.4.4).
std::string relaxed_header(std::string_view name, std::string_view value);
std::string relaxed_body(std::string_view body);

// `buzon dkim keygen`: a new private key in PEM (RSA 2048 or Ed25519).
std::expected<std::string, std::string> generate_key_pem(Algorithm algorithm, unsigned rsa_bits = 2048);

}  // namespace buzon::dkim
