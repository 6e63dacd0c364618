// Command parser tables: every valid form and the exact reply for every invalid one
// (RFC 5321 §4.1, RFC 6531 §3.3, RFC 1870, RFC 6152, RFC 3030, RFC 3461, RFC 4954).
#include "proto/smtp/command.hpp"

#include "proto/smtp/reply.hpp"

#include <gtest/gtest.h>

namespace buzon::smtp {
namespace {

Command ok(std::string_view line, ParseOptions o = {}) {
  auto r = parse_command(line, o);
  EXPECT_TRUE(r.has_value()) << line << " -> " << (r ? "" : format_reply(r.error().reply));
  return r ? *r : Command{};
}

std::string err(std::string_view line, ParseOptions o = {}) {
  auto r = parse_command(line, o);
  EXPECT_FALSE(r.has_value()) << line;
  return r ? std::string("(parsed)") : format_reply(r.error().reply);
}

TEST(SmtpCommand, VerbsAreCaseInsensitive) {
  EXPECT_EQ(ok("ehlo client.example").verb, Verb::ehlo);
  EXPECT_EQ(ok("HeLo client.example").verb, Verb::helo);
  EXPECT_EQ(ok("LHLO client.example").verb, Verb::lhlo);
  EXPECT_EQ(ok("data").verb, Verb::data);
  EXPECT_EQ(ok("RSET").verb, Verb::rset);
  EXPECT_EQ(ok("NOOP").verb, Verb::noop);
  EXPECT_EQ(ok("NOOP anything at all").arg, "anything at all");  // RFC 5321 §4.1.1.9
  EXPECT_EQ(ok("QUIT").verb, Verb::quit);
  EXPECT_EQ(ok("STARTTLS").verb, Verb::starttls);
  EXPECT_EQ(ok("HELP").verb, Verb::help);
  EXPECT_EQ(ok("VRFY ana").arg, "ana");
  EXPECT_EQ(ok("EXPN list").verb, Verb::expn);
}

TEST(SmtpCommand, HeloNames) {
  EXPECT_EQ(ok("EHLO mail.example.org").domain, "mail.example.org");
  EXPECT_EQ(ok("EHLO [192.0.2.1]").domain, "[192.0.2.1]");
  EXPECT_EQ(ok("EHLO [IPv6:2001:db8::1]").domain, "[IPv6:2001:db8::1]");
  EXPECT_EQ(ok("EHLO DESKTOP-AB_1").domain, "DESKTOP-AB_1");  // outside the grammar, but real
  EXPECT_EQ(ok("EHLO localhost ").domain, "localhost");        // trailing space tolerated
  EXPECT_EQ(ok("EHLO bücher.example").domain, "bücher.example");
  EXPECT_EQ(err("EHLO"), "501 5.5.4 Syntax: EHLO hostname\r\n");
  EXPECT_EQ(err("EHLO "), "501 5.5.4 Syntax: EHLO hostname\r\n");
  EXPECT_EQ(err("HELO two words"), "501 5.5.4 Syntax: HELO hostname\r\n");
  EXPECT_EQ(err("EHLO a(b)"), "501 5.5.4 Error: invalid hostname\r\n");
  EXPECT_EQ(err("EHLO a;b"), "501 5.5.4 Error: invalid hostname\r\n");
  EXPECT_EQ(err("EHLO " + std::string(256, 'a')), "501 5.5.4 Error: invalid hostname\r\n");
}

TEST(SmtpCommand, MailFromPaths) {
  auto c = ok("MAIL FROM:<ana@example.org>");
  EXPECT_EQ(c.verb, Verb::mail);
  EXPECT_FALSE(c.path.null);
  EXPECT_EQ(c.path.mailbox.local, "ana");
  EXPECT_EQ(c.path.mailbox.domain, "example.org");
  EXPECT_EQ(c.path.mailbox.text, "ana@example.org");
  EXPECT_TRUE(ok("MAIL FROM:<>").path.null);  // the null reverse-path (bounces)
  EXPECT_TRUE(ok("mail from:<>").path.null);
  EXPECT_EQ(ok("MAIL FROM: <ana@example.org>").path.mailbox.text, "ana@example.org");  // common
  // A source route is accepted and ignored (RFC 5321 §4.1.1.3, Appendix C).
  auto sr = ok("MAIL FROM:<@relay1.example,@relay2.example:ana@example.org>");
  EXPECT_EQ(sr.path.mailbox.text, "ana@example.org");
  EXPECT_EQ(ok("MAIL FROM:<first.last+tag@sub.example.org>").path.mailbox.local, "first.last+tag");
  EXPECT_EQ(ok("MAIL FROM:<!#$%&'*+-/=?^_`{|}~@example.org>").path.mailbox.local, "!#$%&'*+-/=?^_`{|}~");
}

TEST(SmtpCommand, QuotedLocalParts) {
  auto c = ok(R"(RCPT TO:<"john doe"@example.org>)");
  EXPECT_TRUE(c.path.mailbox.quoted);
  EXPECT_EQ(c.path.mailbox.local, "john doe");
  EXPECT_EQ(c.path.mailbox.text, R"("john doe"@example.org)");
  // quoted-pairSMTP: backslash and any printable; ">" and "@" inside quotes do not end the path.
  auto q = ok(R"(RCPT TO:<"a\"b\\c>d@e"@example.org>)");
  EXPECT_EQ(q.path.mailbox.local, R"(a"b\c>d@e)");
  EXPECT_EQ(ok(R"(RCPT TO:<""@example.org>)").path.mailbox.local, "");
  EXPECT_EQ(err(R"(RCPT TO:<"unterminated@example.org>)"),
            "501 5.1.3 Bad recipient address syntax: unterminated quoted local part\r\n");
}

TEST(SmtpCommand, AddressLiterals) {
  auto c = ok("RCPT TO:<ana@[192.0.2.1]>");
  EXPECT_TRUE(c.path.mailbox.literal);
  EXPECT_EQ(c.path.mailbox.domain, "[192.0.2.1]");
  EXPECT_TRUE(ok("RCPT TO:<ana@[IPv6:::1]>").path.mailbox.literal);
  EXPECT_TRUE(ok("RCPT TO:<ana@[x-tag:abc]>").path.mailbox.literal);
  for (auto bad : {"RCPT TO:<ana@[192.0.2.256]>", "RCPT TO:<ana@[1.2.3]>", "RCPT TO:<ana@[IPv6:zz]>",
                   "RCPT TO:<ana@[]>", "RCPT TO:<ana@[192.0.2.1>"}) {
    EXPECT_TRUE(err(bad).starts_with("501 5.1.3 Bad recipient address syntax")) << bad;
  }
}

TEST(SmtpCommand, Postmaster) {
  auto c = ok("RCPT TO:<Postmaster>");
  EXPECT_EQ(c.path.mailbox.local, "Postmaster");
  EXPECT_TRUE(c.path.mailbox.domain.empty());
  EXPECT_EQ(ok("RCPT TO:<postmaster>").path.mailbox.local, "postmaster");
  // Only in RCPT: a sender needs a domain.
  EXPECT_TRUE(err("MAIL FROM:<postmaster>").starts_with("501 5.1.7"));
}

TEST(SmtpCommand, BadPaths) {
  const std::pair<const char*, const char*> cases[] = {
      {"MAIL FROM:ana@example.org", "501 5.1.7 Bad sender address syntax: the address must be enclosed in <>\r\n"},
      {"MAIL FROM:<ana@example.org", "501 5.1.7 Bad sender address syntax: the address must be enclosed in <>\r\n"},
      {"MAIL FROM:<ana>", "501 5.1.7 Bad sender address syntax: the address has no domain\r\n"},
      {"MAIL FROM:<@example.org>", "501 5.1.7 Bad sender address syntax: bad source route\r\n"},
      {"RCPT TO:<>", "501 5.1.3 Bad recipient address syntax: empty local part\r\n"},
      {"RCPT TO:<.ana@example.org>", "501 5.1.3 Bad recipient address syntax: empty atom in local part\r\n"},
      {"RCPT TO:<ana.@example.org>", "501 5.1.3 Bad recipient address syntax: local part ends with '.'\r\n"},
      {"RCPT TO:<a..b@example.org>", "501 5.1.3 Bad recipient address syntax: empty atom in local part\r\n"},
      {"RCPT TO:<a b@example.org>", "501 5.1.3 Bad recipient address syntax: the address has no domain\r\n"},
      {"RCPT TO:<ana@example..org>", "501 5.1.3 Bad recipient address syntax: empty domain label\r\n"},
      {"RCPT TO:<ana@-example.org>", "501 5.1.3 Bad recipient address syntax: domain label starts with '-'\r\n"},
      {"RCPT TO:<ana@example-.org>", "501 5.1.3 Bad recipient address syntax: domain label ends with '-'\r\n"},
      {"RCPT TO:<ana@example.org.>", "501 5.1.3 Bad recipient address syntax: domain ends with '.'\r\n"},
      {"RCPT TO:<ana@exa_mple.org>", "501 5.1.3 Bad recipient address syntax: the address must be enclosed in <>\r\n"},
      {"RCPT TO:<ana@example.org>x", "501 5.1.3 Error: unexpected text after the address\r\n"},
      {"RCPT TO <ana@example.org>", "501 5.5.4 Syntax: RCPT TO:<address> [parameters]\r\n"},
      {"MAIL TO:<ana@example.org>", "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"},
      {"RCPT", "501 5.5.4 Syntax: RCPT TO:<address> [parameters]\r\n"},
  };
  for (const auto& [line, want] : cases) EXPECT_EQ(err(line), want) << line;
}

TEST(SmtpCommand, PathLengthLimits) {
  const std::string label(63, 'a');
  EXPECT_TRUE(parse_command("RCPT TO:<x@" + label + ".example>").has_value());
  EXPECT_EQ(err("RCPT TO:<x@" + label + "a.example>"),
            "501 5.1.3 Bad recipient address syntax: domain label too long\r\n");
  // RFC 5321 §4.5.3.1.3: 256 octets for the whole path including "<>".
  const std::string local(240, 'l');
  EXPECT_TRUE(parse_command("RCPT TO:<" + local + "@example.org>").has_value());  // 254
  EXPECT_EQ(err("RCPT TO:<" + local + "123@example.org>"),
            "501 5.1.3 Bad recipient address syntax: the address is too long\r\n");
}

TEST(SmtpCommand, Utf8NeedsSmtputf8) {
  // RFC 6531 §3.4/§3.5: UTF-8 addresses only in an SMTPUTF8 transaction; 550 (MAIL) 553 (RCPT) X.6.7.
  auto m = ok("MAIL FROM:<josé@exämple.org> SMTPUTF8");
  EXPECT_TRUE(m.mail.smtputf8);
  EXPECT_TRUE(m.path.mailbox.utf8);
  EXPECT_EQ(m.path.mailbox.local, "josé");
  EXPECT_EQ(err("MAIL FROM:<josé@example.org>"), "550 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter\r\n");
  EXPECT_EQ(err("RCPT TO:<用户@例子.广告>"), "553 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter\r\n");
  auto r = ok("RCPT TO:<用户@例子.广告>", ParseOptions{true});
  EXPECT_EQ(r.path.mailbox.local, "用户");
  EXPECT_EQ(r.path.mailbox.domain, "例子.广告");
  EXPECT_EQ(ok(R"(RCPT TO:<"ñ ñ"@example.org>)", ParseOptions{true}).path.mailbox.local, "ñ ñ");
  // Invalid UTF-8 is refused before anything else, whatever the transaction says.
  EXPECT_EQ(err("RCPT TO:<\xC3\x28@example.org>", ParseOptions{true}), "500 5.5.2 Error: invalid UTF-8 in command\r\n");
  EXPECT_EQ(err("RCPT TO:<\xC0\xAF@example.org>", ParseOptions{true}), "500 5.5.2 Error: invalid UTF-8 in command\r\n");
  EXPECT_EQ(err("RCPT TO:<\xED\xA0\x80@example.org>", ParseOptions{true}), "500 5.5.2 Error: invalid UTF-8 in command\r\n");
}

TEST(SmtpCommand, MailParameters) {
  auto c = ok("MAIL FROM:<a@b.example> SIZE=12345 BODY=8BITMIME RET=HDRS ENVID=QQ314159+2B AUTH=<>");
  EXPECT_EQ(c.mail.size, 12345u);
  EXPECT_EQ(c.mail.body, Body::eight_bit_mime);
  EXPECT_EQ(c.mail.ret, Ret::hdrs);
  EXPECT_EQ(c.mail.envid, "QQ314159+2B");
  EXPECT_EQ(c.mail.auth, "<>");
  EXPECT_EQ(ok("MAIL FROM:<a@b.example> body=7bit  size=0").mail.body, Body::seven_bit);  // case, spaces
  EXPECT_EQ(ok("MAIL FROM:<a@b.example> BODY=BINARYMIME").mail.body, Body::binary_mime);  // the session refuses it
  EXPECT_EQ(ok("MAIL FROM:<a@b.example> RET=FULL").mail.ret, Ret::full);
  EXPECT_EQ(ok("MAIL FROM:<a@b.example> AUTH=ana+40example.org").mail.auth, "ana+40example.org");
  EXPECT_EQ(ok("MAIL FROM:<a@b.example> SIZE=18446744073709551615").mail.size, 18446744073709551615u);

  const std::pair<std::string, const char*> bad[] = {
      {"MAIL FROM:<a@b.example> SIZE=", "501 5.5.4 Error: bad parameter value\r\n"},
      {"MAIL FROM:<a@b.example> SIZE", "501 5.5.4 Bad SIZE parameter\r\n"},
      {"MAIL FROM:<a@b.example> SIZE=12x", "501 5.5.4 Bad SIZE parameter\r\n"},
      {"MAIL FROM:<a@b.example> SIZE=-1", "501 5.5.4 Bad SIZE parameter\r\n"},
      {"MAIL FROM:<a@b.example> SIZE=18446744073709551616", "501 5.5.4 Bad SIZE parameter\r\n"},
      {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4 Error: duplicate parameter\r\n"},
      {"MAIL FROM:<a@b.example> BODY=9BIT", "501 5.5.4 Bad BODY parameter\r\n"},
      {"MAIL FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4 Bad SMTPUTF8 parameter\r\n"},
      {"MAIL FROM:<a@b.example> RET=ALL", "501 5.5.4 Bad RET parameter\r\n"},
      {"MAIL FROM:<a@b.example> ENVID=a+zz", "501 5.5.4 Bad ENVID parameter\r\n"},
      {"MAIL FROM:<a@b.example> ENVID=" + std::string(101, 'x'), "501 5.5.4 Bad ENVID parameter\r\n"},
      {"MAIL FROM:<a@b.example> AUTH=", "501 5.5.4 Error: bad parameter value\r\n"},
      {"MAIL FROM:<a@b.example> NOTIFY=NEVER", "555 5.5.4 Unsupported parameter NOTIFY\r\n"},
      {"MAIL FROM:<a@b.example> XFOO=1", "555 5.5.4 Unsupported parameter XFOO\r\n"},
      {"MAIL FROM:<a@b.example> -X=1", "501 5.5.4 Error: bad parameter syntax\r\n"},
      {"MAIL FROM:<a@b.example> X=a=b", "501 5.5.4 Error: bad parameter value\r\n"},
  };
  for (const auto& [line, want] : bad) EXPECT_EQ(err(line), want) << line;
}

TEST(SmtpCommand, RcptParameters) {
  auto c = ok("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;a+40b.example");
  EXPECT_EQ(c.rcpt.notify, kNotifySuccess | kNotifyFailure | kNotifyDelay);
  EXPECT_EQ(c.rcpt.orcpt, "rfc822;a+40b.example");
  EXPECT_EQ(ok("RCPT TO:<a@b.example> notify=never").rcpt.notify, kNotifyNever);
  EXPECT_EQ(ok("RCPT TO:<a@b.example> ORCPT=utf-8;jos\xC3\xA9@b.example", ParseOptions{true}).rcpt.orcpt,
            "utf-8;jos\xC3\xA9@b.example");
  const std::pair<std::string, const char*> bad[] = {
      {"RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY parameter\r\n"},
      {"RCPT TO:<a@b.example> NOTIFY=SOMETIMES", "501 5.5.4 Bad NOTIFY parameter\r\n"},
      {"RCPT TO:<a@b.example> NOTIFY=SUCCESS,", "501 5.5.4 Bad NOTIFY parameter\r\n"},
      {"RCPT TO:<a@b.example> ORCPT=a@b.example", "501 5.5.4 Bad ORCPT parameter\r\n"},
      {"RCPT TO:<a@b.example> ORCPT=;a", "501 5.5.4 Bad ORCPT parameter\r\n"},
      {"RCPT TO:<a@b.example> ORCPT=rfc822;" + std::string(500, 'x'), "501 5.5.4 Bad ORCPT parameter\r\n"},
      {"RCPT TO:<a@b.example> ORCPT=utf-8;jos\xC3\xA9@b.example", "501 5.5.4 Bad ORCPT parameter\r\n"},
      {"RCPT TO:<a@b.example> SIZE=10", "555 5.5.4 Unsupported parameter SIZE\r\n"},
  };
  for (const auto& [line, want] : bad) EXPECT_EQ(err(line), want) << line;
}

TEST(SmtpCommand, Bdat) {
  auto c = ok("BDAT 1000");
  EXPECT_EQ(c.chunk_size, 1000u);
  EXPECT_FALSE(c.last);
  auto l = ok("bdat 0 last");
  EXPECT_EQ(l.chunk_size, 0u);
  EXPECT_TRUE(l.last);
  for (auto bad : {"BDAT", "BDAT x", "BDAT -1", "BDAT 10 FIRST", "BDAT 10 LAST now", "BDAT 123456789012345678901"}) {
    auto r = parse_command(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().verb, Verb::bdat) << bad;  // the session must know it could not frame the chunk
    EXPECT_EQ(format_reply(r.error().reply), "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
  }
}

TEST(SmtpCommand, ArgumentCounts) {
  EXPECT_EQ(err("DATA now"), "501 5.5.4 Syntax: DATA\r\n");
  EXPECT_EQ(err("RSET x"), "501 5.5.4 Syntax: RSET\r\n");
  EXPECT_EQ(err("QUIT x"), "501 5.5.4 Syntax: QUIT\r\n");
  EXPECT_EQ(err("STARTTLS x"), "501 5.5.4 Syntax: STARTTLS\r\n");
  EXPECT_EQ(err("VRFY"), "501 5.5.4 Syntax: VRFY address\r\n");
  EXPECT_EQ(err("EXPN "), "501 5.5.4 Syntax: EXPN list\r\n");
}

TEST(SmtpCommand, GarbageIsRefused) {
  EXPECT_EQ(err(""), "500 5.5.2 Error: empty command\r\n");
  EXPECT_EQ(err("XYZZY"), "500 5.5.1 Error: command not recognized\r\n");
  EXPECT_EQ(err("MAILFROM:<a@b>"), "500 5.5.1 Error: command not recognized\r\n");
  EXPECT_EQ(err(std::string("NOOP\0x", 6)), "500 5.5.2 Error: control character in command\r\n");
  EXPECT_EQ(err("NOOP\tx"), "500 5.5.2 Error: control character in command\r\n");
  EXPECT_EQ(err("\xFF\xFE"), "500 5.5.2 Error: invalid UTF-8 in command\r\n");
}

TEST(SmtpCommand, ParsePathAndXtextHelpers) {
  EXPECT_TRUE(parse_path("<a@b.example>", false).has_value());
  EXPECT_FALSE(parse_path("<a@b.example> ", false).has_value());
  EXPECT_FALSE(parse_path("<>", false).has_value());
  EXPECT_TRUE(parse_path("<>", true)->null);
  EXPECT_TRUE(is_xtext("abc+2B+3D"));
  EXPECT_FALSE(is_xtext("a=b"));
  EXPECT_FALSE(is_xtext("a+2"));
  EXPECT_FALSE(is_xtext("a+2b"));  // hex must be upper case
  EXPECT_FALSE(is_xtext(""));
  EXPECT_FALSE(is_xtext("caf\xC3\xA9"));
  EXPECT_TRUE(is_xtext("caf\xC3\xA9", true));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x99\x82"));
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST(SmtpCommand, VerbTableIsIndexedByVerb) {
  for (std::size_t i = 0; i < kVerbs.size(); ++i) EXPECT_EQ(static_cast<std::size_t>(kVerbs[i].verb), i);
  EXPECT_TRUE(spec(Verb::ehlo).flags & kSmtpOnly);
  EXPECT_TRUE(spec(Verb::lhlo).flags & kLmtpOnly);
  EXPECT_TRUE(spec(Verb::starttls).flags & kGroupEnd);
}

}  // namespace
}  // namespace buzon::smtp

namespace buzon::smtp {
namespace {

// Regression (fuzz/smtp_command.cpp): an unknown parameter of any length must not make the reply
// line longer than RFC 5321 §4.5.3.1.5's 512 octets.
TEST(SmtpCommand, LongUnknownParameterIsNotEchoedWhole) {
  auto r = parse_command("MAIL FROM:<a@b.ne> S" + std::string(2000, 'o'));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reply.code, 555);
  EXPECT_LT(format_reply(r.error().reply).size(), 512u);
  auto r2 = parse_command("RCPT TO:<a@b.ne> X" + std::string(2000, '9'));
  ASSERT_FALSE(r2);
  EXPECT_LT(format_reply(r2.error().reply).size(), 512u);
}

}  // namespace
}  // namespace buzon::smtp
