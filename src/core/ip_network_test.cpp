// core/ip_network_test.cpp — CIDR parsing and matching.
#include "core/ip_network.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

bool in(std::string_view net, std::string_view peer) {
  auto n = parse_ip_network(net);
  auto p = parse_peer_address(peer);
  EXPECT_TRUE(n) << net;
  EXPECT_TRUE(p) << peer;
  return n && p && contains(*n, *p);
}

TEST(IpNetwork, MatchesAddressesInsideThePrefix) {
  EXPECT_TRUE(in("127.0.0.0/8", "127.0.0.1:4000"));
  EXPECT_TRUE(in("127.0.0.0/8", "127.255.1.2:1"));
  EXPECT_FALSE(in("127.0.0.0/8", "128.0.0.1:1"));
  EXPECT_TRUE(in("10.1.2.0/23", "10.1.3.255:1"));
  EXPECT_FALSE(in("10.1.2.0/23", "10.1.4.0:1"));
  EXPECT_TRUE(in("192.0.2.7", "192.0.2.7:25"));  // a bare address is a /32
  EXPECT_FALSE(in("192.0.2.7", "192.0.2.8:25"));
  EXPECT_TRUE(in("0.0.0.0/0", "203.0.113.9:1"));
  EXPECT_TRUE(in("::1/128", "[::1]:110"));
  EXPECT_TRUE(in("2001:db8::/32", "[2001:db8:ffff::1]:1"));
  EXPECT_FALSE(in("2001:db8::/32", "[2001:db9::1]:1"));
  EXPECT_FALSE(in("::/0", "127.0.0.1:1"));  // families do not mix...
  EXPECT_TRUE(in("127.0.0.0/8", "[::ffff:127.0.0.1]:1"));  // ...except IPv4-mapped peers
  EXPECT_TRUE(in("::ffff:10.0.0.0/104", "10.9.9.9:1"));
  EXPECT_TRUE(in("127.0.0.1", "127.0.0.1"));  // bare peer address
}

TEST(IpNetwork, StrictParsing) {
  for (const char* bad : {"", "localhost", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x", "::/129",
                          "10.0.0.1/8", "2001:db8::1/32", "1.2.3", "::ffff:10.0.0.0/64"}) {
    EXPECT_FALSE(parse_ip_network(bad)) << bad;
  }
  auto typo = parse_ip_network("10.0.0.1/8");
  EXPECT_NE(typo.error().find("10.0.0.0/8"), std::string::npos) << typo.error();  // the fix is named
  EXPECT_EQ(parse_ip_network("10.0.0.0/8")->str(), "10.0.0.0/8");
  EXPECT_EQ(parse_ip_network("::1")->str(), "::1/128");
  EXPECT_FALSE(parse_peer_address("[::1"));
  EXPECT_FALSE(parse_peer_address("nonsense:1"));
}

}  // namespace
}  // namespace buzon
