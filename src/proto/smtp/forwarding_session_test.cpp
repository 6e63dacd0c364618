// proto/smtp/forwarding_session_test.cpp — aliases with several and remote targets in the real
// SMTP/LMTP session (issue 10): one RCPT becomes several local copies (one per mailbox, however
// many RCPTs or targets reach it) and remote forwards in one spool entry committed before the 250;
// a failed local copy withdraws the forwards; LMTP answers once per RCPT; a forward that comes
// back is refused as a loop. Memory store, table directory, a spool in a temporary directory.
#include "proto/smtp/server_session.hpp"

#include "core/mail_location.hpp"
#include "store/memory/memory_store.hpp"
#include "support/memory_stream.hpp"
#include "support/table_directory.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>

namespace buzon::smtp {
namespace {

using test::MemoryStream;

using Users = test::TableDirectory;

constexpr const char* kAliases =
    "team@example.org: ana@example.org, bob@example.org\n"
    "fwd@example.org: far@remote.example\n"
    "mixed@example.org: ana@example.org, far@remote.example, other@remote.example\n"
    "both@example.org: team@example.org, ana+x@example.org\n";

class ForwardingTest : public ::testing::Test {
 protected:
  ForwardingTest() {
    users_.add("ana@example.org");
    users_.add("bob@example.org");
    auto& s = svc_.settings;
    s.hostname = "mx.example.org";
    s.recipients.local_domains = {"example.org"};
    s.recipients.mail_template = "mail/%d/%n";
    s.recipients.base_dir = "/mem";
    s.recipients.aliases = auth::AliasFile::from_table(*auth::parse_aliases(kAliases));
    svc_.directory = &users_;
    svc_.delivery = &store_;
    svc_.pool = &pool_;
    dir_ = std::filesystem::temp_directory_path() /
           ("buzon-forwarding-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    spool_ = std::move(*queue::Spool::open(dir_));
    svc_.spool = spool_.get();
    svc_.on_enqueued = [this] { ++wakes_; };
  }
  ~ForwardingTest() override { std::filesystem::remove_all(dir_); }

  std::string box(const std::string& user) {
    return mail_location(svc_.settings.recipients.mail_template, svc_.settings.recipients.base_dir, user)->string();
  }
  std::vector<std::string> messages(const std::string& user) {
    std::vector<std::string> out;
    for (auto& m : store_.contents(box(user))) out.push_back(m.content);
    return out;
  }
  // The replies after the greeting and the EHLO/LHLO reply, ids masked.
  std::string session(const std::string& commands) {
    const bool lmtp = svc_.settings.mode == Mode::lmtp;
    auto s = std::make_unique<MemoryStream>(io_, (lmtp ? "LHLO c\r\n" : "EHLO c\r\n") + commands + "QUIT\r\n");
    auto rec = s->record();
    asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
    io_.restart();
    io_.run();
    std::string out = rec->output;
    // Drop the greeting and the EHLO reply (up to the line "250 CHUNKING"), and QUIT's reply.
    const auto head = out.find("250 CHUNKING\r\n");
    if (head != std::string::npos) out = out.substr(head + 14);
    if (const auto q = out.rfind("221 "); q != std::string::npos) out.resize(q);
    return std::regex_replace(out, std::regex("(delivered as) [0-9A-F]+"), "$1 ID");
  }
  std::vector<queue::Entry> queued() { return spool_->list(); }
  static std::vector<std::string> addresses(const queue::Entry& e) {
    std::vector<std::string> out;
    for (const auto& r : e.recipients) out.push_back(r.address);
    return out;
  }

  asio::io_context io_;
  net::WorkerPool pool_{2, 16};
  store::memory::MemoryStore store_;
  Users users_;
  Service svc_;
  std::filesystem::path dir_;
  std::unique_ptr<queue::Spool> spool_;
  int wakes_ = 0;
};

using V = std::vector<std::string>;
const std::string kAccepted = "250 2.1.0 Ok\r\n";
const std::string kRcptOk = "250 2.1.5 Ok\r\n";
const std::string kGoAhead = "354 End data with <CR><LF>.<CR><LF>\r\n";

TEST_F(ForwardingTest, AliasToTwoMailboxesOneCopyEach) {
  // team -> ana, bob; both -> team, ana+x; and ana named once more: one copy per mailbox.
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<team@example.org>\r\nRCPT TO:<both@example.org>\r\n"
                     "RCPT TO:<ana@example.org>\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kRcptOk + kRcptOk + kGoAhead + "250 2.0.0 Ok: delivered as ID\r\n");
  ASSERT_EQ(messages("ana@example.org").size(), 1u);
  ASSERT_EQ(messages("bob@example.org").size(), 1u);
  EXPECT_TRUE(messages("ana@example.org")[0].starts_with("Return-Path: <s@remote.example>\r\nDelivered-To: ana@example.org\r\n"));
  EXPECT_TRUE(messages("bob@example.org")[0].starts_with("Return-Path: <s@remote.example>\r\nDelivered-To: bob@example.org\r\n"));
  EXPECT_TRUE(queued().empty());  // nothing to forward
  EXPECT_EQ(wakes_, 0);
}

TEST_F(ForwardingTest, MixedLocalAndRemoteTargets) {
  auto out = session("MAIL FROM:<s@remote.example> RET=HDRS\r\nRCPT TO:<mixed@example.org>\r\nRCPT TO:<fwd@example.org>\r\n"
                     "DATA\r\nSubject: m\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kRcptOk + kGoAhead + "250 2.0.0 Ok: delivered as ID\r\n");
  EXPECT_EQ(messages("ana@example.org").size(), 1u);
  auto q = queued();
  ASSERT_EQ(q.size(), 1u);
  // The original envelope sender is kept (as Postfix does); one spool recipient per address.
  EXPECT_EQ(q[0].sender, "s@remote.example");
  EXPECT_TRUE(q[0].ret_hdrs);
  EXPECT_EQ(addresses(q[0]), (V{"far@remote.example", "other@remote.example"}));
  EXPECT_EQ(q[0].recipients[0].orcpt, "rfc822;mixed@example.org");  // a DSN names the alias used
  EXPECT_TRUE(is_xtext(q[0].recipients[0].orcpt.substr(7)));
  // The forwarded message: our Received:, one Delivered-To: per forwarding alias, then the
  // original message unchanged.
  auto body = *spool_->read_message(q[0].id);
  EXPECT_TRUE(body.starts_with("Received: from c ")) << body;
  EXPECT_NE(body.find("\r\nDelivered-To: mixed@example.org\r\nDelivered-To: fwd@example.org\r\nSubject: m\r\n\r\nbody\r\n"),
            std::string::npos)
      << body;
  EXPECT_EQ(wakes_, 1);
  EXPECT_EQ(svc_.counters.queued.load(), 1u);
}

TEST_F(ForwardingTest, FailedLocalCopyWithdrawsTheForwards) {
  store_.set_broken(box("ana@example.org"), store::StoreErrc::quota);
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<mixed@example.org>\r\nDATA\r\nx\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kGoAhead + "452 4.2.2 Error: mailbox full, try again later\r\n");
  EXPECT_TRUE(queued().empty());  // the client retries: nothing was forwarded meanwhile
  EXPECT_EQ(wakes_, 0);
}

TEST_F(ForwardingTest, LmtpRepliesOncePerRcptAndKeepsOnlyTheForwardsOfAcceptedOnes) {
  svc_.settings.mode = Mode::lmtp;
  svc_.settings.recipients.require_local_domain = false;
  store_.set_broken(box("bob@example.org"), store::StoreErrc::temp);
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<mixed@example.org>\r\nRCPT TO:<team@example.org>\r\n"
                     "RCPT TO:<fwd@example.org>\r\nDATA\r\nx\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kRcptOk + kRcptOk + kGoAhead +
                     "250 2.0.0 <mixed@example.org> Ok: delivered as ID\r\n"
                     "451 4.3.0 Error: local delivery failed, try again later\r\n"
                     "250 2.0.0 <fwd@example.org> Ok: delivered as ID\r\n");
  EXPECT_EQ(messages("ana@example.org").size(), 1u);
  auto q = queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(addresses(q[0]), (V{"far@remote.example", "other@remote.example"}));
}

TEST_F(ForwardingTest, LmtpFailedRcptTakesItsOwnForwardsBack) {
  svc_.settings.mode = Mode::lmtp;
  svc_.settings.recipients.require_local_domain = false;
  store_.set_broken(box("ana@example.org"), store::StoreErrc::temp);
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<mixed@example.org>\r\nRCPT TO:<fwd@example.org>\r\n"
                     "DATA\r\nx\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kRcptOk + kGoAhead +
                     "451 4.3.0 Error: local delivery failed, try again later\r\n"
                     "250 2.0.0 <fwd@example.org> Ok: delivered as ID\r\n");
  auto q = queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(addresses(q[0]), V{"far@remote.example"});  // other@ belonged to the failed RCPT only
  // Its ORCPT and NOTIFY are those of the first RCPT that reached it, even when that one failed.
  EXPECT_EQ(q[0].recipients[0].orcpt, "rfc822;mixed@example.org");
  EXPECT_EQ(wakes_, 1);
}

TEST_F(ForwardingTest, OrcptOfAForwardIsXtextAndAClientsOwnOrcptIsKept) {
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<fwd+a=b@example.org>\r\n"
                     "RCPT TO:<mixed@example.org> ORCPT=rfc822;first@elsewhere.example NOTIFY=NEVER\r\nDATA\r\nx\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kRcptOk + kGoAhead + "250 2.0.0 Ok: delivered as ID\r\n");
  auto q = queued();
  ASSERT_EQ(q.size(), 1u);
  ASSERT_EQ(addresses(q[0]), (V{"far@remote.example", "other@remote.example"}));
  EXPECT_EQ(q[0].recipients[0].orcpt, "rfc822;fwd+2Ba+3Db@example.org");  // the first RCPT to reach it
  EXPECT_EQ(q[0].recipients[1].orcpt, "rfc822;first@elsewhere.example");
  EXPECT_TRUE(q[0].recipients[1].notify.never);
  auto body = *spool_->read_message(q[0].id);
  EXPECT_NE(body.find("\r\nDelivered-To: fwd@example.org\r\nDelivered-To: mixed@example.org\r\n"), std::string::npos);
}

TEST_F(ForwardingTest, AForwardThatComesBackIsALoop) {
  // What a remote forwarder sends back: our own Delivered-To: of the alias.
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<fwd@example.org>\r\nDATA\r\n"
                     "Delivered-To: far@remote.example\r\nDelivered-To: FWD@example.org\r\nSubject: x\r\n\r\nx\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kGoAhead + "554 5.4.6 Error: mail loop detected\r\n");
  EXPECT_TRUE(queued().empty());
}

TEST_F(ForwardingTest, AForwardThatComesBackToATaggedFormIsALoopToo) {
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<fwd+x@example.org>\r\nDATA\r\n"
                     "Delivered-To: fwd@example.org\r\n\r\nx\r\n.\r\n");
  EXPECT_EQ(out, kAccepted + kRcptOk + kGoAhead + "554 5.4.6 Error: mail loop detected\r\n");
  EXPECT_TRUE(queued().empty());
}

TEST_F(ForwardingTest, WithoutASpoolAForwardIsRefusedNotDropped) {
  svc_.spool = nullptr;
  auto out = session("MAIL FROM:<s@remote.example>\r\nRCPT TO:<fwd@example.org>\r\nRCPT TO:<team@example.org>\r\n");
  EXPECT_EQ(out, kAccepted + "451 4.3.0 Error: temporary failure looking up the recipient\r\n" + kRcptOk);
}

}  // namespace
}  // namespace buzon::smtp
