// store/uidl.hpp — UIDL helpers shared by every backend: validity, stable hashing, de-duplication.
//
// SECURITY  Inputs are file names and header values written by other agents (untrusted): they are
//           only compared, hashed or copied when they already satisfy the RFC 1939 charset.
// STANDARDS RFC 1939 §7 (UIDL: 1..70 octets in 0x21..0x7E, unique within the maildrop, stable
//           across sessions).
// LIMITS    kMaxUidlLength = 70 (RFC 1939); hashed ids are kHashedUidlLength hex digits.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::store {

inline constexpr std::size_t kMaxUidlLength = 70;
inline constexpr std::size_t kHashedUidlLength = 32;  // 128 bits of SHA-256, lower-case hex

// True when `s` may be sent verbatim as a UIDL: 1..70 octets, each 0x21..0x7E.
bool is_valid_uidl(std::string_view s);

// A stable UIDL derived from arbitrary octets: hex of the first 16 octets of SHA-256(s).
std::string hashed_uidl(std::string_view s);

// `s` itself when it is a valid UIDL, else hashed_uidl(s).
std::string uidl_from_name(std::string_view s);

// Makes every UIDL in `uidls` unique, deterministically: the first occurrence (in list order)
// keeps its value; a later duplicate becomes hashed_uidl(value + "\x01" + salt[i] + "\x01" + n)
// for the smallest n >= 0 that is not yet taken. `salt` (same length as `uidls`) should be a
// per-message identity such as the file name. Returns how many values were changed.
std::size_t dedupe_uidls(std::vector<std::string>& uidls, const std::vector<std::string>& salt);

}  // namespace buzon::store
