// net/tls_test.cpp — TLS over real loopback sockets: handshake and data, the protocol floor, SNI,
// reload while a session stays up, start_tls consuming a plain stream, channel-binding data equal
// on both ends, handshake timeout, and the configuration errors a person will actually make.
#include "net/tcp_stream.hpp"
#include "net/tls_context.hpp"
#include "net/tls_test_certs.hpp"

#include "support/memory_stream.hpp"

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/ssl.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include <chrono>
#include <fstream>
#include <optional>

namespace buzon::net {
namespace {

namespace fs = std::filesystem;
using asio::ip::tcp;
constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

struct ClientOptions {
  std::string sni;                   // "" = none
  fs::path trust;                    // CA file to verify against ("" = no verification)
  int min_version = 0, max_version = 0;
  std::string seclevel_ciphers;      // e.g. "DEFAULT:@SECLEVEL=0" for a TLS 1.1 client
};

struct ClientResult {
  std::error_code handshake;
  std::string peer_cn;
  std::string version;
  std::string exporter, unique;  // the client's view of the channel bindings
  std::string echoed;
};

std::string cn_of(X509* cert) {
  if (cert == nullptr) return {};
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("buzon-tls-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    a_ = test::make_self_signed(dir_, "a", "a.test");
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
  }
  void TearDown() override { fs::remove_all(dir_); }

  TlsSettings settings(const test::CertFiles& f) {
    TlsSettings s;
    s.main.cert = f.cert;
    s.main.key = f.key;
    s.main.origin = "test.toml:3";
    s.handshake_timeout = std::chrono::milliseconds(2000);
    return s;
  }

  // A client that handshakes, optionally sends `msg` and reads it back.
  asio::awaitable<ClientResult> client(ClientOptions o, std::string msg, std::optional<std::string> plain_first = {}) {
    ClientResult r;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    if (!o.trust.empty()) {
      ctx.load_verify_file(o.trust.string());
      ctx.set_verify_mode(asio::ssl::verify_peer);
    }
    if (o.min_version) SSL_CTX_set_min_proto_version(ctx.native_handle(), o.min_version);
    if (o.max_version) SSL_CTX_set_max_proto_version(ctx.native_handle(), o.max_version);
    if (!o.seclevel_ciphers.empty()) SSL_CTX_set_cipher_list(ctx.native_handle(), o.seclevel_ciphers.c_str());
    asio::ssl::stream<tcp::socket> s(co_await asio::this_coro::executor, ctx);
    auto [cec] = co_await s.next_layer().async_connect(acceptor_.local_endpoint(), kTuple);
    if (cec) {
      r.handshake = cec;
      co_return r;
    }
    if (plain_first) {
      co_await asio::async_write(s.next_layer(), asio::buffer(*plain_first), kTuple);
      char ok[64];
      auto [rec, n] = co_await s.next_layer().async_read_some(asio::buffer(ok), kTuple);
      (void)rec;
      (void)n;
    }
    if (!o.sni.empty()) SSL_set_tlsext_host_name(s.native_handle(), o.sni.c_str());
    auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, kTuple);
    r.handshake = hec;
    if (hec) co_return r;
    X509* peer = SSL_get1_peer_certificate(s.native_handle());
    r.peer_cn = cn_of(peer);
    X509_free(peer);
    r.version = SSL_get_version(s.native_handle());
    std::string ex(32, '\0');
    static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
    if (SSL_export_keying_material(s.native_handle(), reinterpret_cast<unsigned char*>(ex.data()), 32, kLabel,
                                   sizeof kLabel - 1, nullptr, 0, 0) == 1)
      r.exporter = ex;
    unsigned char fin[64];
    r.unique.assign(reinterpret_cast<char*>(fin), SSL_get_finished(s.native_handle(), fin, sizeof fin));
    if (!msg.empty()) {
      co_await asio::async_write(s, asio::buffer(msg), kTuple);
      std::string back(msg.size(), '\0');
      auto [rec, n] = co_await asio::async_read(s, asio::buffer(back), kTuple);
      if (!rec) r.echoed = back.substr(0, n);
    }
    co_await s.async_shutdown(kTuple);
    co_return r;
  }

  struct ServerResult {
    std::error_code error;
    std::string summary, exporter, unique, server_name;
    bool is_tls = false;
  };

  // Accepts one connection with `ctx`, echoes one message.
  asio::awaitable<ServerResult> serve(TlsServerContext& ctx, std::size_t echo, bool stls = false) {
    ServerResult r;
    auto [aec, sock] = co_await acceptor_.async_accept(kTuple);
    if (aec) {
      r.error = aec;
      co_return r;
    }
    UpgradeResult up;
    if (stls) {
      StreamPtr plain = std::make_unique<TcpStream>(std::move(sock));
      char buf[16];
      auto [ec, n] = co_await plain->read_some(buf);
      (void)ec;
      (void)n;
      co_await plain->write_all(std::string_view("+OK\r\n"));
      up = co_await ctx.start_tls(std::move(plain));
    } else {
      up = co_await ctx.accept(std::move(sock));
    }
    if (!up) {
      r.error = up.error();
      co_return r;
    }
    auto& s = **up;
    r.is_tls = s.is_tls();
    r.summary = s.tls_summary();
    r.exporter = s.channel_binding("tls-exporter");
    r.unique = s.channel_binding("tls-unique");
    std::string got;
    char buf[256];
    while (got.size() < echo) {
      auto [ec, n] = co_await s.read_some(buf);
      if (ec) break;
      got.append(buf, n);
    }
    if (!got.empty()) co_await s.write_all(got);
    co_await s.shutdown();
    co_return r;
  }

  template <class T>
  T run(asio::awaitable<T> a) {
    std::optional<T> out;
    asio::co_spawn(io_, std::move(a), [&](std::exception_ptr e, T v) {
      if (e) std::rethrow_exception(e);
      out = std::move(v);
    });
    io_.restart();
    io_.run();
    return std::move(*out);
  }

  std::pair<ServerResult, ClientResult> exchange(TlsServerContext& ctx, ClientOptions o, std::string msg = "hello\n",
                                                 bool stls = false) {
    std::optional<ServerResult> sr;
    std::optional<ClientResult> cr;
    asio::co_spawn(io_, serve(ctx, msg.size(), stls), [&](std::exception_ptr e, ServerResult v) {
      if (e) std::rethrow_exception(e);
      sr = v;
    });
    asio::co_spawn(io_, client(o, msg, stls ? std::optional<std::string>("STLS\r\n") : std::nullopt),
                   [&](std::exception_ptr e, ClientResult v) {
                     if (e) std::rethrow_exception(e);
                     cr = v;
                   });
    io_.restart();
    io_.run();
    return {*sr, *cr};
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  fs::path dir_;
  test::CertFiles a_;
};

TEST_F(TlsTest, HandshakeVerifiesAndCarriesData) {
  auto ctx = TlsServerContext::create(settings(a_));
  ASSERT_TRUE(ctx) << ctx.error();
  auto [s, c] = exchange(**ctx, {.sni = "localhost", .trust = a_.cert});
  ASSERT_FALSE(c.handshake) << c.handshake.message();
  EXPECT_EQ(c.peer_cn, "a.test");
  EXPECT_EQ(c.echoed, "hello\n");
  EXPECT_TRUE(s.is_tls);
  EXPECT_TRUE(s.summary.starts_with("TLSv1.3 TLS_")) << s.summary;
  EXPECT_FALSE(s.error) << s.error.message();
}

TEST_F(TlsTest, OldProtocolsAreRefused) {
  auto ctx = TlsServerContext::create(settings(a_));
  ASSERT_TRUE(ctx);
  // A TLS 1.1 client (OpenSSL still speaks it at security level 0): the server says no.
  auto [s, c] = exchange(**ctx, {.max_version = TLS1_1_VERSION, .seclevel_ciphers = "DEFAULT:@SECLEVEL=0"}, "");
  EXPECT_TRUE(c.handshake);
  EXPECT_TRUE(s.error);
  // With min_version = TLSv1.3, a TLS 1.2-only client is refused too; TLS 1.2 works by default.
  auto s13 = settings(a_);
  s13.min_version = "TLSv1.3";
  auto ctx13 = TlsServerContext::create(s13);
  ASSERT_TRUE(ctx13);
  EXPECT_TRUE(exchange(**ctx13, {.max_version = TLS1_2_VERSION}, "").second.handshake);
  auto [s12, c12] = exchange(**ctx, {.max_version = TLS1_2_VERSION});
  EXPECT_FALSE(c12.handshake);
  EXPECT_EQ(c12.version, "TLSv1.2");
  EXPECT_TRUE(s12.summary.starts_with("TLSv1.2 ECDHE-")) << s12.summary;  // forward secrecy
}

TEST_F(TlsTest, SniChoosesTheCertificate) {
  auto b = test::make_self_signed(dir_, "b", "b.test", "DNS:mail.example.org,DNS:*.example.net");
  auto s = settings(a_);
  s.sni.push_back(TlsCertFiles{b.cert, b.key, {}, {"mail.example.org", "*.example.net"}, "test.toml:9"});
  auto ctx = TlsServerContext::create(s);
  ASSERT_TRUE(ctx) << ctx.error();
  EXPECT_EQ(exchange(**ctx, {.sni = "mail.example.org", .trust = b.cert}).second.peer_cn, "b.test");
  EXPECT_EQ(exchange(**ctx, {.sni = "MAIL.Example.ORG"}).second.peer_cn, "b.test");
  EXPECT_EQ(exchange(**ctx, {.sni = "imap.example.net"}).second.peer_cn, "b.test");
  EXPECT_EQ(exchange(**ctx, {.sni = "a.b.example.net"}).second.peer_cn, "a.test");  // one label only
  EXPECT_EQ(exchange(**ctx, {.sni = "example.net"}).second.peer_cn, "a.test");
  EXPECT_EQ(exchange(**ctx, {}).second.peer_cn, "a.test");  // no SNI: the default
}

TEST_F(TlsTest, ReloadServesNewHandshakesWhileOldSessionsContinue) {
  auto ctx = TlsServerContext::create(settings(a_));
  ASSERT_TRUE(ctx);
  // An established session with the old certificate...
  std::optional<ServerResult> sr;
  std::optional<ClientResult> cr;
  bool reloaded = false;
  std::string old_cn;
  auto slow_client = [&]() -> asio::awaitable<ClientResult> {
    ClientResult r;
    asio::ssl::context cctx(asio::ssl::context::tls_client);
    asio::ssl::stream<tcp::socket> s(co_await asio::this_coro::executor, cctx);
    co_await s.next_layer().async_connect(acceptor_.local_endpoint(), kTuple);
    auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, kTuple);
    r.handshake = hec;
    X509* peer = SSL_get1_peer_certificate(s.native_handle());
    old_cn = cn_of(peer);
    X509_free(peer);
    // ...the certificate files change and the server reloads...
    auto b = test::make_self_signed(dir_, "a", "renewed.test");  // overwrites a's files
    auto rr = (*ctx)->reload();
    reloaded = rr.has_value();
    // ...and the old session still works.
    co_await asio::async_write(s, asio::buffer(std::string("after reload")), kTuple);
    std::string back(12, '\0');
    auto [rec, n] = co_await asio::async_read(s, asio::buffer(back), kTuple);
    if (!rec) r.echoed = back.substr(0, n);
    co_return r;
  };
  asio::co_spawn(io_, serve(**ctx, 12), [&](std::exception_ptr, ServerResult v) { sr = v; });
  asio::co_spawn(io_, slow_client(), [&](std::exception_ptr, ClientResult v) { cr = v; });
  io_.restart();
  io_.run();
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(old_cn, "a.test");
  EXPECT_EQ(cr->echoed, "after reload");
  // New handshakes get the new certificate.
  EXPECT_EQ(exchange(**ctx, {}).second.peer_cn, "renewed.test");
}

TEST_F(TlsTest, FailedReloadKeepsTheOldCertificate) {
  auto ctx = TlsServerContext::create(settings(a_));
  ASSERT_TRUE(ctx);
  std::ofstream(a_.key) << "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n";
  auto r = (*ctx)->reload();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("test.toml:3"), std::string::npos) << r.error();
  EXPECT_EQ(exchange(**ctx, {}).second.peer_cn, "a.test");
}

TEST_F(TlsTest, ConfigurationErrorsNameTheFileTheLineAndTheFix) {
  auto b = test::make_self_signed(dir_, "b", "b.test");
  struct Case {
    std::function<void(TlsSettings&)> change;
    std::string expect;
  };
  const Case cases[] = {
      {[&](TlsSettings& s) { s.main.cert = dir_ / "missing.pem"; }, "cannot read the certificate"},
      {[&](TlsSettings& s) { s.main.key = dir_ / "missing.pem"; }, "cannot read the private key"},
      {[&](TlsSettings& s) { s.main.key = b.key; }, "does not belong to the certificate"},
      {[&](TlsSettings& s) { s.main.cert = a_.key; }, "is not a PEM certificate"},
      {[&](TlsSettings& s) { s.main.key = a_.cert; }, "is not a PEM private key"},
      {[&](TlsSettings& s) { s.ciphers = "NOTHING-REAL"; }, "ciphers"},
      {[&](TlsSettings& s) { s.ciphersuites = "TLS_FAKE"; }, "ciphersuites"},
      {[&](TlsSettings& s) { s.main.chain = a_.key; }, "holds no PEM certificate"},
  };
  for (const auto& c : cases) {
    auto s = settings(a_);
    c.change(s);
    auto r = TlsServerContext::create(s);
    ASSERT_FALSE(r) << c.expect;
    EXPECT_NE(r.error().find(c.expect), std::string::npos) << r.error();
    EXPECT_TRUE(r.error().starts_with("test.toml:3: ")) << r.error();
    EXPECT_NE(r.error().find("(fix: "), std::string::npos) << r.error();
  }
}

TEST_F(TlsTest, StartTlsConsumesThePlainStream) {
  auto ctx = TlsServerContext::create(settings(a_));
  ASSERT_TRUE(ctx);
  auto [s, c] = exchange(**ctx, {.trust = a_.cert}, "over tls\n", /*stls=*/true);
  ASSERT_FALSE(c.handshake) << c.handshake.message();
  EXPECT_TRUE(s.is_tls);
  EXPECT_EQ(c.echoed, "over tls\n");
  // Only a TCP stream can be upgraded.
  auto mem = std::make_unique<buzon::test::MemoryStream>(io_, "");
  auto r = run((*ctx)->start_tls(std::move(mem)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::make_error_code(std::errc::operation_not_supported));
}

TEST_F(TlsTest, ChannelBindingDataAgreesOnBothEnds) {
  auto ctx = TlsServerContext::create(settings(a_));
  ASSERT_TRUE(ctx);
  auto [s13, c13] = exchange(**ctx, {});
  EXPECT_EQ(s13.exporter.size(), 32u);
  EXPECT_EQ(s13.exporter, c13.exporter);  // RFC 9266
  EXPECT_EQ(s13.unique, "");              // not defined on TLS 1.3
  auto [s12, c12] = exchange(**ctx, {.max_version = TLS1_2_VERSION});
  EXPECT_EQ(s12.exporter, c12.exporter);  // extended master secret is negotiated by default
  EXPECT_FALSE(s12.unique.empty());
  EXPECT_EQ(s12.unique, c12.unique);      // RFC 5929: the client's Finished
  EXPECT_NE(s12.unique, s13.exporter);
}

TEST_F(TlsTest, SilentClientHitsTheHandshakeTimeout) {
  auto s = settings(a_);
  s.handshake_timeout = std::chrono::milliseconds(200);
  auto ctx = TlsServerContext::create(s);
  ASSERT_TRUE(ctx);
  tcp::socket silent(io_);
  silent.connect(acceptor_.local_endpoint());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run([&]() -> asio::awaitable<UpgradeResult> {
    auto [ec, sock] = co_await acceptor_.async_accept(kTuple);
    co_return co_await (*ctx)->accept(std::move(sock));
  }());
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::make_error_code(std::errc::timed_out));
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
}

TEST(SniNames, WildcardsCoverOneLabel) {
  EXPECT_TRUE(sni_name_matches("mail.example.org", "mail.example.org"));
  EXPECT_FALSE(sni_name_matches("mail.example.org", "example.org"));
  EXPECT_TRUE(sni_name_matches("*.example.org", "pop.example.org"));
  EXPECT_FALSE(sni_name_matches("*.example.org", "example.org"));
  EXPECT_FALSE(sni_name_matches("*.example.org", "a.pop.example.org"));
  EXPECT_FALSE(sni_name_matches("*.example.org", ".example.org"));
}

}  // namespace
}  // namespace buzon::net
