// proto/sasl/scram.hpp — SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677), server and
// client, with tls-exporter (RFC 9266) and tls-unique (RFC 5929) channel binding.
//
// SECURITY  The server holds only StoredKey and ServerKey: a stolen passwd-file does not let an
//           attacker log in (that needs ClientKey), though it allows an offline guessing attack at
//           the stored PBKDF2 iteration count. The proof is checked in constant time. Unknown users get a
//           salt derived from a per-process secret and fail at the proof, so the exchange does not
//           reveal which names exist. Channel binding: a -PLUS exchange must bind to one of the
//           connection's bindings; "y" from a client that was offered -PLUS is a downgrade and
//           fails (RFC 5802 §6); "p=" with the non-PLUS mechanism fails. A mandatory extension
//           ("m=") fails. User names: "=2C" and "=3D" are decoded, any other "=" fails. No
//           SASLprep (RFC 4013) is applied: names and passwords are compared as the UTF-8 octets
//           the client sent, which equals SASLprep for ASCII (as Dovecot does).
// STANDARDS RFC 5802 §3 (algorithm), §5 (messages), §6 (channel binding), §7 (grammar);
//           RFC 7677 §3 (SHA-256, iteration count >= 4096); RFC 9266 (tls-exporter, the default
//           for TLS 1.3); RFC 5929 §3 (tls-unique, TLS 1.2 only); RFC 4422 §3.6 (additional data
//           with success: the "v=" message).
// LIMITS    Iteration counts kMinIterations..kMaxIterations (client side; the server uses what is
//           stored, up to kMaxIterations); nonces of kNonceOctets random octets.
#pragma once

#include "proto/sasl/mechanism.hpp"

namespace buzon::sasl {

inline constexpr std::uint32_t kMinIterations = 4096;     // RFC 7677 §3
inline constexpr std::uint32_t kMaxIterations = 1000000;  // ~1 s of PBKDF2: bounds a hostile peer
inline constexpr std::size_t kNonceOctets = 24;           // base64: 32 printable characters
inline constexpr std::size_t kSaltOctets = 16;

// The stored keys for a password (RFC 5802 §3): SaltedPassword = Hi(password, salt, i),
// StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key").
ScramCredentials scram_credentials(std::string_view password, std::string_view salt, std::uint32_t iterations);

// saslname escaping (RFC 5802 §5.1): ',' -> "=2C", '=' -> "=3D"; decode fails on any other '='.
std::string scram_escape(std::string_view name);
std::optional<std::string> scram_unescape(std::string_view name);

// `ctx` must outlive the mechanism.
class ScramServer final : public ServerMechanism {
 public:
  ScramServer(const ServerContext& ctx, bool plus) : ctx_(ctx), plus_(plus) {}
  std::string_view name() const override { return plus_ ? kScramSha256Plus : kScramSha256; }
  ServerStep start(std::optional<std::string_view> initial_response) override;
  ServerStep step(std::string_view response) override;
  ServerStep credentials(const std::optional<ScramCredentials>& creds) override;

 private:
  ServerStep client_first(std::string_view msg);
  ServerStep client_final(std::string_view msg);
  Failure fail(Errc e) {
    state_ = State::done;
    return Failure{e};
  }

  const ServerContext& ctx_;
  bool plus_;
  enum class State { client_first, credentials, client_final, done } state_ = State::client_first;
  std::string gs2_header_;         // "n,,", "y,a=x,", "p=tls-exporter,," ...
  std::string cbind_data_;         // the binding the client chose ("" unless "p=")
  std::string client_first_bare_;  // "n=user,r=nonce[,ext]"
  std::string server_first_;
  std::string nonce_;              // client nonce + server nonce
  std::string authcid_, authzid_;
  ScramCredentials creds_;
  bool known_ = false;             // creds_ are the user's (not the unknown-user stand-in)
};

class ScramClient final : public ClientMechanism {
 public:
  ScramClient(ClientCredentials c, ClientContext ctx, bool plus)
      : creds_(std::move(c)), ctx_(std::move(ctx)), plus_(plus) {}
  std::string_view name() const override { return plus_ ? kScramSha256Plus : kScramSha256; }
  std::optional<std::string> initial() override;
  std::expected<std::string, Errc> respond(std::string_view challenge) override;
  bool complete() const override { return state_ == State::complete; }

 private:
  ClientCredentials creds_;
  ClientContext ctx_;
  bool plus_;
  enum class State { initial, server_first, server_final, complete, failed } state_ = State::initial;
  std::string gs2_header_, client_first_bare_, client_nonce_, server_signature_;
};

}  // namespace buzon::sasl
