// auth/password.hpp — stored password schemes in Dovecot's "{SCHEME}data" form: verify a typed
// password against a stored secret, hash a new one, and the APOP digest.
//
// SECURITY  `password` is client input; `stored` comes from the administrator's directory. Every
//           comparison of secret material is constant-time (CRYPTO_memcmp). Salts come from the
//           kernel CSPRNG (crypt_gensalt_rn with NULL rbytes, RAND_bytes for argon2). Temporary
//           copies of secrets are wiped (OPENSSL_cleanse). An empty stored secret, a locked crypt
//           value ("!..." / "*..."), an unknown scheme or a malformed hash never verifies, and
//           never crashes. Stored argon2 costs are bounded so a bad entry cannot exhaust memory.
//           Hashing is CPU-heavy (bcrypt, argon2): call from the worker pool only.
// STANDARDS Dovecot password schemes (doc.dovecot.org "Password Schemes"): PLAIN, CLEAR,
//           CLEARTEXT, CRYPT (the default when there is no {SCHEME} prefix, as Dovecot's
//           passwd-file default_pass_scheme), SHA256-CRYPT ($5$), SHA512-CRYPT ($6$), BLF-CRYPT
//           ($2y$/$2b$/$2a$), ARGON2I, ARGON2ID (PHC string format, RFC 9106), SCRAM-SHA-256
//           ("iter,salt,StoredKey,ServerKey" in base64, RFC 5802 §3 / RFC 7677, as Dovecot 2.3.10+),
//           CRAM-MD5 (Dovecot's 32-octet HMAC-MD5 context in hex, RFC 2104 §4, RFC 2195);
//           verify-only: MD5-CRYPT ($1$), DES-CRYPT. APOP digest: RFC 1939 §7 (MD5, RFC 1321).
//           Which SASL mechanisms a stored scheme can serve: any scheme serves PLAIN, LOGIN and
//           USER/PASS; SCRAM-SHA-256 needs {SCRAM-SHA-256} or a plaintext scheme; CRAM-MD5 and
//           APOP need the plaintext ({CRAM-MD5} serves CRAM-MD5 too).
// LIMITS    kMaxPasswordLength octets of typed password; no NUL in a password (crypt(3) would
//           truncate at it); argon2 m <= kMaxArgon2MemoryKiB, t <= kMaxArgon2Passes,
//           p <= kMaxArgon2Lanes. bcrypt uses only the first 72 octets (a property of bcrypt).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace buzon::auth {

inline constexpr std::size_t kMaxPasswordLength = 511;  // libxcrypt: CRYPT_MAX_PASSPHRASE_SIZE - 1
inline constexpr std::uint32_t kMaxArgon2MemoryKiB = 1024 * 1024;  // 1 GiB
inline constexpr std::uint32_t kMaxArgon2Passes = 64;
inline constexpr std::uint32_t kMaxArgon2Lanes = 64;

// Cost parameters used by hash_password().
inline constexpr unsigned long kBcryptCost = 10;                    // 2^10 rounds ($2y$10$)
inline constexpr std::uint32_t kArgon2idMemoryKiB = 65536;         // as doveadm: m=65536,t=3,p=1
inline constexpr std::uint32_t kArgon2idPasses = 3;
inline constexpr std::uint32_t kArgon2iMemoryKiB = 32768;          // as doveadm: m=32768,t=4,p=1
inline constexpr std::uint32_t kArgon2iPasses = 4;
inline constexpr std::size_t kArgon2SaltLength = 16;
inline constexpr std::size_t kArgon2HashLength = 32;

// SCRAM-SHA-256 hashes made by hash_password(): RFC 7677 §3's minimum, Dovecot's default.
inline constexpr std::uint32_t kScramIterations = 4096;
// Stored SCRAM iteration counts above this are refused (a bad entry must not burn a CPU).
inline constexpr std::uint32_t kMaxScramIterations = 1000000;

// The [users] default_scheme default (CONTRACT.md).
inline constexpr std::string_view kDefaultScheme = "SHA512-CRYPT";

enum class VerifyResult {
  kMatch,             // the password is right
  kMismatch,          // well-formed stored secret, wrong password
  kUnknownScheme,     // "{FOO}..." with a scheme buzon does not implement
  kMalformed,         // the stored secret is not a valid value of its scheme
  kNoPassword,        // empty stored secret or a locked crypt value ("!", "*"): never matches
  kPasswordRejected,  // the typed password is empty, too long or contains NUL
};

// Short text for logs, e.g. "unknown password scheme".
std::string_view to_string(VerifyResult r);

// Verifies `password` against `stored` and says why it failed. Blocking, CPU-heavy.
VerifyResult check_password(std::string_view stored, std::string_view password);

// check_password(...) == VerifyResult::kMatch.
bool verify_password(std::string_view stored, std::string_view password);

// "{SCHEME}data" for a fresh random salt. `scheme` is case-insensitive; one of PLAIN, CLEAR,
// CLEARTEXT, CRYPT (bcrypt $2y$, as doveadm pw -s CRYPT), SHA256-CRYPT, SHA512-CRYPT, BLF-CRYPT,
// ARGON2I, ARGON2ID, SCRAM-SHA-256 (kScramIterations, 16-octet salt), CRAM-MD5 (unsalted: a
// password equivalent for CRAM-MD5, use only when that mechanism is needed). Errors (text): unknown or verify-only scheme, unusable password (empty, too
// long, NUL; for the plaintext schemes also ':' or control characters, which a passwd-file line
// cannot hold), CSPRNG or library failure.
std::expected<std::string, std::string> hash_password(std::string_view password, std::string_view scheme);

// The scheme of a stored secret, upper-cased: "SHA512-CRYPT", or "CRYPT" when there is no
// {SCHEME} prefix. May name a scheme buzon does not implement.
std::string scheme_of(std::string_view stored);

// True for the schemes hash_password() accepts (case-insensitive).
bool can_hash_scheme(std::string_view scheme);

// True for the schemes check_password() understands (case-insensitive).
bool can_verify_scheme(std::string_view scheme);

// The shared secret for the plaintext schemes (PLAIN, CLEAR, CLEARTEXT), nullopt for any other
// scheme or an empty secret. APOP needs it: its digest is keyed by the secret (RFC 1939 §7).
std::optional<std::string> plaintext_secret(std::string_view stored);

// What a SCRAM-SHA-256 server needs (RFC 5802 §3), raw octets.
struct ScramSecret {
  std::uint32_t iterations = kScramIterations;
  std::string salt, stored_key, server_key;
};

// The SCRAM-SHA-256 keys of a stored secret: parsed from {SCRAM-SHA-256}, or derived from a
// plaintext scheme with a fresh random salt (CPU work: PBKDF2). nullopt for any other scheme (a
// crypt or argon2 hash cannot give them) or a malformed value.
std::optional<ScramSecret> scram_secret(std::string_view stored);

// CRAM-MD5 (RFC 2195): checks `digest` (32 hex digits) = HMAC-MD5(secret, challenge) for a stored
// plaintext secret or Dovecot's {CRAM-MD5} context, in constant time. kUnknownScheme when the
// stored scheme cannot serve CRAM-MD5 (hashes), kMalformed for a broken stored value.
VerifyResult verify_cram_md5(std::string_view stored, std::string_view challenge, std::string_view digest);

// Lower-case hex MD5(timestamp + secret), RFC 1939 §7. `timestamp` includes the angle brackets.
// Returns "" only if MD5 is unavailable (an OpenSSL FIPS-only configuration).
std::string apop_digest(std::string_view timestamp, std::string_view secret);

// The APOP check: `client_digest` (32 hex digits, either case) equals apop_digest(timestamp,
// secret), compared in constant time. False for an empty secret or when MD5 is unavailable.
bool verify_apop(std::string_view timestamp, std::string_view secret, std::string_view client_digest);

// Constant-time equality of two byte strings: both are hashed (SHA-256) and the digests compared
// with CRYPTO_memcmp, so timing depends on neither the content nor where the strings differ (only,
// slightly, on their lengths). Use it for every comparison of secret material.
bool constant_time_equal(std::string_view a, std::string_view b);

// Spends about the time of one verification of the default scheme and returns false. Call it for
// an unknown user so that response timing does not reveal which names exist.
bool verify_dummy(std::string_view password);

}  // namespace buzon::auth
