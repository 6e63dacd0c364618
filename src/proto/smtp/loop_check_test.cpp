// proto/smtp/loop_check_test.cpp — loop detection: Delivered-To: of the same address (any case,
// folded, LF or CRLF), Received: counting against max_hops, and only the header is read.
#include "proto/smtp/loop_check.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace buzon::smtp {
namespace {

std::string received(unsigned n) {
  std::string s;
  for (unsigned i = 0; i < n; ++i) s += "Received: from a by b;\r\n\tFri, 27 Nov 2026 05:00:00 +0000\r\n";
  return s;
}

TEST(LoopCheck, DeliveredToTheSameAddress) {
  const std::vector<std::string> to = {"ana+tag@example.com"};
  auto r = check_loop("Delivered-To: ANA+tag@Example.com\r\nSubject: x\r\n\r\nbody\r\n", to, 50);
  EXPECT_EQ(r.verdict, LoopVerdict::delivered_to);
  EXPECT_EQ(r.detail, "ana+tag@example.com");
  // Folded, LF line ends, lower-case field name.
  EXPECT_EQ(check_loop("delivered-to:\n ana+tag@example.com\nSubject: x\n\nbody\n", to, 50).verdict,
            LoopVerdict::delivered_to);
  // Another address is fine, and so is one in the body.
  EXPECT_EQ(check_loop("Delivered-To: bob@example.com\r\n\r\nDelivered-To: ana+tag@example.com\r\n", to, 50).verdict,
            LoopVerdict::ok);
  EXPECT_EQ(check_loop("X-Delivered-To: ana+tag@example.com\r\n\r\n", to, 50).verdict, LoopVerdict::ok);
}

TEST(LoopCheck, ReceivedCount) {
  const std::vector<std::string> to = {"ana@example.com"};
  EXPECT_EQ(check_loop(received(49) + "\r\nbody\r\n", to, 50).verdict, LoopVerdict::ok);
  auto r = check_loop(received(50) + "Subject: x\r\n\r\nbody\r\n", to, 50);
  EXPECT_EQ(r.verdict, LoopVerdict::too_many_hops);
  EXPECT_EQ(r.detail, "50 Received: fields");
  EXPECT_EQ(check_loop(received(3), to, 3).verdict, LoopVerdict::too_many_hops);  // header only, no body
  EXPECT_EQ(check_loop("Subject: x\r\n\r\n" + received(60), to, 50).verdict, LoopVerdict::ok);  // in the body
  EXPECT_EQ(check_loop("", to, 50).verdict, LoopVerdict::ok);
}

}  // namespace
}  // namespace buzon::smtp
