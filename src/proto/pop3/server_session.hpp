// proto/pop3/server_session.hpp — the POP3 server session (RFC 1939, RFC 2449, RFC 3206, RFC 6856,
// RFC 2595 STLS, RFC 5034 AUTH): a coroutine over an abstract byte stream (plain TCP or TLS, the
// same code), the user directory and the mail store.
//
// SECURITY  Everything read from the stream is untrusted: lines are bounded (LineBuffer), commands
//           parsed by parse_command, message numbers by parse_msgnum, SASL exchanges by the pure
//           mechanisms of proto/sasl. The session holds no Maildrop until authentication succeeded
//           (AUTHORIZATION cannot reach one). Plaintext passwords (USER/PASS, AUTH PLAIN, AUTH
//           LOGIN) are refused, and not advertised, on unencrypted connections from peers outside
//           trusted_networks (RFC 5034 §4, RFC 2595 §2.4). STLS consumes the plain stream and drops
//           every octet the client pipelined after the command (RFC 2595 §4, CVE-2011-0411), then
//           forgets what the client said before (USER, UTF8). Failed logins from an untrusted
//           address make its next attempts wait (auth::FailurePenalty) on a timer — no thread
//           sleeps, other sessions are unaffected. Password hashing runs on its own worker pool
//           (auth_pool) so a login storm cannot delay mailbox I/O of logged-in users.
// STANDARDS RFC 1939 (states, commands, UPDATE only after QUIT, autologout), RFC 2449 (CAPA,
//           PIPELINING, EXPIRE, LOGIN-DELAY, RESP-CODES), RFC 3206 (SYS/TEMP, SYS/PERM, AUTH),
//           RFC 6856 (UTF8, LANG), RFC 2595 §4 (STLS), RFC 5034 §4 (AUTH: base64, "*" cancel, "="
//           empty initial response, success data as a last challenge), RFC 4422, RFC 8314.
// LIMITS    Command line 255 octets (RFC 2449 §4) except AUTH and SASL responses (kMaxAuthLine,
//           also for the initial response), bad-command count, idle autologout covering writes,
//           total session time; output is written before more input is read (backpressure).
#pragma once

#include "auth/directory.hpp"
#include "core/metrics.hpp"
#include "auth/penalty.hpp"
#include "core/ip_network.hpp"
#include "net/stream.hpp"
#include "net/worker_pool.hpp"
#include "proto/login/login.hpp"
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

struct Settings : login::Policy {
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
  // The login policy (login::Policy): sasl_mechanisms, plaintext_requires_tls (which also covers
  // USER/PASS), trusted_networks.
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
  std::atomic<std::uint64_t> stls{0}, penalty_waits{0}, plaintext_refused{0};
};

// Everything a session needs from the server; outlives every session.
struct Service {
  Settings settings;
  const auth::Directory* directory = nullptr;
  store::MailStore* store = nullptr;
  net::WorkerPool* pool = nullptr;       // store calls
  net::WorkerPool* auth_pool = nullptr;  // password hashing and lookups; nullptr: `pool`
  net::StartTls start_tls;               // empty: STLS is not offered
  auth::FailurePenalty penalty;          // per source address, shared by all sessions
  std::string fake_salt_key;             // per-process secret for SCRAM salts of unknown users
  LoginTracker logins;
  Counters counters;
  metrics::ProtocolMetrics metrics{"pop3"};  // commands, auth by mechanism, bytes (Prometheus)
};

// Serves one connection until QUIT, timeout, error or close. Never throws for client behaviour.
asio::awaitable<void> serve_session(std::unique_ptr<net::Stream> stream, Service& service);

}  // namespace buzon::pop3
