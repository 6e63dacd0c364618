// proto/sasl/login.cpp — LOGIN, see login.hpp.
#include "proto/sasl/login.hpp"

namespace buzon::sasl {

ServerStep LoginServer::start(std::optional<std::string_view> initial_response) {
  // An empty initial response ("=") carries no user name: ask for it.
  if (!initial_response || initial_response->empty()) return Challenge{std::string(kLoginUserPrompt)};
  return step(*initial_response);
}

ServerStep LoginServer::step(std::string_view response) {
  switch (state_) {
    case State::user:
      if (response.empty()) return state_ = State::done, Failure{Errc::empty_identity};
      if (response.size() > kMaxLoginField || response.find('\0') != std::string_view::npos)
        return state_ = State::done, Failure{Errc::malformed};
      user_.assign(response);
      state_ = State::password;
      return Challenge{std::string(kLoginPasswordPrompt)};
    case State::password:
      state_ = State::done;
      if (response.empty()) return Failure{Errc::empty_identity};
      if (response.size() > kMaxLoginField || response.find('\0') != std::string_view::npos)
        return Failure{Errc::malformed};
      return CheckPassword{std::move(user_), "", std::string(response)};
    case State::done: break;
  }
  return Failure{Errc::state};
}

std::expected<std::string, Errc> LoginClient::respond(std::string_view challenge) {
  // The prompts are informational; servers word them differently ("User Name", "Username:").
  (void)challenge;
  switch (answered_++) {
    case 0: return creds_.authcid;
    case 1: return creds_.password;
    default: return std::unexpected(Errc::state);
  }
}

}  // namespace buzon::sasl
