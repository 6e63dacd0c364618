// Session tests: the real session coroutine over an in-memory stream, the memory store and a
// table directory. Each test is a dialogue: client input -> the exact server output expected.
#include "proto/pop3/server_session.hpp"

#include "auth/password.hpp"
#include "store/memory/memory_store.hpp"
#include "support/memory_stream.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <gtest/gtest.h>

#include <map>
#include <regex>

namespace buzon::pop3 {
namespace {

using test::MemoryStream;

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

constexpr const char* kBox = "/mem/mail/ana";
constexpr const char* kGreeting = "+OK buzon POP3 server ready\r\n";
constexpr const char* kLogin = "USER ana\r\nPASS secret word\r\n";

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    dir_.add("ana", "{PLAIN}secret word");
    dir_.add("bob", "{PLAIN}bob");
    svc_.directory = &dir_;
    svc_.store = &store_;
    svc_.pool = &pool_;
    svc_.settings.mail_template = "mail/%n";
    svc_.settings.base_dir = "/mem";
  }

  // Runs one session to completion over `input` and returns everything the server wrote.
  std::string dialogue(std::string input, std::size_t read_size = 1 << 20) {
    auto s = std::make_unique<MemoryStream>(io_, std::move(input));
    s->set_read_size(read_size);
    auto rec = s->record();
    asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
    io_.restart();
    io_.run();
    EXPECT_TRUE(rec->closed);
    return rec->output;
  }

  // The output after the greeting and the login reply.
  std::string after_login(std::string commands) {
    auto out = dialogue(kLogin + commands);
    auto pos = out.find("+OK Logged in");
    EXPECT_NE(pos, std::string::npos) << out;
    return out.substr(out.find("\r\n", pos) + 2);
  }

  asio::io_context io_;
  net::WorkerPool pool_{2, 16};
  store::memory::MemoryStore store_;
  TableDirectory dir_;
  Service svc_;
};

TEST_F(SessionTest, GreetingAndQuitBeforeLogin) {
  // RFC 1939 §4: greeting; §6: QUIT in AUTHORIZATION is answered before the close.
  EXPECT_EQ(dialogue("QUIT\r\n"), std::string(kGreeting) + "+OK buzon POP3 server signing off.\r\n");
}

TEST_F(SessionTest, TransactionCommandsAndUpdate) {
  store_.add(kBox, "Subject: one\r\n\r\nbody one\r\n", "uid-1");
  store_.add(kBox, "Subject: two\n\nbody\ntwo\n", "uid-2");
  auto out = after_login("STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\nDELE 1\r\nSTAT\r\nLIST\r\nQUIT\r\n");
  EXPECT_EQ(out,
            "+OK 2 53\r\n"
            "+OK 2 messages (53 octets)\r\n1 26\r\n2 27\r\n.\r\n"
            "+OK 2 27\r\n"
            "+OK Unique-ID listing follows\r\n1 uid-1\r\n2 uid-2\r\n.\r\n"
            "+OK 1 uid-1\r\n"
            "+OK Message 1 deleted.\r\n"
            "+OK 1 27\r\n"
            "+OK 1 messages (27 octets)\r\n2 27\r\n.\r\n"
            "+OK buzon POP3 server signing off (1 messages deleted).\r\n");
  auto left = store_.contents(kBox);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].uidl, "uid-2");
}

TEST_F(SessionTest, DeletedMessageVanishesEverywhere) {
  store_.add(kBox, "a\r\n", "u1");
  store_.add(kBox, "b\r\n", "u2");
  auto out = after_login("DELE 1\r\nRETR 1\r\nTOP 1 0\r\nDELE 1\r\nLIST 1\r\nUIDL 1\r\nUIDL\r\nSTAT\r\nRSET\r\nSTAT\r\n");
  std::regex err_line("-ERR [^\r]*deleted[^\r]*\r\n");
  auto errs = std::distance(std::sregex_iterator(out.begin(), out.end(), err_line), std::sregex_iterator());
  EXPECT_EQ(errs, 5) << out;
  EXPECT_NE(out.find("+OK Unique-ID listing follows\r\n2 u2\r\n.\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("+OK 1 3\r\n+OK Maildrop has 2 messages (6 octets).\r\n+OK 2 6\r\n"), std::string::npos) << out;
  EXPECT_EQ(store_.contents(kBox).size(), 2u);  // no QUIT: nothing deleted
}

TEST_F(SessionTest, RetrIsDotStuffedCrlfAndTerminated) {
  store_.add(kBox, "Subject: x\n\n.hidden\nlast line without newline", "u1");
  auto out = after_login("LIST 1\r\nRETR 1\r\nQUIT\r\n");
  // The size is exactly what is sent before the terminating ".\r\n": CRLF line ends, without the
  // stuffed dots, and with the CRLF that completes an unterminated last line (RFC 1939 §11).
  EXPECT_EQ(out,
            "+OK 1 50\r\n"
            "+OK 50 octets\r\n"
            "Subject: x\r\n\r\n..hidden\r\nlast line without newline\r\n.\r\n"
            "+OK buzon POP3 server signing off (0 messages deleted).\r\n");
}

TEST_F(SessionTest, TopSendsHeadersBlankLineAndCountedBodyLines) {
  store_.add(kBox, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", "u1");
  EXPECT_EQ(after_login("TOP 1 0\r\n"), "+OK Top of message follows\r\nA: 1\r\nB: 2\r\n\r\n.\r\n");
  EXPECT_EQ(after_login("TOP 1 2\r\n"), "+OK Top of message follows\r\nA: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n");
  EXPECT_EQ(after_login("TOP 1 99\r\n"), "+OK Top of message follows\r\nA: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n.\r\n");
}

TEST_F(SessionTest, BadMessageNumbersAreErrorsAndTheSessionGoesOn) {
  store_.add(kBox, "a\r\n", "u1");
  auto out = after_login(
      "RETR 0\r\nRETR -1\r\nRETR 99999999999999999999999\r\nRETR 1x\r\nRETR +1\r\nRETR 2\r\nLIST 0\r\nTOP 1\r\n"
      "TOP 1 -1\r\nDELE\r\nNOOP\r\n");
  std::size_t errs = 0;
  for (std::size_t p = 0; (p = out.find("-ERR", p)) != std::string::npos; ++p) ++errs;
  EXPECT_EQ(errs, 10u) << out;
  EXPECT_TRUE(out.ends_with("+OK\r\n")) << out;
}

TEST_F(SessionTest, LongEmptyAndGarbageLinesAreErrors) {
  std::string longline = "NOOP " + std::string(300, 'x') + "\r\n";
  auto out = after_login(longline + "\r\nRE:R 1\r\n\x01\x02\xff\r\nXYZW\r\nNOOP\r\n");
  std::size_t errs = 0;
  for (std::size_t p = 0; (p = out.find("-ERR", p)) != std::string::npos; ++p) ++errs;
  EXPECT_EQ(errs, 5u) << out;
  EXPECT_TRUE(out.ends_with("+OK\r\n")) << out;
}

TEST_F(SessionTest, CommandsInTheWrongState) {
  auto out = dialogue("STAT\r\nRETR 1\r\nDELE 1\r\nNOOP\r\n" + std::string(kLogin) + "USER ana\r\nPASS x\r\nUTF8\r\nQUIT\r\n");
  std::size_t errs = 0;
  for (std::size_t p = 0; (p = out.find("-ERR", p)) != std::string::npos; ++p) ++errs;
  EXPECT_EQ(errs, 7u) << out;
}

TEST_F(SessionTest, FailedLoginSaysAuthAndRevealsNothing) {
  auto bad_pw = dialogue("USER ana\r\nPASS wrong\r\nQUIT\r\n");
  auto no_user = dialogue("USER nobody\r\nPASS wrong\r\nQUIT\r\n");
  EXPECT_NE(bad_pw.find("-ERR [AUTH] Authentication failed.\r\n"), std::string::npos) << bad_pw;
  EXPECT_EQ(bad_pw, no_user);  // RFC 3206 §4 [AUTH]; the same text for unknown users
  EXPECT_NE(dialogue("PASS secret\r\n").find("-ERR"), std::string::npos);  // PASS without USER
  EXPECT_EQ(svc_.counters.auth_failures.load(), 2u);
}

TEST_F(SessionTest, PasswordsMayContainSpaces) {
  store_.add(kBox, "a\r\n");
  EXPECT_EQ(after_login("QUIT\r\n"), "+OK buzon POP3 server signing off (0 messages deleted).\r\n");
}

TEST_F(SessionTest, DroppedConnectionDeletesNothingButMarksSeen) {
  store_.add(kBox, "a\r\n", "u1");
  store_.add(kBox, "b\r\n", "u2");
  after_login("RETR 1\r\nDELE 1\r\nDELE 2\r\n");  // then EOF: no QUIT
  auto left = store_.contents(kBox);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_TRUE(left[0].seen);
  EXPECT_FALSE(left[1].seen);
  EXPECT_FALSE(store_.is_locked(kBox));
}

TEST_F(SessionTest, PipelinedCommandsAnsweredInOrderWhateverTheReadSize) {
  store_.add(kBox, "Subject: p\r\n\r\n.\r\n..\r\nx\r\n", "u1");
  std::string script = std::string(kLogin) + "STAT\r\nLIST\r\nRETR 1\r\nTOP 1 1\r\nUIDL\r\nNOOP\r\nQUIT\r\n";
  auto whole = dialogue(script);
  EXPECT_NE(whole.find("\r\n\r\n..\r\n...\r\nx\r\n.\r\n"), std::string::npos) << whole;
  for (std::size_t rs : {1u, 2u, 3u, 7u, 64u}) EXPECT_EQ(dialogue(script, rs), whole) << "read size " << rs;
}

TEST_F(SessionTest, SecondSessionGetsInUse) {
  store_.add(kBox, "a\r\n", "u1");
  auto first = std::make_unique<MemoryStream>(io_, std::string(kLogin));
  first->set_hang_at_end(true);  // stays logged in
  auto first_rec = first->record();
  MemoryStream* first_raw = first.get();
  asio::co_spawn(io_, serve_session(std::move(first), svc_), asio::detached);
  while (first_rec->output.find("Logged in") == std::string::npos) io_.run_one();
  EXPECT_TRUE(store_.is_locked(kBox));

  auto second = std::make_unique<MemoryStream>(io_, std::string(kLogin) + "QUIT\r\n");
  auto second_rec = second->record();
  asio::co_spawn(io_, serve_session(std::move(second), svc_), asio::detached);
  while (!second_rec->closed) io_.run_one();
  EXPECT_NE(second_rec->output.find("-ERR [IN-USE]"), std::string::npos) << second_rec->output;

  first_raw->close();
  io_.run();
  EXPECT_FALSE(store_.is_locked(kBox));
}

TEST_F(SessionTest, AutologoutClosesIdleSessionAndDeletesNothing) {
  store_.add(kBox, "a\r\n", "u1");
  svc_.settings.autologout = std::chrono::milliseconds(50);
  auto s = std::make_unique<MemoryStream>(io_, std::string(kLogin) + "DELE 1\r\n");
  s->set_hang_at_end(true);
  auto rec = s->record();
  asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
  auto t0 = std::chrono::steady_clock::now();
  io_.run();
  EXPECT_TRUE(rec->closed);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
  EXPECT_EQ(store_.contents(kBox).size(), 1u);
}

TEST_F(SessionTest, TooManyBadCommandsDisconnects) {
  svc_.settings.max_bad_commands = 3;
  auto out = dialogue("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\nQUIT\r\n");
  EXPECT_TRUE(out.ends_with("-ERR Too many bad commands, closing connection.\r\n")) << out;
  EXPECT_EQ(out.find("signing off"), std::string::npos);
}

TEST_F(SessionTest, StoreErrorsCarryResponseCodes) {
  store_.add(kBox, "a\r\n", "u1");
  store_.fail_next(store::StoreErrc::temp, store::memory::MemoryStore::Op::open_maildrop);
  EXPECT_NE(dialogue(std::string(kLogin) + "QUIT\r\n").find("-ERR [SYS/TEMP]"), std::string::npos);
  store_.fail_next(store::StoreErrc::perm, store::memory::MemoryStore::Op::open_maildrop);
  EXPECT_NE(dialogue(std::string(kLogin) + "QUIT\r\n").find("-ERR [SYS/PERM]"), std::string::npos);
  store_.fail_next(store::StoreErrc::temp, store::memory::MemoryStore::Op::commit_deletes);
  auto out = after_login("DELE 1\r\nQUIT\r\n");
  EXPECT_NE(out.find("-ERR [SYS/TEMP] Some deleted messages were not removed."), std::string::npos) << out;
  EXPECT_EQ(store_.contents(kBox).size(), 1u);
}

TEST_F(SessionTest, LoginDelayIsEnforced) {
  svc_.settings.login_delay = std::chrono::seconds(60);
  EXPECT_NE(dialogue(std::string(kLogin) + "QUIT\r\n").find("+OK Logged in"), std::string::npos);
  auto again = dialogue(std::string(kLogin) + "QUIT\r\n");
  EXPECT_NE(again.find("-ERR [LOGIN-DELAY]"), std::string::npos) << again;
  EXPECT_FALSE(store_.is_locked(kBox));
  auto capa = dialogue("CAPA\r\nQUIT\r\n");
  EXPECT_NE(capa.find("LOGIN-DELAY 60\r\n"), std::string::npos) << capa;
}

TEST_F(SessionTest, ExpireZeroDeletesRetrievedMessagesAtQuit) {
  svc_.settings.expire_days = 0;
  store_.add(kBox, "a\r\n", "u1");
  store_.add(kBox, "b\r\n", "u2");
  auto out = after_login("RETR 2\r\nQUIT\r\n");
  EXPECT_NE(out.find("(1 messages deleted)"), std::string::npos) << out;
  auto left = store_.contents(kBox);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].uidl, "u1");
  EXPECT_NE(dialogue("CAPA\r\nQUIT\r\n").find("EXPIRE 0\r\n"), std::string::npos);
}

TEST_F(SessionTest, ExpireDaysRemovesOldSeenMessagesOnly) {
  svc_.settings.expire_days = 30;
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  store_.add(kBox, "old\r\n", "old", now - 40 * 86400);
  store_.add(kBox, "new\r\n", "new", now);
  after_login("RETR 1\r\n");  // aborted: marks seen only
  after_login("QUIT\r\n");    // old and seen: expired
  auto left = store_.contents(kBox);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].uidl, "new");
}

TEST_F(SessionTest, CapaIsTheSameBeforeAndAfterLogin) {
  auto before = dialogue("CAPA\r\nQUIT\r\n");
  auto after = after_login("CAPA\r\nQUIT\r\n");
  auto capa_of = [](const std::string& s) {
    auto b = s.find("+OK Capability list follows");
    return s.substr(b, s.find("\r\n.\r\n", b) - b);
  };
  EXPECT_EQ(capa_of(before), capa_of(after));
  for (const char* tag : {"TOP", "USER", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "IMPLEMENTATION"})
    EXPECT_NE(before.find(std::string("\r\n") + tag), std::string::npos) << tag;
}

TEST_F(SessionTest, ApopWithTimestampFromGreeting) {
  svc_.settings.apop = true;
  store_.add(kBox, "a\r\n", "u1");
  auto s = std::make_unique<MemoryStream>(io_, MemoryStream::Feeder([step = 0](const std::string& out) mutable
                                                                     -> std::optional<std::string> {
    if (step++ > 0) return std::nullopt;
    std::smatch m;
    std::regex ts("(<[^>]+>)");
    if (!std::regex_search(out, m, ts)) return std::string("QUIT\r\n");
    return "APOP ana " + auth::apop_digest(m[1].str(), "secret word") + "\r\nAPOP ana 0123\r\nQUIT\r\n";
  }));
  auto rec = s->record();
  asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
  io_.run();
  EXPECT_NE(rec->output.find("+OK Logged in"), std::string::npos) << rec->output;
  // APOP after login is a wrong-state command.
  EXPECT_NE(rec->output.find("-ERR"), std::string::npos) << rec->output;
}

TEST_F(SessionTest, ApopRefusedForHashedSecrets) {
  svc_.settings.apop = true;
  dir_.add("hashed", "{SHA512-CRYPT}$6$abc$def");
  auto out = dialogue("APOP hashed 0123456789abcdef0123456789abcdef\r\nQUIT\r\n");
  EXPECT_NE(out.find("-ERR [AUTH]"), std::string::npos) << out;
}

TEST_F(SessionTest, WriteFailureEndsSessionWithoutDeleting) {
  store_.add(kBox, "a\r\n", "u1");
  // The client sends its commands, but the replies to USER/PASS/DELE cannot be written: the session
  // must end there, before it ever reads the QUIT that would follow.
  auto s = std::make_unique<MemoryStream>(io_, MemoryStream::Feeder([step = 0](const std::string&) mutable
                                                                     -> std::optional<std::string> {
    switch (step++) {
      case 0: return std::string(kLogin) + "DELE 1\r\n";
      case 1: return std::string("QUIT\r\n");
      default: return std::nullopt;
    }
  }));
  s->set_fail_on(3);  // 1: greeting, 2: read, 3: the batched replies
  auto rec = s->record();
  asio::co_spawn(io_, serve_session(std::move(s), svc_), asio::detached);
  io_.run();
  EXPECT_TRUE(rec->closed);
  EXPECT_EQ(store_.contents(kBox).size(), 1u);
  EXPECT_FALSE(store_.is_locked(kBox));
}

}  // namespace
}  // namespace buzon::pop3
