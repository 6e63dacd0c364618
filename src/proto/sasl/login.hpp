// proto/sasl/login.hpp — LOGIN (draft-murchison-sasl-login-00; obsolete but what Outlook and many
// older clients use), server and client.
//
// SECURITY  The password travels in the clear (inside base64): only over TLS or from trusted
//           networks (is_plaintext()). Empty user names and passwords fail.
// STANDARDS draft-murchison-sasl-login §2: the server sends "Username:" and "Password:" challenges;
//           a client may send the user name as an initial response (accepted, as Dovecot does).
// LIMITS    kMaxLoginField octets per answer.
#pragma once

#include "proto/sasl/mechanism.hpp"

namespace buzon::sasl {

inline constexpr std::size_t kMaxLoginField = 255;
inline constexpr std::string_view kLoginUserPrompt = "Username:";
inline constexpr std::string_view kLoginPasswordPrompt = "Password:";

class LoginServer final : public ServerMechanism {
 public:
  std::string_view name() const override { return kLogin; }
  ServerStep start(std::optional<std::string_view> initial_response) override;
  ServerStep step(std::string_view response) override;

 private:
  enum class State { user, password, done } state_ = State::user;
  std::string user_;
};

class LoginClient final : public ClientMechanism {
 public:
  explicit LoginClient(ClientCredentials c) : creds_(std::move(c)) {}
  std::string_view name() const override { return kLogin; }
  std::optional<std::string> initial() override { return std::nullopt; }
  std::expected<std::string, Errc> respond(std::string_view challenge) override;
  bool complete() const override { return answered_ == 2; }

 private:
  ClientCredentials creds_;
  int answered_ = 0;
};

}  // namespace buzon::sasl
