// auth/penalty_test.cpp — the growing delay per source address, with explicit time points.
#include "auth/penalty.hpp"

#include <gtest/gtest.h>

namespace buzon::auth {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

TEST(FailurePenalty, DoublesFromInitialUpToMaxLikeDovecot) {
  FailurePenalty p;  // 2 s doubling to 15 s
  EXPECT_EQ(p.delay_after(0), ms(0));
  EXPECT_EQ(p.delay_after(1), ms(2000));
  EXPECT_EQ(p.delay_after(2), ms(4000));
  EXPECT_EQ(p.delay_after(3), ms(8000));
  EXPECT_EQ(p.delay_after(4), ms(15000));
  EXPECT_EQ(p.delay_after(40), ms(15000));
}

TEST(FailurePenalty, DelayCountsFromTheLastFailure) {
  FailurePenalty p(ms(100), ms(1000));
  const auto t0 = FailurePenalty::Clock::now();
  EXPECT_EQ(p.delay("192.0.2.1:1000", t0), ms(0));
  p.record_failure("192.0.2.1:1000", t0);
  EXPECT_EQ(p.delay("192.0.2.1:2000", t0), ms(100));  // another port, same address
  EXPECT_EQ(p.delay("192.0.2.1:2000", t0 + 60ms), ms(40));
  EXPECT_EQ(p.delay("192.0.2.1:2000", t0 + 150ms), ms(0));
  p.record_failure("192.0.2.1:2000", t0 + 150ms);
  EXPECT_EQ(p.delay("192.0.2.1:3", t0 + 150ms), ms(200));
  EXPECT_EQ(p.delay("192.0.2.2:3", t0 + 150ms), ms(0));  // other addresses are not affected
  p.record_success("192.0.2.1:9");
  EXPECT_EQ(p.delay("192.0.2.1:3", t0 + 150ms), ms(0));
}

TEST(FailurePenalty, ForgottenAfterAQuietPeriod) {
  FailurePenalty p(ms(100), ms(400));
  const auto t0 = FailurePenalty::Clock::now();
  for (int i = 0; i < 5; ++i) p.record_failure("198.51.100.4:1", t0);
  EXPECT_EQ(p.delay("198.51.100.4:1", t0), ms(400));
  p.record_failure("198.51.100.4:1", t0 + 900ms);  // > 2 * max later: counts as the first again
  EXPECT_EQ(p.delay("198.51.100.4:1", t0 + 900ms), ms(100));
}

TEST(FailurePenalty, Ipv6IsGroupedBySlash64) {
  EXPECT_EQ(FailurePenalty::key_of("[2001:db8:1:2:aaaa::1]:110"), FailurePenalty::key_of("[2001:db8:1:2:bbbb::9]:5"));
  EXPECT_NE(FailurePenalty::key_of("[2001:db8:1:2::1]:110"), FailurePenalty::key_of("[2001:db8:1:3::1]:110"));
  EXPECT_EQ(FailurePenalty::key_of("10.0.0.1:5"), "10.0.0.1/32");
}

TEST(FailurePenalty, ZeroDisables) {
  FailurePenalty p(ms(0), ms(0));
  p.record_failure("192.0.2.1:1");
  EXPECT_EQ(p.delay("192.0.2.1:1"), ms(0));
  EXPECT_EQ(p.tracked(), 0u);
}

}  // namespace
}  // namespace buzon::auth
