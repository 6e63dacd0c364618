// proto/sasl/scram.cpp — SCRAM-SHA-256(-PLUS), see scram.hpp. Grammar from RFC 5802 §7.
#include "proto/sasl/scram.hpp"

#include "core/base64.hpp"
#include "proto/sasl/crypto.hpp"

#include <charconv>

namespace buzon::sasl {

namespace {

constexpr std::string_view kClientKey = "Client Key";
constexpr std::string_view kServerKey = "Server Key";

// Splits "a=1,b=2" at commas (values may not contain ',' in SCRAM: base64, nonces and escaped
// names never do).
std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto c = s.find(',');
    out.push_back(s.substr(0, c));
    if (c == std::string_view::npos) return out;
    s.remove_prefix(c + 1);
  }
}

// attr-val = ALPHA "=" value
bool is_attr(std::string_view field, char attr) {
  return field.size() >= 2 && field[0] == attr && field[1] == '=';
}

bool is_extension(std::string_view field) {
  return field.size() >= 2 && ((field[0] >= 'a' && field[0] <= 'z') || (field[0] >= 'A' && field[0] <= 'Z')) &&
         field[1] == '=';
}

// printable = %x21-2B / %x2D-7E (RFC 5802 §7), i.e. visible ASCII except ','.
bool printable_nonce(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  return true;
}

// cb-name = 1*(ALPHA / DIGIT / "." / "-")
bool valid_cb_name(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
      return false;
  return true;
}

std::string default_nonce(const std::function<std::string(std::size_t)>& random) {
  return base64_encode(random_from(random, kNonceOctets));
}

}  // namespace

ScramCredentials scram_credentials(std::string_view password, std::string_view salt, std::uint32_t iterations) {
  const std::string salted = pbkdf2_sha256(password, salt, iterations);
  return ScramCredentials{iterations, std::string(salt), sha256(hmac_sha256(salted, kClientKey)),
                          hmac_sha256(salted, kServerKey)};
}

std::string scram_escape(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == ',')
      out += "=2C";
    else if (c == '=')
      out += "=3D";
    else
      out += c;
  }
  return out;
}

std::optional<std::string> scram_unescape(std::string_view name) {
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '\0' || c == ',') return std::nullopt;
    if (c != '=') {
      out += c;
      continue;
    }
    const auto code = name.substr(i + 1, 2);
    if (code == "2C")
      out += ',';
    else if (code == "3D")
      out += '=';
    else
      return std::nullopt;
    i += 2;
  }
  return out;
}

// ---- Server -------------------------------------------------------------------------------

ServerStep ScramServer::start(std::optional<std::string_view> initial_response) {
  if (state_ != State::client_first) return fail(Errc::state);
  if (!initial_response) return Challenge{};  // RFC 4422 §3.3: empty challenge, client speaks first
  return client_first(*initial_response);
}

ServerStep ScramServer::step(std::string_view response) {
  switch (state_) {
    case State::client_first: return client_first(response);
    case State::client_final: return client_final(response);
    default: return fail(Errc::state);
  }
}

ServerStep ScramServer::client_first(std::string_view msg) {
  // client-first-message = gs2-header client-first-message-bare
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  const auto c1 = msg.find(',');
  if (c1 == std::string_view::npos) return fail(Errc::malformed);
  const auto flag = msg.substr(0, c1);
  const auto c2 = msg.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return fail(Errc::malformed);
  const auto authzid = msg.substr(c1 + 1, c2 - c1 - 1);
  gs2_header_.assign(msg.substr(0, c2 + 1));
  client_first_bare_.assign(msg.substr(c2 + 1));

  if (flag == "n") {
    if (plus_) return fail(Errc::channel_binding);  // -PLUS requires binding
  } else if (flag == "y") {
    // The client could bind but believes we cannot: if we offered -PLUS, someone removed it.
    if (plus_ || ctx_.plus_advertised) return fail(Errc::channel_binding);
  } else if (flag.starts_with("p=")) {
    const auto type = flag.substr(2);
    if (!plus_ || !valid_cb_name(type)) return fail(Errc::channel_binding);
    const ChannelBinding* found = nullptr;
    for (const auto& cb : ctx_.channel_bindings)
      if (cb.type == type && !cb.data.empty()) found = &cb;
    if (found == nullptr) return fail(Errc::channel_binding);
    cbind_data_ = found->data;
  } else {
    return fail(Errc::malformed);
  }

  if (!authzid.empty()) {
    if (!is_attr(authzid, 'a')) return fail(Errc::malformed);
    auto a = scram_unescape(authzid.substr(2));
    if (!a || a->empty()) return fail(Errc::malformed);
    authzid_ = std::move(*a);
  }

  // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  const auto fields = split_commas(client_first_bare_);
  if (!fields.empty() && is_attr(fields[0], 'm')) return fail(Errc::extension);
  if (fields.size() < 2 || !is_attr(fields[0], 'n') || !is_attr(fields[1], 'r')) return fail(Errc::malformed);
  for (std::size_t i = 2; i < fields.size(); ++i)
    if (!is_extension(fields[i])) return fail(Errc::malformed);
  auto user = scram_unescape(fields[0].substr(2));
  if (!user) return fail(Errc::malformed);
  if (user->empty()) return fail(Errc::empty_identity);
  const auto cnonce = fields[1].substr(2);
  if (!printable_nonce(cnonce)) return fail(Errc::malformed);
  authcid_ = std::move(*user);
  nonce_.assign(cnonce);
  state_ = State::credentials;
  return NeedCredentials{authcid_, authzid_};
}

ServerStep ScramServer::credentials(const std::optional<ScramCredentials>& creds) {
  if (state_ != State::credentials) return fail(Errc::state);
  known_ = creds && !creds->salt.empty() && creds->iterations >= 1 && creds->iterations <= kMaxIterations &&
           creds->stored_key.size() == 32 && creds->server_key.size() == 32;
  if (known_) {
    creds_ = *creds;
  } else {
    // A stand-in that looks like a real user and can never verify: the salt is stable for a name
    // (keyed by a per-process secret), the keys are random.
    const std::string key = ctx_.fake_salt_key.empty() ? random_from(ctx_.random, 32) : ctx_.fake_salt_key;
    creds_.iterations = kMinIterations;
    creds_.salt = hmac_sha256(key, authcid_).substr(0, kSaltOctets);
    creds_.stored_key = random_from(ctx_.random, 32);
    creds_.server_key = random_from(ctx_.random, 32);
  }
  std::string snonce = ctx_.nonce ? ctx_.nonce() : default_nonce(ctx_.random);
  if (!printable_nonce(snonce)) return fail(Errc::state);
  nonce_ += snonce;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(creds_.salt) + ",i=" + std::to_string(creds_.iterations);
  state_ = State::client_final;
  return Challenge{server_first_};
}

ServerStep ScramServer::client_final(std::string_view msg) {
  // client-final-message = channel-binding "," nonce ["," extensions] "," proof
  state_ = State::done;
  const auto p = msg.rfind(",p=");
  if (p == std::string_view::npos) return Failure{Errc::malformed};
  const auto without_proof = msg.substr(0, p);
  auto proof = base64_decode(msg.substr(p + 3));
  if (!proof || proof->size() != 32) return Failure{Errc::malformed};
  const auto fields = split_commas(without_proof);
  if (fields.size() < 2 || !is_attr(fields[0], 'c') || !is_attr(fields[1], 'r')) return Failure{Errc::malformed};
  for (std::size_t i = 2; i < fields.size(); ++i)
    if (!is_extension(fields[i])) return Failure{Errc::malformed};
  auto cbind = base64_decode(fields[0].substr(2));
  if (!cbind) return Failure{Errc::malformed};
  // c= is base64(gs2-header [cbind-data]): the same header as in the first message (RFC 5802 §6).
  if (!equal(*cbind, gs2_header_ + cbind_data_)) return Failure{Errc::channel_binding};
  if (!equal(fields[1].substr(2), nonce_)) return Failure{Errc::nonce};

  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const std::string client_signature = hmac_sha256(creds_.stored_key, auth_message);
  const std::string client_key = xor_bytes(*proof, client_signature);
  const bool ok = equal(sha256(client_key), creds_.stored_key);
  if (!ok || !known_) return Failure{Errc::bad_proof};
  return Success{authcid_, authzid_, "v=" + base64_encode(hmac_sha256(creds_.server_key, auth_message))};
}

// ---- Client -------------------------------------------------------------------------------

std::optional<std::string> ScramClient::initial() {
  if (state_ != State::initial) return std::nullopt;
  if (plus_)
    gs2_header_ = "p=" + (ctx_.channel_binding ? ctx_.channel_binding->type : std::string("tls-exporter"));
  else
    gs2_header_ = ctx_.channel_binding && !ctx_.server_offers_plus ? "y" : "n";
  gs2_header_ += ",";
  if (!creds_.authzid.empty()) gs2_header_ += "a=" + scram_escape(creds_.authzid);
  gs2_header_ += ",";
  client_nonce_ = ctx_.nonce ? ctx_.nonce() : default_nonce(ctx_.random);
  client_first_bare_ = "n=" + scram_escape(creds_.authcid) + ",r=" + client_nonce_;
  if (!ctx_.scram_extension.empty()) client_first_bare_ += "," + ctx_.scram_extension;
  state_ = State::server_first;
  return gs2_header_ + client_first_bare_;
}

std::expected<std::string, Errc> ScramClient::respond(std::string_view challenge) {
  if (state_ == State::initial) {
    // The server sent an empty challenge because we sent no initial response.
    if (!challenge.empty()) return state_ = State::failed, std::unexpected(Errc::state);
    return *initial();
  }
  if (state_ == State::server_first) {
    state_ = State::failed;
    const auto fields = split_commas(challenge);
    if (!fields.empty() && is_attr(fields[0], 'm')) return std::unexpected(Errc::extension);
    if (!fields.empty() && is_attr(fields[0], 'e')) return std::unexpected(Errc::server_error);
    if (fields.size() < 3 || !is_attr(fields[0], 'r') || !is_attr(fields[1], 's') || !is_attr(fields[2], 'i'))
      return std::unexpected(Errc::malformed);
    const auto nonce = fields[0].substr(2);
    if (!nonce.starts_with(client_nonce_) || nonce.size() == client_nonce_.size() || !printable_nonce(nonce))
      return std::unexpected(Errc::nonce);
    auto salt = base64_decode(fields[1].substr(2));
    if (!salt || salt->empty()) return std::unexpected(Errc::malformed);
    const auto itext = fields[2].substr(2);
    std::uint32_t iterations = 0;
    auto [ptr, ec] = std::from_chars(itext.data(), itext.data() + itext.size(), iterations);
    if (ec != std::errc() || ptr != itext.data() + itext.size()) return std::unexpected(Errc::malformed);
    if (iterations < kMinIterations || iterations > kMaxIterations) return std::unexpected(Errc::iterations);

    std::string cbind = gs2_header_;
    if (plus_) {
      if (!ctx_.channel_binding) return std::unexpected(Errc::channel_binding);
      cbind += ctx_.channel_binding->data;
    }
    const std::string without_proof = "c=" + base64_encode(cbind) + ",r=" + std::string(nonce);
    const std::string auth_message = client_first_bare_ + "," + std::string(challenge) + "," + without_proof;
    const std::string salted = pbkdf2_sha256(creds_.password, *salt, iterations);
    const std::string client_key = hmac_sha256(salted, kClientKey);
    const std::string proof = xor_bytes(client_key, hmac_sha256(sha256(client_key), auth_message));
    server_signature_ = hmac_sha256(hmac_sha256(salted, kServerKey), auth_message);
    state_ = State::server_final;
    return without_proof + ",p=" + base64_encode(proof);
  }
  if (state_ == State::server_final) {
    state_ = State::failed;
    const auto fields = split_commas(challenge);
    if (!fields.empty() && is_attr(fields[0], 'e')) return std::unexpected(Errc::server_error);
    if (fields.empty() || !is_attr(fields[0], 'v')) return std::unexpected(Errc::malformed);
    auto v = base64_decode(fields[0].substr(2));
    if (!v || !equal(*v, server_signature_)) return std::unexpected(Errc::server_signature);
    state_ = State::complete;
    return std::string();
  }
  return std::unexpected(Errc::state);
}

}  // namespace buzon::sasl
