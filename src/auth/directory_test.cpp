// auth/directory_test.cpp — canonical_username(): accepted forms, folding, default domain, and a
// table of refused names (each must be refused, never repaired).

#include "auth/directory.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace buzon::auth {
namespace {

std::string ok(std::string_view typed, const NameRules& rules) {
  const auto c = canonical_username(typed, rules);
  EXPECT_TRUE(c.has_value()) << "refused: " << typed << ": " << c.error();
  return c.value_or("<refused>");
}

TEST(CanonicalUsername, PlainNames) {
  const NameRules rules{};
  EXPECT_EQ(ok("demo", rules), "demo");
  EXPECT_EQ(ok("Demo", rules), "demo");
  EXPECT_EQ(ok("first.last+tag@Example.COM", rules), "first.last+tag@example.com");
  EXPECT_EQ(ok("a", rules), "a");
  EXPECT_EQ(ok("john.", rules), "john.");
  EXPECT_EQ(ok(std::string(255, 'x'), rules), std::string(255, 'x'));
}

TEST(CanonicalUsername, LowercaseRule) {
  NameRules rules{};
  rules.lowercase = false;
  EXPECT_EQ(ok("Demo@EXAMPLE.com", rules), "Demo@example.com");  // the domain is always folded
  EXPECT_EQ(ok("Demo", rules), "Demo");
}

TEST(CanonicalUsername, DefaultDomainMakesBothFormsOneKey) {
  NameRules rules{};
  rules.default_domain = "Example.COM";
  EXPECT_EQ(ok("demo", rules), "demo@example.com");
  EXPECT_EQ(ok("demo@example.com", rules), "demo@example.com");
  EXPECT_EQ(ok("DEMO@EXAMPLE.COM", rules), "demo@example.com");
  EXPECT_EQ(ok("demo@other.org", rules), "demo@other.org");
  // 255 octets is the limit after the default domain is appended.
  EXPECT_FALSE(canonical_username(std::string(250, 'x'), rules).has_value());
  EXPECT_EQ(ok(std::string(243, 'x'), rules), std::string(243, 'x') + "@example.com");
}

TEST(CanonicalUsername, Utf8LocalPartsAreKeptAndOnlyAsciiIsFolded) {
  const NameRules rules{};
  EXPECT_EQ(ok("J\xC3\xBCrgen@Example.com", rules), "j\xC3\xBCrgen@example.com");   // "Jürgen": Ü not folded
  EXPECT_EQ(ok("\xC3\x9C" "ber", rules), "\xC3\x9C" "ber");                          // "Über"
  EXPECT_EQ(ok("\xE7\x94\xA8\xE6\x88\xB7@example.com", rules), "\xE7\x94\xA8\xE6\x88\xB7@example.com");  // 用户
  EXPECT_EQ(ok("\xF0\x9F\x93\xAE", rules), "\xF0\x9F\x93\xAE");                      // U+1F4EE
}

TEST(CanonicalUsername, RefusedNames) {
  NameRules with_domain{};
  with_domain.default_domain = "example.com";
  const std::vector<std::string> refused = {
      "",
      std::string(256, 'x'),
      std::string("de\0mo", 5),
      "de mo",
      " demo",
      "demo ",
      "demo\t",
      "demo\r\n",
      "de\x01mo",
      "de\x7Fmo",
      "a/b",
      "/etc/passwd",
      "a\\b",
      ".",
      "..",
      "../x",
      "a..b",
      "x@..",
      "x@a..b",
      ".hidden",
      "x@.example.com",
      "x@.",
      "a:b",
      "a@b@c",
      "@example.com",
      "demo@",
      "@",
      "#demo",
      "\xC3",                  // truncated sequence
      "\xC3\x28",              // bad continuation
      "\xC0\xAF",              // overlong '/'
      "\xE0\x80\xAF",          // overlong '/'
      "\xED\xA0\x80",          // surrogate U+D800
      "\xF4\x90\x80\x80",      // above U+10FFFF
      "\xF8\x88\x80\x80\x80",  // 5-octet form
      "\xFF",
      "\x80",
      "a\xC2\x85" "b",  // U+0085 NEL, a C1 control
  };
  for (const auto& name : refused) {
    SCOPED_TRACE(testing::PrintToString(name));
    const auto r = canonical_username(name, NameRules{});
    EXPECT_FALSE(r.has_value()) << *r;
    if (!r) {
      EXPECT_FALSE(r.error().empty());
      // The error text never echoes the name (log injection).
      if (name.size() > 2) {
        EXPECT_EQ(r.error().find(name), std::string::npos) << r.error();
      }
    }
    EXPECT_FALSE(canonical_username(name, with_domain).has_value());
  }
}

TEST(CanonicalUsername, BadDefaultDomainIsAnError) {
  for (const char* domain : {"a/b", "a@b", ".example.com", "exa mple.com", "a..b", "a:b"}) {
    SCOPED_TRACE(domain);
    NameRules rules{};
    rules.default_domain = domain;
    EXPECT_FALSE(canonical_username("demo", rules).has_value());
    EXPECT_FALSE(canonical_domain(domain).has_value());
  }
  EXPECT_EQ(canonical_domain("").value(), "");
  EXPECT_EQ(canonical_domain("Example.COM").value(), "example.com");
}

}  // namespace
}  // namespace buzon::auth
