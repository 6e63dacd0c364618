// proto/pop3/client_session.hpp — the POP3 client session (`buzon fetch`): a coroutine over an
// abstract byte stream that reads the greeting, asks CAPA, upgrades with STLS, authenticates by
// preference, lists messages (UIDL, LIST, TOP for servers without UIDL), and retrieves messages
// into a RetrieveSink while deleting only what the sink has made durable.
//
// SECURITY  Every server octet is untrusted: status lines are bounded (kMaxClientLine), bodies are
//           streamed through MultiLineDecoder (never held whole). Passwords never cross a
//           connection that is neither TLS nor loopback unless AuthOptions::allow_plaintext says so;
//           the policy refuses, it never silently downgrades. After STLS the plain stream and any
//           octets buffered from it are dropped (RFC 2595 §4), CAPA is asked again. A SCRAM
//           exchange whose server did not prove its key fails even on +OK.
// STANDARDS RFC 1939 (states, commands, multi-line, APOP), RFC 2449 (CAPA, PIPELINING, response
//           codes IN-USE and LOGIN-DELAY), RFC 3206 (SYS/TEMP, SYS/PERM, AUTH), RFC 2595 §4 (STLS),
//           RFC 5034 (AUTH: initial response, "+ " challenges, "*" cancel, additional data with
//           success sent as a last challenge), RFC 4422.
// LIMITS    One command in flight without PIPELINING; at most RetrieveOptions::window RETRs in
//           flight with it (bounded server-side buffering, RFC 2449 §6.6). Each read and write
//           has ClientOptions::timeout; the stream is closed when it passes.
#pragma once

#include "net/stream.hpp"
#include "proto/pop3/client_reply.hpp"
#include "proto/sasl/mechanism.hpp"

#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::pop3 {

enum class ClientErrc {
  network,      // connect, read or write failed; the server closed the connection
  timeout,      // no progress within ClientOptions::timeout
  protocol,     // the server broke the protocol (not a status line, bad listing ...)
  tls,          // STLS refused or the TLS handshake/verification failed
  auth,         // credentials refused ([AUTH] or a plain -ERR to PASS/APOP/AUTH)
  in_use,       // [IN-USE]: the maildrop is locked by another session (RFC 2449 §8.1.2)
  login_delay,  // [LOGIN-DELAY]: logged in too recently (RFC 2449 §8.1.1)
  server,       // another -ERR where +OK was needed ([SYS/TEMP], [SYS/PERM], ...)
  policy,       // our own policy refused (plaintext password without TLS, no usable method)
  local,        // the RetrieveSink failed (disk full, MDA failed ...)
};

std::string_view to_string(ClientErrc e);

struct ClientError {
  ClientErrc code;
  std::string message;  // one line for the user: what happened and, where it helps, the fix
};

template <class T>
using ClientResult = std::expected<T, ClientError>;

// Consumes the plain stream and returns it wrapped in TLS (net/tls once it exists), or an error
// naming the cause (certificate not trusted, fingerprint mismatch ...).
using TlsUpgrade = std::function<asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>>(
    std::unique_ptr<net::Stream>)>;

// A fresh SASL client mechanism for a name, or nullptr when it is not available.
using SaslFactory = std::function<std::unique_ptr<sasl::ClientMechanism>(std::string_view mechanism)>;

enum class AuthMethod { scram_sha256, plain, login, apop, user };
std::string_view to_string(AuthMethod m);
std::optional<AuthMethod> parse_auth_method(std::string_view name);  // "scram-sha-256", "plain", ...

struct AuthOptions {
  std::string user, password;
  // Methods to try, best first; the first one the server offers (and the policy allows) is used.
  std::vector<AuthMethod> preference{AuthMethod::scram_sha256, AuthMethod::plain, AuthMethod::login,
                                     AuthMethod::apop, AuthMethod::user};
  // Send the password itself (USER/PASS, PLAIN, LOGIN) over a connection that is neither TLS nor
  // loopback.
  bool allow_plaintext = false;
  SaslFactory sasl;  // empty: no SASL mechanisms
};

struct ClientOptions {
  std::chrono::milliseconds timeout{60'000};  // each read and write
  LineEnds line_ends = LineEnds::wire;        // of the message content handed to a RetrieveSink
};

struct RemoteMessage {
  std::uint64_t number = 0;
  std::uint64_t size = 0;
  std::string uid;  // "" when the server has no UIDL
};

// Where retrieved messages go. Calls come in this order per message: begin, data*, end (or abort
// when the message is cut short); commit makes every message ended so far durable — the session
// sends DELE for a message only after the commit that covers it returned success.
class RetrieveSink {
 public:
  virtual ~RetrieveSink() = default;
  virtual asio::awaitable<std::expected<void, std::string>> begin(const RemoteMessage& msg) = 0;
  virtual asio::awaitable<std::expected<void, std::string>> data(std::string_view chunk) = 0;
  virtual asio::awaitable<std::expected<void, std::string>> end() = 0;
  virtual void abort() = 0;
  virtual asio::awaitable<std::expected<void, std::string>> commit() = 0;
};

struct RetrieveOptions {
  bool pipelining = true;            // use PIPELINING when CAPA offers it
  std::size_t window = 8;            // RETR commands in flight with PIPELINING
  bool dele = false;                 // DELE each message once committed
  std::size_t commit_messages = 32;  // commit at least this often ...
  std::uint64_t commit_bytes = 16 << 20;  // ... and after this many octets
  // Called after each reply (message retrieved or failed), for progress display.
  std::function<void(const RemoteMessage&, std::uint64_t wire_octets)> progress;
};

struct RetrieveResult {
  std::size_t retrieved = 0;         // delivered and committed
  std::uint64_t octets = 0;          // content octets handed to the sink
  std::vector<std::uint64_t> deleted;  // numbers acknowledged by DELE (removed at QUIT)
  std::vector<std::pair<std::uint64_t, std::string>> refused;  // RETR -ERR: number, server text
};

class ClientSession {
 public:
  explicit ClientSession(std::unique_ptr<net::Stream> stream, ClientOptions options = {});
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Reads the greeting (+OK; remembers an APOP timestamp).
  asio::awaitable<ClientResult<void>> greeting();
  // CAPA; a server without CAPA (-ERR) gets Capabilities{known = false, user = true}.
  asio::awaitable<ClientResult<Capabilities>> capa();
  // STLS, the upgrade, then CAPA again.
  asio::awaitable<ClientResult<void>> stls(const TlsUpgrade& upgrade);
  // Authenticates with the first method of the preference that the server offers and the
  // plaintext policy allows. Returns the method used.
  asio::awaitable<ClientResult<AuthMethod>> authenticate(const AuthOptions& auth);
  // UIDL (unless the server said it lacks it) and LIST, pipelined when offered.
  asio::awaitable<ClientResult<std::vector<RemoteMessage>>> list();
  // "TOP n 0" for each number: the header block (CRLF form, at most max_octets kept) or nullopt
  // when the server refused that one. Error when TOP is not supported at all.
  asio::awaitable<ClientResult<std::vector<std::optional<std::string>>>> top_headers(
      std::span<const std::uint64_t> numbers, std::size_t max_octets = 64 * 1024);
  // Retrieves `messages` in order into `sink` (see RetrieveSink and RetrieveOptions).
  asio::awaitable<ClientResult<RetrieveResult>> retrieve(std::span<const RemoteMessage> messages,
                                                         RetrieveSink& sink, const RetrieveOptions& options);
  // DELE for each number (pipelined when offered); returns the numbers acknowledged.
  asio::awaitable<ClientResult<std::vector<std::uint64_t>>> dele(std::span<const std::uint64_t> numbers,
                                                                  bool pipelining = true);
  // QUIT: the server enters UPDATE and commits deletions; -ERR means it could not.
  asio::awaitable<ClientResult<void>> quit();
  // Closes the connection without QUIT (the server deletes nothing).
  void close();

  const Capabilities& capabilities() const { return caps_; }
  const std::string& greeting_text() const { return greeting_; }
  bool is_tls() const;
  bool pipelining() const { return caps_.pipelining; }
  std::uint64_t octets_in() const { return octets_in_; }

 private:
  struct Watch;
  asio::awaitable<ClientResult<void>> flush();
  asio::awaitable<ClientResult<void>> fill();  // reads more input into buf_
  asio::awaitable<ClientResult<std::string>> read_line();
  asio::awaitable<ClientResult<StatusLine>> read_status(std::string_view command);
  // Reads a multi-line listing body into lines (un-stuffed).
  asio::awaitable<ClientResult<std::vector<std::string>>> read_listing();
  asio::awaitable<ClientResult<AuthMethod>> auth_sasl(AuthMethod m, std::string_view mech, const AuthOptions& a);
  asio::awaitable<ClientResult<AuthMethod>> auth_user_pass(const AuthOptions& a);
  asio::awaitable<ClientResult<AuthMethod>> auth_apop(const AuthOptions& a);
  ClientError error_for(const StatusLine& s, std::string_view command, ClientErrc fallback) const;
  ClientError io_error(std::string_view what) const;
  bool plaintext_allowed(const AuthOptions& a) const;

  std::unique_ptr<net::Stream> stream_;
  ClientOptions opt_;
  std::shared_ptr<Watch> watch_;
  std::string out_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::string greeting_;
  std::optional<std::string> timestamp_;
  Capabilities caps_;
  bool quit_sent_ = false;
  std::uint64_t octets_in_ = 0;
};

}  // namespace buzon::pop3
