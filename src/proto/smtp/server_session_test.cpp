// Session tests: the real SMTP/LMTP session coroutine over an in-memory stream, the memory store
// (as Delivery) and a table directory. Each test is a dialogue: client input -> the server's
// replies, and what ended up (or did not end up) in the mailboxes.
#include "proto/smtp/server_session.hpp"

#include "core/mail_location.hpp"
#include "store/memory/memory_store.hpp"
#include "support/fake_tls.hpp"
#include "support/memory_stream.hpp"
#include "support/table_directory.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <gtest/gtest.h>

#include <map>
#include <regex>

namespace buzon::smtp {
namespace {

using test::FakeTls;
using test::MemoryStream;

using TableDirectory = test::TableDirectory;

constexpr const char* kGreeting = "220 mx.example.org ESMTP buzon\r\n";
constexpr const char* kEhloReply =
    "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";

class SmtpSessionTest : public ::testing::Test {
 protected:
  SmtpSessionTest() {
    dir_.add("ana@example.org");
    dir_.add("bob");
    dir_.add("postmaster@example.org");
    dir_.add("josé@example.org");
    auto& s = svc_.settings;
    s.hostname = "mx.example.org";
    s.recipients.local_domains = {"example.org", "example.net"};
    s.recipients.mail_template = "mail/%d/%n";
    s.recipients.base_dir = "/mem";
    s.max_message_size = 100000;
    svc_.directory = &dir_;
    svc_.delivery = &store_;
    svc_.pool = &pool_;
  }

  std::string box(const std::string& user) {
    return mail_location(svc_.settings.recipients.mail_template, svc_.settings.recipients.base_dir, user)->string();
  }
  std::vector<std::string> messages(const std::string& user) {
    std::vector<std::string> out;
    for (auto& m : store_.contents(box(user))) out.push_back(m.content);
    return out;
  }

  std::string dialogue(std::unique_ptr<MemoryStream> s) {
    auto rec = s->record();
    asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
    io_.restart();
    io_.run();
    EXPECT_TRUE(rec->closed);
    return rec->output;
  }
  std::string dialogue(std::string input, std::size_t read_size = 1 << 20) {
    auto s = std::make_unique<MemoryStream>(io_, std::move(input));
    s->set_read_size(read_size);
    return dialogue(std::move(s));
  }
  // The replies after the greeting and the EHLO reply.
  std::string after_ehlo(std::string commands, std::size_t read_size = 1 << 20) {
    auto out = dialogue("EHLO client.example\r\n" + commands, read_size);
    const std::string head = std::string(kGreeting) + kEhloReply;
    EXPECT_TRUE(out.starts_with(head)) << out;
    return out.substr(std::min(out.size(), head.size()));
  }
  static std::string strip_ids(std::string s) {
    return std::regex_replace(s, std::regex("delivered as [0-9A-F]+"), "delivered as ID");
  }

  asio::io_context io_;
  net::WorkerPool pool_{2, 16};
  store::memory::MemoryStore store_;
  TableDirectory dir_;
  Service svc_;
};

TEST_F(SmtpSessionTest, DeliversWithTraceHeaders) {
  auto out = after_ehlo(
      "MAIL FROM:<sender@remote.example>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\n"
      "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(strip_ids(out),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: delivered as ID\r\n221 2.0.0 mx.example.org closing connection\r\n");
  auto msgs = messages("ana@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  const std::string& m = msgs[0];
  EXPECT_TRUE(m.starts_with("Return-Path: <sender@remote.example>\r\nDelivered-To: ana@example.org\r\n"
                            "Received: from client.example ([127.0.0.1])\r\n\tby mx.example.org (buzon) with ESMTP id "))
      << m;
  EXPECT_NE(m.find("\r\n\tfor <ana@example.org>; "), std::string::npos) << m;
  EXPECT_TRUE(m.ends_with(" +0000\r\nSubject: hi\r\n\r\n.dot\r\nbody\r\n")) << m;
  EXPECT_EQ(svc_.counters.messages.load(), 1u);
}

TEST_F(SmtpSessionTest, BareLocalPartUserAndDomainCaseAndDuplicates) {
  // "bob" is in the directory without a domain: he is bob@ every local domain. Two RCPTs naming
  // one mailbox make one copy; the Delivered-To: is the first address.
  auto out = after_ehlo(
      "MAIL FROM:<>\r\nRCPT TO:<bob@EXAMPLE.NET>\r\nRCPT TO:<Bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
  EXPECT_EQ(strip_ids(out), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                            "250 2.0.0 Ok: delivered as ID\r\n");
  auto msgs = messages("bob");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].starts_with("Return-Path: <>\r\nDelivered-To: bob@EXAMPLE.NET\r\nReceived: ")) << msgs[0];
  EXPECT_EQ(msgs[0].find("\tfor <"), std::string::npos);  // two recipients: no "for" clause
}

TEST_F(SmtpSessionTest, PipelinedDialogueDoesNotDependOnReadSizes) {
  const std::string script =
      "MAIL FROM:<s@remote.example> SIZE=40\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<ana@example.org>\r\n"
      "DATA\r\nline\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n";
  const auto whole = strip_ids(after_ehlo(script));
  EXPECT_EQ(whole,
            "250 2.1.0 Ok\r\n550 5.1.1 Error: no such user here\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: delivered as ID\r\n250 2.0.0 Ok\r\n"
            "250 2.0.0 Ok\r\n221 2.0.0 mx.example.org closing connection\r\n");
  for (std::size_t rs : {1u, 2u, 3u, 7u, 64u}) EXPECT_EQ(strip_ids(after_ehlo(script, rs)), whole) << "read size " << rs;
  EXPECT_EQ(messages("ana@example.org").size(), 6u);
}

TEST_F(SmtpSessionTest, NeverAnOpenRelay) {
  auto out = after_ehlo(
      "MAIL FROM:<spammer@remote.example>\r\nRCPT TO:<victim@elsewhere.example>\r\nRCPT TO:<ana@[127.0.0.1]>\r\n"
      "RCPT TO:<ana@example.org.evil.example>\r\nDATA\r\nQUIT\r\n");
  EXPECT_EQ(out,
            "250 2.1.0 Ok\r\n550 5.7.1 Error: relay access denied\r\n550 5.7.1 Error: relay access denied\r\n"
            "550 5.7.1 Error: relay access denied\r\n554 5.5.1 Error: no valid recipients\r\n"
            "221 2.0.0 mx.example.org closing connection\r\n");
  EXPECT_EQ(svc_.counters.relay_denied.load(), 3u);
}

TEST_F(SmtpSessionTest, SequenceErrors) {
  auto out = dialogue("MAIL FROM:<a@b.example>\r\nEHLO c\r\nRCPT TO:<ana@example.org>\r\nDATA\r\n"
                      "MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nBDAT 3\r\nabcDATA\r\nQUIT\r\n");
  const std::string want = std::string(kGreeting) + "503 5.5.1 Error: send HELO/EHLO first\r\n" + kEhloReply +
                           "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n"
                           "250 2.1.0 Ok\r\n503 5.5.1 Error: nested MAIL command\r\n"
                           "554 5.5.1 Error: no valid recipients\r\n"  // BDAT: its 3 octets were consumed
                           "554 5.5.1 Error: no valid recipients\r\n"
                           "221 2.0.0 mx.example.org closing connection\r\n";
  EXPECT_EQ(out, want);
}

TEST_F(SmtpSessionTest, RecipientLimit) {
  svc_.settings.max_recipients = 2;
  auto out = after_ehlo("MAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                        "RCPT TO:<postmaster@example.org>\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n");
}

TEST_F(SmtpSessionTest, SizeAnnouncedAndEnforced) {
  auto declared = after_ehlo("MAIL FROM:<a@b.example> SIZE=100001\r\n");
  EXPECT_EQ(declared, "552 5.3.4 Error: message size exceeds the limit of 100000 octets\r\n");
  // A client that lies (or sends no SIZE) is stopped while the data streams in, and the reply
  // comes after the end of the data.
  const std::string big(120000, 'x');
  std::string body;
  for (std::size_t i = 0; i < big.size(); i += 998) body += big.substr(i, 998) + "\r\n";
  auto out = after_ehlo("MAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<ana@example.org>\r\nDATA\r\n" + body +
                        ".\r\nNOOP\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                 "552 5.3.4 Error: message size exceeds the limit of 100000 octets\r\n250 2.0.0 Ok\r\n");
  EXPECT_TRUE(messages("ana@example.org").empty());
}

TEST_F(SmtpSessionTest, LineLengthLimitInData) {
  auto out = after_ehlo("MAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\n" + std::string(999, 'y') +
                        "\r\n.\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                 "554 5.6.0 Error: message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)\r\n");
  EXPECT_TRUE(messages("ana@example.org").empty());
}

// The smuggling attempt of the 2023 research: a "\n.\n" meant to end the data early, followed by a
// second, spoofed transaction. The whole input up to the real <CRLF>.<CRLF> is one message; it is
// refused for its bare LF; the spoofed MAIL is never executed and nothing is delivered.
TEST_F(SmtpSessionTest, SmugglingIsRefusedAndNothingIsDelivered) {
  for (std::string seq : {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", "\r.\r\n", "\n.\r", "\r.\n"}) {
    auto out = after_ehlo(
        "MAIL FROM:<a@remote.example>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\nSubject: real\r\n\r\nhello" + seq +
        "MAIL FROM:<ceo@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: spoofed\r\n\r\nx\r\n"
        ".\r\nQUIT\r\n");
    EXPECT_TRUE(out.starts_with("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n554 5.6.0 Error: bare <"))
        << out;
    EXPECT_TRUE(out.ends_with("in message; lines must end in CRLF (RFC 5321 2.3.8)\r\n"
                              "221 2.0.0 mx.example.org closing connection\r\n"))
        << out;
    EXPECT_TRUE(messages("ana@example.org").empty());
    EXPECT_TRUE(messages("bob").empty());
  }
}

TEST_F(SmtpSessionTest, BareLineEndsInCommands) {
  // Only CRLF ends a command; "RSET\nQUIT\r\n" is one broken line, not two commands.
  auto out = after_ehlo("RSET\nQUIT\r\nNOOP\rNOOP\r\nNOOP\r\n");
  EXPECT_EQ(out, "500 5.5.2 Error: bare <LF> received\r\n500 5.5.2 Error: bare <CR> received\r\n250 2.0.0 Ok\r\n");
  EXPECT_EQ(svc_.counters.bare_line_ends.load(), 2u);
}

TEST_F(SmtpSessionTest, LongCommandLine) {
  auto out = after_ehlo("NOOP " + std::string(3000, 'a') + "\r\nNOOP\r\n");
  EXPECT_EQ(out, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
}

TEST_F(SmtpSessionTest, BdatChunksPipelined) {
  const std::string c1 = "Subject: chunked\r\n\r\n";
  const std::string c2 = "body\r\n.\r\n";  // a dot line is just data in BDAT
  auto out = after_ehlo("MAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<ana@example.org>\r\nBDAT " +
                        std::to_string(c1.size()) + "\r\n" + c1 + "BDAT " + std::to_string(c2.size()) + " LAST\r\n" + c2 +
                        "QUIT\r\n");
  EXPECT_EQ(strip_ids(out), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 20 octets received\r\n"
                            "250 2.0.0 Ok: delivered as ID\r\n221 2.0.0 mx.example.org closing connection\r\n");
  auto msgs = messages("ana@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].ends_with("\r\n" + c1 + c2)) << msgs[0];
}

TEST_F(SmtpSessionTest, BdatErrors) {
  // DATA after BDAT (RFC 3030 §2), a failed chunk, the chunks pipelined after it, then RSET.
  auto out = after_ehlo(
      "MAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nBDAT 2\r\nabDATA\r\n"
      "BDAT 3\r\na\nbBDAT 2 LAST\r\ncdRSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nBDAT 0 LAST\r\n");
  EXPECT_EQ(strip_ids(out),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 2 octets received\r\n503 5.5.1 Error: DATA after BDAT\r\n"
            "554 5.6.0 Error: message refused: bare LF\r\n503 5.5.1 Error: an earlier BDAT failed, send RSET\r\n"
            "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: delivered as ID\r\n");
  auto msgs = messages("ana@example.org");
  ASSERT_EQ(msgs.size(), 1u);  // the empty message of BDAT 0 LAST
  EXPECT_TRUE(msgs[0].ends_with(" +0000\r\n")) << msgs[0];
}

TEST_F(SmtpSessionTest, MalformedBdatClosesTheConnection) {
  auto out = after_ehlo("MAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nBDAT lots\r\nRSET\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n501 5.5.4 Syntax: BDAT count [LAST]\r\n"
                 "421 4.5.0 mx.example.org Error: cannot find the end of the BDAT chunk\r\n");
}

TEST_F(SmtpSessionTest, StoreFailuresAreTemporaryAndLeaveNothing) {
  store_.fail_next(store::StoreErrc::temp, store::memory::MemoryStore::Op::deliver);
  store_.fail_next(store::StoreErrc::no_space, store::memory::MemoryStore::Op::deliver);
  store_.fail_next(store::StoreErrc::quota, store::memory::MemoryStore::Op::deliver_copy);
  const std::string tx = "MAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n";
  auto out = after_ehlo(tx + tx + tx);
  const std::string head = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n";
  EXPECT_EQ(out, head + "451 4.3.0 Error: local delivery failed, try again later\r\n" + head +
                     "452 4.3.1 Error: insufficient system storage, try again later\r\n" + head +
                     "452 4.2.2 Error: mailbox full, try again later\r\n");
  // all_or_none: the second copy's quota failure took the first copy back too.
  EXPECT_TRUE(messages("ana@example.org").empty());
  EXPECT_TRUE(messages("bob").empty());
  EXPECT_EQ(svc_.counters.delivery_failures.load(), 3u);
}

TEST_F(SmtpSessionTest, DisconnectInsideDataDeliversNothing) {
  auto out = after_ehlo("MAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\npartial message\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_TRUE(messages("ana@example.org").empty());
}

TEST_F(SmtpSessionTest, TooManyErrorsCloses) {
  svc_.settings.max_errors = 3;
  auto out = after_ehlo("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
  EXPECT_EQ(out, "500 5.5.1 Error: command not recognized\r\n500 5.5.1 Error: command not recognized\r\n"
                 "500 5.5.1 Error: command not recognized\r\n421 4.7.0 mx.example.org Error: too many errors\r\n");
}

TEST_F(SmtpSessionTest, HttpClientsAreSentAway) {
  auto out = dialogue("GET / HTTP/1.1\r\nHost: mx\r\n\r\n");
  EXPECT_EQ(out, std::string(kGreeting) + "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n");
}

TEST_F(SmtpSessionTest, HeloSessionHasNoExtensions) {
  auto out = dialogue("HELO old.example\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nMAIL FROM:<a@b.example>\r\n"
                      "RCPT TO:<ana@example.org>\r\nDATA\r\nx\r\n.\r\n");
  EXPECT_EQ(strip_ids(out), std::string(kGreeting) + "250 mx.example.org\r\n555 5.5.4 Error: parameters need EHLO\r\n"
                                "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                                "250 2.0.0 Ok: delivered as ID\r\n");
  auto msgs = messages("ana@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NE(msgs[0].find("(buzon) with SMTP id "), std::string::npos) << msgs[0];
}

TEST_F(SmtpSessionTest, Smtputf8) {
  auto out = after_ehlo(
      "MAIL FROM:<josé@exämple.org>\r\n"
      "MAIL FROM:<josé@exämple.org> SMTPUTF8\r\nRCPT TO:<josé@example.org>\r\nDATA\r\nSubject: ¡hola!\r\n\r\nñ\r\n.\r\n"
      "MAIL FROM:<a@b.example>\r\nRCPT TO:<josé@example.org>\r\n");
  EXPECT_EQ(strip_ids(out),
            "550 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter\r\n"
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: delivered as ID\r\n"
            "250 2.1.0 Ok\r\n553 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter\r\n");
  auto msgs = messages("josé@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].starts_with("Return-Path: <josé@exämple.org>\r\nDelivered-To: josé@example.org\r\n")) << msgs[0];
  EXPECT_NE(msgs[0].find("with UTF8SMTP id"), std::string::npos);
  EXPECT_TRUE(msgs[0].ends_with("Subject: ¡hola!\r\n\r\nñ\r\n"));
}

TEST_F(SmtpSessionTest, DsnParametersAreKept) {
  auto out = after_ehlo("MAIL FROM:<a@b.example> RET=HDRS ENVID=xyz\r\nRCPT TO:<ana@example.org> NOTIFY=FAILURE "
                        "ORCPT=rfc822;ana@example.org\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
}

TEST_F(SmtpSessionTest, PostmasterAndVrfy) {
  auto out = after_ehlo("VRFY ana@example.org\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\nbounce\r\n.\r\n");
  EXPECT_EQ(strip_ids(out), "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
                            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                            "250 2.0.0 Ok: delivered as ID\r\n");
  auto msgs = messages("postmaster@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].starts_with("Return-Path: <>\r\nDelivered-To: postmaster@example.org\r\n"));

  svc_.settings.vrfy = true;
  auto on = after_ehlo("VRFY ana@example.org\r\nVRFY <nobody@example.org>\r\nVRFY x@elsewhere.example\r\nVRFY <<\r\n");
  EXPECT_EQ(on, "250 2.1.5 <ana@example.org>\r\n550 5.1.1 Error: no such user here\r\n"
                "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
                "501 5.1.3 Error: bad address syntax\r\n");
}

TEST_F(SmtpSessionTest, HelpExpnAuthAndLhloInSmtp) {
  auto out = after_ehlo("HELP\r\nEXPN staff\r\nAUTH PLAIN\r\nLHLO x\r\nSTARTTLS\r\n");
  EXPECT_EQ(out,
            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS (RFC 5321)\r\n"
            "502 5.5.1 Error: EXPN is not supported\r\n502 5.5.1 Error: authentication is not enabled\r\n"
            "500 5.5.1 Error: command not recognized\r\n502 5.5.1 Error: STARTTLS is not offered\r\n");
}

TEST_F(SmtpSessionTest, CommandTimeoutCloses) {
  svc_.settings.command_timeout = std::chrono::milliseconds(50);
  auto s = std::make_unique<MemoryStream>(io_, std::string("EHLO c\r\n"));
  s->set_hang_at_end(true);
  auto out = dialogue(std::move(s));
  EXPECT_EQ(out, std::string(kGreeting) + kEhloReply);
}

TEST_F(SmtpSessionTest, DataTimeoutDeliversNothing) {
  svc_.settings.data_timeout = std::chrono::milliseconds(50);
  auto s = std::make_unique<MemoryStream>(
      io_, std::string("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\nhalf a mess"));
  s->set_hang_at_end(true);
  auto out = dialogue(std::move(s));
  EXPECT_TRUE(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n")) << out;
  EXPECT_TRUE(messages("ana@example.org").empty());
}

TEST_F(SmtpSessionTest, EarlyTalkerIsRefused) {
  svc_.settings.greet_pause = std::chrono::milliseconds(100);
  auto out = dialogue("EHLO hasty.example\r\nMAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(out, "554 5.5.0 mx.example.org Error: SMTP protocol synchronization (input before the greeting)\r\n");
  EXPECT_EQ(svc_.counters.early_talkers.load(), 1u);
}

TEST_F(SmtpSessionTest, PatientClientIsGreetedAfterThePause) {
  svc_.settings.greet_pause = std::chrono::milliseconds(30);
  // The client speaks only once it has read the greeting.
  auto s = std::make_unique<MemoryStream>(io_, MemoryStream::Feeder([step = 0](const std::string& out) mutable
                                                                        -> std::optional<std::string> {
    if (step == 0 && out.starts_with("220 ")) {
      ++step;
      return "EHLO patient.example\r\nQUIT\r\n";
    }
    if (step == 0) return std::string();
    return std::nullopt;
  }));
  s->set_hang_at_end(true);  // silent until it has the greeting
  auto out = dialogue(std::move(s));
  EXPECT_EQ(out, std::string(kGreeting) + kEhloReply + "221 2.0.0 mx.example.org closing connection\r\n");
}

TEST_F(SmtpSessionTest, StarttlsDiscardsPipelinedPlaintextAndResets) {
  int upgrades = 0;
  svc_.start_tls = [&upgrades](net::StreamPtr plain) -> asio::awaitable<net::UpgradeResult> {
    ++upgrades;
    co_return std::make_unique<FakeTls>(std::move(plain));
  };
  // The injected MAIL/RCPT arrive in the same packet as STARTTLS (CVE-2011-0411): they must not be
  // executed inside TLS. After TLS the client must say EHLO again.
  auto s = std::make_unique<MemoryStream>(io_, MemoryStream::Feeder([step = 0](const std::string& out) mutable
                                                                        -> std::optional<std::string> {
    if (step == 0) {
      ++step;
      return "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<ana@example.org>\r\n";
    }
    if (step == 1 && out.find("220 2.0.0 Ready to start TLS\r\n") != std::string::npos) {
      ++step;
      return "MAIL FROM:<a@b.example>\r\nEHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ana@example.org>\r\n"
             "DATA\r\nx\r\n.\r\nQUIT\r\n";
    }
    return std::nullopt;
  }));
  auto out = dialogue(std::move(s));
  const std::string ehlo_tls =
      "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";
  const std::string ehlo_plain =
      "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n";
  EXPECT_EQ(strip_ids(out), std::string(kGreeting) + ehlo_plain + "220 2.0.0 Ready to start TLS\r\n" +
                                "503 5.5.1 Error: send HELO/EHLO first\r\n" + ehlo_tls +
                                "554 5.5.1 Error: TLS is already active\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                                "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: delivered as ID\r\n"
                                "221 2.0.0 mx.example.org closing connection\r\n");
  EXPECT_EQ(upgrades, 1);
  auto msgs = messages("ana@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NE(msgs[0].find("(using TLSv1.3 TLS_FAKE)"), std::string::npos) << msgs[0];
  EXPECT_NE(msgs[0].find("with ESMTPS id"), std::string::npos) << msgs[0];
}

TEST_F(SmtpSessionTest, FailedTlsHandshakeEndsTheSession) {
  svc_.start_tls = [](net::StreamPtr plain) -> asio::awaitable<net::UpgradeResult> {
    plain->close();
    co_return std::unexpected(std::make_error_code(std::errc::protocol_error));
  };
  auto out = dialogue("STARTTLS\r\nNOOP\r\n");
  EXPECT_EQ(out, std::string(kGreeting) + "220 2.0.0 Ready to start TLS\r\n");  // NOOP never answered
}

TEST_F(SmtpSessionTest, SubmissionModeRefusesMailBeforeAuth) {  // more in submission_session_test.cpp
  svc_.settings.mode = Mode::submission;
  auto out = after_ehlo("MAIL FROM:<ana@example.org>\r\n");
  EXPECT_EQ(out, "530 5.7.0 Error: authentication required\r\n");
}

// ---- LMTP (RFC 2033) ----

class LmtpSessionTest : public SmtpSessionTest {
 protected:
  LmtpSessionTest() {
    svc_.settings.mode = Mode::lmtp;
    svc_.settings.recipients.require_local_domain = false;
  }
  std::string after_lhlo(std::string commands) {
    auto out = dialogue("LHLO mta.example\r\n" + commands);
    const std::string head = std::string("220 mx.example.org LMTP buzon\r\n") + kEhloReply;
    EXPECT_TRUE(out.starts_with(head)) << out;
    return out.substr(std::min(out.size(), head.size()));
  }
};

TEST_F(LmtpSessionTest, OneReplyPerRecipientAfterData) {
  store_.set_broken(box("bob"), store::StoreErrc::quota);
  auto out = after_lhlo(
      "MAIL FROM:<a@remote.example>\r\nRCPT TO:<ana@example.org>\r\nRCPT TO:<nobody@example.org>\r\n"
      "RCPT TO:<bob@example.net>\r\nRCPT TO:<ana@example.org>\r\nDATA\r\nSubject: lmtp\r\n\r\nhi\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(strip_ids(out),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 Error: no such user here\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 <ana@example.org> Ok: delivered as ID\r\n"
            "452 4.2.2 Error: mailbox full, try again later\r\n"
            "250 2.0.0 <ana@example.org> Ok: delivered as ID\r\n"
            "221 2.0.0 mx.example.org closing connection\r\n");
  EXPECT_EQ(messages("ana@example.org").size(), 1u);  // one copy per mailbox
  EXPECT_TRUE(messages("bob").empty());
  EXPECT_NE(messages("ana@example.org")[0].find("with LMTP id"), std::string::npos);
}

TEST_F(LmtpSessionTest, ContentErrorsAnsweredPerRecipient) {
  auto out = after_lhlo("MAIL FROM:<a@remote.example>\r\nRCPT TO:<ana@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                        "DATA\r\nbad\nline\r\n.\r\n");
  const std::string e = "554 5.6.0 Error: bare <LF> in message; lines must end in CRLF (RFC 5321 2.3.8)\r\n";
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" + e + e);
}

TEST_F(LmtpSessionTest, LmtpRules) {
  // No HELO/EHLO (RFC 2033 §4.1); DATA without recipients is 503 (§4.2); any domain may be asked
  // for, but only users exist.
  auto out = dialogue("EHLO x\r\nHELO x\r\nLHLO mta\r\nMAIL FROM:<>\r\nDATA\r\nRCPT TO:<ana@other.example>\r\n");
  EXPECT_EQ(out, std::string("220 mx.example.org LMTP buzon\r\n") + "500 5.5.1 Error: this is LMTP, use LHLO\r\n"
                     "500 5.5.1 Error: this is LMTP, use LHLO\r\n" + kEhloReply +
                     "250 2.1.0 Ok\r\n503 5.5.1 Error: no valid recipients\r\n550 5.1.1 Error: no such user here\r\n");
}

TEST_F(LmtpSessionTest, BdatLastGivesPerRecipientReplies) {
  auto out = after_lhlo("MAIL FROM:<a@remote.example>\r\nRCPT TO:<ana@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                        "BDAT 4 LAST\r\nhi\r\n");
  EXPECT_EQ(strip_ids(out), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
                            "250 2.0.0 <ana@example.org> Ok: delivered as ID\r\n"
                            "250 2.0.0 <bob@example.org> Ok: delivered as ID\r\n");
  EXPECT_EQ(messages("bob").size(), 1u);
}

}  // namespace
}  // namespace buzon::smtp
