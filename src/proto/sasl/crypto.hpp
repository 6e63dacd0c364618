// proto/sasl/crypto.hpp — the few cryptographic primitives the SASL mechanisms need, on OpenSSL's
// EVP API: HMAC, H(), Hi() (PBKDF2), random octets, constant-time comparison.
//
// SECURITY  Every comparison of secret material goes through equal() (CRYPTO_memcmp). Random
//           octets come from OpenSSL's CSPRNG; a failure throws (it cannot be ignored safely).
// STANDARDS RFC 2104 (HMAC), RFC 5802 §2.2 (H, HMAC, Hi = PBKDF2 with a 1-block output),
//           RFC 8018 §5.2 (PBKDF2), RFC 6234 (SHA-256), RFC 1321 (MD5, for CRAM-MD5 only).
// LIMITS    None here; callers bound iteration counts (scram.hpp kMaxIterations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace buzon::sasl {

// Octet strings are carried in std::string (binary-safe).
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string hmac_md5(std::string_view key, std::string_view data);
std::string sha256(std::string_view data);
// Hi(password, salt, i) of RFC 5802 §2.2: PBKDF2-HMAC-SHA-256 with a 32-octet output.
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, std::uint32_t iterations);
// `n` octets from the CSPRNG. Throws std::runtime_error if the generator fails.
std::string random_bytes(std::size_t n);
// Constant-time equality (the lengths are compared openly; they are not secret here).
bool equal(std::string_view a, std::string_view b);
// a XOR b; both must have the same length.
std::string xor_bytes(std::string_view a, std::string_view b);
// Lower-case hex.
std::string to_hex(std::string_view bytes);

}  // namespace buzon::sasl
