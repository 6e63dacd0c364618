// Client-side SMTP: the reply parser, EHLO keywords, and the DATA encoder at every split point.
#include "proto/smtp/client_reply.hpp"

#include <gtest/gtest.h>

namespace buzon::smtp {
namespace {

TEST(ClientReplyParser, SingleAndMultiLine) {
  ReplyParser p;
  EXPECT_EQ(p.feed("250-mail.example.org Hello"), ReplyParser::Step::more);
  EXPECT_EQ(p.feed("250-PIPELINING"), ReplyParser::Step::more);
  EXPECT_EQ(p.feed("250 SIZE 1000"), ReplyParser::Step::done);
  auto r = p.take();
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.lines, (std::vector<std::string>{"mail.example.org Hello", "PIPELINING", "SIZE 1000"}));
  EXPECT_EQ(p.feed("550 5.1.1 <x@y>: no such user\r"), ReplyParser::Step::done);
  r = p.take();
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.1.1");
  EXPECT_EQ(r.str(), "550 5.1.1 <x@y>: no such user");
  EXPECT_FALSE(r.positive());
  EXPECT_EQ(p.feed("354"), ReplyParser::Step::done);
  EXPECT_TRUE(p.take().intermediate());
  EXPECT_EQ(p.feed("250 2.0.0"), ReplyParser::Step::done);
  EXPECT_EQ(p.take().enhanced, "2.0.0");
  EXPECT_EQ(p.feed("421 4.4.2 timeout"), ReplyParser::Step::done);
  EXPECT_TRUE(p.take().transient());
}

TEST(ClientReplyParser, Malformed) {
  ReplyParser p;
  EXPECT_EQ(p.feed("hello"), ReplyParser::Step::error);
  EXPECT_EQ(p.feed("25"), ReplyParser::Step::error);
  EXPECT_EQ(p.feed("250x"), ReplyParser::Step::error);
  EXPECT_EQ(p.feed("650 bad class"), ReplyParser::Step::error);
  EXPECT_EQ(p.feed("250-first"), ReplyParser::Step::more);
  EXPECT_EQ(p.feed("251 other code"), ReplyParser::Step::error);
  // "2.0" is not an enhanced code; "5.1.1" on a 2xx reply is text
  EXPECT_EQ(p.feed("250 5.1.1 odd"), ReplyParser::Step::done);
  EXPECT_EQ(p.take().enhanced, "");
}

TEST(ClientEhlo, Keywords) {
  ClientReply r{250, "", {"mx Hello", "PIPELINING", "SIZE 10240000", "8BITMIME", "AUTH PLAIN login SCRAM-SHA-256",
                          "STARTTLS", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"}};
  auto e = parse_ehlo(r);
  EXPECT_TRUE(e.pipelining && e.starttls && e.eightbitmime && e.smtputf8 && e.enhanced_codes && e.chunking);
  EXPECT_EQ(e.size, 10240000u);
  EXPECT_EQ(e.auth, (std::vector<std::string>{"PLAIN", "LOGIN", "SCRAM-SHA-256"}));
  ClientReply plain{250, "", {"mx"}};
  EXPECT_FALSE(parse_ehlo(plain).size.has_value());
}

std::string encode(std::string_view in, std::vector<std::size_t> cuts) {
  DataEncoder e;
  std::string out;
  std::size_t pos = 0;
  cuts.push_back(in.size());
  for (auto c : cuts) {
    e.feed(in.substr(pos, c - pos), out);
    pos = c;
  }
  e.finish(out);
  return out;
}

TEST(DataEncoder, CrlfAndStuffingAtEverySplit) {
  const std::string in = "Subject: x\n\n.dot\n..two\r\n.\nlone\rcr\nlast line";
  const std::string want = "Subject: x\r\n\r\n..dot\r\n...two\r\n..\r\nlone\r\ncr\r\nlast line\r\n.\r\n";
  EXPECT_EQ(encode(in, {}), want);
  for (std::size_t i = 0; i <= in.size(); ++i) EXPECT_EQ(encode(in, {i}), want) << "split at " << i;
  EXPECT_EQ(encode("", {}), ".\r\n");
  EXPECT_EQ(encode("a\r", {}), "a\r\n.\r\n");
  EXPECT_EQ(data_octets("a\nb"), 6u);
}

}  // namespace
}  // namespace buzon::smtp
