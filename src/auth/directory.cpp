// auth/directory.cpp — canonical_username(): how a typed login name becomes a directory key.
//
// SECURITY  The input is whatever a client typed (USER, AUTH PLAIN authcid, APOP name) and the
//           result is used as a hash key and expanded into mail paths (%u %n %d), so everything
//           that could leave the mail root, alias another account, break a passwd-file line or a
//           log line is refused rather than repaired: nothing is trimmed or dropped. Error texts
//           never echo the name (they go to logs).
// STANDARDS RFC 5321 §4.5.3.1 (length), RFC 6531/6532/6856 (UTF-8 user names: only well-formed
//           UTF-8, RFC 3629), RFC 4343 (domains compare case-insensitively; ASCII folding only).
// LIMITS    kMaxUsernameLength octets, before and after the default domain is appended.

#include "auth/directory.hpp"

#include <cstdint>

namespace buzon::auth {
namespace {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// Well-formed UTF-8 per RFC 3629 §4 (no overlongs, no surrogates, nothing above U+10FFFF) and no
// C1 control characters (U+0080..U+009F). ASCII checks are done by the caller.
bool valid_utf8_no_c1(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte first, 0xC0/0xC1 overlong lead, or > U+10FFFF lead
    }
    if (static_cast<std::size_t>(end - p) < len) return false;
    for (std::size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;                             // surrogate
    if (cp > 0x10FFFF) return false;
    if (cp >= 0x80 && cp <= 0x9F) return false;  // C1 controls
    p += len;
  }
  return true;
}

// Checks shared by the whole name, a local part and a domain. Returns "" when fine.
std::string_view octet_problem(std::string_view s) {
  bool eight_bit = false;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) return "contains NUL";
    if (c < 0x20 || c == 0x7F) return "contains a control character";
    if (c == ' ') return "contains a space";
    if (c == '/') return "contains '/'";
    if (c == '\\') return "contains '\\'";
    if (c == ':') return "contains ':'";
    if (c >= 0x80) eight_bit = true;
  }
  if (eight_bit && !valid_utf8_no_c1(s)) return "is not valid UTF-8";
  if (s.find("..") != std::string_view::npos) return "contains \"..\"";
  return {};
}

std::expected<std::string, std::string> check_domain(std::string_view domain, std::string_view what) {
  if (domain.empty()) return std::unexpected(std::string(what) + " is empty");
  if (domain.size() > kMaxUsernameLength) return std::unexpected(std::string(what) + " is too long");
  if (const auto why = octet_problem(domain); !why.empty()) {
    return std::unexpected(std::string(what) + " " + std::string(why));
  }
  if (domain.find('@') != std::string_view::npos) return std::unexpected(std::string(what) + " contains '@'");
  if (domain.front() == '.') return std::unexpected(std::string(what) + " starts with '.'");
  return lowered(domain);
}

}  // namespace

std::expected<std::string, std::string> canonical_domain(std::string_view domain) {
  if (domain.empty()) return std::string();
  return check_domain(domain, "domain");
}

std::expected<std::string, std::string> canonical_username(std::string_view typed, const NameRules& rules) {
  if (typed.empty()) return std::unexpected("user name is empty");
  if (typed.size() > kMaxUsernameLength) return std::unexpected("user name is longer than 255 octets");
  if (const auto why = octet_problem(typed); !why.empty()) {
    return std::unexpected("user name " + std::string(why));
  }
  if (typed.front() == '#') return std::unexpected("user name starts with '#'");

  const auto at = typed.find('@');
  if (at != std::string_view::npos && typed.find('@', at + 1) != std::string_view::npos) {
    return std::unexpected("user name contains more than one '@'");
  }
  const std::string_view local = typed.substr(0, at);
  if (local.empty()) return std::unexpected("user name has an empty local part");
  if (local == "." || local.front() == '.') return std::unexpected("user name starts with '.'");

  std::string out = rules.lowercase ? lowered(local) : std::string(local);
  if (at != std::string_view::npos) {
    auto domain = check_domain(typed.substr(at + 1), "user name domain");
    if (!domain) return std::unexpected(std::move(domain.error()));
    out += '@';
    out += *domain;
  } else if (!rules.default_domain.empty()) {
    auto domain = check_domain(rules.default_domain, "default_domain");
    if (!domain) return std::unexpected(std::move(domain.error()));
    out += '@';
    out += *domain;
    if (out.size() > kMaxUsernameLength) {
      return std::unexpected("user name is longer than 255 octets with the default domain");
    }
  }
  return out;
}

}  // namespace buzon::auth
