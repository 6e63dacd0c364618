// Reply formatting: enhanced codes on every reply (RFC 2034 §3, RFC 3463), multi-line EHLO form
// (RFC 5321 §4.2.1), sanitising and the 512-octet bound (§4.5.3.1.5).
#include "proto/smtp/reply.hpp"

#include "proto/smtp/limits.hpp"

#include <gtest/gtest.h>

namespace buzon::smtp {
namespace {

TEST(SmtpReply, EnhancedCodeClassFollowsTheReplyCode) {
  EXPECT_EQ(format_reply(250, esc::kDestinationValid, "Ok"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(format_reply(550, esc::kBadMailbox, "Error: no such user here"), "550 5.1.1 Error: no such user here\r\n");
  EXPECT_EQ(format_reply(452, esc::kTooManyRecipients, "Error: too many recipients"),
            "452 4.5.3 Error: too many recipients\r\n");
  EXPECT_EQ(format_reply(550, esc::kNotAuthorized, "Error: relay access denied"), "550 5.7.1 Error: relay access denied\r\n");
  EXPECT_EQ(format_reply(Reply{451, esc::kSystemOther, "later"}), "451 4.3.0 later\r\n");
  EXPECT_EQ(format_reply(552, esc::kTooBig, ""), "552 5.3.4\r\n");
  // 354 has no enhanced class.
  EXPECT_EQ(format_reply(354, {}, "End data with <CR><LF>.<CR><LF>"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(enhanced_string(553, esc::kNonAsciiAddress), "5.6.7");
  EXPECT_EQ(enhanced_string(334, esc::kOther), "");
}

TEST(SmtpReply, PlainAndMultiline) {
  EXPECT_EQ(format_plain(220, "mx.example ESMTP buzon"), "220 mx.example ESMTP buzon\r\n");
  const std::string lines[] = {"mx.example", "PIPELINING", "SIZE 1000", "CHUNKING"};
  EXPECT_EQ(format_multiline(250, lines), "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n");
  EXPECT_EQ(format_multiline(250, {}), "250\r\n");
}

TEST(SmtpReply, TextCannotInjectLines) {
  EXPECT_EQ(format_reply(250, esc::kOther, "a\r\n250 2.0.0 fake\r\n"), "250 2.0.0 a  250 2.0.0 fake  \r\n");
  EXPECT_EQ(format_reply(250, esc::kOther, std::string("nul\0x", 5)), "250 2.0.0 nul x\r\n");
  const std::string lines[] = {"a\nb"};
  EXPECT_EQ(format_multiline(250, lines), "250 a b\r\n");
}

TEST(SmtpReply, EightBitOnlyInSmtputf8) {
  EXPECT_EQ(format_reply(250, esc::kOther, "<josé@example.org>"), "250 2.0.0 <jos??@example.org>\r\n");
  EXPECT_EQ(format_reply(250, esc::kOther, "<josé@example.org>", true), "250 2.0.0 <josé@example.org>\r\n");
}

TEST(SmtpReply, LinesAreBounded) {
  const auto r = format_reply(550, esc::kBadMailbox, std::string(2000, 'x'));
  EXPECT_EQ(r.size(), kMaxReplyLine);
  EXPECT_TRUE(r.ends_with("xx\r\n"));
  // A cut never splits a UTF-8 character.
  std::string u;
  for (int i = 0; i < 400; ++i) u += "é";
  const auto ru = format_reply(250, esc::kOther, u, true);
  EXPECT_LE(ru.size(), kMaxReplyLine);
  EXPECT_TRUE(ru.ends_with("\xC3\xA9\r\n")) << ru.substr(ru.size() - 6);
}

}  // namespace
}  // namespace buzon::smtp
