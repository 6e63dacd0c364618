// Submission session tests (RFC 6409, RFC 4954): the real session coroutine in submission mode
// over an in-memory stream (wrapped as TLS where the test needs it), the memory store as Delivery,
// a table directory and a spool in a temporary directory. Each test is a dialogue and what ended
// up in the mailboxes or the spool. Plus the pure rules of submission.hpp.
#include "proto/smtp/server_session.hpp"

#include "core/base64.hpp"
#include "core/mail_location.hpp"
#include "proto/sasl/scram.hpp"
#include "store/memory/memory_store.hpp"
#include "support/fake_tls.hpp"
#include "support/memory_stream.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <regex>

namespace buzon::smtp {
namespace {

using test::FakeTls;
using test::MemoryStream;

class Users final : public auth::Directory {
 public:
  void add(std::string name, std::string password) { users_[name] = auth::User{name, "{PLAIN}" + password}; }
  std::optional<auth::User> lookup(std::string_view name) const override {
    if (fail) throw std::runtime_error("directory down");
    auto it = users_.find(std::string(name));
    if (it == users_.end()) return std::nullopt;
    return it->second;
  }
  bool fail = false;

 private:
  std::map<std::string, auth::User> users_;
};

std::string b64(std::string_view s) { return base64_encode(s); }
std::string plain(std::string_view user, std::string_view pw) {
  return b64(std::string("\0", 1) + std::string(user) + std::string("\0", 1) + std::string(pw));
}

constexpr const char* kUntrusted = "192.0.2.10:40000";

class SubmissionTest : public ::testing::Test {
 protected:
  SubmissionTest() {
    users_.add("ana", "secret");
    users_.add("bob@example.org", "hunter2");
    users_.add("carl", "pw");
    auto& s = svc_.settings;
    s.mode = Mode::submission;
    s.hostname = "submit.example.org";
    s.recipients.local_domains = {"example.org", "example.net"};
    s.recipients.mail_template = "mail/%d/%n";
    s.recipients.base_dir = "/mem";
    s.sasl_mechanisms = {"SCRAM-SHA-256", "PLAIN", "LOGIN"};
    s.submission.sender_aliases["sales@example.org"] = {"ana"};
    s.submission.sender_aliases["@example.com"] = {"carl"};
    svc_.directory = &users_;
    svc_.delivery = &store_;
    svc_.pool = &pool_;
    svc_.fake_salt_key = "test";
    dir_ = std::filesystem::temp_directory_path() /
           ("buzon-submission-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    spool_ = std::move(*queue::Spool::open(dir_));
    svc_.spool = spool_.get();
  }
  ~SubmissionTest() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> messages(const std::string& user) {
    auto box = mail_location(svc_.settings.recipients.mail_template, svc_.settings.recipients.base_dir, user)->string();
    std::vector<std::string> out;
    for (auto& m : store_.contents(box)) out.push_back(m.content);
    return out;
  }
  // The session over `input`, as TLS (implicit, port 465) unless `tls` is false.
  std::string dialogue(std::string input, bool tls = true, const char* peer = nullptr) {
    auto s = std::make_unique<MemoryStream>(io_, std::move(input));
    if (peer) s->set_peer(peer, false);
    return run(std::move(s), tls);
  }
  std::string run(std::unique_ptr<MemoryStream> s, bool tls) {
    auto rec = s->record();
    net::StreamPtr stream = std::move(s);
    if (tls) stream = std::make_unique<FakeTls>(std::move(stream));
    asio::co_spawn(io_, serve_session(std::move(stream), svc_), asio::detached);
    io_.restart();
    io_.run();
    EXPECT_TRUE(rec->closed);
    return rec->output;
  }
  // The replies after the greeting and the EHLO reply.
  std::string after_ehlo(std::string commands, bool tls = true, const char* peer = nullptr) {
    auto out = dialogue("EHLO laptop.home\r\n" + commands, tls, peer);
    auto p = out.find("\r\n250 ");  // the last line of the EHLO reply
    EXPECT_NE(p, std::string::npos) << out;
    p = out.find("\r\n", p + 2);
    return p == std::string::npos ? out : out.substr(p + 2);
  }
  std::string login_ana() { return "AUTH PLAIN " + plain("ana", "secret") + "\r\n"; }
  std::string submit(std::string from, std::vector<std::string> rcpts, std::string message) {
    std::string s = "MAIL FROM:<" + from + ">\r\n";
    for (auto& r : rcpts) s += "RCPT TO:<" + r + ">\r\n";
    return s + "DATA\r\n" + message + ".\r\n";
  }
  std::vector<queue::Entry> queued() { return spool_->list(); }
  // EHLO, AUTH <mechanism> with the client's initial response, then its answer to every 334 until
  // the outcome (235 or 535), over implicit TLS.
  std::string sasl_dialogue(sasl::ClientMechanism& c) {
    int step = 0;
    auto feeder = [&](const std::string& out) -> std::optional<std::string> {
      if (step++ == 0) return "EHLO x\r\nAUTH " + std::string(c.name()) + " " + b64(*c.initial()) + "\r\n";
      if (step > 6) return std::nullopt;
      const auto p = out.rfind("334 ");
      if (p == std::string::npos || out.find("35 ", p) != std::string::npos) return std::string("QUIT\r\n");
      const auto end = out.find("\r\n", p);
      auto r = c.respond(*base64_decode(out.substr(p + 4, end - p - 4)));
      return r ? b64(*r) + "\r\n" : std::string("*\r\n");
    };
    return run(std::make_unique<MemoryStream>(io_, MemoryStream::Feeder(feeder)), true);
  }

  asio::io_context io_;
  net::WorkerPool pool_{2, 16};
  store::memory::MemoryStore store_;
  Users users_;
  Service svc_;
  std::filesystem::path dir_;
  std::unique_ptr<queue::Spool> spool_;
};

constexpr const char* kMsg = "From: Ana <ana@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n";

TEST_F(SubmissionTest, MailBeforeAuthIsRefused) {
  auto out = after_ehlo("MAIL FROM:<ana@example.org>\r\nRCPT TO:<bob@example.org>\r\nQUIT\r\n");
  EXPECT_EQ(out, "530 5.7.0 Error: authentication required\r\n503 5.5.1 Error: need MAIL command\r\n"
                 "221 2.0.0 submit.example.org closing connection\r\n");
}

TEST_F(SubmissionTest, EhloAdvertisesAuthByPolicy) {
  // Over TLS every configured mechanism; without TLS (require_tls) only SCRAM, even on loopback.
  auto tls = dialogue("EHLO x\r\n");
  EXPECT_NE(tls.find("250 AUTH SCRAM-SHA-256 PLAIN LOGIN\r\n"), std::string::npos) << tls;
  auto plain_conn = dialogue("EHLO x\r\n", false);
  EXPECT_NE(plain_conn.find("250 AUTH SCRAM-SHA-256\r\n"), std::string::npos) << plain_conn;
  EXPECT_EQ(plain_conn.find("PLAIN"), std::string::npos) << plain_conn;
  // After AUTH, AUTH is no longer offered (RFC 4954 §4: 503 anyway).
  auto after = after_ehlo(login_ana() + "EHLO x\r\n");
  EXPECT_EQ(after.find("AUTH"), std::string::npos) << after;
}

TEST_F(SubmissionTest, AuthPlainSuccessAndFailure) {
  auto out = after_ehlo("AUTH PLAIN " + plain("ana", "wrong") + "\r\n" + login_ana() + login_ana());
  EXPECT_EQ(out, "535 5.7.8 Error: authentication credentials invalid\r\n235 2.7.0 Authentication successful\r\n"
                 "503 5.5.1 Error: already authenticated\r\n");
  EXPECT_EQ(svc_.counters.auth_failures.load(), 1u);
  EXPECT_EQ(svc_.counters.logins.load(), 1u);
}

TEST_F(SubmissionTest, AuthPlainWithoutInitialResponseAndEqualsSign) {
  auto out = after_ehlo("AUTH PLAIN\r\n" + plain("bob@example.org", "hunter2") + "\r\n");
  EXPECT_EQ(out, "334 \r\n235 2.7.0 Authentication successful\r\n");
  // "=" is an empty initial response: PLAIN then fails on it (no identity).
  out = after_ehlo("AUTH PLAIN =\r\n");
  EXPECT_EQ(out, "535 5.7.8 Error: authentication credentials invalid\r\n");
}

TEST_F(SubmissionTest, AuthLoginAndCancel) {
  auto out = after_ehlo("AUTH LOGIN\r\n" + b64("ana") + "\r\n" + b64("secret") + "\r\n");
  EXPECT_EQ(out, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n");
  out = after_ehlo("AUTH LOGIN\r\n*\r\n" + login_ana());
  EXPECT_EQ(out, "334 VXNlcm5hbWU6\r\n501 5.0.0 Error: authentication cancelled\r\n"
                 "235 2.7.0 Authentication successful\r\n");
  out = after_ehlo("AUTH LOGIN\r\n!!!\r\nAUTH PLAIN ***\r\nAUTH CRAM-MD5\r\nAUTH\r\n");
  EXPECT_EQ(out, "334 VXNlcm5hbWU6\r\n501 5.5.2 Error: invalid base64 data in the response\r\n"
                 "501 5.5.2 Error: invalid base64 data in the initial response\r\n"
                 "504 5.5.4 Error: unrecognized authentication type\r\n"
                 "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
}

TEST_F(SubmissionTest, AuthScramSha256) {
  sasl::ScramClient c({"ana", "secret", ""}, {}, false);
  auto out = sasl_dialogue(c);
  EXPECT_NE(out.find("235 2.7.0 Authentication successful"), std::string::npos) << out;
  EXPECT_TRUE(c.complete());  // the server proved it holds the keys (v=, sent as a last 334)
  sasl::ScramClient bad({"ana", "nope", ""}, {}, false);
  out = sasl_dialogue(bad);
  EXPECT_NE(out.find("535 5.7.8 Error: authentication credentials invalid"), std::string::npos) << out;
}

TEST_F(SubmissionTest, PlaintextNeedsTls) {
  // require_tls (default): no PLAIN without TLS, even from loopback (a trusted network).
  auto out = after_ehlo(login_ana() + "MAIL FROM:<ana@example.org>\r\n", false);
  EXPECT_EQ(out, "538 5.7.11 Error: encryption required for requested authentication mechanism\r\n"
                 "530 5.7.0 Error: authentication required\r\n");
  // require_tls = false: the [auth] policy, i.e. trusted networks only.
  svc_.settings.submission.require_tls = false;
  EXPECT_EQ(after_ehlo(login_ana(), false), "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(after_ehlo(login_ana(), false, kUntrusted),
            "538 5.7.11 Error: encryption required for requested authentication mechanism\r\n");
  // Over TLS from anywhere.
  EXPECT_EQ(after_ehlo(login_ana(), true, kUntrusted), "235 2.7.0 Authentication successful\r\n");
}

TEST_F(SubmissionTest, AuthOrderRulesAndTemporaryFailure) {
  auto out = dialogue("AUTH PLAIN " + plain("ana", "secret") + "\r\n");
  EXPECT_NE(out.find("503 5.5.1 Error: send EHLO first\r\n"), std::string::npos) << out;
  out = after_ehlo(login_ana() + "MAIL FROM:<ana@example.org>\r\n" + login_ana());
  EXPECT_EQ(out, "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n503 5.5.1 Error: already authenticated\r\n");
  users_.fail = true;
  out = after_ehlo(login_ana());
  EXPECT_EQ(out, "454 4.7.0 Error: temporary authentication failure, try again later\r\n");
}

TEST_F(SubmissionTest, FailedLoginsDelayTheAddressNotTrustedPeers) {
  auth::FailurePenalty penalty(std::chrono::milliseconds(200), std::chrono::milliseconds(400));
  svc_.penalty = &penalty;
  const std::string wrong = "AUTH PLAIN " + plain("ana", "wrong") + "\r\n";
  auto t0 = std::chrono::steady_clock::now();
  auto out = after_ehlo(wrong + wrong, true, kUntrusted);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(out, "535 5.7.8 Error: authentication credentials invalid\r\n"
                 "535 5.7.8 Error: authentication credentials invalid\r\n");
  EXPECT_GE(ms, 190);  // the second attempt waited (on a timer) for the first failure's penalty
  EXPECT_GT(penalty.delay(kUntrusted).count(), 0);
  // Loopback is in trusted_networks: never delayed, never recorded.
  t0 = std::chrono::steady_clock::now();
  after_ehlo(wrong + wrong + wrong);
  ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 150);
  EXPECT_EQ(penalty.delay("127.0.0.1:1").count(), 0);
}

TEST_F(SubmissionTest, AuthLinesMayBeLongOtherCommandsNot) {
  // RFC 4954 §4: 12288 octets for AUTH; a long initial response is read whole (and fails PLAIN).
  const std::string long_ir = b64(std::string(6000, 'a'));
  auto out = after_ehlo("AUTH PLAIN " + long_ir + "\r\nNOOP " + std::string(3000, 'x') + "\r\n" +
                        "AUTH PLAIN " + std::string(13000, 'A') + "\r\n" + login_ana());
  EXPECT_EQ(out, "535 5.7.8 Error: authentication credentials invalid\r\n500 5.5.2 Error: line too long\r\n"
                 "500 5.5.2 Error: line too long\r\n235 2.7.0 Authentication successful\r\n");
}

TEST_F(SubmissionTest, EnvelopeSenderMustBelongToTheUser) {
  auto out = after_ehlo(login_ana() + "MAIL FROM:<bob@example.org>\r\nMAIL FROM:<ana@example.net>\r\nRSET\r\n"
                        "MAIL FROM:<Sales@Example.org>\r\nRSET\r\nMAIL FROM:<x@example.com>\r\nRSET\r\nMAIL FROM:<>\r\n");
  EXPECT_EQ(out, "235 2.7.0 Authentication successful\r\n"
                 "553 5.7.1 Error: sender address not owned by the authenticated user\r\n"
                 "250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n"
                 "553 5.7.1 Error: sender address not owned by the authenticated user\r\n"
                 "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n");
  EXPECT_EQ(svc_.counters.sender_refused.load(), 2u);
}

TEST_F(SubmissionTest, FromAndSenderHeadersMustBelongToTheUser) {
  auto out = after_ehlo(login_ana() +
                        submit("ana@example.org", {"bob@example.org"},
                               "From: The Boss <bob@example.org>\r\nSubject: x\r\n\r\nbody\r\n") +
                        submit("ana@example.org", {"bob@example.org"},
                               "From: ana@example.org\r\nSender: carl@example.org\r\n\r\nbody\r\n") +
                        submit("ana@example.org", {"bob@example.org"}, "Subject: no author\r\n\r\nbody\r\n") +
                        submit("ana@example.org", {"bob@example.org"},
                               "From: \"Sales\" <sales@example.org>,\r\n ana@example.net (me)\r\n\r\nbody\r\n"));
  const std::regex id("queued as [0-9A-Za-z]+|delivered as [0-9A-F]+");
  EXPECT_EQ(std::regex_replace(out, id, "ID"),
            "235 2.7.0 Authentication successful\r\n"
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "550 5.7.1 Error: From: address <bob@example.org> does not belong to the authenticated user\r\n"
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "550 5.7.1 Error: Sender: address <carl@example.org> does not belong to the authenticated user\r\n"
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "550 5.7.1 Error: the message has no From: address\r\n"
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: ID\r\n");
  EXPECT_EQ(messages("bob@example.org").size(), 1u);
}

TEST_F(SubmissionTest, AddsDateAndMessageIdWhenMissingAndTracesTheClient) {
  auto out = after_ehlo(login_ana() + submit("ana@example.org", {"bob@example.org"}, kMsg) +
                        submit("ana@example.org", {"bob@example.org"},
                               "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n" + std::string(kMsg)));
  auto msgs = messages("bob@example.org");
  ASSERT_EQ(msgs.size(), 2u) << out;
  const auto& m = msgs[0];
  EXPECT_NE(m.find("Received: from laptop.home ([127.0.0.1])\r\n\t(using TLSv1.3 TLS_FAKE)\r\n"
                   "\tby submit.example.org (buzon) with ESMTPSA id "),
            std::string::npos)
      << m;
  EXPECT_TRUE(std::regex_search(m, std::regex("\r\nSubject: hi\r\nDate: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} "
                                               "[0-9:]{8} \\+0000\r\nMessage-ID: <[0-9a-f]{24}\\.[0-9]+@submit\\.example\\.org>"
                                               "\r\n\r\nhello\r\n$")))
      << m;
  EXPECT_EQ(msgs[1].find("Date: ", msgs[1].find("Date: ") + 1), std::string::npos);  // kept, not added twice
  EXPECT_EQ(msgs[1].find("Message-ID: <", msgs[1].find("Message-ID: <") + 1), std::string::npos);
}

TEST_F(SubmissionTest, HideClientLeavesNoAddressOrName) {
  svc_.settings.submission.hide_client = true;
  after_ehlo(login_ana() + submit("ana@example.org", {"bob@example.org"}, kMsg));
  auto msgs = messages("bob@example.org");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NE(msgs[0].find("Received: by submit.example.org (buzon) with ESMTPSA id "), std::string::npos) << msgs[0];
  EXPECT_EQ(msgs[0].find("127.0.0.1"), std::string::npos) << msgs[0];
  EXPECT_EQ(msgs[0].find("laptop.home"), std::string::npos) << msgs[0];
}

TEST_F(SubmissionTest, LocalOnlyIsDeliveredRemoteGoesToTheSpoolWithEveryRecipient) {
  auto out = after_ehlo(login_ana() + submit("ana@example.org", {"bob@example.org"}, kMsg));
  EXPECT_NE(out.find("250 2.0.0 Ok: delivered as "), std::string::npos) << out;
  EXPECT_TRUE(queued().empty());
  ASSERT_EQ(messages("bob@example.org").size(), 1u);

  // With a remote recipient, every recipient goes into one spool entry (one durable commit):
  // the relay delivers the local one.
  out = after_ehlo(login_ana() + "MAIL FROM:<ana@example.org> RET=HDRS ENVID=e1\r\n"
                   "RCPT TO:<friend@remote.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;friend@remote.example\r\n"
                   "RCPT TO:<bob@example.org>\r\nRCPT TO:<friend@remote.example>\r\nDATA\r\n" + kMsg + ".\r\n");
  EXPECT_NE(out.find("250 2.0.0 Ok: queued as "), std::string::npos) << out;
  EXPECT_EQ(messages("bob@example.org").size(), 1u);  // not delivered directly this time
  auto q = queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].sender, "ana@example.org");
  EXPECT_EQ(q[0].envid, "e1");
  EXPECT_TRUE(q[0].ret_hdrs);
  ASSERT_EQ(q[0].recipients.size(), 2u);
  EXPECT_EQ(q[0].recipients[0].address, "friend@remote.example");
  EXPECT_EQ(q[0].recipients[0].orcpt, "rfc822;friend@remote.example");
  EXPECT_FALSE(q[0].recipients[0].notify.success);
  EXPECT_TRUE(q[0].recipients[0].notify.delay);
  EXPECT_EQ(q[0].recipients[1].address, "bob@example.org");
  auto body = spool_->read_message(q[0].id);
  ASSERT_TRUE(body);
  EXPECT_TRUE(body->starts_with("Received: from laptop.home")) << *body;
  EXPECT_NE(body->find("\r\nMessage-ID: <"), std::string::npos);
  EXPECT_TRUE(body->ends_with("\r\n\r\nhello\r\n"));
  EXPECT_EQ(svc_.counters.queued.load(), 1u);
}

TEST_F(SubmissionTest, AliasesExpandBeforeTheSpool) {
  // Issue 10: a local alias's targets go into the spool entry as final addresses (the relay
  // resolves them as plain mailboxes), its forwards as they are; without a remote RCPT the
  // mailboxes get their copies directly and only the forward is queued.
  svc_.settings.recipients.aliases = auth::AliasFile::from_table(
      *auth::parse_aliases("team@example.org: ana@example.org, bob@example.org, far@remote.example\n"));
  auto out = after_ehlo(login_ana() + "MAIL FROM:<ana@example.org>\r\nRCPT TO:<team@example.org>\r\n"
                        "RCPT TO:<friend@remote.example>\r\nDATA\r\n" + kMsg + ".\r\n");
  EXPECT_NE(out.find("250 2.0.0 Ok: queued as "), std::string::npos) << out;
  auto q = queued();
  ASSERT_EQ(q.size(), 1u);
  std::vector<std::string> rcpts;
  for (const auto& r : q[0].recipients) rcpts.push_back(r.address);
  EXPECT_EQ(rcpts, (std::vector<std::string>{"ana@example.org", "bob@example.org", "far@remote.example",
                                             "friend@remote.example"}));
  EXPECT_TRUE(messages("bob@example.org").empty());
  std::filesystem::remove(dir_ / "env" / q[0].id);
  std::filesystem::remove(dir_ / "msg" / q[0].id);

  out = after_ehlo(login_ana() + "MAIL FROM:<ana@example.org>\r\nRCPT TO:<team@example.org>\r\nDATA\r\n" + kMsg +
                   ".\r\n");
  EXPECT_NE(out.find("250 2.0.0 Ok: delivered as "), std::string::npos) << out;
  EXPECT_EQ(messages("bob@example.org").size(), 1u);
  q = queued();
  ASSERT_EQ(q.size(), 1u);
  ASSERT_EQ(q[0].recipients.size(), 1u);
  EXPECT_EQ(q[0].recipients[0].address, "far@remote.example");
}

TEST_F(SubmissionTest, WithoutASpoolRemoteRecipientsAreRefused) {
  svc_.spool = nullptr;
  auto out = after_ehlo(login_ana() + "MAIL FROM:<ana@example.org>\r\nRCPT TO:<friend@remote.example>\r\n");
  EXPECT_EQ(out, "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n550 5.7.1 Error: relay access denied\r\n");
}

TEST_F(SubmissionTest, DkimSignsForTheAuthorsDomain) {
  auto pem = dkim::generate_key_pem(dkim::Algorithm::ed25519_sha256);
  ASSERT_TRUE(pem) << pem.error();
  auto key = dkim::Key::from_pem(*pem);
  ASSERT_TRUE(key) << key.error();
  svc_.dkim.push_back(dkim::Signer{"example.org", "s1", *key});
  svc_.dkim.push_back(dkim::Signer{"other.example", "s9", *key});
  svc_.dkim.push_back(dkim::Signer{"Example.ORG", "s2", *key});  // a second key of the domain signs too
  after_ehlo(login_ana() + submit("ana@example.org", {"bob@example.org"}, kMsg) +
             submit("ana@example.net", {"bob@example.org"}, "From: ana@example.net\r\n\r\nx\r\n"));
  auto msgs = messages("bob@example.org");
  ASSERT_EQ(msgs.size(), 2u);
  const auto sig = msgs[0].find("DKIM-Signature: ");
  ASSERT_NE(sig, std::string::npos) << msgs[0];
  EXPECT_LT(msgs[0].find("Received: "), sig);  // Received: above, unsigned
  EXPECT_LT(sig, msgs[0].find("From: Ana"));
  EXPECT_NE(msgs[0].find("d=example.org", sig), std::string::npos);
  EXPECT_NE(msgs[0].find("s=s1", sig), std::string::npos);
  EXPECT_NE(msgs[0].find("s=s2", sig), std::string::npos);
  EXPECT_EQ(msgs[0].find("s=s9"), std::string::npos);
  EXPECT_EQ(msgs[1].find("DKIM-Signature: "), std::string::npos);  // no key for example.net
  EXPECT_EQ(svc_.counters.signed_messages.load(), 1u);
}

TEST_F(SubmissionTest, MxModeOffersNoAuth) {
  svc_.settings.mode = Mode::smtp;
  auto out = after_ehlo(login_ana());
  EXPECT_EQ(out, "502 5.5.1 Error: authentication is not enabled\r\n");
}

// ---- Pure rules (submission.hpp) ----

TEST(SubmissionRules, MaySendAs) {
  const std::vector<std::string> local{"example.org", "example.net"};
  SenderAliases aliases{{"sales@example.org", {"ana"}}, {"@example.com", {"carl"}}};
  EXPECT_TRUE(may_send_as("ana", "ana@example.org", local, aliases));
  EXPECT_TRUE(may_send_as("ana", "ANA@Example.NET", local, aliases));
  EXPECT_FALSE(may_send_as("ana", "ana@example.com", local, aliases));
  EXPECT_TRUE(may_send_as("ana", "sales@example.org", local, aliases));
  EXPECT_FALSE(may_send_as("bob", "sales@example.org", local, aliases));
  EXPECT_TRUE(may_send_as("carl", "anyone@example.com", local, aliases));
  EXPECT_TRUE(may_send_as("bob@example.org", "bob@example.org", local, aliases));
  EXPECT_FALSE(may_send_as("bob@example.org", "bob@example.net", local, aliases));  // a full address is one address
  EXPECT_FALSE(may_send_as("ana", "\"ana\"@example.org", local, aliases));
  EXPECT_FALSE(may_send_as("ana", "", local, aliases));
}

TEST(SubmissionRules, ScanHeaders) {
  auto s = scan_headers("From: A <a@x.org>,\r\n\tb@y.org\r\nsender: c@z.org\r\nDATE: now\r\n\r\nFrom: body@x.org\r\n");
  EXPECT_EQ(s.from, (std::vector<std::string>{"a@x.org", "b@y.org"}));
  EXPECT_EQ(s.sender, (std::vector<std::string>{"c@z.org"}));
  EXPECT_TRUE(s.has_date);
  EXPECT_FALSE(s.has_message_id);
  EXPECT_EQ(s.end, std::string_view("From: A <a@x.org>,\r\n\tb@y.org\r\nsender: c@z.org\r\nDATE: now\r\n").size());
  auto none = scan_headers("no header line\r\n");
  EXPECT_EQ(none.end, 0u);
  EXPECT_TRUE(none.from.empty());
}

TEST(SubmissionRules, MissingFields) {
  HeaderScan s;
  auto f = missing_fields(s, "h.example", 0);
  EXPECT_TRUE(std::regex_match(f, std::regex("Date: Thu, 01 Jan 1970 00:00:00 \\+0000\r\nMessage-ID: <[0-9a-f]{24}\\.0@h\\.example>\r\n")))
      << f;
  s.has_date = s.has_message_id = true;
  EXPECT_EQ(missing_fields(s, "h", 0), "");
  EXPECT_NE(make_message_id("h", 1), make_message_id("h", 1));
}

}  // namespace
}  // namespace buzon::smtp
