// send: header and address parsing, Bcc removal, sendmail's dot rule, argument parsing, [send].
#include "send/message.hpp"
#include "send/sender.hpp"

#include <gtest/gtest.h>

namespace buzon::send {
namespace {

TEST(Addresses, ListForms) {
  EXPECT_EQ(parse_address_list("Ana <ana@example.org>, bob@example.org"),
            (std::vector<std::string>{"ana@example.org", "bob@example.org"}));
  EXPECT_EQ(parse_address_list("\"Doe, John\" <john@x.org> (work), (comment) carl@y.org"),
            (std::vector<std::string>{"john@x.org", "carl@y.org"}));
  EXPECT_EQ(parse_address_list("team: a@x.org, B <b@x.org>; c@x.org"),
            (std::vector<std::string>{"a@x.org", "b@x.org", "c@x.org"}));
  EXPECT_EQ(parse_address_list("undisclosed-recipients:;"), std::vector<std::string>{});
  EXPECT_EQ(parse_address_list("<@relay.org:d@x.org>"), std::vector<std::string>{"d@x.org"});
  EXPECT_EQ(parse_address_list("root"), std::vector<std::string>{"root"});
}

TEST(Header, RecipientsFromToCcBccFolded) {
  const std::string m =
      "From: Me <me@example.org>\nTo: a@x.org,\n  b@x.org\nCc: C <c@x.org>\nBcc: hidden@x.org\nSubject: hi\n\n"
      "To: not-a-header@x.org\n";
  EXPECT_EQ(header_recipients(m), (std::vector<std::string>{"a@x.org", "b@x.org", "c@x.org", "hidden@x.org"}));
  EXPECT_EQ(header_from(m), "me@example.org");
  EXPECT_EQ(strip_bcc(m), "From: Me <me@example.org>\nTo: a@x.org,\n  b@x.org\nCc: C <c@x.org>\nSubject: hi\n\n"
                          "To: not-a-header@x.org\n");
  const std::string folded_bcc = "To: a@x.org\r\nBcc: h1@x.org,\r\n\th2@x.org\r\nSubject: s\r\n\r\nBcc: body\r\n";
  EXPECT_EQ(strip_bcc(folded_bcc), "To: a@x.org\r\nSubject: s\r\n\r\nBcc: body\r\n");
  // Resent- fields take over when present (RFC 5322 §3.6.6).
  EXPECT_EQ(header_recipients("To: orig@x.org\nResent-To: new@x.org\n\nbody\n"), std::vector<std::string>{"new@x.org"});
}

TEST(Input, SendmailDotLine) {
  EXPECT_EQ(cut_at_dot_line("Subject: x\n\nbody\n.\nafter\n"), "Subject: x\n\nbody\n");
  EXPECT_EQ(cut_at_dot_line("a\n..\n"), "a\n..\n");
  EXPECT_EQ(cut_at_dot_line("a\r\n.\r\n"), "a\r\n");
}

TEST(Args, SendmailFlags) {
  auto a = parse_send_args({"-oi", "-oem", "-FCron Daemon", "-t", "-fsender@x.org", "--", "-weird@x.org"});
  ASSERT_TRUE(a) << a.error();
  EXPECT_TRUE(a->ignore_dots && a->read_recipients);
  EXPECT_EQ(a->from, "sender@x.org");
  EXPECT_EQ(a->full_name, "Cron Daemon");
  EXPECT_EQ(a->recipients, std::vector<std::string>{"-weird@x.org"});
  a = parse_send_args({"-i", "-f", "s@x.org", "r1@x.org", "r2@x.org", "--host", "mx", "--port=2525", "--tls", "none"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->recipients, (std::vector<std::string>{"r1@x.org", "r2@x.org"}));
  EXPECT_EQ(*a->host, "mx");
  EXPECT_EQ(*a->port, 2525);
  EXPECT_EQ(*a->tls, TlsMode::none);
  EXPECT_FALSE(parse_send_args({"-bs"}));
  EXPECT_FALSE(parse_send_args({"--port", "0"}));
  EXPECT_FALSE(parse_send_args({"-f"}));
  EXPECT_FALSE(parse_send_args({"--frobnicate"}));
}

TEST(SendConfig, Section) {
  auto c = parse_send_config("[send]\nhost = \"smtp.x.org\"\ntls = \"implicit\"\nuser = \"ana\"\npassword_file = \"pw\"\n"
                             "auth = [\"plain\"]\nfrom = \"ana@x.org\"\n",
                             "/etc/b.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->effective_port(), 465);
  EXPECT_EQ(c->password_file, "/etc/pw");
  EXPECT_EQ(c->auth, std::vector<std::string>{"PLAIN"});
  auto bad = parse_send_config("[send]\nhots = \"x\"\n", "b.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("b.toml:2: unknown key 'hots'"), std::string::npos);
  auto none = parse_send_config("[server]\nhostname = \"x\"\n", "b.toml");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->effective_port(), 587);
}

}  // namespace
}  // namespace buzon::send
