// The POP3 client session against the real server session (over an in-memory duplex pipe, with
// the memory store) and against scripted servers (MemoryStream) for the error paths.
#include "proto/pop3/client_session.hpp"

#include "proto/pop3/server_session.hpp"
#include "store/memory/memory_store.hpp"
#include "support/memory_stream.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <map>

namespace buzon::pop3 {
namespace {

// Two connected in-memory streams: what one writes, the other reads (in chunks of at most
// `read_size`, to exercise partial reads).
struct Pipe {
  struct Dir {
    std::string data;
    std::unique_ptr<asio::steady_timer> wake;
  };
  Dir dirs[2];
  bool closed = false;
  std::size_t read_size = 1 << 20;
};

class PipeEnd final : public net::Stream {
 public:
  PipeEnd(asio::io_context& io, std::shared_ptr<Pipe> p, int side) : io_(io), p_(std::move(p)), side_(side) {
    if (!p_->dirs[side].wake) p_->dirs[side].wake = std::make_unique<asio::steady_timer>(io);
  }
  asio::awaitable<net::IoResult> read_some(std::span<char> buf) override {
    auto& in = p_->dirs[side_];
    co_await asio::post(io_, asio::use_awaitable);
    // Like a socket: the end that closed itself reads nothing more (buffered data is gone with it);
    // the other end drains what was sent, then sees EOF.
    if (self_closed_) co_return net::IoResult{asio::error::operation_aborted, 0};
    while (in.data.empty() && !p_->closed) {
      in.wake->expires_at(asio::steady_timer::time_point::max());
      co_await in.wake->async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
    if (self_closed_) co_return net::IoResult{asio::error::operation_aborted, 0};
    if (in.data.empty()) co_return net::IoResult{asio::error::eof, 0};
    std::size_t n = std::min({buf.size(), in.data.size(), p_->read_size});
    std::memcpy(buf.data(), in.data.data(), n);
    in.data.erase(0, n);
    co_return net::IoResult{{}, n};
  }
  asio::awaitable<net::IoResult> write_all(std::span<const char> buf) override {
    co_await asio::post(io_, asio::use_awaitable);
    if (p_->closed) co_return net::IoResult{asio::error::broken_pipe, 0};
    auto& out = p_->dirs[1 - side_];
    out.data.append(buf.data(), buf.size());
    if (out.wake) out.wake->cancel();
    co_return net::IoResult{{}, buf.size()};
  }
  void close() override {
    self_closed_ = true;
    p_->closed = true;
    for (auto& d : p_->dirs)
      if (d.wake) d.wake->cancel();
  }
  asio::any_io_executor get_executor() override { return io_.get_executor(); }
  std::string peer() const override { return "127.0.0.1:110"; }
  bool peer_is_loopback() const override { return loopback; }
  bool loopback = true;

 private:
  asio::io_context& io_;
  std::shared_ptr<Pipe> p_;
  int side_;
  bool self_closed_ = false;
};

class TableDirectory final : public auth::Directory {
 public:
  void add(std::string name, std::string password) { users_[name] = auth::User{name, std::move(password)}; }
  std::optional<auth::User> lookup(std::string_view name) const override {
    auto it = users_.find(std::string(name));
    if (it == users_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, auth::User> users_;
};

// Collects messages; commit() makes them "durable" (moves them to `committed`).
class VectorSink final : public RetrieveSink {
 public:
  asio::awaitable<std::expected<void, std::string>> begin(const RemoteMessage& m) override {
    cur = {m.uid, ""};
    co_return std::expected<void, std::string>{};
  }
  asio::awaitable<std::expected<void, std::string>> data(std::string_view c) override {
    cur.second += c;
    co_return std::expected<void, std::string>{};
  }
  asio::awaitable<std::expected<void, std::string>> end() override {
    ended.push_back(cur);
    co_return std::expected<void, std::string>{};
  }
  void abort() override { ++aborted; }
  asio::awaitable<std::expected<void, std::string>> commit() override {
    ++commits;
    committed.insert(committed.end(), ended.begin(), ended.end());
    ended.clear();
    co_return std::expected<void, std::string>{};
  }
  std::pair<std::string, std::string> cur;
  std::vector<std::pair<std::string, std::string>> ended, committed;
  int aborted = 0, commits = 0;
};

constexpr const char* kBox = "/mem/mail/ana";

class ClientVsServer : public ::testing::TestWithParam<std::tuple<bool, std::size_t>> {
 protected:
  ClientVsServer() {
    dir_.add("ana", "{PLAIN}secret word");
    svc_.directory = &dir_;
    svc_.store = &store_;
    svc_.pool = &pool_;
    svc_.settings.mail_template = "mail/%n";
    svc_.settings.base_dir = "/mem";
  }

  // Runs `client` against a server session; returns when both are done.
  template <class F>
  void run(F client) {
    auto pipe = std::make_shared<Pipe>();
    pipe->read_size = std::get<1>(GetParam());
    auto server_end = std::make_unique<PipeEnd>(io_, pipe, 0);
    auto client_end = std::make_unique<PipeEnd>(io_, pipe, 1);
    asio::co_spawn(io_, serve_session(std::move(server_end), svc_), asio::detached);
    bool done = false;
    asio::co_spawn(io_, [&, c = std::move(client_end)]() mutable -> asio::awaitable<void> {
      co_await client(std::move(c));
      done = true;
    }, asio::detached);
    io_.run();
    EXPECT_TRUE(done);
  }

  asio::io_context io_;
  net::WorkerPool pool_{2, 16};
  store::memory::MemoryStore store_;
  TableDirectory dir_;
  Service svc_;
};

TEST_P(ClientVsServer, LoginListRetrieveDeleteQuit) {
  const bool pipelining = std::get<0>(GetParam());
  const std::vector<std::string> raw{"Subject: one\r\n\r\nbody one\r\n", "Subject: two\n\n.dot line\n..two\nend",
                                     std::string("Subject: big\n\n") + std::string(60000, 'x') + "\n.\n"};
  for (std::size_t i = 0; i < raw.size(); ++i) store_.add(kBox, raw[i], "uid-" + std::to_string(i + 1));
  VectorSink sink;
  RetrieveResult result;
  run([&](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
    ClientSession c(std::move(s), ClientOptions{std::chrono::seconds(10), LineEnds::lf});
    EXPECT_TRUE(co_await c.greeting());
    auto caps = co_await c.capa();
    EXPECT_TRUE(caps && caps->pipelining && caps->uidl && caps->top);
    AuthOptions a;
    a.user = "ana";
    a.password = "secret word";
    a.preference = {AuthMethod::user};
    auto m = co_await c.authenticate(a);
    EXPECT_TRUE(m) << (m ? "" : m.error().message);
    auto list = co_await c.list();
    EXPECT_TRUE(list);
    if (!list) co_return;
    EXPECT_EQ(list->size(), 3u);
    EXPECT_EQ((*list)[1].uid, "uid-2");
    RetrieveOptions o;
    o.pipelining = pipelining;
    o.dele = true;
    o.commit_messages = 2;
    auto r = co_await c.retrieve(*list, sink, o);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (r) result = *r;
    EXPECT_TRUE(co_await c.quit());
  });
  ASSERT_EQ(sink.committed.size(), 3u);
  EXPECT_EQ(sink.committed[0].second, "Subject: one\n\nbody one\n");
  EXPECT_EQ(sink.committed[1].second, "Subject: two\n\n.dot line\n..two\nend\n");
  EXPECT_EQ(sink.committed[2].second, std::string("Subject: big\n\n") + std::string(60000, 'x') + "\n.\n");
  EXPECT_EQ(sink.commits, 2);  // 2 + 1
  EXPECT_EQ(result.retrieved, 3u);
  EXPECT_EQ(result.deleted, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_TRUE(store_.contents(kBox).empty()) << "QUIT must have committed the deletions";
}

TEST_P(ClientVsServer, DisconnectBeforeQuitDeletesNothingAndAbortsPartialMessage) {
  if (std::get<1>(GetParam()) < 4096) GTEST_SKIP() << "2 MiB in tiny reads is slow; covered by the large read sizes";
  store_.add(kBox, "Subject: a\n\na\n", "uid-a");
  // Larger than the client's read buffer, so the cut is noticed in the middle of the message.
  store_.add(kBox, std::string("Subject: b\n\n") + std::string(2 << 20, 'b') + "\n", "uid-b");
  VectorSink sink;
  run([&](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
    auto* raw = s.get();
    ClientSession c(std::move(s), ClientOptions{std::chrono::seconds(10), LineEnds::wire});
    (void)co_await c.greeting();
    (void)co_await c.capa();
    AuthOptions a{"ana", "secret word", {AuthMethod::user}, false, {}};
    (void)co_await c.authenticate(a);
    auto list = co_await c.list();
    // A sink that cuts the connection in the middle of the second message.
    struct Cutter final : RetrieveSink {
      VectorSink& inner;
      net::Stream* stream;
      Cutter(VectorSink& i, net::Stream* s) : inner(i), stream(s) {}
      asio::awaitable<std::expected<void, std::string>> begin(const RemoteMessage& m) override { return inner.begin(m); }
      asio::awaitable<std::expected<void, std::string>> data(std::string_view d) override {
        if (inner.cur.first == "uid-b") stream->close();
        return inner.data(d);
      }
      asio::awaitable<std::expected<void, std::string>> end() override { return inner.end(); }
      void abort() override { inner.abort(); }
      asio::awaitable<std::expected<void, std::string>> commit() override { return inner.commit(); }
    } cut(sink, raw);
    RetrieveOptions o;
    o.dele = true;
    o.pipelining = std::get<0>(GetParam());
    o.commit_messages = 1;
    auto r = co_await c.retrieve(*list, cut, o);
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error().code, ClientErrc::network);
    }
  });
  EXPECT_EQ(sink.committed.size(), 1u);
  EXPECT_GE(sink.aborted, 1);
  EXPECT_EQ(store_.contents(kBox).size(), 2u) << "no QUIT: the server must delete nothing";
}

INSTANTIATE_TEST_SUITE_P(PipelinedAndReadSizes, ClientVsServer,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(std::size_t{7}, std::size_t{4096}, std::size_t{1} << 20)));

// ---- scripted servers ---------------------------------------------------------------------

template <class F>
void scripted(std::string server_output, F client, bool loopback = true) {
  asio::io_context io;
  auto s = std::make_unique<test::MemoryStream>(io, std::move(server_output));
  s->set_peer(loopback ? "127.0.0.1:110" : "192.0.2.7:110", loopback);
  bool done = false;
  asio::co_spawn(io, [&, st = std::move(s)]() mutable -> asio::awaitable<void> {
    co_await client(std::move(st));
    done = true;
  }, asio::detached);
  io.run();
  EXPECT_TRUE(done);
}

TEST(ClientScripted, InUseIsExplained) {
  scripted("+OK hi\r\n-ERR nope\r\n+OK\r\n-ERR [IN-USE] locked by another session\r\n",
           [](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
             ClientSession c(std::move(s));
             EXPECT_TRUE(co_await c.greeting());
             auto caps = co_await c.capa();  // -ERR: an RFC 1939 server, USER assumed
             EXPECT_TRUE(caps && !caps->known && caps->user);
             AuthOptions a{"u", "p", {AuthMethod::user}, false, {}};
             auto r = co_await c.authenticate(a);
             EXPECT_FALSE(r);
             if (r) co_return;
             EXPECT_EQ(r.error().code, ClientErrc::in_use);
             EXPECT_NE(r.error().message.find("locked by another session"), std::string::npos);
           });
}

TEST(ClientScripted, LoginDelayIsExplained) {
  scripted("+OK hi\r\n+OK\r\nUSER\r\nLOGIN-DELAY 900\r\n.\r\n+OK\r\n-ERR [LOGIN-DELAY] wait\r\n",
           [](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
             ClientSession c(std::move(s));
             (void)co_await c.greeting();
             (void)co_await c.capa();
             AuthOptions a{"u", "p", {AuthMethod::user}, false, {}};  // (a named object: g++ 12 coroutine bug)
             auto r = co_await c.authenticate(a);
             EXPECT_FALSE(r);
             if (r) co_return;
             EXPECT_EQ(r.error().code, ClientErrc::login_delay);
             EXPECT_NE(r.error().message.find("900 s"), std::string::npos) << r.error().message;
           });
}

TEST(ClientScripted, PlaintextRefusedWithoutTlsOffLoopback) {
  scripted("+OK hi\r\n+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n", [](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
    auto rec = static_cast<test::MemoryStream*>(s.get())->record();
    ClientSession c(std::move(s));
    (void)co_await c.greeting();
    (void)co_await c.capa();
    AuthOptions a{"u", "secret", {AuthMethod::plain, AuthMethod::user}, false,
                  [](std::string_view) -> std::unique_ptr<sasl::ClientMechanism> { return nullptr; }};
    auto r = co_await c.authenticate(a);
    EXPECT_FALSE(r);
    if (r) co_return;
    EXPECT_EQ(r.error().code, ClientErrc::policy);
    EXPECT_EQ(rec->output.find("secret"), std::string::npos) << "the password must not have been sent";
    EXPECT_EQ(rec->output.find("USER"), std::string::npos);
  }, /*loopback=*/false);
}

TEST(ClientScripted, ApopUsedWhenOffered) {
  scripted("+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n-ERR\r\n+OK maildrop has 0 messages\r\n",
           [](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
             auto rec = static_cast<test::MemoryStream*>(s.get())->record();
             ClientSession c(std::move(s));
             (void)co_await c.greeting();
             (void)co_await c.capa();
             AuthOptions a{"mrose", "tanstaaf", {AuthMethod::apop, AuthMethod::user}, false, {}};
             auto r = co_await c.authenticate(a);
             EXPECT_TRUE(r && *r == AuthMethod::apop);
             // RFC 1939 §7's example digest.
             EXPECT_NE(rec->output.find("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), std::string::npos) << rec->output;
           },
           /*loopback=*/false);
}

TEST(ClientScripted, GarbageInsteadOfStatusIsProtocolError) {
  scripted("* OK IMAP4rev1 ready\r\n", [](std::unique_ptr<net::Stream> s) -> asio::awaitable<void> {
    ClientSession c(std::move(s));
    auto r = co_await c.greeting();
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error().code, ClientErrc::protocol);
    }
  });
}

TEST(ClientScripted, TimeoutWhenServerIsSilent) {
  asio::io_context io;
  auto s = std::make_unique<test::MemoryStream>(io, std::string("+OK hi\r\n"));
  s->set_hang_at_end(true);
  bool done = false;
  asio::co_spawn(io, [&, st = std::move(s)]() mutable -> asio::awaitable<void> {
    ClientSession c(std::move(st), ClientOptions{std::chrono::milliseconds(50), LineEnds::wire});
    (void)co_await c.greeting();
    auto r = co_await c.capa();
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error().code, ClientErrc::timeout);
    }
    done = true;
  }, asio::detached);
  io.run();
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace buzon::pop3
