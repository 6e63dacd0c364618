#include "server/conn_limiter.hpp"

#include <gtest/gtest.h>

namespace buzon::server {

TEST(ConnLimiter, CapsPerAddressAndTotal) {
  ConnLimiter l(3, 2);
  EXPECT_EQ(l.acquire("a"), ConnLimiter::Verdict::ok);
  EXPECT_EQ(l.acquire("a"), ConnLimiter::Verdict::ok);
  EXPECT_EQ(l.acquire("a"), ConnLimiter::Verdict::too_many_from_ip);
  EXPECT_EQ(l.acquire("b"), ConnLimiter::Verdict::ok);
  EXPECT_EQ(l.acquire("c"), ConnLimiter::Verdict::too_many_total);
  l.release("a");
  EXPECT_EQ(l.total(), 2u);
  EXPECT_EQ(l.acquire("c"), ConnLimiter::Verdict::ok);
  EXPECT_EQ(l.acquire("c"), ConnLimiter::Verdict::too_many_total);
}

}  // namespace buzon::server
