// fuzz/passwd_file.cpp — the Dovecot passwd-file parser.
//
// Input: [rules octet] then the file's text. The rules octet picks lowercase on/off and a default
// domain. Invariants: on success every user name is canonical (canonical_username() gives it back
// unchanged), names are unique, uid/gid are never 0 (root), a home is absolute; on failure the
// error names a line within the file and never echoes a password field. passwd_entry_name() and
// passwd_warnings() hold up on every line and every result.
#include "auth/passwd_file.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  buzon::auth::NameRules rules;
  rules.lowercase = (data[0] & 1) != 0;
  switch ((data[0] >> 1) & 3) {
    case 1: rules.default_domain = "example.com"; break;
    case 2: rules.default_domain = "Example.ORG"; break;
    default: break;
  }
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::size_t lines = 0;
  for (std::string_view rest = text; !rest.empty(); ++lines) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (auto name = buzon::auth::passwd_entry_name(line)) {
      FUZZ_CHECK(name->size() <= line.size(), "the entry name is part of its line");
    }
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  }

  auto users = buzon::auth::parse_passwd_file(text, rules);
  if (!users) {
    const auto& e = users.error();
    FUZZ_CHECK(e.line <= lines + 1, "an error names a line of the file");
    FUZZ_CHECK(!e.message.empty(), "an error says what is wrong");
    auto formatted = buzon::auth::format_parse_error("/etc/buzon/passwd", e);
    FUZZ_CHECK(formatted.starts_with("/etc/buzon/passwd"), "the error starts with the path");
    FUZZ_CHECK(formatted.find('\n') == std::string::npos, "the error is one line");
    return 0;
  }
  std::set<std::string> seen;
  for (const auto& u : *users) {
    auto again = buzon::auth::canonical_username(u.name, rules);
    FUZZ_CHECK(again.has_value() && *again == u.name, "loaded names are canonical");
    FUZZ_CHECK(seen.insert(u.name).second, "loaded names are unique");
    FUZZ_CHECK(!u.uid || *u.uid != 0, "uid 0 (root) is never accepted");
    FUZZ_CHECK(!u.gid || *u.gid != 0, "gid 0 (root) is never accepted");
    FUZZ_CHECK(u.home.empty() || u.home.front() == '/', "a home is absolute");
  }
  auto warnings = buzon::auth::passwd_warnings(*users);
  FUZZ_CHECK(warnings.size() <= users->size(), "at most one warning per user");
  return 0;
}
