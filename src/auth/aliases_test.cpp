// auth/aliases_test.cpp — the aliases file: parsing (comments, file:line errors), expansion
// (nested, several targets, duplicates, catch-all), cycles and depth reported with the chain.
#include "auth/aliases.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace buzon::auth {
namespace {

AliasTable parse(std::string_view text) {
  auto t = parse_aliases(text);
  EXPECT_TRUE(t) << (t ? "" : t.error().message);
  return t ? *t : AliasTable{};
}

const IsFinal kNoneFinal = [](std::string_view) { return false; };
const IsFinal kAllFinal = [](std::string_view) { return true; };

using V = std::vector<std::string>;

TEST(Aliases, ParsesTargetsCommentsAndCase) {
  auto t = parse("# team\r\nSales@Example.COM: ana@example.com ,  bob@Other.ORG # two\n\n  @example.net: ana@example.com\n");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t["sales@example.com"].targets, (V{"ana@example.com", "bob@other.org"}));
  EXPECT_EQ(t["sales@example.com"].line, 2u);
  EXPECT_EQ(t["@example.net"].targets, V{"ana@example.com"});
  EXPECT_EQ(t["@example.net"].line, 4u);
}

TEST(Aliases, BadLinesNameTheLine) {
  struct Case { std::string_view text; std::size_t line; std::string_view what; };
  for (const auto& c : std::initializer_list<Case>{
           {"a@x.org b@x.org\n", 1, "no ':'"},
           {"\n\nnodomain: b@x.org\n", 3, "not an address"},
           {"a@x.org: b@x.org,,c@x.org\n", 1, "empty target"},
           {"a@x.org:\n", 1, "empty target"},
           {"a@x.org: b c@x.org\n", 1, "not an address"},
           {"a@x.org: <b@x.org>\n", 1, "not an address"},
           {"a@x.org: b@\n", 1, "not an address"},
           {"a@x.org: b@x.org\nA@X.org: c@x.org\n", 2, "already defined on line 1"},
           {"a@b@x.org: c@x.org\n", 1, "not an address"},
       }) {
    auto t = parse_aliases(c.text);
    ASSERT_FALSE(t) << c.text;
    EXPECT_EQ(t.error().line, c.line) << c.text;
    EXPECT_NE(t.error().message.find(c.what), std::string::npos) << t.error().message;
    EXPECT_NE(t.error().message.find("(fix: "), std::string::npos) << t.error().message;
  }
}

TEST(Aliases, ExpandsNestedAndRemovesDuplicates) {
  auto t = parse("team@x.org: ana@x.org, ops@x.org\nops@x.org: bob@x.org, ana@x.org, far@remote.net\n");
  auto r = expand_alias(t, "Team@X.org", kAllFinal);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, (V{"ana@x.org", "bob@x.org", "far@remote.net"}));
  // Not an alias: itself.
  EXPECT_EQ(*expand_alias(t, "ana@x.org", kAllFinal), V{"ana@x.org"});
}

TEST(Aliases, CatchAllOnlyForAddressesThatAreNotMailboxes) {
  auto t = parse("@x.org: postmaster@x.org\nsales@x.org: ana@x.org\n");
  const IsFinal users = [](std::string_view a) { return a == "ana@x.org"; };
  EXPECT_EQ(*expand_alias(t, "ana@x.org", users), V{"ana@x.org"});
  EXPECT_EQ(*expand_alias(t, "sales@x.org", users), V{"ana@x.org"});
  EXPECT_EQ(*expand_alias(t, "nobody@x.org", users), V{"postmaster@x.org"});
  // The catch-all is not followed twice in one chain (postmaster@x.org is not a user either).
  EXPECT_EQ(*expand_alias(t, "postmaster@x.org", users), V{"postmaster@x.org"});
  EXPECT_EQ(*expand_alias(t, "nobody@y.org", users), V{"nobody@y.org"});
}

TEST(Aliases, CycleIsAnErrorWithTheChain) {
  auto t = parse("a@x.org: b@x.org\nb@x.org: c@x.org, d@x.org\nc@x.org: A@x.org\n");
  auto r = expand_alias(t, "a@x.org", kNoneFinal);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "alias loop: a@x.org -> b@x.org -> c@x.org -> a@x.org");
  auto c = check_aliases(t, "/etc/buzon/aliases");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), "/etc/buzon/aliases:1: alias loop: a@x.org -> b@x.org -> c@x.org -> a@x.org (fix: break the chain)");
  // Self-alias too.
  EXPECT_FALSE(check_aliases(parse("a@x.org: a@x.org\n"), "f"));
}

TEST(Aliases, DepthLimit) {
  std::string text;
  for (int i = 0; i < 12; ++i) text += "a" + std::to_string(i) + "@x.org: a" + std::to_string(i + 1) + "@x.org\n";
  auto t = parse(text);
  auto r = expand_alias(t, "a0@x.org", kAllFinal);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().starts_with("aliases nested deeper than 10: a0@x.org -> a1@x.org")) << r.error();
  EXPECT_TRUE(expand_alias(t, "a5@x.org", kAllFinal));  // 7 levels: fine
  EXPECT_FALSE(check_aliases(t, "f"));
}

TEST(Aliases, DiamondIsNotACycle) {
  auto t = parse("a@x.org: b@x.org, c@x.org\nb@x.org: d@x.org\nc@x.org: d@x.org\n");
  EXPECT_TRUE(check_aliases(t, "f"));
  EXPECT_EQ(*expand_alias(t, "a@x.org", kAllFinal), V{"d@x.org"});
}

TEST(Aliases, FileLoadAndReloadKeepsOldTableOnError) {
  const auto dir = std::filesystem::temp_directory_path() / ("buzon-aliases-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "aliases";
  std::ofstream(path) << "a@x.org: b@x.org\n";
  auto f = AliasFile::open(path);
  ASSERT_TRUE(f) << f.error();
  EXPECT_EQ((*f)->table()->size(), 1u);
  std::ofstream(path) << "a@x.org: b@x.org\nb@x.org: a@x.org\n";
  auto bad = (*f)->reload();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("aliases:1: alias loop: a@x.org -> b@x.org -> a@x.org"), std::string::npos) << bad.error();
  EXPECT_EQ((*f)->table()->size(), 1u);
  std::ofstream(path) << "a@x.org: b@x.org\nc@x.org: d@x.org\n";
  EXPECT_EQ((*f)->reload().value_or(0), 2u);
  EXPECT_FALSE(AliasFile::open(dir / "missing"));
  EXPECT_EQ((*AliasFile::open(""))->table()->size(), 0u);
  std::filesystem::remove_all(dir);
}

TEST(Aliases, AddAndDeleteKeepOtherLines) {
  const auto dir = std::filesystem::temp_directory_path() / ("buzon-alias-edit-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "aliases";
  ASSERT_TRUE(add_alias(path, "Sales@Example.COM", {"ana@example.com", "bob@Example.com"}));
  std::ofstream(path, std::ios::app) << "# kept\n";
  ASSERT_TRUE(add_alias(path, "@example.net", {"ana@example.com"}));
  auto dup = add_alias(path, "sales@example.com", {"x@example.com"});
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().find("already exists"), std::string::npos);
  // A cycle is refused and the file stays as it was.
  ASSERT_TRUE(add_alias(path, "a@example.com", {"b@example.com"}));
  auto loop = add_alias(path, "b@example.com", {"a@example.com"});
  ASSERT_FALSE(loop);
  EXPECT_NE(loop.error().find("alias loop: "), std::string::npos) << loop.error();
  EXPECT_FALSE(add_alias(path, "nodomain", {"a@example.com"}));
  EXPECT_FALSE(add_alias(path, "x@example.com", {}));
  ASSERT_TRUE(delete_alias(path, "SALES@example.com"));
  EXPECT_FALSE(delete_alias(path, "sales@example.com"));
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "# kept\n@example.net: ana@example.com\na@example.com: b@example.com\n");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace buzon::auth
