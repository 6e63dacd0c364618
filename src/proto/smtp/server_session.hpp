// proto/smtp/server_session.hpp — the SMTP and LMTP server session: a coroutine over an abstract
// byte stream, the user directory and the Delivery interface. Modes: smtp (MX, port 25: local
// domains only, never a relay, no AUTH), lmtp (RFC 2033: behind an MTA, one reply per recipient
// after the data), submission (RFC 6409, RFC 8314: AUTH (RFC 4954) before MAIL; the sender and
// From:/Sender: must belong to the user; Date:/Message-ID: added; DKIM signing; local recipients
// delivered directly, remote ones through the outbound spool).
//
// SECURITY  Everything read from the stream is untrusted. Command lines are bounded and must end in
//           CRLF (LineBuffer strict_crlf: a bare CR or LF in a command is refused); commands are
//           parsed by parse_command; message data is framed only by DataReader/BdatReader (the
//           SMTP smuggling defence: only <CRLF>.<CRLF> ends DATA). Recipients outside the local
//           domains are refused (550 5.7.1) in smtp mode. A 250 after the data is sent only after
//           Delivery::deliver() returned success, i.e. after the copies are durable, and after the
//           spool entry of an alias's remote targets is committed (forwarding, README
//           "Forwarding"; withdrawn again if a local copy fails). STARTTLS
//           discards every octet the client pipelined after the command and resets the session
//           (RFC 3207 §4.2); the early-talker check refuses clients that talk before the greeting.
//           Submission: nothing is accepted before AUTH (530), so the port is never an open relay;
//           plaintext mechanisms only over TLS (require_tls) or per the [auth] policy; password
//           checks on the auth pool with the shared failure penalty (proto/login); a message is
//           answered 250 only when every copy (local Delivery and/or spool entry) is durable.
// STANDARDS RFC 5321 (§3, §4.1.1 commands, §4.1.4 order, §4.2 replies, §4.4 trace fields,
//           §4.5.3.1 sizes, §4.5.3.2 timeouts, §7.1 no open relay), RFC 1870 (SIZE), RFC 2920
//           (PIPELINING), RFC 3030 (CHUNKING/BDAT), RFC 3207 (STARTTLS), RFC 2034 and RFC 3463
//           (ENHANCEDSTATUSCODES), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN
//           parameters accepted and kept on the envelope; DSN is not advertised until the queue
//           can send them), RFC 2033 (LMTP), RFC 3848 (Received "with" names), RFC 4954 (AUTH),
//           RFC 6409 (submission), RFC 8314 (implicit TLS), RFC 6376 (DKIM signing).
// LIMITS    Command line kMaxCommandLine; text line max_line_length; message max_message_size
//           (enforced while the data streams in; the message is held in memory up to that size);
//           max_recipients (452 4.5.3 beyond); max_errors (421 4.7.0); command_timeout for each
//           command read, data_timeout for each data read, max_session_time overall; greet_pause.
//           Submission: AUTH command and SASL response lines up to kMaxAuthLine (RFC 4954 §4).
#pragma once

#include "auth/directory.hpp"
#include "net/stream.hpp"
#include "auth/penalty.hpp"
#include "dkim/dkim.hpp"
#include "net/worker_pool.hpp"
#include "proto/login/login.hpp"
#include "proto/smtp/limits.hpp"
#include "proto/smtp/recipient.hpp"
#include "proto/smtp/submission.hpp"
#include "queue/queue.hpp"
#include "store/delivery.hpp"

#include <asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace buzon::smtp {

// RFC 4954 §4: AUTH lines and SASL responses may be this long (submission mode only).
inline constexpr std::size_t kMaxAuthLine = 12288;

enum class Mode { smtp, submission, lmtp };

// login::Policy ([auth]: mechanisms, plaintext policy, trusted networks) is used in submission mode.
struct Settings : login::Policy {
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
  // [quota] over_quota: a full mailbox answers 552 5.2.2 instead of 452 4.2.2.
  bool over_quota_permanent = false;
  SubmissionSettings submission;  // submission mode only
};

struct Counters {
  std::atomic<std::uint64_t> sessions{0}, messages{0}, recipients{0}, rejected_recipients{0},
      relay_denied{0}, delivery_failures{0}, bare_line_ends{0}, early_talkers{0}, bytes_in{0};
  std::atomic<std::uint64_t> logins{0}, auth_failures{0}, sender_refused{0}, queued{0}, signed_messages{0};
};

// Everything a session needs from the server; outlives every session.
struct Service {
  Settings settings;
  const auth::Directory* directory = nullptr;
  store::Delivery* delivery = nullptr;
  net::WorkerPool* pool = nullptr;
  net::StartTls start_tls;  // empty: STARTTLS is not offered
  // Submission mode:
  net::WorkerPool* auth_pool = nullptr;    // password hashing; nullptr: `pool`
  auth::FailurePenalty* penalty = nullptr; // per source address (shared with POP3); nullptr: none
  std::string fake_salt_key;               // SCRAM salts of unknown users
  queue::Spool* spool = nullptr;           // remote recipients, forwards; nullptr: they are refused
  std::vector<dkim::Signer> dkim;          // [[dkim.key]]: every key of the author's domain signs
  std::function<void()> on_enqueued;       // after a durable enqueue or forward: wakes the relay
  Counters counters;
};

// Serves one connection until QUIT, timeout, error or close. Never throws for client behaviour.
asio::awaitable<void> serve_session(std::unique_ptr<net::Stream> stream, Service& service);

}  // namespace buzon::smtp
