// proto/sasl/cram_md5.hpp — CRAM-MD5 (RFC 2195), server and client.
//
// SECURITY  The server needs a password-equivalent secret to check the digest (the plaintext or
//           Dovecot's {CRAM-MD5} HMAC context): only users stored that way can use it; the check
//           itself is the caller's (auth::verify_cram_md5, on the worker pool). The challenge holds
//           64 random bits, the time and the host name, so it never repeats. The user name is the
//           text before the LAST space (names may contain spaces; digests never do).
// STANDARDS RFC 2195 §2 (challenge "<random.time@host>", response "user SP hex-digest"); RFC 2104
//           (HMAC-MD5). No initial response (the server speaks first): one is an error
//           (RFC 5034 §4).
// LIMITS    kMaxCramUser octets of user name; the digest is exactly 32 hex digits.
#pragma once

#include "proto/sasl/mechanism.hpp"

namespace buzon::sasl {

inline constexpr std::size_t kMaxCramUser = 255;

// Lower-case hex HMAC-MD5(secret, challenge): the digest of RFC 2195.
std::string cram_md5_digest(std::string_view secret, std::string_view challenge);

// `ctx` must outlive the mechanism.
class CramMd5Server final : public ServerMechanism {
 public:
  explicit CramMd5Server(const ServerContext& ctx) : ctx_(ctx) {}
  std::string_view name() const override { return kCramMd5; }
  ServerStep start(std::optional<std::string_view> initial_response) override;
  ServerStep step(std::string_view response) override;

 private:
  const ServerContext& ctx_;
  std::string challenge_;
  bool done_ = false;
};

class CramMd5Client final : public ClientMechanism {
 public:
  explicit CramMd5Client(ClientCredentials c) : creds_(std::move(c)) {}
  std::string_view name() const override { return kCramMd5; }
  std::optional<std::string> initial() override { return std::nullopt; }
  std::expected<std::string, Errc> respond(std::string_view challenge) override;
  bool complete() const override { return answered_; }

 private:
  ClientCredentials creds_;
  bool answered_ = false;
};

}  // namespace buzon::sasl
