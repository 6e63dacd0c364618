// store/maildir/maildirsize_test.cpp — Maildir++ maildirsize: limits line, change lines (negative
// for removals), partial last line, malformed files, recalculation rule, fit check, sizes.
#include "store/maildir/maildirsize.hpp"

#include "store/maildir/maildir_deliverer.hpp"
#include "store/maildir/maildir_store.hpp"

#include <unistd.h>

#include <fstream>
#include <sstream>

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

TEST(Maildirsize, DovecotQuotaRules) {
  auto l = parse_quota_rules({"*:storage=1G", "*:messages=1000"});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->bytes, 1073741824u);
  EXPECT_EQ(l->messages, 1000u);
  EXPECT_EQ(parse_quota_rules({"*:bytes=5000"})->bytes, 5000u);
  EXPECT_FALSE(parse_quota_rules({}));
  EXPECT_FALSE(parse_quota_rules({"Trash:storage=+10M", "*:storage=10%"}));  // not supported: ignored
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Maildirsize, DeliveryEnforcesAndUpdatesTheFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("buzon-quota-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto box = dir / "Maildir";
  MaildirDeliverer d;
  const std::string body(90, 'x');  // + "Delivered-To: u\r\n" (17) = 107 octets per copy
  const std::string_view parts[] = {body};
  const std::vector<DeliveryCopy> copies = {{MailboxRef{"u", box.string()}, "Delivered-To: u\r\n"}};
  ASSERT_TRUE(d.deliver(copies, parts, DeliveryMode::all_or_none)[0]);  // no maildirsize: no quota
  auto set = set_maildir_quota(box, {350, 0});
  ASSERT_TRUE(set) << set.error();
  EXPECT_EQ(set->usage.bytes, 107);
  EXPECT_EQ(slurp(box / "maildirsize"), "350S\n107 1\n");
  ASSERT_TRUE(d.deliver(copies, parts, DeliveryMode::all_or_none)[0]);
  ASSERT_TRUE(d.deliver(copies, parts, DeliveryMode::all_or_none)[0]);  // 321 of 350
  EXPECT_EQ(slurp(box / "maildirsize"), "350S\n107 1\n107 1\n107 1\n");
  auto full = d.deliver(copies, parts, DeliveryMode::all_or_none);
  ASSERT_FALSE(full[0]);
  EXPECT_EQ(full[0].error().code, StoreErrc::quota);
  EXPECT_EQ(scan_maildir_usage(box).messages, 3);
  // A POP3 deletion (DELE then QUIT) frees it again.
  {
    MaildirStore store;
    auto drop = store.open(box.string());
    ASSERT_TRUE(drop);
    const std::size_t first[] = {0};
    ASSERT_TRUE((*drop)->commit_deletes(first));
  }
  EXPECT_EQ(slurp(box / "maildirsize"), "350S\n107 1\n107 1\n107 1\n-107 -1\n");
  EXPECT_TRUE(d.deliver(copies, parts, DeliveryMode::all_or_none)[0]);
  // Message-count limit; a stale file (older than 15 minutes) is recalculated from the Maildir.
  ASSERT_TRUE(set_maildir_quota(box, {0, 3}));
  EXPECT_EQ(d.deliver(copies, parts, DeliveryMode::all_or_none)[0].error().code, StoreErrc::quota);
  std::ofstream(box / "maildirsize", std::ios::app) << "-100000 -50\n";  // skewed
  auto now = std::chrono::system_clock::now();
  EXPECT_EQ(read_maildirsize(box, now)->usage.messages, -47);
  EXPECT_EQ(read_maildirsize(box, now + std::chrono::minutes(16))->usage.messages, 3);
  EXPECT_EQ(slurp(box / "maildirsize"), "3C\n321 3\n");
  ASSERT_TRUE(set_maildir_quota(box, {}));  // no limits: the file goes
  EXPECT_FALSE(std::filesystem::exists(box / "maildirsize"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace buzon::store::maildir
