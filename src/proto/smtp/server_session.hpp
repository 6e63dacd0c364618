// proto/smtp/server_session.hpp — the SMTP and LMTP server session: a coroutine over an abstract
// byte stream, the user directory and the Delivery interface. Modes: smtp (MX, port 25: local
// domains only, never a relay), lmtp (RFC 2033: behind an MTA, one reply per recipient after the
// data), submission (reserved for the submission issue: until AUTH exists it refuses every MAIL
// with 530, so it can never become an open relay).
//
// SECURITY  Everything read from the stream is untrusted. Command lines are bounded and must end in
//           CRLF (LineBuffer strict_crlf: a bare CR or LF in a command is refused); commands are
//           parsed by parse_command; message data is framed only by DataReader/BdatReader (the
//           SMTP smuggling defence: only <CRLF>.<CRLF> ends DATA). Recipients outside the local
//           domains are refused (550 5.7.1) in smtp mode. A 250 after the data is sent only after
//           Delivery::deliver() returned success, i.e. after the copies are durable. STARTTLS
//           discards every octet the client pipelined after the command and resets the session
//           (RFC 3207 §4.2); the early-talker check refuses clients that talk before the greeting.
// STANDARDS RFC 5321 (§3, §4.1.1 commands, §4.1.4 order, §4.2 replies, §4.4 trace fields,
//           §4.5.3.1 sizes, §4.5.3.2 timeouts, §7.1 no open relay), RFC 1870 (SIZE), RFC 2920
//           (PIPELINING), RFC 3030 (CHUNKING/BDAT), RFC 3207 (STARTTLS), RFC 2034 and RFC 3463
//           (ENHANCEDSTATUSCODES), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN
//           parameters accepted and kept on the envelope; DSN is not advertised until the queue
//           can send them), RFC 2033 (LMTP), RFC 3848 (Received "with" names).
// LIMITS    Command line kMaxCommandLine; text line max_line_length; message max_message_size
//           (enforced while the data streams in; the message is held in memory up to that size);
//           max_recipients (452 4.5.3 beyond); max_errors (421 4.7.0); command_timeout for each
//           command read, data_timeout for each data read, max_session_time overall; greet_pause.
#pragma once

#include "auth/directory.hpp"
#include "net/stream.hpp"
#include "net/worker_pool.hpp"
#include "proto/smtp/limits.hpp"
#include "proto/smtp/recipient.hpp"
#include "store/delivery.hpp"

#include <asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace buzon::smtp {

enum class Mode { smtp, submission, lmtp };

struct Settings {
  Mode mode = Mode::smtp;
  std::string hostname = "localhost";
  RecipientPolicy recipients;  // local domains, user name rules, mail location template
  std::uint64_t max_message_size = kMaxMessageSize;
  std::size_t max_recipients = kMaxRecipients;
  std::size_t max_line_length = kMaxTextLine;
  unsigned max_errors = kMaxErrors;
  std::chrono::milliseconds command_timeout{kCommandTimeout};
  std::chrono::milliseconds data_timeout{kDataTimeout};
  std::chrono::milliseconds max_session_time{kMaxSessionTime};
  // Wait this long before the greeting; a client that sends anything meanwhile is refused
  // (554 5.5.0) and disconnected. 0 = no pause (the check is then skipped).
  std::chrono::milliseconds greet_pause{0};
  // VRFY answers 252 unless this is on; then local users are confirmed (250) or denied (550).
  bool vrfy = false;
};

struct Counters {
  std::atomic<std::uint64_t> sessions{0}, messages{0}, recipients{0}, rejected_recipients{0},
      relay_denied{0}, delivery_failures{0}, bare_line_ends{0}, early_talkers{0}, bytes_in{0};
};

// Everything a session needs from the server; outlives every session.
struct Service {
  Settings settings;
  const auth::Directory* directory = nullptr;
  store::Delivery* delivery = nullptr;
  net::WorkerPool* pool = nullptr;
  net::StartTls start_tls;  // empty: STARTTLS is not offered
  Counters counters;
};

// Serves one connection until QUIT, timeout, error or close. Never throws for client behaviour.
asio::awaitable<void> serve_session(std::unique_ptr<net::Stream> stream, Service& service);

}  // namespace buzon::smtp
