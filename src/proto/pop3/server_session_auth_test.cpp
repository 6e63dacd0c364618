// Session tests for issue 3: AUTH (RFC 5034) with every SASL mechanism, the plaintext policy, STLS
// (RFC 2595) with the command-injection case, the failure penalty and the separate hashing pool.
// The real session coroutine runs over MemoryStream; "TLS" is a wrapper stream that says it is TLS
// and offers a fixed channel binding (the real TLS upgrade is tested in net/tls_test.cpp and by
// the integration tests).
#include "proto/pop3/server_session.hpp"

#include "auth/password.hpp"
#include "core/base64.hpp"
#include "proto/sasl/cram_md5.hpp"
#include "proto/sasl/scram.hpp"
#include "store/memory/memory_store.hpp"
#include "support/memory_stream.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <stdexcept>

using namespace std::string_literals;

namespace buzon::pop3 {
namespace {

using test::MemoryStream;
using Clock = std::chrono::steady_clock;

class Directory final : public auth::Directory {
 public:
  void add(std::string name, std::string password) { users_[name] = auth::User{name, std::move(password)}; }
  std::optional<auth::User> lookup(std::string_view name) const override {
    if (name == "boom") throw std::runtime_error("directory unavailable");
    auto it = users_.find(std::string(name));
    if (it == users_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, auth::User> users_;
};

// Wraps the plain test stream after STLS: same octets, but "TLS" with a channel binding.
class FakeTls final : public net::Stream {
 public:
  explicit FakeTls(net::StreamPtr inner) : inner_(std::move(inner)) {}
  asio::awaitable<net::IoResult> read_some(std::span<char> buf) override { return inner_->read_some(buf); }
  asio::awaitable<net::IoResult> write_all(std::span<const char> buf) override { return inner_->write_all(buf); }
  void close() override { inner_->close(); }
  asio::any_io_executor get_executor() override { return inner_->get_executor(); }
  std::string peer() const override { return inner_->peer(); }
  bool peer_is_loopback() const override { return inner_->peer_is_loopback(); }
  bool is_tls() const override { return true; }
  std::string tls_summary() const override { return "FAKE-TLS"; }
  std::string channel_binding(std::string_view type) const override {
    return type == "tls-exporter" ? kBinding : std::string();
  }
  static inline const std::string kBinding = std::string(32, '\x5A');

 private:
  net::StreamPtr inner_;
};

std::string b64(std::string_view s) { return base64_encode(s); }

// True when the last line of `out` is a challenge ("+ ...").
bool ends_with_challenge(const std::string& out) {
  const auto p = out.rfind("\r\n", out.size() - 3);
  return p != std::string::npos && out.compare(p + 2, 2, "+ ") == 0;
}

// The text of the last "+ <base64>" challenge in `out` (never the first line), decoded.
std::string last_challenge(const std::string& out) {
  auto p = out.rfind("\r\n+ ");
  EXPECT_NE(p, std::string::npos) << out;
  if (p == std::string::npos) return {};
  const auto start = p + 4;
  const auto end = out.find("\r\n", start);
  auto d = base64_decode(out.substr(start, end - start));
  EXPECT_TRUE(d) << out;
  return d ? *d : std::string();
}

std::size_t count(const std::string& haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

constexpr const char* kBox = "/mem/mail/ana";
constexpr const char* kUntrusted = "192.0.2.10:40000";

class AuthSessionTest : public ::testing::Test {
 protected:
  AuthSessionTest() {
    dir_.add("ana", "{PLAIN}secret word");
    dir_.add("hashed", *auth::hash_password("secret word", "SHA512-CRYPT"));
    dir_.add("scram", *auth::hash_password("pencil", "SCRAM-SHA-256"));
    dir_.add("cram", *auth::hash_password("tanstaaftanstaaf", "CRAM-MD5"));
    svc_.directory = &dir_;
    svc_.store = &store_;
    svc_.pool = &pool_;
    svc_.auth_pool = &auth_pool_;
    svc_.fake_salt_key = "test secret";
    svc_.settings.mail_template = "mail/%n";
    svc_.settings.base_dir = "/mem";
    svc_.settings.sasl_mechanisms = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"};
    svc_.penalty.configure(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
    store_.add(kBox, "a\r\n", "u1");
    store_.add("/mem/mail/hashed", "a\r\n", "u1");
    store_.add("/mem/mail/scram", "a\r\n", "u1");
    store_.add("/mem/mail/cram", "a\r\n", "u1");
  }

  std::unique_ptr<MemoryStream> stream(std::string input, const char* peer = nullptr) {
    auto s = std::make_unique<MemoryStream>(io_, std::move(input));
    if (peer) s->set_peer(peer, false);
    return s;
  }
  std::unique_ptr<MemoryStream> stream(MemoryStream::Feeder f, const char* peer = nullptr) {
    auto s = std::make_unique<MemoryStream>(io_, std::move(f));
    if (peer) s->set_peer(peer, false);
    return s;
  }

  std::string run(std::unique_ptr<MemoryStream> s) {
    auto rec = s->record();
    asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
    io_.restart();
    io_.run();
    EXPECT_TRUE(rec->closed);
    return rec->output;
  }
  std::string dialogue(std::string input, const char* peer = nullptr) { return run(stream(std::move(input), peer)); }
  // STLS first, then (after the handshake, in a new packet) `after`.
  std::string after_stls(std::string after, const char* peer = nullptr) {
    int step = 0;
    return run(stream(MemoryStream::Feeder([step, after](const std::string&) mutable -> std::optional<std::string> {
                        switch (step++) {
                          case 0: return std::string("STLS\r\n");
                          case 1: return after;
                          default: return std::nullopt;
                        }
                      }),
                      peer));
  }

  // STLS that wraps the plain stream into FakeTls; remembers how much output came before it.
  void enable_fake_stls() {
    svc_.start_tls = [this](net::StreamPtr plain) -> asio::awaitable<net::UpgradeResult> {
      ++upgrades_;
      if (fail_handshake_) {
        plain->close();  // as a failed real handshake leaves the socket closed
        co_return std::unexpected(std::make_error_code(std::errc::connection_reset));
      }
      co_return net::StreamPtr(std::make_unique<FakeTls>(std::move(plain)));
    };
  }

  // A session whose client answers every challenge with `client` (a SASL client mechanism).
  std::string sasl_dialogue(std::string mech, sasl::ClientMechanism& client, bool use_initial, const char* peer = nullptr,
                            std::string prefix = {}) {
    int step = 0;
    bool sent_auth = false;
    auto feeder = [&, mech, prefix](const std::string& out) mutable -> std::optional<std::string> {
      if (!sent_auth) {
        sent_auth = true;
        std::string cmd = prefix + "AUTH " + mech;
        if (use_initial)
          if (auto i = client.initial()) cmd += " " + (i->empty() ? std::string("=") : b64(*i));
        return cmd + "\r\n";
      }
      if (++step > 10) return std::nullopt;
      if (!ends_with_challenge(out)) return std::string("QUIT\r\n");
      auto r = client.respond(last_challenge(out));
      if (!r) return std::string("*\r\n");
      return b64(*r) + "\r\n";
    };
    return run(stream(MemoryStream::Feeder(feeder), peer));
  }

  asio::io_context io_;
  net::WorkerPool pool_{2, 16};
  net::WorkerPool auth_pool_{1, 64};
  store::memory::MemoryStore store_;
  Directory dir_;
  Service svc_;
  int upgrades_ = 0;
  bool fail_handshake_ = false;
};

// ---- AUTH (RFC 5034) ----------------------------------------------------------------------

TEST_F(AuthSessionTest, PlainWithInitialResponse) {
  auto out = dialogue("AUTH PLAIN " + b64("\0ana\0secret word"s) + "\r\nSTAT\r\nQUIT\r\n");
  EXPECT_NE(out.find("+OK Logged in, 1 messages"), std::string::npos) << out;
  EXPECT_NE(out.find("+OK 1 3\r\n"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, PlainWithoutInitialResponseGetsAnEmptyChallenge) {
  auto out = dialogue("AUTH plain\r\n" + b64("\0ana\0secret word"s) + "\r\nQUIT\r\n");
  // RFC 5034 §4: the empty challenge is "+" and one space, nothing else.
  EXPECT_NE(out.find("\r\n+ \r\n+OK Logged in"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, EqualsSignIsAnEmptyInitialResponse) {
  // "=" is a present-but-empty response: PLAIN cannot parse it and fails (no challenge follows).
  auto out = dialogue("AUTH PLAIN =\r\nQUIT\r\n");
  EXPECT_NE(out.find("\r\n-ERR [AUTH] Authentication failed.\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("\r\n+ "), std::string::npos) << out;
}

TEST_F(AuthSessionTest, StarCancelsAndTheSessionGoesOn) {
  auto out = dialogue("AUTH LOGIN\r\n*\r\nAUTH PLAIN " + b64("\0ana\0secret word"s) + "\r\nQUIT\r\n");
  EXPECT_NE(out.find("+ VXNlcm5hbWU6\r\n-ERR Authentication cancelled.\r\n+OK Logged in"), std::string::npos) << out;
  EXPECT_EQ(svc_.counters.auth_failures.load(), 0u);  // cancelling is not a failed login
}

TEST_F(AuthSessionTest, Base64ErrorsAreRefused) {
  // RFC 5034 §4: characters outside the alphabet and misplaced padding are errors, not ignored.
  auto out = dialogue("AUTH PLAIN AG=FuYQ==\r\nAUTH PLAIN\r\nAGFuYQBz ZWNyZXQ=\r\nAUTH PLAIN\r\n=AAA\r\nQUIT\r\n");
  EXPECT_EQ(count(out, "-ERR Invalid base64 data in initial response.\r\n"), 1u) << out;
  EXPECT_EQ(count(out, "-ERR Invalid base64 data in continued response.\r\n"), 2u) << out;
  EXPECT_NE(out.find("signing off"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, AuthWithoutArgumentsListsMechanisms) {
  auto out = dialogue("AUTH\r\nQUIT\r\n");
  // Plain TCP from loopback: no -PLUS (no TLS), plaintext mechanisms allowed (trusted network).
  EXPECT_NE(out.find("+OK Supported SASL mechanisms follow\r\nSCRAM-SHA-256\r\nCRAM-MD5\r\nPLAIN\r\nLOGIN\r\n.\r\n"),
            std::string::npos)
      << out;
  auto capa = dialogue("CAPA\r\nQUIT\r\n");
  EXPECT_NE(capa.find("\r\nSASL SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN\r\n"), std::string::npos) << capa;
  EXPECT_NE(capa.find("\r\nUSER\r\n"), std::string::npos) << capa;
}

TEST_F(AuthSessionTest, UnknownOrUnconfiguredMechanism) {
  svc_.settings.sasl_mechanisms = {"PLAIN"};
  auto out = dialogue("AUTH GSSAPI\r\nAUTH CRAM-MD5\r\nAUTH SCRAM-SHA-256-PLUS\r\nQUIT\r\n");
  EXPECT_EQ(count(out, "-ERR Unsupported authentication mechanism.\r\n"), 3u) << out;
}

TEST_F(AuthSessionTest, LoginMechanism) {
  auto out = dialogue("AUTH LOGIN\r\n" + b64("ana") + "\r\n" + b64("secret word") + "\r\nQUIT\r\n");
  EXPECT_NE(out.find("+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK Logged in"), std::string::npos) << out;
  // The user name as initial response (what many clients send).
  auto out2 = dialogue("AUTH LOGIN " + b64("ana") + "\r\n" + b64("secret word") + "\r\nQUIT\r\n");
  EXPECT_NE(out2.find("+ UGFzc3dvcmQ6\r\n+OK Logged in"), std::string::npos) << out2;
}

TEST_F(AuthSessionTest, CramMd5OnlyForSchemesThatAllowIt) {
  for (const auto& [user, pw, ok] : {std::tuple{"ana", "secret word", true}, std::tuple{"cram", "tanstaaftanstaaf", true},
                                     std::tuple{"hashed", "secret word", false}, std::tuple{"ana", "wrong", false}}) {
    sasl::CramMd5Client c({user, pw, ""});
    auto out = sasl_dialogue("CRAM-MD5", c, false);
    EXPECT_EQ(out.find("+OK Logged in") != std::string::npos, ok) << user << "\n" << out;
    if (!ok) {
      EXPECT_NE(out.find("-ERR [AUTH] Authentication failed."), std::string::npos) << out;
    }
    // The challenge is RFC 2195's form, with our host name.
    EXPECT_TRUE(std::regex_match(last_challenge(out), std::regex(R"(<[0-9]+\.[0-9]+@localhost>)"))) << out;
  }
  // An initial response is refused for a server-first mechanism (RFC 5034 §4).
  auto out = dialogue("AUTH CRAM-MD5 " + b64("ana 0123") + "\r\nQUIT\r\n");
  EXPECT_NE(out.find("-ERR [AUTH]"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, ScramSha256WithStoredKeysAndPlaintext) {
  for (const auto& [user, pw, initial] : {std::tuple{"scram", "pencil", true}, std::tuple{"scram", "pencil", false},
                                          std::tuple{"ana", "secret word", true}}) {
    sasl::ScramClient c({user, pw, ""}, {}, false);
    auto out = sasl_dialogue("SCRAM-SHA-256", c, initial);
    EXPECT_NE(out.find("+OK Logged in"), std::string::npos) << user << "\n" << out;
    EXPECT_TRUE(c.complete()) << "the server proved it holds the keys (v=)";
  }
}

TEST_F(AuthSessionTest, ScramFailuresLookAlike) {
  // Wrong password, unknown user and a scheme that cannot serve SCRAM all fail at the proof, with
  // the same reply and the same number of round trips.
  std::vector<std::string> outs;
  for (const auto& [user, pw] : {std::pair{"scram", "wrong"}, std::pair{"nobody", "x"}, std::pair{"hashed", "secret word"}}) {
    sasl::ScramClient c({user, pw, ""}, {}, false);
    auto out = sasl_dialogue("SCRAM-SHA-256", c, true);
    EXPECT_NE(out.find("-ERR [AUTH] Authentication failed."), std::string::npos) << out;
    EXPECT_EQ(count(out, "\r\n+ "), 1u) << out;
    outs.push_back(std::regex_replace(out, std::regex(R"(\+ [^\r]*)"), "+ x"));
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
  EXPECT_EQ(svc_.counters.auth_failures.load(), 3u);
}

TEST_F(AuthSessionTest, LongInitialResponseIsAccepted) {
  // 12 KiB of initial response (SCRAM with an optional extension the server ignores): more than
  // the 255 octets RFC 5034 asks clients to keep to, less than kMaxAuthLine.
  sasl::ClientContext cctx;
  cctx.scram_extension = "x=" + std::string(9000, 'y');
  sasl::ScramClient c({"scram", "pencil", ""}, cctx, false);
  auto out = sasl_dialogue("SCRAM-SHA-256", c, true);
  EXPECT_NE(out.find("+OK Logged in"), std::string::npos) << out.substr(0, 300);
  // Over kMaxAuthLine: refused as too long, and the session is still in step.
  auto big = dialogue("AUTH PLAIN " + std::string(20000, 'A') + "\r\nAUTH PLAIN " + b64("\0ana\0secret word"s) +
                      "\r\nQUIT\r\n");
  EXPECT_NE(big.find("-ERR Command line too long.\r\n+OK Logged in"), std::string::npos) << big;
  // Other commands stay limited to 255 octets before login too.
  auto user = dialogue("USER " + std::string(300, 'u') + "\r\nQUIT\r\n");
  EXPECT_NE(user.find("-ERR Command line too long."), std::string::npos) << user;
}

TEST_F(AuthSessionTest, AuthorizationIdentityMustBeTheUser) {
  auto out = dialogue("AUTH PLAIN " + b64("admin\0ana\0secret word"s) + "\r\nAUTH PLAIN " + b64("ana\0ana\0secret word"s) +
                      "\r\nQUIT\r\n");
  EXPECT_NE(out.find("-ERR [AUTH] Authentication failed.\r\n+OK Logged in"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, DirectoryFailureIsSysTemp) {
  auto out = dialogue("AUTH PLAIN " + b64("\0boom\0x"s) + "\r\nUSER boom\r\nPASS x\r\nQUIT\r\n");
  EXPECT_EQ(count(out, "-ERR [SYS/TEMP] Temporary authentication failure, try again later.\r\n"), 2u) << out;
}

TEST_F(AuthSessionTest, AuthIsOnlyForAuthorizationState) {
  auto out = dialogue("USER ana\r\nPASS secret word\r\nAUTH PLAIN " + b64("\0ana\0secret word"s) + "\r\nQUIT\r\n");
  EXPECT_NE(out.find("-ERR Command not valid after login."), std::string::npos) << out;
}

// ---- Plaintext policy -----------------------------------------------------------------------

TEST_F(AuthSessionTest, PlaintextIsRefusedAndHiddenOnUntrustedPlainConnections) {
  auto capa = dialogue("CAPA\r\nQUIT\r\n", kUntrusted);
  EXPECT_EQ(capa.find("\r\nUSER\r\n"), std::string::npos) << capa;
  EXPECT_NE(capa.find("\r\nSASL SCRAM-SHA-256 CRAM-MD5\r\n"), std::string::npos) << capa;
  const std::string refused = "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n";
  auto out = dialogue("USER ana\r\nPASS secret word\r\nAUTH PLAIN " + b64("\0ana\0secret word"s) +
                          "\r\nAUTH LOGIN\r\nQUIT\r\n",
                      kUntrusted);
  EXPECT_EQ(count(out, refused), 4u) << out;
  EXPECT_EQ(out.find("Logged in"), std::string::npos) << out;
  EXPECT_EQ(svc_.counters.plaintext_refused.load(), 4u);
  // Mechanisms that do not reveal the password still work there.
  sasl::ScramClient c({"scram", "pencil", ""}, {}, false);
  EXPECT_NE(sasl_dialogue("SCRAM-SHA-256", c, true, kUntrusted).find("+OK Logged in"), std::string::npos);
}

TEST_F(AuthSessionTest, TrustedNetworksAndThePolicySwitch) {
  svc_.settings.trusted_networks = {*parse_ip_network("192.0.2.0/24")};
  EXPECT_NE(dialogue("USER ana\r\nPASS secret word\r\nQUIT\r\n", kUntrusted).find("+OK Logged in"), std::string::npos);
  // Loopback is not special: it is trusted only because it is in the default list.
  auto s = stream("USER ana\r\nQUIT\r\n");
  EXPECT_NE(run(std::move(s)).find("-ERR [AUTH] Plaintext authentication disallowed"), std::string::npos);
  svc_.settings.trusted_networks.clear();
  svc_.settings.plaintext_requires_tls = false;
  EXPECT_NE(dialogue("USER ana\r\nPASS secret word\r\nQUIT\r\n", kUntrusted).find("+OK Logged in"), std::string::npos);
}

// ---- STLS (RFC 2595) ------------------------------------------------------------------------

TEST_F(AuthSessionTest, StlsDiscardsPipelinedCommandsAndStartsOver) {
  enable_fake_stls();
  int step = 0;
  auto out = run(stream(MemoryStream::Feeder([&](const std::string&) -> std::optional<std::string> {
    switch (step++) {
      // All in one packet: the CAPA and PASS after STLS are plaintext injected before the
      // handshake (CVE-2011-0411) and must never run; the PASS would even log in (USER is set).
      case 0: return "USER ana\r\nSTLS\r\nCAPA\r\nPASS secret word\r\n"s;
      // After the handshake, the client speaks again.
      case 1: return "CAPA\r\nPASS secret word\r\nSTLS\r\nQUIT\r\n"s;
      default: return std::nullopt;
    }
  })));
  EXPECT_EQ(upgrades_, 1);
  const auto tls_at = out.find("+OK Begin TLS negotiation now.\r\n");
  ASSERT_NE(tls_at, std::string::npos) << out;
  const auto before = out.substr(0, tls_at), after = out.substr(tls_at);
  EXPECT_NE(before.find("+OK Send your password.\r\n"), std::string::npos) << out;
  // Nothing answered the injected lines: one CAPA reply in all, after the handshake.
  EXPECT_EQ(count(before, "Capability list follows"), 0u) << out;
  EXPECT_EQ(count(out, "Capability list follows"), 1u) << out;
  // After: a fresh CAPA (SCRAM-PLUS now that there is a channel binding, no STLS)...
  EXPECT_NE(after.find("\r\nSASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN\r\n"), std::string::npos) << after;
  EXPECT_EQ(after.find("\r\nSTLS\r\n"), std::string::npos) << after;
  // ...and the USER given before STLS is forgotten (RFC 2595 §4).
  EXPECT_NE(after.find("-ERR No user name given: send USER first.\r\n"), std::string::npos) << after;
  EXPECT_NE(after.find("-ERR TLS is already active.\r\n"), std::string::npos) << after;
  EXPECT_EQ(out.find("Logged in"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, AfterStlsPlaintextIsAllowedFromAnywhere) {
  enable_fake_stls();
  auto before = dialogue("CAPA\r\nQUIT\r\n", kUntrusted);
  EXPECT_NE(before.find("\r\nSTLS\r\n"), std::string::npos) << before;
  auto out = after_stls("CAPA\r\nUSER ana\r\nPASS secret word\r\nQUIT\r\n", kUntrusted);
  auto after = out.substr(out.find("Begin TLS"));
  EXPECT_NE(after.find("\r\nUSER\r\n"), std::string::npos) << out;
  EXPECT_NE(after.find("+OK Logged in"), std::string::npos) << out;
}

TEST_F(AuthSessionTest, StlsOfferedOnlyWhenAvailable) {
  auto without = dialogue("CAPA\r\nSTLS\r\nQUIT\r\n");
  EXPECT_EQ(without.find("\r\nSTLS\r\n"), std::string::npos) << without;
  EXPECT_NE(without.find("-ERR STLS is not available.\r\n"), std::string::npos) << without;
  enable_fake_stls();
  auto with = dialogue("CAPA\r\nUSER ana\r\nPASS secret word\r\nCAPA\r\nQUIT\r\n");
  auto first = with.substr(0, with.find("Logged in"));
  auto second = with.substr(with.find("Logged in"));
  EXPECT_NE(first.find("\r\nSTLS\r\n"), std::string::npos) << with;
  EXPECT_EQ(second.find("\r\nSTLS\r\n"), std::string::npos) << with;  // only in AUTHORIZATION
}

TEST_F(AuthSessionTest, FailedHandshakeEndsTheSession) {
  enable_fake_stls();
  fail_handshake_ = true;
  auto out = dialogue("STLS\r\nUSER ana\r\n");
  EXPECT_TRUE(out.ends_with("+OK Begin TLS negotiation now.\r\n")) << out;
}

TEST_F(AuthSessionTest, ScramPlusBindsToTheTlsChannel) {
  enable_fake_stls();
  for (bool same : {true, false}) {
    sasl::ClientContext cctx;
    cctx.channel_binding = sasl::ChannelBinding{"tls-exporter", same ? FakeTls::kBinding : std::string(32, 'X')};
    cctx.server_offers_plus = true;
    sasl::ScramClient c({"scram", "pencil", ""}, cctx, true);
    int step = 0;
    auto out = run(stream(MemoryStream::Feeder([&](const std::string& o) -> std::optional<std::string> {
      switch (step++) {
        case 0: return "STLS\r\n"s;
        case 1: return "AUTH SCRAM-SHA-256-PLUS " + b64(*c.initial()) + "\r\n";
        default:
          if (step > 8) return std::nullopt;
          if (!ends_with_challenge(o)) return "QUIT\r\n"s;
          auto r = c.respond(last_challenge(o));
          return r ? b64(*r) + "\r\n" : "*\r\n"s;
      }
    })));
    EXPECT_EQ(out.find("+OK Logged in") != std::string::npos, same) << out;
    EXPECT_EQ(c.complete(), same);
  }
  // "y" (client could bind, but saw no -PLUS) is a downgrade when -PLUS was offered.
  auto out = after_stls("AUTH SCRAM-SHA-256 " + b64("y,,n=scram,r=abcdef") + "\r\nQUIT\r\n");
  EXPECT_NE(out.find("-ERR [AUTH] Authentication failed."), std::string::npos) << out;
}

// ---- Failure penalty and the hashing pool -----------------------------------------------------

TEST_F(AuthSessionTest, PenaltyGrowsPerAddressOnATimerWithoutBlockingOthers) {
  using ms = std::chrono::milliseconds;
  svc_.penalty.configure(ms(100), ms(250));
  svc_.settings.plaintext_requires_tls = false;
  // The attacker: four wrong passwords, then the right one.
  std::vector<Clock::time_point> replies;
  int step = 0;
  auto attacker = stream(MemoryStream::Feeder([&](const std::string&) -> std::optional<std::string> {
                           replies.push_back(Clock::now());
                           if (step++ < 4) return "USER ana\r\nPASS wrong" + std::to_string(step) + "\r\n";
                           if (step == 5) return "USER ana\r\nPASS secret word\r\n"s;
                           return std::nullopt;
                         }),
                         kUntrusted);
  auto attacker_rec = attacker->record();
  // Meanwhile a logged-in user from elsewhere sends NOOPs for as long as the attack lasts; every
  // answer must come back quickly.
  std::vector<Clock::time_point> noop_replies;
  int noops = 0;
  auto other = stream(MemoryStream::Feeder([&](const std::string&) -> std::optional<std::string> {
                        if (noops > 1) noop_replies.push_back(Clock::now());
                        if (noops++ == 0) return "USER hashed\r\nPASS secret word\r\n"s;
                        if (attacker_rec->closed) return "QUIT\r\n"s;
                        return "NOOP\r\n"s;
                      }),
                      "198.51.100.7:5555");
  asio::co_spawn(io_, serve_session(std::move(attacker), svc_), asio::detached);
  asio::co_spawn(io_, serve_session(std::move(other), svc_), asio::detached);
  const auto t0 = Clock::now();
  io_.run();
  ASSERT_EQ(replies.size(), 6u) << attacker_rec->output;
  auto gap = [&](int i) { return std::chrono::duration_cast<ms>(replies[i + 1] - replies[i]); };
  // Reply i+1 waited for the delay earned by i failures: 0, 100, 200, 250 (capped), 250.
  EXPECT_LT(gap(0), ms(90));
  EXPECT_GE(gap(1), ms(95));
  EXPECT_GE(gap(2), ms(195));
  EXPECT_GE(gap(3), ms(245));
  EXPECT_LT(gap(3), ms(400));
  EXPECT_GE(gap(4), ms(245));  // the right password waits too: the penalty is per address
  EXPECT_NE(attacker_rec->output.find("+OK Logged in"), std::string::npos) << attacker_rec->output;
  EXPECT_EQ(svc_.penalty.delay(kUntrusted), ms(0));  // success forgives
  EXPECT_GE(svc_.counters.penalty_waits.load(), 4u);
  // The other session kept going during every wait: a sleeping thread would have stopped it.
  for (int i = 1; i < 5; ++i) {
    const auto n = std::count_if(noop_replies.begin(), noop_replies.end(),
                                 [&](auto t) { return t > replies[i] && t < replies[i + 1]; });
    EXPECT_GE(n, 20) << "NOOPs answered during the attacker's wait " << i;
  }
  EXPECT_GE(Clock::now() - t0, ms(800));
}

TEST_F(AuthSessionTest, TrustedPeersAreNotPenalised) {
  svc_.penalty.configure(std::chrono::milliseconds(300), std::chrono::milliseconds(300));
  const auto t0 = Clock::now();
  auto out = dialogue("USER ana\r\nPASS a\r\nUSER ana\r\nPASS b\r\nUSER ana\r\nPASS secret word\r\nQUIT\r\n");
  EXPECT_NE(out.find("+OK Logged in"), std::string::npos) << out;
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(250));
  EXPECT_EQ(svc_.penalty.tracked(), 0u);
}

TEST_F(AuthSessionTest, PasswordStormDoesNotStallALoggedInSession) {
  // Argon2id at doveadm's cost (64 MiB, 3 passes) is slow by design; four wrong guesses keep the
  // single hashing thread busy for a while. The logged-in user's RETRs run on the store pool and
  // must not queue behind them.
  using ms = std::chrono::milliseconds;
  dir_.add("argon", *auth::hash_password("right", "ARGON2ID"));
  std::string big(200 * 1024, 'x');
  store_.add(kBox, "Subject: big\r\n\r\n" + big + "\r\n", "u2");
  std::vector<std::shared_ptr<MemoryStream::Record>> storm;
  Clock::time_point storm_done{};
  int storm_left = 4;
  auto start_storm = [&] {
    for (int i = 0; i < 4; ++i) {
      auto s = stream("USER argon\r\nPASS guess" + std::to_string(i) + "\r\nQUIT\r\n");
      storm.push_back(s->record());
      asio::co_spawn(io_, serve_session(std::move(s), svc_), [&](std::exception_ptr) {
        if (--storm_left == 0) storm_done = Clock::now();
      });
    }
  };
  // The user logs in, then the storm starts, then the user downloads while it rages.
  std::vector<ms> retr;
  int busy = 0;  // RETR replies that arrived while the hashing pool had work
  auto last = Clock::now();
  int step = 0;
  Clock::time_point user_done{};
  auto user = stream(MemoryStream::Feeder([&](const std::string&) -> std::optional<std::string> {
    auto now = Clock::now();
    if (step >= 3) retr.push_back(std::chrono::duration_cast<ms>(now - last));
    if (step >= 3 && auth_pool_.pending() > 0) ++busy;
    last = now;
    ++step;
    if (step == 1) return "USER ana\r\nPASS secret word\r\n"s;
    if (step == 2) {
      start_storm();
      return "NOOP\r\n"s;
    }
    if (step < 13) return "RETR 2\r\n"s;
    user_done = Clock::now();
    return "QUIT\r\n"s;
  }));
  asio::co_spawn(io_, serve_session(std::move(user), svc_), asio::detached);
  io_.run();
  ASSERT_EQ(storm.size(), 4u);
  for (auto& r : storm) EXPECT_NE(r->output.find("-ERR [AUTH]"), std::string::npos) << r->output;
  ASSERT_EQ(retr.size(), 10u);
  for (auto d : retr) EXPECT_LT(d, ms(250)) << "RETR waited behind password hashing";
  // Meaningful only if the hashing pool really was busy meanwhile.
  EXPECT_GE(busy, 8) << "the storm was not running while the user downloaded";
  EXPECT_GT(storm_done, user_done);
}

}  // namespace
}  // namespace buzon::pop3
