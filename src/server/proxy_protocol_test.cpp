#include "server/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace buzon::server::proxy {
namespace {

std::vector<unsigned char> bytes(std::string_view s) { return {s.begin(), s.end()}; }

std::vector<unsigned char> v2(unsigned char ver_cmd, unsigned char fam, std::vector<unsigned char> payload) {
  std::vector<unsigned char> b{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, ver_cmd, fam};
  b.push_back(static_cast<unsigned char>(payload.size() >> 8));
  b.push_back(static_cast<unsigned char>(payload.size() & 0xff));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Every proper prefix of a valid header must ask for more; the whole must parse the same way.
void expect_need_more_on_every_prefix(const std::vector<unsigned char>& whole) {
  for (std::size_t i = 0; i < whole.size(); ++i) {
    auto r = parse(std::span(whole.data(), i));
    EXPECT_EQ(r.status, Status::need_more) << "prefix of " << i << " octets: " << r.error;
  }
}

TEST(ProxyProtocol, V1Tcp4) {
  auto b = bytes("PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\n");
  auto r = parse(b);
  ASSERT_EQ(r.status, Status::done) << r.error;
  EXPECT_EQ(r.header.version, 1);
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.length, b.size());
  EXPECT_EQ(r.header.source->address().to_string(), "192.0.2.7");
  EXPECT_EQ(r.header.source->port(), 56324);
  EXPECT_EQ(r.header.destination->port(), 110);
  expect_need_more_on_every_prefix(b);
}

TEST(ProxyProtocol, V1Tcp6AndTrailingBytesUntouched) {
  auto b = bytes("PROXY TCP6 2001:db8::1 ::1 1 65535\r\nUSER x\r\n");
  auto r = parse(b);
  ASSERT_EQ(r.status, Status::done) << r.error;
  EXPECT_EQ(r.header.length, b.size() - 8);  // the client's "USER x\r\n" is not part of the header
  EXPECT_EQ(r.header.source->address().to_string(), "2001:db8::1");
  EXPECT_EQ(r.header.destination->port(), 65535);
}

TEST(ProxyProtocol, V1Unknown) {
  for (auto s : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
    auto r = parse(bytes(s));
    ASSERT_EQ(r.status, Status::done) << s;
    EXPECT_TRUE(r.header.local);
    EXPECT_FALSE(r.header.source);
  }
}

TEST(ProxyProtocol, V1Invalid) {
  const char* bad[] = {
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",        // missing port
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110 x\r\n",  // extra field
      "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",        // v6 address in TCP4
      "PROXY TCP6 192.0.2.7 ::1 1 2\r\n",                   // v4 address in TCP6
      "PROXY TCP4 192.0.2.7 198.51.100.1 65536 110\r\n",    // port out of range
      "PROXY TCP4 192.0.2.7 198.51.100.1 0110 110\r\n",     // leading zero
      "PROXY TCP4 192.0.2.7  198.51.100.1 1 2\r\n",         // double space
      "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",            // bare LF
      "PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",          // not TCP
      "PROXZ TCP4",                                         // not the signature
      "USER alice\r\n",                                     // a client that talks directly
      "GET / HTTP/1.1\r\n",
  };
  for (auto s : bad) EXPECT_EQ(parse(bytes(s)).status, Status::invalid) << s;
  std::string long_line = "PROXY UNKNOWN " + std::string(100, 'x');
  EXPECT_EQ(parse(bytes(long_line)).status, Status::invalid);  // no CRLF within 107 octets
}

TEST(ProxyProtocol, V2Tcp4WithTlvs) {
  std::vector<unsigned char> p{192, 0, 2, 7, 198, 51, 100, 1, 0xDC, 0x04, 0x00, 0x6E};
  // A TLV (PP2_TYPE_ALPN "pop3") after the addresses is skipped.
  for (unsigned char c : std::vector<unsigned char>{0x01, 0x00, 0x04, 'p', 'o', 'p', '3'}) p.push_back(c);
  auto b = v2(0x21, 0x11, p);
  auto r = parse(b);
  ASSERT_EQ(r.status, Status::done) << r.error;
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.length, b.size());
  EXPECT_EQ(r.header.source->address().to_string(), "192.0.2.7");
  EXPECT_EQ(r.header.source->port(), 0xDC04);
  EXPECT_EQ(r.header.destination->port(), 110);
  expect_need_more_on_every_prefix(b);
}

TEST(ProxyProtocol, V2Tcp6) {
  std::vector<unsigned char> p(36, 0);
  p[0] = 0x20, p[1] = 0x01, p[2] = 0x0d, p[3] = 0xb8, p[15] = 1;  // 2001:db8::1
  p[31] = 1;                                                     // ::1
  p[32] = 0x12, p[33] = 0x34, p[34] = 0, p[35] = 110;
  auto r = parse(v2(0x21, 0x21, p));
  ASSERT_EQ(r.status, Status::done) << r.error;
  EXPECT_EQ(r.header.source->address().to_string(), "2001:db8::1");
  EXPECT_EQ(r.header.source->port(), 0x1234);
}

TEST(ProxyProtocol, V2LocalAndUnsupportedFamiliesKeepTheConnectionAddress) {
  auto local = parse(v2(0x20, 0x00, {}));
  ASSERT_EQ(local.status, Status::done);
  EXPECT_TRUE(local.header.local);
  auto udp = parse(v2(0x21, 0x12, std::vector<unsigned char>(12, 1)));
  ASSERT_EQ(udp.status, Status::done);
  EXPECT_TRUE(udp.header.local);
  auto unix_ = parse(v2(0x21, 0x31, std::vector<unsigned char>(216, 0)));
  ASSERT_EQ(unix_.status, Status::done);
  EXPECT_TRUE(unix_.header.local);
}

TEST(ProxyProtocol, V2Invalid) {
  EXPECT_EQ(parse(v2(0x11, 0x11, std::vector<unsigned char>(12))).status, Status::invalid);  // version 1 in v2 form
  EXPECT_EQ(parse(v2(0x22, 0x11, std::vector<unsigned char>(12))).status, Status::invalid);  // command 2
  EXPECT_EQ(parse(v2(0x21, 0x11, std::vector<unsigned char>(11))).status, Status::invalid);  // short for TCP4
  EXPECT_EQ(parse(v2(0x21, 0x41, std::vector<unsigned char>(12))).status, Status::invalid);  // family 4
  EXPECT_EQ(parse(v2(0x21, 0x11, std::vector<unsigned char>(kMaxV2Payload + 1))).status, Status::invalid);
  auto sig = v2(0x21, 0x11, std::vector<unsigned char>(12));
  sig[7] = 'X';
  EXPECT_EQ(parse(sig).status, Status::invalid);
}

}  // namespace
}  // namespace buzon::server::proxy
