// proto/sasl/plain.hpp — PLAIN (RFC 4616), server and client.
//
// SECURITY  The password travels in the message: only over TLS or from trusted networks (the
//           caller's policy, see is_plaintext()). The message must hold exactly two NULs; an empty
//           authcid or password fails.
// STANDARDS RFC 4616 §2 (message = [authzid] NUL authcid NUL passwd), §4 (the server fails an
//           empty or malformed message); RFC 4422 §3.3 (no initial response: empty challenge).
// LIMITS    kMaxField octets per field (RFC 4616 §2: up to 255 octets each).
#pragma once

#include "proto/sasl/mechanism.hpp"

namespace buzon::sasl {

inline constexpr std::size_t kMaxPlainField = 255;

struct PlainMessage {
  std::string authzid, authcid, password;
};
// Parses "[authzid] NUL authcid NUL passwd".
std::expected<PlainMessage, Errc> parse_plain(std::string_view message);

class PlainServer final : public ServerMechanism {
 public:
  std::string_view name() const override { return kPlain; }
  ServerStep start(std::optional<std::string_view> initial_response) override;
  ServerStep step(std::string_view response) override;

 private:
  bool done_ = false;
};

class PlainClient final : public ClientMechanism {
 public:
  explicit PlainClient(ClientCredentials c) : creds_(std::move(c)) {}
  std::string_view name() const override { return kPlain; }
  std::optional<std::string> initial() override;
  std::expected<std::string, Errc> respond(std::string_view challenge) override;
  bool complete() const override { return sent_; }

 private:
  ClientCredentials creds_;
  bool sent_ = false;
};

}  // namespace buzon::sasl
