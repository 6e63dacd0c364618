// proto/pop3/server_session.hpp — the POP3 server session (RFC 1939, RFC 2449, RFC 3206, RFC 6856):
// a coroutine over an abstract byte stream, the user directory and the mail store.
//
// SECURITY  Everything read from the stream is untrusted: lines are bounded (LineBuffer), commands
//           parsed by parse_command, message numbers by parse_msgnum. The session holds no
//           Maildrop until authentication succeeded (AUTHORIZATION cannot reach one).
// STANDARDS RFC 1939 (states, commands, UPDATE only after QUIT, autologout), RFC 2449 (CAPA,
//           PIPELINING, EXPIRE, LOGIN-DELAY, RESP-CODES), RFC 3206 (SYS/TEMP, SYS/PERM, AUTH),
//           RFC 6856 (UTF8, LANG).
// LIMITS    Command line 255 octets (RFC 2449 §4), bad-command count, idle autologout covering
//           writes, total session time; output is written before more input is read (backpressure).
#pragma once

#include "auth/directory.hpp"
#include "net/stream.hpp"
#include "net/worker_pool.hpp"
#include "store/maildrop.hpp"

#include <asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace buzon::pop3 {

struct Settings {
  std::string hostname = "localhost";
  bool apop = false;
  std::chrono::milliseconds autologout{600'000};
  std::chrono::milliseconds max_session_time{7'200'000};
  unsigned max_bad_commands = 20;
  std::chrono::seconds login_delay{0};
  std::optional<unsigned> expire_days;  // nullopt = NEVER
  store::MaildropOptions maildrop;
  auth::NameRules names;
  std::string mail_template = "mail/%d/%n/Maildir";
  std::filesystem::path base_dir = ".";
};

// LOGIN-DELAY enforcement (RFC 2449 §6.8): the time of each user's last successful login.
class LoginTracker {
 public:
  // Remaining wait if `user` logged in less than `delay` ago; otherwise records now and returns 0.
  std::chrono::seconds check_and_record(const std::string& user, std::chrono::seconds delay);

 private:
  std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_;
};

struct Counters {
  std::atomic<std::uint64_t> sessions{0}, logins{0}, auth_failures{0}, retr{0}, dele{0}, bytes_out{0};
};

// Everything a session needs from the server; outlives every session.
struct Service {
  Settings settings;
  const auth::Directory* directory = nullptr;
  store::MailStore* store = nullptr;
  net::WorkerPool* pool = nullptr;
  LoginTracker logins;
  Counters counters;
};

// Serves one connection until QUIT, timeout, error or close. Never throws for client behaviour.
asio::awaitable<void> serve_session(std::unique_ptr<net::Stream> stream, Service& service);

}  // namespace buzon::pop3
