// [queue] config section (issue 8): defaults, every key, the range and consistency errors.
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(ConfigQueue, Defaults) {
  auto c = parse_config("", "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->queue.dir, "queue");
  EXPECT_EQ(c->resolve(c->queue.dir), "/etc/buzon/queue");
  EXPECT_EQ(c->queue.retry_first, 300u);
  EXPECT_EQ(c->queue.retry_max_interval, 14400u);
  EXPECT_EQ(c->queue.max_age, 432000u);  // 5 days (RFC 5321 §4.5.4.1: at least 4-5 days)
  EXPECT_EQ(c->queue.delay_warning, 14400u);
  EXPECT_EQ(c->queue.scan_interval, 5u);
}

TEST(ConfigQueue, ReadsEveryKey) {
  auto c = parse_config(R"(
[queue]
dir = "/var/spool/buzon"
retry_first = 1
retry_max_interval = 4
max_age = 60
delay_warning = 0
scan_interval = 1
)", "/x/b.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->resolve(c->queue.dir), "/var/spool/buzon");
  EXPECT_EQ(c->queue.retry_first, 1u);
  EXPECT_EQ(c->queue.retry_max_interval, 4u);
  EXPECT_EQ(c->queue.max_age, 60u);
  EXPECT_EQ(c->queue.delay_warning, 0u);
  EXPECT_EQ(c->queue.scan_interval, 1u);
}

TEST(ConfigQueue, ErrorsSayWhereAndHowToFix) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"[queue]\ncolour = 1\n", "b.toml:2: unknown key 'colour' in [queue] (fix: remove it or use one of: delay_warning, dir, "},
      {"[queue]\nretry_first = 0\n", "b.toml:2: 'retry_first' = 0 is out of range"},
      {"[queue]\nscan_interval = \"5\"\n", "b.toml:2: 'scan_interval' must be an integer"},
      {"[queue]\ndir = \"\"\n", "b.toml:2: 'dir' is empty"},
      {"\n[queue]\nretry_first = 600\nretry_max_interval = 300\n",
       "b.toml:2: [queue] retry_max_interval is below retry_first (fix: make retry_max_interval at least retry_first)"},
      {"[queue]\nmax_age = 3600\ndelay_warning = 3600\n", "b.toml:1: [queue] delay_warning is not below max_age"},
      {"queue = 1\n", "b.toml:1: 'queue' must be a table"},
  };
  for (auto& t : cases) {
    auto c = parse_config(t.text, "/x/b.toml");
    ASSERT_FALSE(c) << t.text;
    EXPECT_NE(c.error().str().find(t.error), std::string::npos) << c.error().str();
  }
}

}  // namespace
}  // namespace buzon
