// Client-side reply parsing: status lines, the multi-line decoder at every split point, CAPA,
// listings, APOP timestamps.
#include "proto/pop3/client_reply.hpp"

#include <gtest/gtest.h>

namespace buzon::pop3 {
namespace {

TEST(ClientStatusLine, OkErrAndCodes) {
  auto s = parse_status_line("+OK Logged in");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, Status::ok);
  EXPECT_EQ(s->text, "Logged in");
  s = parse_status_line("-ERR [IN-USE] Mailbox locked");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, Status::err);
  EXPECT_EQ(s->code, RespCode::in_use);
  EXPECT_EQ(s->code_text, "IN-USE");
  EXPECT_EQ(s->text, "Mailbox locked");
  s = parse_status_line("-ERR [SYS/TEMP/DISK] full");  // hierarchical (RFC 2449 §8)
  ASSERT_TRUE(s);
  EXPECT_EQ(s->code, RespCode::sys_temp);
  s = parse_status_line("-ERR [LOGIN-DELAY] wait");
  EXPECT_EQ(s->code, RespCode::login_delay);
  s = parse_status_line("-ERR [X-FOO] other");
  EXPECT_EQ(s->code, RespCode::none);
  EXPECT_EQ(s->code_text, "X-FOO");
  s = parse_status_line("+ ");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, Status::cont);
  EXPECT_EQ(s->text, "");
  s = parse_status_line("+ dGVzdA==");
  EXPECT_EQ(s->text, "dGVzdA==");
  EXPECT_TRUE(parse_status_line("+ok"));  // case-insensitive (RFC 1939 §3)
  EXPECT_TRUE(parse_status_line("-ERR"));
  EXPECT_FALSE(parse_status_line("+OKAY"));
  EXPECT_FALSE(parse_status_line("OK"));
  EXPECT_FALSE(parse_status_line(""));
  EXPECT_FALSE(parse_status_line("* BYE"));
}

TEST(ClientStatusLine, ApopTimestamp) {
  EXPECT_EQ(apop_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
            "<1896.697170952@dbc.mtview.ca.us>");
  EXPECT_FALSE(apop_timestamp("ready"));
  EXPECT_FALSE(apop_timestamp("ready <no-at-sign>"));
  EXPECT_FALSE(apop_timestamp("ready <a b@c>"));
}

// Decodes `wire` split in every possible way; all must agree with the whole-input result.
struct Decoded {
  std::string content;
  std::size_t consumed = 0;
  bool done = false;
};
Decoded decode(std::string_view wire, LineEnds ends, std::vector<std::size_t> cuts) {
  MultiLineDecoder d(ends);
  Decoded r;
  std::size_t pos = 0;
  cuts.push_back(wire.size());
  for (auto cut : cuts) {
    if (d.done()) break;
    auto n = d.feed(wire.substr(pos, cut - pos), r.content);
    pos += n;
    r.consumed = pos;
  }
  r.done = d.done();
  return r;
}

void check_all_splits(std::string_view wire, LineEnds ends, std::string_view want, std::size_t want_consumed) {
  auto whole = decode(wire, ends, {});
  ASSERT_TRUE(whole.done) << wire;
  EXPECT_EQ(whole.content, want);
  EXPECT_EQ(whole.consumed, want_consumed);
  for (std::size_t i = 0; i <= wire.size(); ++i) {
    auto two = decode(wire, ends, {i});
    EXPECT_EQ(two.content, want) << "split at " << i;
    EXPECT_EQ(two.consumed, want_consumed) << "split at " << i;
  }
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i < wire.size(); ++i) bytes.push_back(i);
  auto one = decode(wire, ends, bytes);
  EXPECT_EQ(one.content, want) << "byte at a time";
}

TEST(MultiLineDecoder, UnstuffsAndStopsAtTerminatorAtEverySplit) {
  const std::string wire = "Subject: x\r\n\r\n..leading\r\n...two\r\n.\r\nnext reply";
  const std::size_t body = wire.find("next reply");
  check_all_splits(wire, LineEnds::wire, "Subject: x\r\n\r\n.leading\r\n..two\r\n", body);
  check_all_splits(wire, LineEnds::lf, "Subject: x\n\n.leading\n..two\n", body);
}

TEST(MultiLineDecoder, LoneCrIsDataAndDotCrCases) {
  // A lone CR inside a line is data; "..\r\r\n" is a stuffed line ".\r" (what Dovecot and buzon
  // send for a message ending in ".\r").
  const std::string wire = "a\rb\r\n..\r\r\n.\r\n";
  check_all_splits(wire, LineEnds::wire, "a\rb\r\n.\r\r\n", wire.size());
  check_all_splits(wire, LineEnds::lf, "a\rb\n.\r\n", wire.size());
  // CR CR LF: the first CR is data.
  check_all_splits("x\r\r\n.\r\n", LineEnds::lf, "x\r\n", 7);
}

TEST(MultiLineDecoder, EmptyBodyAndBareLfTerminator) {
  check_all_splits(".\r\n+OK", LineEnds::wire, "", 3);
  check_all_splits("line\n.\n", LineEnds::lf, "line\n", 7);  // lenient: LF-only server
}

TEST(MultiLineDecoder, CountsOctets) {
  MultiLineDecoder d(LineEnds::lf);
  std::string out;
  d.feed("ab\r\n..c\r\n.\r\n", out);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(out, "ab\n.c\n");
  EXPECT_EQ(d.content_octets(), out.size());
  EXPECT_EQ(d.wire_octets(), 12u);
  EXPECT_EQ(d.lines(), 2u);
}

TEST(ClientCapa, ParsesTags) {
  std::vector<std::string> lines{"TOP", "user", "UIDL", "RESP-CODES", "PIPELINING", "SASL scram-sha-256 PLAIN LOGIN",
                                 "LOGIN-DELAY 900", "EXPIRE 30 USER", "STLS", "IMPLEMENTATION Shlemazle Plus",
                                 "X-UNKNOWN whatever"};
  auto c = parse_capa(lines);
  EXPECT_TRUE(c.known && c.top && c.user && c.uidl && c.resp_codes && c.pipelining && c.stls);
  EXPECT_FALSE(c.utf8);
  EXPECT_EQ(c.sasl, (std::vector<std::string>{"SCRAM-SHA-256", "PLAIN", "LOGIN"}));
  EXPECT_TRUE(c.has_sasl("plain"));
  EXPECT_EQ(c.login_delay, 900);
  EXPECT_EQ(c.expire, "30 USER");
  EXPECT_EQ(c.implementation, "Shlemazle Plus");
}

TEST(ClientListings, ScanAndUid) {
  EXPECT_EQ(parse_scan_line("1 120"), (std::pair<std::uint64_t, std::uint64_t>{1, 120}));
  EXPECT_EQ(parse_scan_line("2 200 extra info"), (std::pair<std::uint64_t, std::uint64_t>{2, 200}));
  EXPECT_FALSE(parse_scan_line("0 12"));
  EXPECT_FALSE(parse_scan_line("1"));
  EXPECT_FALSE(parse_scan_line("x 1"));
  EXPECT_FALSE(parse_scan_line("1 99999999999999999999999"));
  EXPECT_EQ(parse_uid_line("3 QhdPYR:00WBw1Ph7x7")->second, "QhdPYR:00WBw1Ph7x7");
  EXPECT_FALSE(parse_uid_line("3 two words"));
  EXPECT_FALSE(parse_uid_line("3 " + std::string(71, 'a')));
  EXPECT_FALSE(parse_uid_line("3"));
  EXPECT_EQ(unstuff_line(".."), ".");
  EXPECT_FALSE(unstuff_line("."));
}

}  // namespace
}  // namespace buzon::pop3
