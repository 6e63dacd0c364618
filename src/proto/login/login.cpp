// proto/login/login.cpp — one SASL login, shared by POP3 and SMTP (see login.hpp).
//
// SECURITY  See login.hpp.
// STANDARDS See login.hpp.
// LIMITS    See login.hpp.
#include "proto/login/login.hpp"

#include "auth/password.hpp"
#include "core/base64.hpp"

#include <algorithm>
#include <exception>

namespace buzon::login {

Channel channel_of(const net::Stream& s, const Policy& p, bool require_tls_always) {
  Channel c;
  c.tls = s.is_tls();
  auto addr = parse_peer_address(s.peer());
  c.trusted = addr && contains_any(p.trusted_networks, *addr);
  c.plaintext_ok = c.tls || (!require_tls_always && (c.trusted || !p.plaintext_requires_tls));
  if (c.tls)
    for (const char* type : {"tls-exporter", "tls-unique"})
      if (auto data = s.channel_binding(type); !data.empty()) c.bindings.push_back({type, data});
  return c;
}

std::vector<std::string> offered_mechanisms(const Policy& p, const Channel& c) {
  std::vector<std::string> out;
  for (const auto& m : p.sasl_mechanisms) {
    if (!sasl::is_known(m)) continue;
    if (sasl::is_plaintext(m) && !c.plaintext_ok) continue;
    if (sasl::needs_channel_binding(m) && (!c.tls || c.bindings.empty())) continue;
    out.push_back(m);
  }
  return out;
}

bool refused_for_plaintext(const Policy& p, const Channel& c, std::string_view mech) {
  const bool configured = std::find(p.sasl_mechanisms.begin(), p.sasl_mechanisms.end(), mech) != p.sasl_mechanisms.end();
  return configured && sasl::is_plaintext(mech) && !c.plaintext_ok;
}

std::optional<std::string> decode_response(std::string_view line) {
  if (line.empty() || line == "=") return std::string();
  auto d = base64_decode(line);
  if (!d) return std::nullopt;
  return std::move(*d);
}

Verdict check_password(const Backend& b, std::string_view typed, std::string_view password) {
  auto name = auth::canonical_username(typed, b.names);
  if (!name) return {false, false, "", name.error()};
  auto user = b.directory->lookup(*name);
  if (!user) {
    auth::verify_dummy(password);  // the same work for unknown users: timing reveals no names
    return {false, false, *name, "unknown user"};
  }
  auto r = auth::check_password(user->password, password);
  if (r != auth::VerifyResult::kMatch) return {false, false, *name, std::string(auth::to_string(r))};
  return {true, false, *name, ""};
}

asio::awaitable<Verdict> verify_password(const Backend& b, std::string typed, std::string password) {
  try {
    co_return co_await b.pool->run([&]() -> Verdict { return check_password(b, typed, password); });
  } catch (const std::exception& e) {
    co_return Verdict{false, true, "", e.what()};
  }
}

namespace {

asio::awaitable<Verdict> check_digest(const Backend& b, const sasl::CheckDigest& d) {
  try {
    co_return co_await b.pool->run([&]() -> Verdict {
      auto name = auth::canonical_username(d.authcid, b.names);
      if (!name) return {false, false, "", name.error()};
      auto u = b.directory->lookup(*name);
      if (!u) return {false, false, *name, "unknown user"};
      auto r = auth::verify_cram_md5(u->password, d.challenge, d.digest);
      if (r == auth::VerifyResult::kUnknownScheme) return {false, false, *name, "stored scheme does not allow CRAM-MD5"};
      if (r != auth::VerifyResult::kMatch) return {false, false, *name, std::string(auth::to_string(r))};
      return {true, false, *name, ""};
    });
  } catch (const std::exception& e) {
    co_return Verdict{false, true, "", e.what()};
  }
}

struct Lookup {
  std::optional<sasl::ScramCredentials> creds;
  std::string canonical, why;
  bool temp = false;
};

asio::awaitable<Lookup> scram_lookup(const Backend& b, const std::string& authcid) {
  try {
    co_return co_await b.pool->run([&]() -> Lookup {
      auto name = auth::canonical_username(authcid, b.names);
      if (!name) return {std::nullopt, "", name.error()};
      auto u = b.directory->lookup(*name);
      if (!u) return {std::nullopt, *name, "unknown user"};
      auto secret = auth::scram_secret(u->password);  // PBKDF2 for a plaintext secret
      if (!secret) return {std::nullopt, *name, "stored scheme does not allow SCRAM"};
      return {sasl::ScramCredentials{secret->iterations, secret->salt, secret->stored_key, secret->server_key},
              *name, ""};
    });
  } catch (const std::exception& e) {
    co_return Lookup{std::nullopt, "", e.what(), true};
  }
}

}  // namespace

asio::awaitable<Outcome> authenticate(std::string_view mech, std::optional<std::string> initial, const Channel& ch,
                                      bool plus_advertised, const Backend& b, Conversation& conv) {
  sasl::ServerContext ctx;
  ctx.hostname = b.hostname;
  ctx.fake_salt_key = b.fake_salt_key;
  ctx.plus_advertised = plus_advertised;
  if (ch.tls) ctx.channel_bindings = ch.bindings;
  Outcome o;
  auto m = sasl::make_server(mech, ctx);
  if (!m) {
    o.verdict.why = "unknown mechanism";
    co_return o;
  }
  auto step = m->start(initial ? std::optional<std::string_view>(*initial) : std::nullopt);
  std::string scram_why;
  for (;;) {
    if (auto* c = std::get_if<sasl::Challenge>(&step)) {
      auto a = co_await conv.challenge(c->data);
      if (a.kind == Answer::Kind::cancelled) {
        o.kind = Outcome::Kind::cancelled;
        co_return o;
      }
      if (a.kind == Answer::Kind::ended) {
        o.kind = Outcome::Kind::ended;
        co_return o;
      }
      step = m->step(a.data);
    } else if (auto* p = std::get_if<sasl::CheckPassword>(&step)) {
      o.user = p->authcid;
      if (!p->authzid.empty() && p->authzid != p->authcid) {
        o.verdict = {false, false, "", "authorization identity differs (not supported)"};
      } else {
        co_await conv.before_check();
        o.verdict = co_await verify_password(b, p->authcid, p->password);
      }
      break;
    } else if (auto* d = std::get_if<sasl::CheckDigest>(&step)) {
      o.user = d->authcid;
      co_await conv.before_check();
      o.verdict = co_await check_digest(b, *d);
      break;
    } else if (auto* n = std::get_if<sasl::NeedCredentials>(&step)) {
      o.user = n->authcid;
      co_await conv.before_check();
      auto l = co_await scram_lookup(b, n->authcid);
      if (l.temp) {
        o.verdict = {false, true, "", l.why};
        break;
      }
      o.verdict.canonical = l.canonical;
      scram_why = l.why;
      step = m->credentials(l.creds);
    } else if (auto* s = std::get_if<sasl::Success>(&step)) {
      if (!s->authzid.empty() && s->authzid != s->authcid) {
        o.verdict = {false, false, o.verdict.canonical, "authorization identity differs (not supported)"};
        break;
      }
      if (!s->server_final.empty()) {
        // RFC 4422 §3.6: no "success with data" in POP3 or SMTP: the server's proof goes as a
        // last challenge; the client answers with an empty line (or "*" if it is not convinced).
        auto a = co_await conv.challenge(s->server_final);
        if (a.kind == Answer::Kind::ended) {
          o.kind = Outcome::Kind::ended;
          co_return o;
        }
        if (a.kind == Answer::Kind::cancelled) {
          o.verdict = {false, false, o.verdict.canonical, "client rejected the server's proof"};
          break;
        }
      }
      o.verdict.ok = true;
      o.verdict.why.clear();
      break;
    } else if (auto* f = std::get_if<sasl::Failure>(&step)) {
      o.verdict.ok = false;
      o.verdict.why =
          f->code == sasl::Errc::bad_proof && !scram_why.empty() ? scram_why : std::string(sasl::to_string(f->code));
      break;
    }
  }
  o.kind = o.verdict.ok ? Outcome::Kind::ok : Outcome::Kind::failed;
  co_return o;
}

}  // namespace buzon::login
