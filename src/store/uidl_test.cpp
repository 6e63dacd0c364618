// store/uidl_test.cpp — UIDL validity, hashing and deterministic de-duplication.
//
// SECURITY  Tests only.
// STANDARDS RFC 1939 §7.
// LIMITS    None.
#include <gtest/gtest.h>

#include <set>

#include "store/uidl.hpp"

namespace buzon::store {
namespace {

TEST(Uidl, Validity) {
  EXPECT_TRUE(is_valid_uidl("a"));
  EXPECT_TRUE(is_valid_uidl(std::string(70, '~')));
  EXPECT_TRUE(is_valid_uidl("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"));
  EXPECT_FALSE(is_valid_uidl(""));
  EXPECT_FALSE(is_valid_uidl(std::string(71, 'a')));
  EXPECT_FALSE(is_valid_uidl("a b"));
  EXPECT_FALSE(is_valid_uidl("a\x7F"));
  EXPECT_FALSE(is_valid_uidl("\xC3\xA9"));
  EXPECT_FALSE(is_valid_uidl(std::string("a\0b", 3)));
}

TEST(Uidl, HashIsStableValidHex) {
  const std::string h = hashed_uidl("some name");
  EXPECT_EQ(h, hashed_uidl("some name"));
  EXPECT_NE(h, hashed_uidl("some name2"));
  EXPECT_EQ(h.size(), kHashedUidlLength);
  EXPECT_TRUE(is_valid_uidl(h));
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  // SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223.
  EXPECT_EQ(hashed_uidl("abc"), "ba7816bf8f01cfea414140de5dae2223");
}

TEST(Uidl, FromName) {
  EXPECT_EQ(uidl_from_name("1700000000.M1P1.h"), "1700000000.M1P1.h");
  EXPECT_EQ(uidl_from_name(std::string(71, 'a')), hashed_uidl(std::string(71, 'a')));
}

TEST(Uidl, DedupeKeepsFirstAndIsDeterministic) {
  std::vector<std::string> u = {"a", "b", "a", "a", "c"};
  const std::vector<std::string> salt = {"1", "2", "3", "4", "5"};
  auto copy = u;
  EXPECT_EQ(dedupe_uidls(u, salt), 2u);
  EXPECT_EQ(u[0], "a");
  EXPECT_EQ(u[1], "b");
  EXPECT_EQ(u[4], "c");
  EXPECT_EQ(std::set<std::string>(u.begin(), u.end()).size(), 5u);
  for (const auto& x : u) EXPECT_TRUE(is_valid_uidl(x));
  dedupe_uidls(copy, salt);
  EXPECT_EQ(copy, u);
}

TEST(Uidl, DedupeNeverCollidesWithALaterOriginal) {
  // The replacement for the second "x" must not equal a value appearing later in the list.
  std::vector<std::string> u = {"x", "x"};
  const std::vector<std::string> salt = {"s0", "s1"};
  std::vector<std::string> probe = u;
  dedupe_uidls(probe, salt);
  u.push_back(probe[1]);  // the value the duplicate would get
  std::vector<std::string> salt3 = {"s0", "s1", "s2"};
  dedupe_uidls(u, salt3);
  EXPECT_EQ(std::set<std::string>(u.begin(), u.end()).size(), 3u);
  EXPECT_EQ(u[2], probe[1]);  // the original keeps its value
}

}  // namespace
}  // namespace buzon::store
