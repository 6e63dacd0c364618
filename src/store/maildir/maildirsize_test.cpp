// store/maildir/maildirsize_test.cpp — Maildir++ maildirsize: limits line, change lines (negative
// for removals), partial last line, malformed files, recalculation rule, fit check, sizes.
#include "store/maildir/maildirsize.hpp"

#include <gtest/gtest.h>

namespace buzon::store::maildir {
namespace {

TEST(Maildirsize, LimitsLine) {
  EXPECT_EQ(format_quota_limits({10485760, 1000}), "10485760S,1000C");
  EXPECT_EQ(format_quota_limits({0, 1000}), "1000C");
  EXPECT_EQ(format_quota_limits({5, 0}), "5S");
  EXPECT_EQ(format_quota_limits({}), "");
  auto l = parse_quota_limits("1000C,2048S");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->bytes, 2048u);
  EXPECT_EQ(l->messages, 1000u);
  EXPECT_TRUE(parse_quota_limits(""));
  for (auto bad : {"10X", "S", "-5S", "5S,", "abcS", "5S;3C"}) EXPECT_FALSE(parse_quota_limits(bad)) << bad;
}

TEST(Maildirsize, UsageIsTheSumOfTheChanges) {
  auto m = parse_maildirsize("2048S,10C\n1000 4\n  300 1\n-200 -1\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->limits.bytes, 2048u);
  EXPECT_EQ(m->usage.bytes, 1100);
  EXPECT_EQ(m->usage.messages, 4);
  // A writer that died mid-line: the partial line is ignored.
  EXPECT_EQ(parse_maildirsize("100S\n10 1\n99")->usage.bytes, 10);
  EXPECT_FALSE(parse_maildirsize("100S\n10\n"));
  EXPECT_FALSE(parse_maildirsize("100S\nx 1\n"));
  EXPECT_FALSE(parse_maildirsize("100S"));
  EXPECT_EQ(format_maildirsize({2048, 10}, {1100, 4}), "2048S,10C\n1100 4\n");
  EXPECT_EQ(format_quota_change(-200, -1), "-200 -1\n");
  auto round = parse_maildirsize(format_maildirsize({2048, 10}, {1100, 4}) + format_quota_change(50, 1));
  ASSERT_TRUE(round);
  EXPECT_EQ(round->usage.bytes, 1150);
  EXPECT_EQ(round->usage.messages, 5);
}

TEST(Maildirsize, RecalculationRule) {
  const QuotaLimits l{1000, 10};
  EXPECT_FALSE(maildirsize_needs_recalc(5120, std::chrono::seconds(900), l, l));
  EXPECT_TRUE(maildirsize_needs_recalc(5121, std::chrono::seconds(0), l, l));
  EXPECT_TRUE(maildirsize_needs_recalc(10, std::chrono::seconds(901), l, l));
  EXPECT_TRUE(maildirsize_needs_recalc(10, std::chrono::seconds(0), l, QuotaLimits{2000, 10}));
}

TEST(Maildirsize, Fits) {
  const QuotaLimits l{1000, 3};
  EXPECT_TRUE(quota_allows(l, {900, 1}, 100));   // exactly at the limit
  EXPECT_FALSE(quota_allows(l, {900, 1}, 101));
  EXPECT_FALSE(quota_allows(l, {10, 3}, 1));      // message count
  EXPECT_TRUE(quota_allows({}, {1 << 30, 100000}, 1 << 30));  // no limits
  EXPECT_TRUE(quota_allows(l, {-50, -1}, 1000));  // a skewed file never blocks more than it should
}

TEST(Maildirsize, QuotaSizes) {
  EXPECT_EQ(parse_quota_size("1G"), 1073741824u);
  EXPECT_EQ(parse_quota_size("500M"), 524288000u);
  EXPECT_EQ(parse_quota_size("20k"), 20480u);
  EXPECT_EQ(parse_quota_size("1048576"), 1048576u);
  EXPECT_EQ(parse_quota_size("0"), 0u);
  for (auto bad : {"", "G", "1.5G", "-1", "1X", "99999999999999999999T"}) EXPECT_FALSE(parse_quota_size(bad)) << bad;
}

}  // namespace
}  // namespace buzon::store::maildir
