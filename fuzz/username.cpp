// fuzz/username.cpp — path safety: canonical_username() and mail_location().
//
// Input: [rules octet][template selector] then a typed user name (USER, APOP, AUTH authcid).
// Invariants: an accepted name holds no '/', '\\', ':', NUL, control character, space or "..",
// does not start with '.' or '#', has at most one '@', is at most 255 octets and is a fixed
// point (canonicalising it again changes nothing); expanded into every shipped mail location
// template it gives a path inside the mail root, never the root itself or outside it.
#include "auth/directory.hpp"
#include "core/mail_location.hpp"

#include "fuzz_check.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  buzon::auth::NameRules rules;
  rules.lowercase = (data[0] & 1) != 0;
  if (data[0] & 2) rules.default_domain = "example.com";
  std::string_view typed(reinterpret_cast<const char*>(data + 2), size - 2);

  auto name = buzon::auth::canonical_username(typed, rules);
  if (!name) {
    // The refusal goes to the log: it says why in plain ASCII and never carries the typed octets
    // (control characters, CR/LF, 8-bit) along.
    const auto& why = name.error();
    FUZZ_CHECK(!why.empty() && why.size() < 120, "a refusal says why, briefly");
    for (char ch : why) {
      auto u = static_cast<unsigned char>(ch);
      FUZZ_CHECK(u >= 0x20 && u < 0x7F, "a refusal is printable ASCII (no injected octets)");
    }
    return 0;
  }
  const std::string& n = *name;
  FUZZ_CHECK(!n.empty() && n.size() <= buzon::auth::kMaxUsernameLength, "1..255 octets");
  for (char ch : n) {
    auto u = static_cast<unsigned char>(ch);
    FUZZ_CHECK(u >= 0x21 && u != 0x7F, "no NUL, control character or space");
    FUZZ_CHECK(ch != '/' && ch != '\\' && ch != ':', "no path separator or ':'");
  }
  FUZZ_CHECK(n.find("..") == std::string::npos, "no \"..\"");
  FUZZ_CHECK(n.front() != '.' && n.front() != '#', "does not start with '.' or '#'");
  auto at = n.find('@');
  FUZZ_CHECK(at == std::string::npos || n.find('@', at + 1) == std::string::npos, "at most one '@'");
  if (at != std::string::npos) FUZZ_CHECK(at > 0 && at + 1 < n.size() && n[at + 1] != '.', "non-empty parts");
  auto again = buzon::auth::canonical_username(n, rules);
  FUZZ_CHECK(again.has_value() && *again == n, "canonical names are fixed points");

  static constexpr std::array<std::string_view, 6> kTemplates = {
      "mail/%d/%n/Maildir", "mail/%u", "/var/vmail/%d/%n", "%u/Maildir", "mail/%n@%d", "/srv/m/%d%n/x"};
  const std::filesystem::path base = "/srv/buzon";
  const auto tmpl = kTemplates[data[1] % kTemplates.size()];
  auto loc = buzon::mail_location(tmpl, base, n);
  if (!loc) {
    // Only a name without a domain may fail a template that needs one (e.g. "%d" alone empty).
    FUZZ_CHECK(!loc.error().empty(), "a refusal says why");
    return 0;
  }
  auto root = std::filesystem::path(std::string(tmpl.substr(0, tmpl.find('%'))));
  if (!root.is_absolute()) root = base / root;
  root = root.lexically_normal();
  if (root.has_filename()) root = root.parent_path();
  auto rel = loc->lexically_relative(root);
  FUZZ_CHECK(!rel.empty() && *rel.begin() != ".." && rel != ".", "the mailbox is inside the mail root");
  for (const auto& part : rel) FUZZ_CHECK(part != ".." && part != ".", "no '.' or '..' component");
  return 0;
}
