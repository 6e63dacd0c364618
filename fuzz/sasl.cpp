// fuzz/sasl.cpp — the SASL server mechanisms (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256[-PLUS]) fed
// arbitrary client responses, and the SCRAM/LOGIN/CRAM-MD5 clients fed arbitrary challenges.
//
// Input: [mechanism octet][flags octet] then client (or server) messages separated by NUL.
// Invariants checked on top of "no crash, no UB":
//  - no mechanism ever reports Success to a client that did not know the password (the fuzzer
//    does not know it: the only accepted CheckPassword is refused, SCRAM gets real credentials for
//    a password the fuzzer cannot derive);
//  - after Success or Failure, every further step is a Failure(state);
//  - challenges and identities are bounded; a SCRAM client that failed is never complete.
#include "proto/sasl/mechanism.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using namespace buzon::sasl;

std::vector<std::string_view> split(std::string_view in) {
  std::vector<std::string_view> parts;
  while (parts.size() < 8) {
    auto nul = in.find('\0');
    parts.push_back(in.substr(0, nul));
    if (nul == std::string_view::npos) break;
    in.remove_prefix(nul + 1);
  }
  return parts;
}

ScramCredentials creds() {
  // SCRAM-SHA-256 keys of the password "pencil" with the RFC 7677 salt: the fuzzer cannot produce
  // a valid proof without them, so Success must never happen.
  ScramCredentials c;
  c.iterations = 4096;
  c.salt = "[m\x99h\x9d\x91\x83\xdc\xbc\x12\xbd\xfd\xe4\xd3\x8b\x9b";
  c.stored_key = std::string(32, '\x11');
  c.server_key = std::string(32, '\x22');
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static const std::string_view names[] = {kPlain, kLogin, kCramMd5, kScramSha256, kScramSha256Plus};
  const auto name = names[data[0] % 5];
  const bool client_side = (data[0] & 0x80) != 0;
  const bool initial = (data[1] & 1) != 0;
  const auto msgs = split(std::string_view(reinterpret_cast<const char*>(data + 2), size - 2));

  if (client_side) {
    ClientContext ctx;
    ctx.random = [](std::size_t n) { return std::string(n, 'r'); };
    ctx.nonce = [] { return std::string("fyko+d2lbbFgONRv9qkxdawL"); };
    if (data[1] & 2) ctx.channel_binding = ChannelBinding{"tls-exporter", std::string(32, 'x')};
    ctx.server_offers_plus = (data[1] & 4) != 0;
    auto c = make_client(name, ClientCredentials{"user", "pencil", ""}, ctx);
    if (!c) {
      FUZZ_CHECK(name == kScramSha256Plus && !ctx.channel_binding, "only -PLUS without a channel binding has no client");
      return 0;
    }
    (void)c->initial();
    bool failed = false;
    for (auto m : msgs) {
      auto r = c->respond(m);
      if (!r) failed = true;
      // SCRAM completes only when the server proved its key (PLAIN/LOGIN/CRAM-MD5 cannot tell).
      if (failed && name.starts_with("SCRAM")) FUZZ_CHECK(!c->complete(), "a failed SCRAM client is never complete");
      if (r) FUZZ_CHECK(r->size() < 4096, "client responses are bounded");
    }
    return 0;
  }

  ServerContext ctx;
  ctx.random = [](std::size_t n) { return std::string(n, 'r'); };
  ctx.nonce = [] { return std::string("3rfcNHYJY1ZVvWVs7j"); };
  ctx.unix_time = [] { return std::int64_t{1700000000}; };
  ctx.fake_salt_key = "k";
  if (data[1] & 2) ctx.channel_bindings.push_back(ChannelBinding{"tls-exporter", std::string(32, 'x')});
  ctx.plus_advertised = (data[1] & 4) != 0;
  auto s = make_server(name, ctx);
  FUZZ_CHECK(s != nullptr, "every known mechanism has a server");
  std::size_t next = 0;
  ServerStep st = initial && !msgs.empty() ? s->start(msgs[next++]) : s->start(std::nullopt);
  bool ended = false;
  for (int guard = 0; guard < 32; ++guard) {
    if (std::holds_alternative<Success>(st)) FUZZ_CHECK(false, "no Success without the password");
    if (std::holds_alternative<Failure>(st)) {
      if (ended) FUZZ_CHECK(std::get<Failure>(st).code == Errc::state, "steps after the end fail with 'state'");
      ended = true;
      if (next >= msgs.size()) break;
      st = s->step(msgs[next++]);
      continue;
    }
    if (auto* c = std::get_if<Challenge>(&st)) FUZZ_CHECK(c->data.size() < 4096, "challenges are bounded");
    if (auto* p = std::get_if<CheckPassword>(&st)) {
      FUZZ_CHECK(p->authcid.size() <= 16384 && p->password.size() <= 16384, "identities are bounded");
      break;  // the session would verify and refuse: the fuzzer does not know any password
    }
    if (std::holds_alternative<CheckDigest>(st)) break;  // likewise
    if (std::holds_alternative<NeedCredentials>(st)) {
      st = s->credentials((data[1] & 8) ? std::optional<ScramCredentials>(creds()) : std::nullopt);
      continue;
    }
    if (next >= msgs.size()) break;
    st = s->step(msgs[next++]);
  }
  return 0;
}
