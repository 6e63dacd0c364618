// relay/relay_test.cpp — the relay against a scripted SMTP peer on a real loopback socket, a fake
// resolver, a fake Delivery and a real Spool in a temporary directory.
#include "relay/relay.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

namespace buzon::relay {
namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
using queue::RcptState;

struct FakeResolver : dns::Resolver {
  std::map<std::string, dns::DnsResult<std::vector<dns::MxRecord>>> mxs;
  dns::DnsResult<std::vector<dns::MxRecord>> mx(std::string_view domain) override {
    if (auto it = mxs.find(std::string(domain)); it != mxs.end()) return it->second;
    return std::unexpected(dns::DnsError{dns::DnsErrc::nxdomain, std::string(domain) + ": no such domain"});
  }
  dns::DnsResult<std::vector<std::string>> addresses(std::string_view host) override {
    if (host == "dead.b.test") return std::vector<std::string>{"127.0.0.9"};  // nothing listens there
    if (host == "gone.b.test") return std::unexpected(dns::DnsError{dns::DnsErrc::nxdomain, "gone.b.test: no address"});
    return std::vector<std::string>{"127.0.0.1"};
  }
};

struct FakeDelivery : store::Delivery {
  std::vector<std::pair<store::DeliveryCopy, std::string>> got;
  std::vector<store::Result<void>> deliver(std::span<const store::DeliveryCopy> copies,
                                           std::span<const std::string_view> parts, store::DeliveryMode) override {
    std::string msg;
    for (auto p : parts) msg += p;
    std::vector<store::Result<void>> out;
    for (auto& c : copies) {
      got.emplace_back(c, c.prefix + msg);
      out.emplace_back();
    }
    return out;
  }
};

struct FakeDirectory : auth::Directory {
  std::optional<auth::User> lookup(std::string_view name) const override {
    if (name == "alice@a.test" || name == "alice") return auth::User{std::string(name), "", {}, {}, "", ""};
    return std::nullopt;
  }
};

// A scripted SMTP server: one connection at a time, answers from the script.
struct Peer {
  explicit Peer(asio::io_context& io) : acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port = acceptor.local_endpoint().port();
    asio::co_spawn(io, run(), asio::detached);
  }
  std::string ehlo = "250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000\r\n";
  std::map<std::string, std::string> rcpt_replies;  // address -> reply; default 250
  std::string final_reply = "250 2.0.0 queued as X";
  std::vector<std::string> commands;
  std::vector<std::string> messages;
  asio::ip::tcp::acceptor acceptor;
  std::uint16_t port = 0;
  int connections = 0;
  bool close_after_data = false;

  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(kTuple);
      if (ec) co_return;
      ++connections;
      co_await session(std::move(sock));
    }
  }
  asio::awaitable<void> session(asio::ip::tcp::socket sock) {
    asio::streambuf buf;
    auto say = [&](std::string s) -> asio::awaitable<bool> {
      auto [ec, n] = co_await asio::async_write(sock, asio::buffer(s), kTuple);
      co_return !ec;
    };
    auto line = [&]() -> asio::awaitable<std::optional<std::string>> {
      auto [ec, n] = co_await asio::async_read_until(sock, buf, "\r\n", kTuple);
      if (ec) co_return std::nullopt;
      std::string l(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n) - 2);
      buf.consume(n);
      co_return l;
    };
    co_await say("220 peer.test ESMTP\r\n");
    for (;;) {
      auto l = co_await line();
      if (!l) co_return;
      commands.push_back(*l);
      if (l->starts_with("EHLO")) co_await say(ehlo);
      else if (l->starts_with("MAIL")) co_await say("250 2.1.0 ok\r\n");
      else if (l->starts_with("RCPT")) {
        auto a = l->substr(l->find('<') + 1);
        a = a.substr(0, a.find('>'));
        std::string reply = "250 2.1.5 ok\r\n";
        if (auto it = rcpt_replies.find(a); it != rcpt_replies.end()) reply = it->second + "\r\n";
        co_await say(reply);
      } else if (*l == "DATA") {
        co_await say("354 go\r\n");
        std::string m;
        for (;;) {
          auto d = co_await line();
          if (!d) co_return;
          if (*d == ".") break;
          m += (d->starts_with("..") ? d->substr(1) : *d) + "\r\n";
        }
        messages.push_back(m);
        co_await say(final_reply + "\r\n");
        if (close_after_data) co_return;  // like a peer's idle timeout on a kept connection
      } else if (*l == "QUIT") {
        co_await say("221 bye\r\n");
        co_return;
      } else if (*l == "RSET") co_await say("250 ok\r\n");
      else if (l->starts_with("AUTH PLAIN ")) co_await say("235 2.7.0 ok\r\n");
      else co_await say("502 no\r\n");
    }
  }
};

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("relay_test_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    auto s = queue::Spool::open(dir);
    ASSERT_TRUE(s) << s.error();
    spool = std::move(*s);
    resolver.mxs["b.test"] = std::vector<dns::MxRecord>{{10, "mx.b.test"}};
    resolver.mxs["null.test"] = std::vector<dns::MxRecord>{{0, ""}};
    opt.hostname = "mx.a.test";
    opt.port = peer.port;
    opt.tls = TlsPolicy::none;
    opt.local.local_domains = {"a.test"};
    opt.local.base_dir = dir;
    opt.connect_timeout = std::chrono::seconds(5);
    opt.command_timeout = std::chrono::seconds(5);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  std::string enqueue(std::string sender, std::vector<std::string> rcpts, bool utf8 = false) {
    queue::NewMessage m;
    m.sender = std::move(sender);
    for (auto& r : rcpts) {
      queue::Recipient rc;
      rc.address = r;
      m.recipients.push_back(rc);
    }
    m.smtputf8 = utf8;
    const std::string_view parts[] = {message};
    auto id = spool->enqueue(m, parts, std::chrono::floor<std::chrono::seconds>(queue::Clock::now()));
    EXPECT_TRUE(id) << id.error();
    return id ? *id : "";
  }
  void run(std::function<queue::TimePoint()> clock = {}) {
    Relay relay(io.get_executor(), Services{spool.get(), &resolver, &delivery, &directory, &pool}, opt);
    if (clock) relay.set_clock(std::move(clock));
    bool finished = false;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      co_await relay.run_once();
      finished = true;
    }, asio::detached);
    while (!finished && io.run_one_for(std::chrono::seconds(10))) {
    }
    ASSERT_TRUE(finished);
  }

  asio::io_context io;
  Peer peer{io};
  std::filesystem::path dir;
  std::unique_ptr<queue::Spool> spool;
  FakeResolver resolver;
  FakeDelivery delivery;
  FakeDirectory directory;
  net::WorkerPool pool{2, 16};
  Options opt;
  std::string message = "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: hi\r\n\r\nHello Bob.\r\n.dot line\r\n";
};

TEST_F(RelayTest, DeliversAndRemovesTheEntry) {
  enqueue("alice@a.test", {"bob@b.test"});
  run();
  ASSERT_EQ(peer.messages.size(), 1u);
  EXPECT_EQ(peer.messages[0], message);
  EXPECT_TRUE(spool->list().empty());
  EXPECT_TRUE(delivery.got.empty());  // no DSN
}

TEST_F(RelayTest, PartialRefusalDeliversTheRestAndBouncesLocally) {
  peer.rcpt_replies["carol@b.test"] = "550 5.1.1 no such user";
  enqueue("alice@a.test", {"bob@b.test", "carol@b.test"});
  run();
  ASSERT_EQ(peer.messages.size(), 1u);
  EXPECT_TRUE(spool->list().empty());
  // The failure DSN went straight into alice's local mailbox.
  ASSERT_EQ(delivery.got.size(), 1u);
  const auto& dsn = delivery.got[0].second;
  EXPECT_TRUE(dsn.starts_with("Return-Path: <>\r\n")) << dsn.substr(0, 200);
  EXPECT_NE(dsn.find("multipart/report"), std::string::npos);
  EXPECT_NE(dsn.find("carol@b.test"), std::string::npos);
  EXPECT_NE(dsn.find("5.1.1"), std::string::npos);
}

TEST_F(RelayTest, TemporaryRefusalStaysPendingWithBackoff) {
  peer.rcpt_replies["bob@b.test"] = "451 4.3.0 try later";
  auto id = enqueue("alice@a.test", {"bob@b.test"});
  run();
  auto e = spool->load(id);
  ASSERT_TRUE(e) << e.error();
  ASSERT_EQ(e->recipients.size(), 1u);
  EXPECT_EQ(e->recipients[0].state, RcptState::pending);
  EXPECT_EQ(e->recipients[0].attempts, 1u);
  EXPECT_NE(e->recipients[0].last_reply.find("451"), std::string::npos);
  EXPECT_EQ(e->attempts, 1u);
  EXPECT_GT(e->next_attempt, e->created);
  EXPECT_TRUE(peer.messages.empty());
  EXPECT_TRUE(delivery.got.empty());
}

TEST_F(RelayTest, NullMxFailsAtOnceAndNullSenderGetsNoBounce) {
  enqueue("", {"x@null.test"});
  run();
  EXPECT_TRUE(spool->list().empty());
  EXPECT_TRUE(delivery.got.empty());
  EXPECT_TRUE(peer.commands.empty());
}

TEST_F(RelayTest, NullMxBouncesWith556) {
  enqueue("alice@a.test", {"x@null.test"});
  run();
  EXPECT_TRUE(spool->list().empty());
  ASSERT_EQ(delivery.got.size(), 1u);
  EXPECT_NE(delivery.got[0].second.find("5.1.10"), std::string::npos);
}

TEST_F(RelayTest, TooBigForThePeerFailsBeforeSending) {
  peer.ehlo = "250-peer.test\r\n250 SIZE 10\r\n";
  enqueue("alice@a.test", {"bob@b.test"});
  run();
  EXPECT_TRUE(peer.messages.empty());
  for (auto& c : peer.commands) EXPECT_FALSE(c.starts_with("MAIL")) << c;
  ASSERT_EQ(delivery.got.size(), 1u);
  EXPECT_NE(delivery.got[0].second.find("5.3.4"), std::string::npos);
}

TEST_F(RelayTest, MissingSmtputf8FailsWith567) {
  enqueue("alice@a.test", {"bob@b.test"}, true);
  run();
  EXPECT_TRUE(peer.messages.empty());
  ASSERT_EQ(delivery.got.size(), 1u);
  EXPECT_NE(delivery.got[0].second.find("5.6.7"), std::string::npos);
}

TEST_F(RelayTest, LocalRecipientsGoThroughDelivery) {
  enqueue("bob@b.test", {"alice@a.test", "nobody@a.test"});
  run();
  // alice got the message; nobody failed -> a DSN for bob@b.test, queued (remote sender).
  ASSERT_EQ(delivery.got.size(), 1u);
  EXPECT_EQ(delivery.got[0].second.rfind("Return-Path: <bob@b.test>\r\nDelivered-To: alice@a.test\r\n", 0), 0u);
  auto left = spool->list();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].sender, "");
  ASSERT_EQ(left[0].recipients.size(), 1u);
  EXPECT_EQ(left[0].recipients[0].address, "bob@b.test");
}

TEST_F(RelayTest, TransportOverrideNeedsNoDns) {
  opt.transports["elsewhere.test"] = Target{"127.0.0.1", peer.port};  // no MX for it in the resolver
  enqueue("alice@a.test", {"zoe@elsewhere.test"});
  run();
  ASSERT_EQ(peer.messages.size(), 1u);
  EXPECT_TRUE(spool->list().empty());
}

TEST_F(RelayTest, UnknownDomainFailsWith512) {
  enqueue("alice@a.test", {"x@nowhere.test"});
  run();
  EXPECT_TRUE(spool->list().empty());
  ASSERT_EQ(delivery.got.size(), 1u);
  EXPECT_NE(delivery.got[0].second.find("5.1.2"), std::string::npos);
}

TEST_F(RelayTest, TemporaryDataReplyKeepsEveryAcceptedRecipientPending) {
  peer.final_reply = "452 4.3.1 disk full";
  auto id = enqueue("alice@a.test", {"bob@b.test", "carol@b.test"});
  run();
  auto e = spool->load(id);
  ASSERT_TRUE(e) << e.error();
  for (auto& r : e->recipients) {
    EXPECT_EQ(r.state, RcptState::pending) << r.address;
    EXPECT_EQ(r.remote_mta, "mx.b.test");
  }
}

TEST_F(RelayTest, ExpiredEntryBouncesWithoutTrying) {
  opt.retry.max_age = std::chrono::seconds(60);
  enqueue("alice@a.test", {"bob@b.test"});
  run([] { return std::chrono::floor<std::chrono::seconds>(queue::Clock::now()) + std::chrono::hours(1); });
  EXPECT_TRUE(peer.commands.empty());
  EXPECT_TRUE(spool->list().empty());
  ASSERT_EQ(delivery.got.size(), 1u);
  EXPECT_NE(delivery.got[0].second.find("5.4.7"), std::string::npos);
}

TEST_F(RelayTest, SmarthostGetsEverythingWithAuth) {
  peer.ehlo = "250-peer.test\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n";
  opt.smarthost = Target{"127.0.0.1", peer.port};
  opt.auth_user = "relay";
  opt.auth_password = "pw";
  enqueue("alice@a.test", {"zoe@nowhere.test"});  // no MX needed: the smarthost takes it
  run();
  ASSERT_EQ(peer.messages.size(), 1u);
  EXPECT_NE(std::find(peer.commands.begin(), peer.commands.end(), "AUTH PLAIN AHJlbGF5AHB3"), peer.commands.end());
  EXPECT_TRUE(spool->list().empty());
}

TEST_F(RelayTest, PartialRefusalWithoutPipelining) {
  peer.ehlo = "250-peer.test\r\n250 8BITMIME\r\n";
  peer.rcpt_replies["carol@b.test"] = "550 5.1.1 no such user";
  peer.rcpt_replies["dave@b.test"] = "450 4.2.1 mailbox busy";
  auto id = enqueue("alice@a.test", {"carol@b.test", "bob@b.test", "dave@b.test"});
  run();
  ASSERT_EQ(peer.messages.size(), 1u);
  EXPECT_EQ(peer.messages[0], message);
  auto e = spool->load(id);
  ASSERT_TRUE(e) << e.error();
  EXPECT_EQ(e->recipients[0].state, RcptState::failed);
  EXPECT_EQ(e->recipients[1].state, RcptState::delivered);
  EXPECT_EQ(e->recipients[2].state, RcptState::pending);
  EXPECT_TRUE(delivery.got.empty());  // the failure DSN waits until the entry is finished
}

TEST_F(RelayTest, TriesEachMxHostInTurn) {
  resolver.mxs["b.test"] = std::vector<dns::MxRecord>{{30, "mx.b.test"}, {10, "gone.b.test"}, {20, "dead.b.test"}};
  enqueue("alice@a.test", {"bob@b.test"});
  run();
  ASSERT_EQ(peer.messages.size(), 1u);  // gone (no address), dead (refused), then mx.b.test
  EXPECT_TRUE(spool->list().empty());
}

TEST_F(RelayTest, NoMxHostAnswersStaysPending) {
  resolver.mxs["b.test"] = std::vector<dns::MxRecord>{{10, "dead.b.test"}};
  auto id = enqueue("alice@a.test", {"bob@b.test"});
  run();
  auto e = spool->load(id);
  ASSERT_TRUE(e) << e.error();
  EXPECT_EQ(e->recipients[0].state, RcptState::pending);
  EXPECT_NE(e->recipients[0].last_reply.find("4.4.1"), std::string::npos) << e->recipients[0].last_reply;
  EXPECT_NE(e->recipients[0].last_reply.find("127.0.0.9"), std::string::npos) << e->recipients[0].last_reply;
}

TEST_F(RelayTest, ReusesOneConnectionForSeveralMessagesToTheSameHost) {
  opt.max_per_domain = 1;  // the second and third message wait for the first connection
  enqueue("alice@a.test", {"bob@b.test"});
  enqueue("alice@a.test", {"carol@b.test"});
  enqueue("alice@a.test", {"dave@b.test"});
  run();
  EXPECT_EQ(peer.messages.size(), 3u);
  EXPECT_EQ(peer.connections, 1);
  EXPECT_EQ(std::count(peer.commands.begin(), peer.commands.end(), "QUIT"), 1);
  EXPECT_TRUE(spool->list().empty());
}

TEST_F(RelayTest, StaleReusedConnectionFallsBackToAFreshOne) {
  opt.max_per_domain = 1;
  peer.close_after_data = true;
  enqueue("alice@a.test", {"bob@b.test"});
  enqueue("alice@a.test", {"carol@b.test"});
  run();
  EXPECT_EQ(peer.messages.size(), 2u);
  EXPECT_EQ(peer.connections, 2);
  EXPECT_TRUE(spool->list().empty());
  EXPECT_TRUE(delivery.got.empty());  // nothing bounced
}

}  // namespace
}  // namespace buzon::relay

namespace buzon::relay {
namespace {

// The submission session wakes the relay after a durable enqueue: the message leaves at once, not
// at the next scan (scan_interval here is a minute).
TEST_F(RelayTest, WakeScansAtOnceInsteadOfWaitingForTheInterval) {
  opt.scan_interval = std::chrono::seconds(60);
  Relay relay(io.get_executor(), Services{spool.get(), &resolver, &delivery, &directory, &pool}, opt);
  relay.start();
  for (int i = 0; i < 50 && io.run_one_for(std::chrono::milliseconds(20));) ++i;  // first scan: empty spool
  enqueue("alice@a.test", {"bob@b.test"});
  relay.wake();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((peer.messages.empty() || relay.in_flight() > 0) && std::chrono::steady_clock::now() < deadline)
    io.run_one_for(std::chrono::milliseconds(50));
  relay.stop();
  // Let the scan loop see the stop before the relay goes away (nothing may outlive it).
  for (int i = 0; i < 100 && io.run_one_for(std::chrono::milliseconds(20));) ++i;
  ASSERT_EQ(peer.messages.size(), 1u) << "woken relay delivered before its 60 s interval";
  EXPECT_EQ(peer.messages[0], message);
  EXPECT_TRUE(spool->list().empty());
}

// A backlog larger than one scan may start (max_connections * 4 in flight) does not wait for the
// next scan: each finished delivery wakes the scan loop (after a restart with a full spool, the
// rest used to leave 4 per scan_interval).
TEST_F(RelayTest, BacklogBeyondTheInFlightCapDrainsWithoutWaitingForTheInterval) {
  opt.scan_interval = std::chrono::seconds(60);
  opt.max_connections = 1;
  for (int i = 0; i < 10; ++i) enqueue("alice@a.test", {"bob@b.test"});
  Relay relay(io.get_executor(), Services{spool.get(), &resolver, &delivery, &directory, &pool}, opt);
  relay.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((peer.messages.size() < 10 || relay.in_flight() > 0) && std::chrono::steady_clock::now() < deadline)
    io.run_one_for(std::chrono::milliseconds(50));
  relay.stop();
  for (int i = 0; i < 100 && io.run_one_for(std::chrono::milliseconds(20));) ++i;
  EXPECT_EQ(peer.messages.size(), 10u) << "the whole backlog left before the 60 s interval";
  EXPECT_TRUE(spool->list().empty());
}

// The server destroys the relay's io_context before the relay (the coroutines that refer to the
// relay go first). The relay's timer must not outlive the io_context: found by UBSan in
// `make sanitize` (~Relay cancelled a timer whose service was gone), so this test is the
// The server stops the relay's loop, then calls stop(), then destroys the loop before the relay:
// connections parked for reuse must be gone by then (their timers belong to the loop).
TEST_F(RelayTest, StopReleasesParkedConnections) {
  opt.scan_interval = std::chrono::seconds(60);
  auto relay = std::make_unique<Relay>(io.get_executor(),
                                       Services{spool.get(), &resolver, &delivery, &directory, &pool}, opt);
  relay->start();
  for (int i = 0; i < 50 && io.run_one_for(std::chrono::milliseconds(20));) ++i;
  enqueue("alice@a.test", {"bob@b.test"});
  relay->wake();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((peer.messages.empty() || relay->in_flight() > 0) && std::chrono::steady_clock::now() < deadline)
    io.run_one_for(std::chrono::milliseconds(50));
  ASSERT_EQ(peer.messages.size(), 1u);
  ASSERT_EQ(relay->idle_connections(), 1u) << "the clean session was not parked for reuse";
  relay->stop();
  EXPECT_EQ(relay->idle_connections(), 0u);
  for (int i = 0; i < 100 && io.run_one_for(std::chrono::milliseconds(20));) ++i;
  relay.reset();
}

// regression test under ASan+UBSan.
TEST_F(RelayTest, StoppedRelayOutlivesItsIoContext) {
  auto loop = std::make_unique<asio::io_context>();
  auto relay = std::make_unique<Relay>(loop->get_executor(),
                                       Services{spool.get(), &resolver, &delivery, &directory, &pool}, opt);
  relay->start();
  for (int i = 0; i < 20 && loop->run_one_for(std::chrono::milliseconds(10));) ++i;
  relay->stop();
  loop.reset();
  relay.reset();
  SUCCEED();
}

}  // namespace
}  // namespace buzon::relay
