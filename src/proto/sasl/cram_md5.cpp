// proto/sasl/cram_md5.cpp — CRAM-MD5, see cram_md5.hpp.
#include "proto/sasl/cram_md5.hpp"

#include "proto/sasl/crypto.hpp"

#include <chrono>
#include <cstring>

namespace buzon::sasl {

std::string cram_md5_digest(std::string_view secret, std::string_view challenge) {
  return to_hex(hmac_md5(secret, challenge));
}

ServerStep CramMd5Server::start(std::optional<std::string_view> initial_response) {
  if (initial_response) return done_ = true, Failure{Errc::initial_response};
  const std::string rnd = random_from(ctx_.random, 8);
  std::uint64_t r = 0;
  for (char c : rnd) r = (r << 8) | static_cast<unsigned char>(c);
  const std::int64_t now = ctx_.unix_time ? ctx_.unix_time()
                                          : std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count();
  // The host name comes from the configuration; keep the challenge printable whatever it holds.
  std::string host;
  for (char c : ctx_.hostname)
    if (c > 0x20 && c < 0x7F && c != '<' && c != '>') host += c;
  if (host.empty()) host = "localhost";
  challenge_ = "<" + std::to_string(r) + "." + std::to_string(now) + "@" + host + ">";
  return Challenge{challenge_};
}

ServerStep CramMd5Server::step(std::string_view response) {
  if (done_ || challenge_.empty()) return Failure{Errc::state};
  done_ = true;
  const auto sp = response.rfind(' ');
  if (sp == std::string_view::npos) return Failure{Errc::malformed};
  std::string_view user = response.substr(0, sp), digest = response.substr(sp + 1);
  if (user.empty()) return Failure{Errc::empty_identity};
  if (user.size() > kMaxCramUser || user.find('\0') != std::string_view::npos) return Failure{Errc::malformed};
  if (digest.size() != 32) return Failure{Errc::malformed};
  std::string lower;
  for (char c : digest) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return Failure{Errc::malformed};
    lower += c;
  }
  return CheckDigest{std::string(user), challenge_, std::move(lower)};
}

std::expected<std::string, Errc> CramMd5Client::respond(std::string_view challenge) {
  if (answered_) return std::unexpected(Errc::state);
  answered_ = true;
  return creds_.authcid + " " + cram_md5_digest(creds_.password, challenge);
}

}  // namespace buzon::sasl
