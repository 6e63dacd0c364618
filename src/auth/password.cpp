// auth/password.cpp — Dovecot-compatible password schemes on libxcrypt, libargon2 and OpenSSL.
//
// SECURITY  See password.hpp. crypt_rn() gets its own crypt_data per call (thread-safe, no static
//           buffer) and the buffer is wiped afterwards because it holds key material. Failure is
//           detected both as NULL and as libxcrypt's "*" failure token, so a malformed setting can
//           never compare equal to itself. Argon2 parameters are parsed and bounded before
//           libargon2 allocates anything.
// STANDARDS Dovecot password schemes; crypt(3) formats as libxcrypt implements them; Argon2 PHC
//           string format (RFC 9106, libargon2 encoding); RFC 1939 §7 (APOP), RFC 1321 (MD5);
//           RFC 5802 §3 and RFC 7677 (SCRAM-SHA-256 keys); RFC 2104 §4 and RFC 2195 (the CRAM-MD5
//           context: the MD5 states after the opad and ipad blocks, little-endian words, outer
//           first, as Dovecot's hmac_md5_get_cram_context writes them).
// LIMITS    password.hpp (kMaxPasswordLength, kMaxArgon2*).

#include "auth/password.hpp"

#include "core/base64.hpp"

// The CRAM-MD5 context needs MD5's chaining state, which only the (deprecated, still shipped)
// low-level MD5 API exposes.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/md5.h>

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <memory>
#include <mutex>
#include <vector>

namespace buzon::auth {

static_assert(kMaxPasswordLength < CRYPT_MAX_PASSPHRASE_SIZE, "crypt_rn refuses longer passphrases");

namespace {

enum class Kind { kPlain, kCrypt, kArgon2, kScram, kCramMd5 };

struct Scheme {
  std::string_view name;
  Kind kind;
  // For kCrypt: the setting prefixes this scheme accepts ("" = any crypt(3) format). The first one
  // is the prefix hash_password() generates.
  std::array<std::string_view, 3> prefixes;
  bool can_hash;
  argon2_type argon2 = Argon2_id;
};

// "DES" is a marker for the classic 13-character DES format (no '$' prefix).
constexpr std::array kSchemes{
    Scheme{"PLAIN", Kind::kPlain, {}, true},
    Scheme{"CLEAR", Kind::kPlain, {}, true},
    Scheme{"CLEARTEXT", Kind::kPlain, {}, true},
    Scheme{"CRYPT", Kind::kCrypt, {"$2y$", "", ""}, true},
    Scheme{"SHA256-CRYPT", Kind::kCrypt, {"$5$", "", ""}, true},
    Scheme{"SHA512-CRYPT", Kind::kCrypt, {"$6$", "", ""}, true},
    Scheme{"BLF-CRYPT", Kind::kCrypt, {"$2y$", "$2b$", "$2a$"}, true},
    Scheme{"MD5-CRYPT", Kind::kCrypt, {"$1$", "", ""}, false},
    Scheme{"DES-CRYPT", Kind::kCrypt, {"DES", "", ""}, false},
    Scheme{"ARGON2I", Kind::kArgon2, {}, true, Argon2_i},
    Scheme{"ARGON2ID", Kind::kArgon2, {}, true, Argon2_id},
    Scheme{"SCRAM-SHA-256", Kind::kScram, {}, true},
    Scheme{"CRAM-MD5", Kind::kCramMd5, {}, true},
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

const Scheme* find_scheme(std::string_view name) {
  const std::string key = upper(name);
  for (const auto& s : kSchemes) {
    if (s.name == key) return &s;
  }
  return nullptr;
}

struct Parsed {
  std::string scheme;     // upper-cased
  std::string_view data;  // after "{SCHEME}"
};

// Dovecot: "{SCHEME}data"; anything else (including "{" without "}") is CRYPT as a whole.
Parsed parse_stored(std::string_view stored) {
  if (!stored.empty() && stored.front() == '{') {
    if (const auto close = stored.find('}'); close != std::string_view::npos) {
      return {upper(stored.substr(1, close - 1)), stored.substr(close + 1)};
    }
  }
  return {"CRYPT", stored};
}

// Wipes a std::string's bytes before it is released.
struct SecretString {
  std::string s;
  explicit SecretString(std::string_view v) : s(v) {}
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString() {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  }
};

// crypt_data is ~32 KiB: heap, zero-initialised (libxcrypt requires `initialized` == 0), wiped.
struct CryptBuffer {
  std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
  CryptBuffer() = default;
  CryptBuffer(const CryptBuffer&) = delete;
  CryptBuffer& operator=(const CryptBuffer&) = delete;
  ~CryptBuffer() { OPENSSL_cleanse(data.get(), sizeof(crypt_data)); }
};

bool crypt_prefix_ok(const Scheme& scheme, std::string_view data) {
  if (scheme.name == "CRYPT") return true;  // any crypt(3) format; prefixes[0] is only what we generate
  for (const auto prefix : scheme.prefixes) {
    if (prefix.empty()) continue;
    if (prefix == "DES") {
      if (data.size() == 13 && data.front() != '$' && data.front() != '_') return true;
    } else if (data.starts_with(prefix)) {
      return true;
    }
  }
  return false;
}

VerifyResult verify_crypt(const Scheme& scheme, std::string_view data, std::string_view password) {
  if (data.empty() || data.front() == '!' || data.front() == '*') return VerifyResult::kNoPassword;
  if (!crypt_prefix_ok(scheme, data)) return VerifyResult::kMalformed;
  if (data.find('\0') != std::string_view::npos || data.size() >= CRYPT_OUTPUT_SIZE) {
    return VerifyResult::kMalformed;
  }
  const std::string setting(data);
  const SecretString phrase(password);
  CryptBuffer buf;
  const char* out = crypt_rn(phrase.s.c_str(), setting.c_str(), buf.data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*' || out[0] == '\0') return VerifyResult::kMalformed;
  return constant_time_equal(out, data) ? VerifyResult::kMatch : VerifyResult::kMismatch;
}

// Parses "$argon2{i,id}$[v=N$]m=M,t=T,p=P$salt$hash" far enough to bound the costs.
struct Argon2Params {
  argon2_type type;
  std::uint32_t m = 0, t = 0, p = 0;
};

bool take_number(std::string_view& s, std::string_view key, std::uint32_t& out) {
  if (!s.starts_with(key)) return false;
  s.remove_prefix(key.size());
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr == s.data()) return false;
  s.remove_prefix(static_cast<std::size_t>(ptr - s.data()));
  return true;
}

std::optional<Argon2Params> parse_argon2(std::string_view s) {
  Argon2Params params{};
  if (s.starts_with("$argon2id$")) {
    params.type = Argon2_id;
    s.remove_prefix(10);
  } else if (s.starts_with("$argon2i$")) {
    params.type = Argon2_i;
    s.remove_prefix(9);
  } else {
    return std::nullopt;
  }
  std::uint32_t version = 0;
  if (s.starts_with("v=")) {
    if (!take_number(s, "v=", version) || !s.starts_with('$')) return std::nullopt;
    s.remove_prefix(1);
  }
  if (!take_number(s, "m=", params.m) || !take_number(s, ",t=", params.t) ||
      !take_number(s, ",p=", params.p) || !s.starts_with('$')) {
    return std::nullopt;
  }
  return params;
}

VerifyResult verify_argon2(std::string_view data, std::string_view password) {
  if (data.empty()) return VerifyResult::kNoPassword;
  const auto params = parse_argon2(data);
  if (!params) return VerifyResult::kMalformed;
  // Dovecot verifies with libsodium's crypto_pwhash_str_verify, which takes the variant from the
  // string, so "{ARGON2I}$argon2id$..." is accepted there too; so it is here.
  if (params->m > kMaxArgon2MemoryKiB || params->t > kMaxArgon2Passes || params->p > kMaxArgon2Lanes ||
      params->t == 0 || params->p == 0) {
    return VerifyResult::kMalformed;
  }
  if (data.find('\0') != std::string_view::npos) return VerifyResult::kMalformed;
  const std::string encoded(data);
  const int rc = argon2_verify(encoded.c_str(), password.data(), password.size(), params->type);
  if (rc == ARGON2_OK) return VerifyResult::kMatch;
  if (rc == ARGON2_VERIFY_MISMATCH) return VerifyResult::kMismatch;
  return VerifyResult::kMalformed;
}

bool password_usable(std::string_view password) {
  return !password.empty() && password.size() <= kMaxPasswordLength &&
         password.find('\0') == std::string_view::npos;
}

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) {
    // Cannot happen with the default provider; make the result depend on nothing secret.
    md.fill(0);
  }
  return md;
}

// ---- SCRAM-SHA-256: "iterations,base64(salt),base64(StoredKey),base64(ServerKey)" ----------

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out, &len) == nullptr)
    return {};
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::optional<ScramSecret> derive_scram(std::string_view password, std::string salt, std::uint32_t iterations) {
  std::string salted(32, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        static_cast<int>(iterations), EVP_sha256(), static_cast<int>(salted.size()),
                        reinterpret_cast<unsigned char*>(salted.data())) != 1)
    return std::nullopt;
  const std::string client_key = hmac_sha256(salted, "Client Key");
  const auto stored = sha256(client_key);
  ScramSecret out{iterations, std::move(salt), std::string(reinterpret_cast<const char*>(stored.data()), stored.size()),
                  hmac_sha256(salted, "Server Key")};
  OPENSSL_cleanse(salted.data(), salted.size());
  if (out.server_key.size() != 32) return std::nullopt;
  return out;
}

std::optional<ScramSecret> parse_scram(std::string_view data) {
  std::array<std::string_view, 4> f{};
  for (std::size_t i = 0; i < f.size(); ++i) {
    const auto comma = data.find(',');
    if ((comma == std::string_view::npos) != (i == f.size() - 1)) return std::nullopt;
    f[i] = data.substr(0, comma);
    data.remove_prefix(comma == std::string_view::npos ? data.size() : comma + 1);
  }
  std::uint32_t iterations = 0;
  const auto [ptr, ec] = std::from_chars(f[0].data(), f[0].data() + f[0].size(), iterations);
  if (ec != std::errc() || ptr != f[0].data() + f[0].size() || iterations == 0 || iterations > kMaxScramIterations)
    return std::nullopt;
  auto salt = base64_decode(f[1]);
  auto stored = base64_decode(f[2]);
  auto server = base64_decode(f[3]);
  if (!salt || salt->empty() || !stored || stored->size() != 32 || !server || server->size() != 32) return std::nullopt;
  return ScramSecret{iterations, std::move(*salt), std::move(*stored), std::move(*server)};
}

VerifyResult verify_scram(std::string_view data, std::string_view password) {
  const auto secret = parse_scram(data);
  if (!secret) return VerifyResult::kMalformed;
  const auto mine = derive_scram(password, secret->salt, secret->iterations);
  if (!mine) return VerifyResult::kMalformed;
  return constant_time_equal(mine->stored_key, secret->stored_key) ? VerifyResult::kMatch : VerifyResult::kMismatch;
}

std::expected<std::string, std::string> hash_scram(std::string_view password) {
  std::string salt(16, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1)
    return std::unexpected("the random number generator failed");
  const auto s = derive_scram(password, salt, kScramIterations);
  if (!s) return std::unexpected("PBKDF2 failed");
  return "{SCRAM-SHA-256}" + std::to_string(s->iterations) + "," + base64_encode(s->salt) + "," +
         base64_encode(s->stored_key) + "," + base64_encode(s->server_key);
}

// ---- CRAM-MD5: the HMAC-MD5 context (RFC 2104 §4) --------------------------------------------

using CramContext = std::array<unsigned char, 32>;

void put_le32(unsigned char*& p, MD5_LONG v) {
  for (int i = 0; i < 4; ++i) *p++ = static_cast<unsigned char>((v >> (8 * i)) & 0xFF);
}
MD5_LONG get_le32(const unsigned char*& p) {
  MD5_LONG v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<MD5_LONG>(*p++) << (8 * i);
  return v;
}

// The MD5 states after one block of key^opad (outer) and key^ipad (inner).
CramContext cram_context(std::string_view secret) {
  std::array<unsigned char, 64> key{};
  if (secret.size() > key.size()) {  // RFC 2104 §2: long keys are hashed first
    MD5(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), key.data());
  } else {
    std::copy(secret.begin(), secret.end(), key.begin());
  }
  std::array<unsigned char, 64> ipad{}, opad{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    ipad[i] = key[i] ^ 0x36;
    opad[i] = key[i] ^ 0x5c;
  }
  MD5_CTX inner, outer;
  MD5_Init(&inner);
  MD5_Update(&inner, ipad.data(), ipad.size());
  MD5_Init(&outer);
  MD5_Update(&outer, opad.data(), opad.size());
  CramContext out{};
  unsigned char* p = out.data();
  for (MD5_LONG v : {outer.A, outer.B, outer.C, outer.D, inner.A, inner.B, inner.C, inner.D}) put_le32(p, v);
  OPENSSL_cleanse(key.data(), key.size());
  OPENSSL_cleanse(ipad.data(), ipad.size());
  OPENSSL_cleanse(opad.data(), opad.size());
  OPENSSL_cleanse(&inner, sizeof inner);
  OPENSSL_cleanse(&outer, sizeof outer);
  return out;
}

// HMAC-MD5(key, message) resumed from a context: each half continues after its 64-octet block.
std::array<unsigned char, 16> cram_hmac(const CramContext& ctx, std::string_view message) {
  auto resume = [](MD5_CTX& c, const unsigned char* words) {
    MD5_Init(&c);
    c.A = get_le32(words);
    c.B = get_le32(words);
    c.C = get_le32(words);
    c.D = get_le32(words);
    c.Nl = 512;  // 64 octets already hashed, in bits
    c.Nh = 0;
    c.num = 0;
  };
  MD5_CTX outer, inner;
  resume(outer, ctx.data());
  resume(inner, ctx.data() + 16);
  std::array<unsigned char, 16> digest{};
  MD5_Update(&inner, message.data(), message.size());
  MD5_Final(digest.data(), &inner);
  MD5_Update(&outer, digest.data(), digest.size());
  MD5_Final(digest.data(), &outer);
  return digest;
}

std::string hex_of(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 0x0F];
  }
  return out;
}

std::optional<CramContext> parse_cram(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  CramContext out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    unsigned v = 0;
    const auto [ptr, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || ptr != hex.data() + 2 * i + 2) return std::nullopt;
    out[i] = static_cast<unsigned char>(v);
  }
  return out;
}

VerifyResult verify_cram_scheme(std::string_view data, std::string_view password) {
  const auto stored = parse_cram(data);
  if (!stored) return VerifyResult::kMalformed;
  const auto mine = cram_context(password);
  return CRYPTO_memcmp(mine.data(), stored->data(), mine.size()) == 0 ? VerifyResult::kMatch : VerifyResult::kMismatch;
}

std::expected<std::string, std::string> hash_crypt(const Scheme& scheme, std::string_view password) {
  const std::string prefix(scheme.prefixes[0]);
  const unsigned long count = prefix.starts_with("$2") ? kBcryptCost : 0;  // 0 = library default
  std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> setting{};
  // NULL rbytes: libxcrypt draws the salt from the OS CSPRNG (getrandom/getentropy).
  if (crypt_gensalt_rn(prefix.c_str(), count, nullptr, 0, setting.data(), static_cast<int>(setting.size())) ==
          nullptr ||
      setting[0] == '*') {
    return std::unexpected("cannot generate a salt for " + std::string(scheme.name));
  }
  const SecretString phrase(password);
  CryptBuffer buf;
  const char* out = crypt_rn(phrase.s.c_str(), setting.data(), buf.data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*' || out[0] == '\0') {
    return std::unexpected("crypt(3) failed for " + std::string(scheme.name));
  }
  return "{" + std::string(scheme.name) + "}" + out;
}

std::expected<std::string, std::string> hash_argon2(const Scheme& scheme, std::string_view password) {
  const bool id = scheme.argon2 == Argon2_id;
  const std::uint32_t m = id ? kArgon2idMemoryKiB : kArgon2iMemoryKiB;
  const std::uint32_t t = id ? kArgon2idPasses : kArgon2iPasses;
  const std::uint32_t p = 1;
  std::array<unsigned char, kArgon2SaltLength> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    return std::unexpected("the random number generator failed");
  }
  std::vector<char> encoded(argon2_encodedlen(t, m, p, salt.size(), kArgon2HashLength, scheme.argon2) + 1);
  const int rc = id ? argon2id_hash_encoded(t, m, p, password.data(), password.size(), salt.data(), salt.size(),
                                            kArgon2HashLength, encoded.data(), encoded.size())
                    : argon2i_hash_encoded(t, m, p, password.data(), password.size(), salt.data(), salt.size(),
                                           kArgon2HashLength, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return std::unexpected(std::string("argon2: ") + argon2_error_message(rc));
  return "{" + std::string(scheme.name) + "}" + std::string(encoded.data());
}

}  // namespace

std::string_view to_string(VerifyResult r) {
  switch (r) {
    case VerifyResult::kMatch: return "password matches";
    case VerifyResult::kMismatch: return "password mismatch";
    case VerifyResult::kUnknownScheme: return "unknown password scheme";
    case VerifyResult::kMalformed: return "malformed stored password";
    case VerifyResult::kNoPassword: return "no usable stored password (empty or locked)";
    case VerifyResult::kPasswordRejected: return "typed password is empty, too long or contains NUL";
  }
  return "unknown";
}

VerifyResult check_password(std::string_view stored, std::string_view password) {
  const Parsed parsed = parse_stored(stored);
  const Scheme* scheme = find_scheme(parsed.scheme);
  if (scheme == nullptr) return VerifyResult::kUnknownScheme;
  if (!password_usable(password)) return VerifyResult::kPasswordRejected;
  switch (scheme->kind) {
    case Kind::kPlain:
      if (parsed.data.empty()) return VerifyResult::kNoPassword;
      return constant_time_equal(parsed.data, password) ? VerifyResult::kMatch : VerifyResult::kMismatch;
    case Kind::kCrypt:
      return verify_crypt(*scheme, parsed.data, password);
    case Kind::kArgon2:
      return verify_argon2(parsed.data, password);
    case Kind::kScram:
      return verify_scram(parsed.data, password);
    case Kind::kCramMd5:
      return verify_cram_scheme(parsed.data, password);
  }
  return VerifyResult::kUnknownScheme;
}

bool verify_password(std::string_view stored, std::string_view password) {
  return check_password(stored, password) == VerifyResult::kMatch;
}

std::expected<std::string, std::string> hash_password(std::string_view password, std::string_view scheme_name) {
  const Scheme* scheme = find_scheme(scheme_name);
  if (scheme == nullptr) return std::unexpected("unknown password scheme (fix: use SHA512-CRYPT, BLF-CRYPT or ARGON2ID)");
  if (!scheme->can_hash) {
    return std::unexpected(std::string(scheme->name) +
                           " is accepted for verification only (fix: use SHA512-CRYPT, BLF-CRYPT or ARGON2ID)");
  }
  if (password.empty()) return std::unexpected("the password is empty");
  if (password.size() > kMaxPasswordLength) return std::unexpected("the password is longer than 511 octets");
  if (password.find('\0') != std::string_view::npos) return std::unexpected("the password contains NUL");
  switch (scheme->kind) {
    case Kind::kPlain:
      for (const char ch : password) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == ':' || c < 0x20 || c == 0x7F) {
          return std::unexpected(
              "a plaintext password cannot contain ':' or control characters (fix: use a hashed scheme "
              "such as SHA512-CRYPT)");
        }
      }
      return "{" + std::string(scheme->name) + "}" + std::string(password);
    case Kind::kCrypt:
      return hash_crypt(*scheme, password);
    case Kind::kArgon2:
      return hash_argon2(*scheme, password);
    case Kind::kScram:
      return hash_scram(password);
    case Kind::kCramMd5: {
      const auto ctx = cram_context(password);
      return "{CRAM-MD5}" + hex_of(ctx.data(), ctx.size());
    }
  }
  return std::unexpected("unknown password scheme");
}

std::string scheme_of(std::string_view stored) { return parse_stored(stored).scheme; }

bool can_hash_scheme(std::string_view scheme) {
  const Scheme* s = find_scheme(scheme);
  return s != nullptr && s->can_hash;
}

bool can_verify_scheme(std::string_view scheme) { return find_scheme(scheme) != nullptr; }

std::optional<std::string> plaintext_secret(std::string_view stored) {
  if (!stored.starts_with('{')) return std::nullopt;  // no prefix = CRYPT
  const Parsed parsed = parse_stored(stored);
  const Scheme* scheme = find_scheme(parsed.scheme);
  if (scheme == nullptr || scheme->kind != Kind::kPlain || parsed.data.empty()) return std::nullopt;
  return std::string(parsed.data);
}

std::optional<ScramSecret> scram_secret(std::string_view stored) {
  if (auto plain = plaintext_secret(stored)) {
    std::string salt(16, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) != 1)
      return std::nullopt;
    auto s = derive_scram(*plain, std::move(salt), kScramIterations);
    OPENSSL_cleanse(plain->data(), plain->size());
    return s;
  }
  const Parsed parsed = parse_stored(stored);
  if (parsed.scheme != "SCRAM-SHA-256") return std::nullopt;
  return parse_scram(parsed.data);
}

VerifyResult verify_cram_md5(std::string_view stored, std::string_view challenge, std::string_view digest) {
  CramContext ctx{};
  if (auto plain = plaintext_secret(stored)) {
    ctx = cram_context(*plain);
    OPENSSL_cleanse(plain->data(), plain->size());
  } else {
    const Parsed parsed = parse_stored(stored);
    if (parsed.scheme != "CRAM-MD5") return VerifyResult::kUnknownScheme;
    auto c = parse_cram(parsed.data);
    if (!c) return VerifyResult::kMalformed;
    ctx = *c;
  }
  const auto mac = cram_hmac(ctx, challenge);
  std::string typed(digest);
  for (char& c : typed)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  return constant_time_equal(hex_of(mac.data(), mac.size()), typed) ? VerifyResult::kMatch : VerifyResult::kMismatch;
}

std::string apop_digest(std::string_view timestamp, std::string_view secret) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, timestamp.data(), timestamp.size()) == 1 &&
                  EVP_DigestUpdate(ctx, secret.data(), secret.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, md.data(), &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return {};  // MD5 unavailable (FIPS-only provider): no digest can ever match ""
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0x0F];
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  const auto da = sha256(a);
  const auto db = sha256(b);
  const bool same_digest = CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
  const bool same_size = a.size() == b.size();
  return same_digest & same_size;
}

bool verify_apop(std::string_view timestamp, std::string_view secret, std::string_view client_digest) {
  if (secret.empty() || client_digest.size() != 32) return false;
  std::string typed(client_digest);
  for (char& c : typed) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  const std::string expected = apop_digest(timestamp, secret);
  if (expected.size() != 32) return false;
  return constant_time_equal(expected, typed);
}

bool verify_dummy(std::string_view password) {
  static std::once_flag once;
  static std::string dummy;
  std::call_once(once, [] {
    auto h = hash_password("buzon-dummy-password-never-matches", kDefaultScheme);
    dummy = h ? *h : std::string("{SHA512-CRYPT}$6$buzondummysalt$");
  });
  (void)check_password(dummy, password);
  return false;
}

}  // namespace buzon::auth
