// proto/smtp/client_session.hpp — the SMTP submission client (`buzon send`; later the relay's
// outbound side): greeting, EHLO (HELO fallback), STARTTLS, AUTH, one transaction per message
// (MAIL, RCPT..., DATA, pipelined when PIPELINING is offered), QUIT.
//
// SECURITY  Server replies are untrusted and bounded (ReplyParser). Passwords (PLAIN, LOGIN) are
//           only sent over TLS or loopback unless allow_plaintext says so. After STARTTLS, octets
//           the server sent ahead are an error (RFC 3207 §4.2, CVE-2011-0411 class), and EHLO is
//           sent again. A SCRAM exchange whose server did not prove its key fails even on 235.
//           All recipients must be accepted or nothing is sent: a refused RCPT aborts the
//           transaction (RSET, or the connection is dropped once DATA was accepted, so the server
//           never sees a complete message). relay() is the MTA's transaction instead: the server
//           may accept some recipients and refuse others; each RCPT's reply is returned and the
//           message goes to the accepted ones.
// STANDARDS RFC 5321 §3.3 (transaction), §4.1 (commands), §4.5.3.2 (timeouts); RFC 6409
//           (submission); RFC 2920 (PIPELINING: MAIL, RCPT and DATA in one group); RFC 3207
//           (STARTTLS); RFC 4954 (AUTH, 334 challenges, "*" cancel, 235); RFC 1870 (SIZE=);
//           RFC 6152 (BODY=8BITMIME), RFC 6531 (SMTPUTF8).
// LIMITS    Each read and write within ClientOptions::timeout.
#pragma once

#include "net/stream.hpp"
#include "proto/sasl/mechanism.hpp"
#include "proto/smtp/client_reply.hpp"

#include <asio/awaitable.hpp>

#include <chrono>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::smtp {

enum class ClientErrc {
  network, timeout, protocol, tls, auth, policy,
  temporary,  // a 4xx reply: try again later
  permanent,  // a 5xx reply
};
std::string_view to_string(ClientErrc e);

struct ClientError {
  ClientErrc code;
  std::string message;
  int reply_code = 0;  // the SMTP code when a reply caused it
};
template <class T>
using ClientResult = std::expected<T, ClientError>;

using TlsUpgrade = std::function<asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>>(
    std::unique_ptr<net::Stream>)>;
using SaslFactory = std::function<std::unique_ptr<sasl::ClientMechanism>(std::string_view mechanism)>;

struct ClientOptions {
  std::chrono::milliseconds timeout{300'000};  // RFC 5321 §4.5.3.2: minutes, not seconds
};

struct AuthOptions {
  std::string user, password;
  std::vector<std::string> preference{"SCRAM-SHA-256", "PLAIN", "LOGIN"};  // upper case
  bool allow_plaintext = false;
  SaslFactory sasl;
};

struct Envelope {
  std::string from;                     // "" for the null reverse-path
  std::vector<std::string> recipients;  // at least one
};

// The relay's transaction (an MTA forwarding a queued message).
struct RelayRequest {
  std::string from;                     // "" for the null reverse-path
  std::vector<std::string> recipients;  // at least one
  bool eightbit = false;                // add BODY=8BITMIME (the caller checked the server offers it)
  bool smtputf8 = false;                // add SMTPUTF8 (likewise)
};
struct RelayResult {
  ClientReply mail;                 // the reply to MAIL FROM
  std::vector<ClientReply> rcpts;   // one per recipient, in order; empty when MAIL was refused
  // The reply after the data; or the refusal of DATA itself; nullopt when no recipient was
  // accepted (nothing was sent).
  std::optional<ClientReply> data;
};

class ClientSession {
 public:
  explicit ClientSession(std::unique_ptr<net::Stream> stream, ClientOptions options = {});
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  asio::awaitable<ClientResult<ClientReply>> greeting();
  // EHLO, or HELO when EHLO is refused.
  asio::awaitable<ClientResult<EhloInfo>> ehlo(std::string_view name);
  // STARTTLS and the upgrade; the caller sends EHLO again.
  asio::awaitable<ClientResult<void>> starttls(const TlsUpgrade& upgrade);
  // AUTH with the first preferred mechanism the server offers; returns its name.
  asio::awaitable<ClientResult<std::string>> authenticate(const AuthOptions& auth);
  // One message: `message` is the RFC 5322 text (any line ends). Returns the final reply.
  asio::awaitable<ClientResult<ClientReply>> send(const Envelope& env, std::string_view message);
  // One relayed message: MAIL (with SIZE=, BODY=8BITMIME, SMTPUTF8 as asked), RCPT for each
  // recipient, DATA when at least one was accepted (pipelined when offered). Network, timeout and
  // protocol errors are errors; refusals are in the result. After it, the session can take another
  // transaction (when reusable()).
  asio::awaitable<ClientResult<RelayResult>> relay(const RelayRequest& req, std::string_view message);
  // False once the connection had to be dropped (e.g. DATA accepted without a valid recipient).
  bool reusable() const { return reusable_; }
  asio::awaitable<ClientResult<void>> quit();
  void close();

  const EhloInfo& ehlo_info() const { return ehlo_; }
  bool is_tls() const;

 private:
  struct Watch;
  asio::awaitable<ClientResult<void>> flush();
  asio::awaitable<ClientResult<ClientReply>> read_reply(std::string_view command);
  asio::awaitable<ClientResult<ClientReply>> send_data(std::string_view message);
  ClientError reply_error(const ClientReply& r, std::string_view command) const;
  ClientError io_error(std::string_view what) const;

  std::unique_ptr<net::Stream> stream_;
  ClientOptions opt_;
  std::shared_ptr<Watch> watch_;
  std::string out_, buf_;
  std::size_t pos_ = 0;
  EhloInfo ehlo_;
  ReplyParser parser_;
  bool reusable_ = true;
};

}  // namespace buzon::smtp
