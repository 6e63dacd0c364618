// store/uidl.cpp — UIDL validity, hashing and de-duplication (see uidl.hpp).
//
// SECURITY  Pure functions over untrusted octets; no allocation beyond the output.
// STANDARDS RFC 1939 §7.
// LIMITS    See uidl.hpp.
#include "store/uidl.hpp"

#include <openssl/evp.h>

#include <array>
#include <unordered_set>

namespace buzon::store {

bool is_valid_uidl(std::string_view s) {
  if (s.empty() || s.size() > kMaxUidlLength) return false;
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

std::string hashed_uidl(std::string_view s) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; an all-zero digest would still be valid output,
  // and uniqueness is enforced afterwards by dedupe_uidls.
  (void)EVP_Digest(s.data(), s.size(), md.data(), &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(kHashedUidlLength);
  for (std::size_t i = 0; i < kHashedUidlLength / 2; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0x0F]);
  }
  return out;
}

std::string uidl_from_name(std::string_view s) {
  if (is_valid_uidl(s)) return std::string(s);
  return hashed_uidl(s);
}

std::size_t dedupe_uidls(std::vector<std::string>& uidls, const std::vector<std::string>& salt) {
  // First pass: which values are taken by a first occurrence. Later duplicates must also avoid
  // every value that appears anywhere in the list, so no replacement can collide with an original.
  std::unordered_set<std::string> all(uidls.begin(), uidls.end());
  std::unordered_set<std::string> seen;
  std::size_t changed = 0;
  for (std::size_t i = 0; i < uidls.size(); ++i) {
    if (seen.insert(uidls[i]).second) continue;
    const std::string base = uidls[i] + '\x01' + (i < salt.size() ? salt[i] : std::string()) + '\x01';
    for (std::size_t n = 0;; ++n) {
      std::string candidate = hashed_uidl(base + std::to_string(n));
      if (!all.contains(candidate) && !seen.contains(candidate)) {
        uidls[i] = candidate;
        seen.insert(std::move(candidate));
        ++changed;
        break;
      }
    }
  }
  return changed;
}

}  // namespace buzon::store
