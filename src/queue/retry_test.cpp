// Retry policy: the backoff schedule, the cap, the give-up time, the one delay warning.
#include "queue/queue.hpp"

#include <gtest/gtest.h>

namespace buzon::queue {
namespace {

TimePoint at(std::int64_t s) { return TimePoint(std::chrono::seconds(s)); }

TEST(Retry, ExponentialCappedSchedule) {
  RetryPolicy p;  // 300 s, x2, cap 14400 s, 5 days
  const auto c = at(1'000'000);
  EXPECT_EQ(next_attempt(p, c, 0, c), c);  // never tried: now
  const std::int64_t want[] = {300, 600, 1200, 2400, 4800, 9600, 14400, 14400, 14400};
  for (unsigned a = 1; a <= 9; ++a)
    EXPECT_EQ(next_attempt(p, c, a, c + std::chrono::seconds(10)), c + std::chrono::seconds(10 + want[a - 1])) << a;
  EXPECT_EQ(next_attempt(p, c, 4'000'000'000u, c), c + std::chrono::seconds(14400));  // no overflow
  p.factor = 1.5;
  EXPECT_EQ(next_attempt(p, c, 3, c), c + std::chrono::seconds(675));
  p.factor = 0.1;  // nonsense factor: treated as 1 (constant interval)
  EXPECT_EQ(next_attempt(p, c, 5, c), c + std::chrono::seconds(300));
}

TEST(Retry, NeverScheduledPastTheGiveUpTime) {
  RetryPolicy p;
  const auto c = at(0);
  const auto end = c + p.max_age;
  EXPECT_EQ(next_attempt(p, c, 20, end - std::chrono::seconds(100)), end);
  EXPECT_EQ(next_attempt(p, c, 20, end + std::chrono::seconds(100)), end + std::chrono::seconds(100));
  Entry e;
  e.created = c;
  EXPECT_FALSE(expired(p, e, end - std::chrono::seconds(1)));
  EXPECT_TRUE(expired(p, e, end));
}

TEST(Retry, DelayWarningOnceWhenAsked) {
  RetryPolicy p;
  Entry e;
  e.sender = "a@a.test";
  e.created = at(0);
  Recipient r;
  r.address = "b@b.test";
  e.recipients.push_back(r);
  const auto due = at(14400);
  EXPECT_FALSE(delay_warning_due(p, e, due - std::chrono::seconds(1)));
  EXPECT_TRUE(delay_warning_due(p, e, due));
  e.delay_warned = true;
  EXPECT_FALSE(delay_warning_due(p, e, due));
  e.delay_warned = false;
  e.recipients[0].notify.delay = false;  // NOTIFY=FAILURE only
  EXPECT_FALSE(delay_warning_due(p, e, due));
  e.recipients[0].notify = Notify{true, false, false, false};  // NOTIFY=NEVER
  EXPECT_FALSE(delay_warning_due(p, e, due));
  e.recipients[0].notify = Notify{};
  e.recipients[0].state = RcptState::delivered;  // nothing is delayed any more
  EXPECT_FALSE(delay_warning_due(p, e, due));
  e.recipients[0].state = RcptState::pending;
  e.sender = "";  // a bounce is never warned about
  EXPECT_FALSE(delay_warning_due(p, e, due));
  e.sender = "a@a.test";
  EXPECT_FALSE(delay_warning_due(p, e, at(0) + p.max_age));  // expired: the failure DSN instead
}

}  // namespace
}  // namespace buzon::queue
