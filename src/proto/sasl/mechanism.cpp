// proto/sasl/mechanism.cpp — the mechanism table and factories, see mechanism.hpp.
#include "proto/sasl/mechanism.hpp"

#include "proto/sasl/cram_md5.hpp"
#include "proto/sasl/crypto.hpp"
#include "proto/sasl/login.hpp"
#include "proto/sasl/plain.hpp"
#include "proto/sasl/scram.hpp"

namespace buzon::sasl {

bool is_known(std::string_view name) {
  for (auto m : kAllMechanisms)
    if (m == name) return true;
  return false;
}

bool is_plaintext(std::string_view name) { return name == kPlain || name == kLogin; }

bool needs_channel_binding(std::string_view name) { return name == kScramSha256Plus; }

std::string_view to_string(Errc e) {
  switch (e) {
    case Errc::malformed: return "malformed message";
    case Errc::initial_response: return "initial response not allowed";
    case Errc::empty_identity: return "empty user name or password";
    case Errc::extension: return "unsupported mandatory extension";
    case Errc::channel_binding: return "channel binding refused";
    case Errc::nonce: return "nonce mismatch";
    case Errc::bad_proof: return "wrong credentials";
    case Errc::server_signature: return "server signature mismatch";
    case Errc::server_error: return "server reported an error";
    case Errc::iterations: return "iteration count out of bounds";
    case Errc::state: return "unexpected step";
  }
  return "unknown";
}

ServerStep ServerMechanism::credentials(const std::optional<ScramCredentials>&) { return Failure{Errc::state}; }

std::unique_ptr<ServerMechanism> make_server(std::string_view name, const ServerContext& ctx) {
  if (name == kPlain) return std::make_unique<PlainServer>();
  if (name == kLogin) return std::make_unique<LoginServer>();
  if (name == kCramMd5) return std::make_unique<CramMd5Server>(ctx);
  if (name == kScramSha256) return std::make_unique<ScramServer>(ctx, false);
  if (name == kScramSha256Plus) return std::make_unique<ScramServer>(ctx, true);
  return nullptr;
}

std::unique_ptr<ClientMechanism> make_client(std::string_view name, ClientCredentials creds, ClientContext ctx) {
  if (name == kPlain) return std::make_unique<PlainClient>(std::move(creds));
  if (name == kLogin) return std::make_unique<LoginClient>(std::move(creds));
  if (name == kCramMd5) return std::make_unique<CramMd5Client>(std::move(creds));
  if (name == kScramSha256) return std::make_unique<ScramClient>(std::move(creds), std::move(ctx), false);
  if (name == kScramSha256Plus) {
    if (!ctx.channel_binding) return nullptr;  // nothing to bind to
    return std::make_unique<ScramClient>(std::move(creds), std::move(ctx), true);
  }
  return nullptr;
}

std::string random_from(const std::function<std::string(std::size_t)>& random, std::size_t n) {
  return random ? random(n) : random_bytes(n);
}

}  // namespace buzon::sasl
