// proto/sasl/plain.cpp — PLAIN (RFC 4616), see plain.hpp.
#include "proto/sasl/plain.hpp"

namespace buzon::sasl {

std::expected<PlainMessage, Errc> parse_plain(std::string_view m) {
  const auto first = m.find('\0');
  if (first == std::string_view::npos) return std::unexpected(Errc::malformed);
  const auto second = m.find('\0', first + 1);
  if (second == std::string_view::npos) return std::unexpected(Errc::malformed);
  if (m.find('\0', second + 1) != std::string_view::npos) return std::unexpected(Errc::malformed);
  PlainMessage out{std::string(m.substr(0, first)), std::string(m.substr(first + 1, second - first - 1)),
                   std::string(m.substr(second + 1))};
  if (out.authcid.empty() || out.password.empty()) return std::unexpected(Errc::empty_identity);
  if (out.authzid.size() > kMaxPlainField || out.authcid.size() > kMaxPlainField ||
      out.password.size() > kMaxPlainField)
    return std::unexpected(Errc::malformed);
  return out;
}

ServerStep PlainServer::start(std::optional<std::string_view> initial_response) {
  if (!initial_response) return Challenge{};  // RFC 4422 §3.3: an empty challenge asks for it
  return step(*initial_response);
}

ServerStep PlainServer::step(std::string_view response) {
  if (done_) return Failure{Errc::state};
  done_ = true;
  auto m = parse_plain(response);
  if (!m) return Failure{m.error()};
  return CheckPassword{std::move(m->authcid), std::move(m->authzid), std::move(m->password)};
}

std::optional<std::string> PlainClient::initial() {
  sent_ = true;
  std::string m = creds_.authzid;
  m += '\0';
  m += creds_.authcid;
  m += '\0';
  m += creds_.password;
  return m;
}

std::expected<std::string, Errc> PlainClient::respond(std::string_view challenge) {
  // The server asked with an empty challenge because no initial response was sent.
  if (sent_ || !challenge.empty()) return std::unexpected(Errc::state);
  return *initial();
}

}  // namespace buzon::sasl
