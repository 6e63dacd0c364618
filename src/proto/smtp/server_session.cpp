// proto/smtp/server_session.cpp — the SMTP/LMTP server session (see server_session.hpp).
//
// Shape (as the POP3 session): a Session object runs one loop — read a line, check it, answer into
// an output buffer — and writes the buffer only before it reads again (RFC 2920 pipelining with
// backpressure). A watchdog closes the stream when the deadline for the current state passes.
// Command handlers follow OpenSMTPD's check-then-proceed order: state and syntax first, each with
// its own reply, then the action.
//
// SECURITY  See server_session.hpp. Delivery and directory lookups run on the worker pool, never on
//           the event loop; their results are only trusted as the interface promises (a success is
//           durable).
// STANDARDS See server_session.hpp.
// LIMITS    See server_session.hpp.
#include "proto/smtp/server_session.hpp"
#include "proto/smtp/loop_check.hpp"

#include "core/base64.hpp"
#include "core/line_buffer.hpp"
#include "core/log.hpp"
#include "proto/smtp/command.hpp"
#include "proto/smtp/data_reader.hpp"
#include "proto/smtp/received.hpp"
#include "proto/smtp/reply.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <vector>

namespace buzon::smtp {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 4096;        // commands are short; idle sessions stay small
constexpr std::size_t kDataChunk = 64 * 1024;   // while message data streams in
constexpr std::uint64_t kMaxReserve = 1024 * 1024;  // see reserve_body()

// State shared with the watchdog, which closes the stream when a deadline passes.
struct Shared {
  std::unique_ptr<net::Stream> stream;
  asio::steady_timer timer;
  Clock::time_point deadline;
  bool done = false;
  bool timed_out = false;
  explicit Shared(std::unique_ptr<net::Stream> s) : stream(std::move(s)), timer(stream->get_executor()) {}
};

asio::awaitable<void> watchdog(std::shared_ptr<Shared> sh) {
  for (;;) {
    sh->timer.expires_at(sh->deadline);
    co_await sh->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    if (sh->done) co_return;
    if (Clock::now() >= sh->deadline) {
      sh->timed_out = true;
      // During a STARTTLS handshake the stream is owned by the upgrade, which bounds itself.
      if (sh->stream) sh->stream->close();
      co_return;
    }
  }
}

// One accepted RCPT: the mailboxes it reaches (an alias: one per local target) and the remote
// addresses it forwards to (issue 10), or, in submission, a remote recipient.
struct Recipient {
  Path path;
  RcptParams params;
  std::vector<ResolvedRecipient> boxes;  // local copies, each with its own Delivered-To: address
  std::vector<std::string> forward;      // an alias's remote targets: through the outbound spool
  std::string alias;                     // the alias expanded (tag removed), "" for a plain address
  std::string address;  // the mailbox as sent (LMTP replies, Received: for, the loop check)
  bool remote = false;  // submission: not a local domain, goes to the outbound spool
};

// Message-level enhanced codes not in reply.hpp's table (RFC 3463, RFC 4954 §6).
constexpr Enhanced kAuthOk{7, 0};               // 2.7.0 Authentication succeeded
constexpr Enhanced kAuthInvalid{7, 8};          // 5.7.8 Authentication credentials invalid
constexpr Enhanced kEncryptionRequired{7, 11};  // 5.7.11 Encryption required for requested mechanism
constexpr Enhanced kAuthLineTooLong{5, 6};      // 5.5.6 Authentication exchange line is too long

// One mail transaction (RFC 5321 §3.3): from MAIL to the end of the data, RSET, or a new EHLO.
struct Transaction {
  std::string id;
  Path from;
  MailParams params;
  std::vector<Recipient> rcpts;
  std::string body;
  bool bdat = false;         // BDAT has been used (DATA is no longer allowed, RFC 3030 §2)
  bool bdat_failed = false;  // a BDAT chunk failed: discard the rest until LAST or RSET
  std::unique_ptr<BdatReader> bdat_reader;
};

// A spool entry's envelope for this transaction (the sender and RFC 3461 parameters kept; the
// recipients are the caller's).
queue::NewMessage spool_message(const Transaction& tx) {
  queue::NewMessage m;
  m.sender = tx.from.null ? std::string() : tx.from.mailbox.text;
  m.envid = tx.params.envid;
  m.ret_hdrs = tx.params.ret == Ret::hdrs;
  m.smtputf8 = tx.params.smtputf8;
  m.eightbit = tx.params.body == Body::eight_bit_mime ||
               std::any_of(tx.body.begin(), tx.body.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; });
  return m;
}

std::string hex_id(std::size_t bytes) {
  std::array<unsigned char, 16> rnd{};
  RAND_bytes(rnd.data(), static_cast<int>(std::min(bytes, rnd.size())));
  std::string out;
  for (std::size_t i = 0; i < std::min(bytes, rnd.size()); ++i) out += fmt::format("{:02X}", rnd[i]);
  return out;
}

// A full mailbox (RFC 3463 X.2.2): temporary by default, permanent when [quota] over_quota says so.
Reply quota_reply(bool permanent) {
  if (permanent) return {552, esc::kMailboxFull, "Error: mailbox full"};
  return {452, esc::kMailboxFull, "Error: mailbox full, try again later"};
}

// What a store error means to the client (RFC 5321 §4.2.2, RFC 3463).
Reply store_reply(const store::StoreError& e, bool quota_permanent) {
  switch (e.code) {
    case store::StoreErrc::no_space: return {452, esc::kSystemFull, "Error: insufficient system storage, try again later"};
    case store::StoreErrc::quota: return quota_reply(quota_permanent);
    case store::StoreErrc::too_big: return {552, esc::kTooBig, "Error: message too big for the mailbox"};
    default: return {451, esc::kSystemOther, "Error: local delivery failed, try again later"};
  }
}

// A spool recipient with the RCPT's DSN parameters (RFC 3461 NOTIFY, ORCPT). `original`: the
// address the client named, for ORCPT when it gave none (a forward's DSN names the alias).
queue::Recipient spool_recipient(std::string address, const RcptParams& params, std::string_view original = {}) {
  queue::Recipient q;
  q.address = std::move(address);
  q.orcpt = params.orcpt;
  if (q.orcpt.empty() && !original.empty() && original != q.address) {
    // RFC 3461 §4: xtext ("+" and "=" and octets outside 33-126 as "+XX"); not for UTF-8 addresses.
    std::string x = "rfc822;";
    for (unsigned char c : original) {
      if (c >= 0x80) return q;
      if (c < 33 || c > 126 || c == '+' || c == '=')
        x += fmt::format("+{:02X}", c);
      else
        x += static_cast<char>(c);
    }
    q.orcpt = std::move(x);
  }
  if (params.notify & kNotifyNever) {
    q.notify = queue::Notify{true, false, false, false};
  } else if (params.notify != 0) {
    q.notify = queue::Notify{false, (params.notify & kNotifySuccess) != 0, (params.notify & kNotifyFailure) != 0,
                             (params.notify & kNotifyDelay) != 0};
  }
  return q;
}

// Takes back the forwards that must not be sent (keep[i] false) from a just-committed spool entry
// that the relay has not been woken for: the entry is removed, or rewritten with the rest. True
// when something is left to send. An error (the relay's scan leased it first): it may be sent.
std::expected<bool, std::string> withdraw_forwards(queue::Spool& spool, const std::string& id,
                                                   const std::vector<queue::Recipient>& forwards,
                                                   const std::vector<bool>& keep) {
  auto lease = spool.try_lease(id);
  if (!lease) return std::unexpected(std::string("the entry is leased by the relay"));
  auto e = spool.load(*lease);
  if (!e) return std::unexpected(e.error());
  std::vector<queue::Recipient> rest;
  for (auto& r : e->recipients) {
    bool kept = false;
    for (std::size_t i = 0; i < forwards.size(); ++i)
      if (keep[i] && forwards[i].address == r.address) kept = true;
    if (kept) rest.push_back(std::move(r));
  }
  if (rest.empty()) {
    if (auto rm = spool.remove(*lease); !rm) return std::unexpected(rm.error());
    return false;
  }
  e->recipients = std::move(rest);
  if (auto up = spool.update(*lease, *e); !up) return std::unexpected(up.error());
  return true;
}

bool looks_like_http(std::string_view line) {
  for (std::string_view m : {"GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS "})
    if (line.starts_with(m)) return true;
  return line.starts_with("Host:") || line.starts_with("User-Agent:");
}

class Session {
 public:
  Session(std::shared_ptr<Shared> sh, Service& svc)
      : sh_(std::move(sh)),
        svc_(svc),
        cfg_(svc.settings),
        lines_(line_max(), LineEnd::strict_crlf),
        start_(Clock::now()),
        peer_(sh_->stream->peer()),
        session_id_(hex_id(5)) {
    tls_ = sh_->stream->is_tls();  // implicit TLS (RFC 8314): encrypted from the first octet
    update_security();
  }

  asio::awaitable<void> run();

 private:
  net::Stream& stream() { return *sh_->stream; }
  bool lmtp() const { return cfg_.mode == Mode::lmtp; }
  bool submission() const { return cfg_.mode == Mode::submission; }
  // Submission reads AUTH lines of up to kMaxAuthLine; other commands stay within kMaxCommandLine.
  std::size_t line_max() const { return submission() ? kMaxAuthLine : kMaxCommandLine; }
  void touch(std::chrono::milliseconds idle) {
    const auto d = std::min(Clock::now() + idle, start_ + cfg_.max_session_time);
    const bool earlier = d < sh_->deadline;
    sh_->deadline = d;
    if (earlier) sh_->timer.cancel();  // the watchdog re-arms at the new, earlier deadline
  }
  bool utf8_replies() const { return tx_ && tx_->params.smtputf8; }
  // [quota] over_quota as running now (SIGHUP).
  bool quota_permanent() const {
    return cfg_.recipients.live ? cfg_.recipients.live->get()->over_quota_permanent : cfg_.over_quota_permanent;
  }
  void reply(int code, Enhanced st, std::string_view text) {
    if (code >= 500) ++errors_;
    out_ += format_reply(code, st, text, utf8_replies());
  }
  void reply(const Reply& r) { reply(r.code, r.status, r.text); }

  asio::awaitable<bool> flush(std::chrono::milliseconds timeout);
  asio::awaitable<bool> flush() { return flush(cfg_.command_timeout); }
  asio::awaitable<std::optional<Line>> next_line();
  asio::awaitable<std::optional<std::size_t>> read_more(std::vector<char>& buf, std::chrono::milliseconds timeout);
  asio::awaitable<bool> early_talker();
  asio::awaitable<void> handle(const Line& line);

  void cmd_hello(const Command& c);
  void cmd_mail(const Command& c);
  asio::awaitable<void> cmd_rcpt(const Command& c);
  asio::awaitable<void> cmd_data();
  asio::awaitable<void> cmd_bdat(const Command& c);
  asio::awaitable<void> cmd_vrfy(const Command& c);
  asio::awaitable<void> cmd_starttls();
  asio::awaitable<void> cmd_auth(const Command& c);

  // Submission (AUTH and the RFC 6409 rules).
  class SaslConversation;
  void update_security();  // after connect and after STARTTLS
  asio::awaitable<void> penalty_wait();
  net::WorkerPool& auth_pool() { return svc_.auth_pool ? *svc_.auth_pool : *svc_.pool; }
  bool owns(std::string_view address) const {
    return may_send_as(user_, address, cfg_.recipients.local_domains, cfg_.submission.sender_aliases);
  }
  asio::awaitable<bool> prepare_submission(std::int64_t now, std::string& received, std::string& signature);
  asio::awaitable<void> enqueue(std::int64_t now, const std::string& received, const std::string& signature);
  asio::awaitable<bool> receive_data(DataReader& reader, std::string& body);
  asio::awaitable<bool> receive_chunk(BdatReader& reader, std::string& body);
  asio::awaitable<bool> discard_chunk(std::uint64_t size);
  asio::awaitable<void> finish_message(ContentError content);
  void reply_all(const Reply& r);  // SMTP: once; LMTP: once per accepted recipient
  // Room for the message as the client announced it (SIZE=), at most kMaxReserve: a client that
  // announces much and sends little must not make us hold memory for nothing.
  void reserve_body() {
    if (tx_->params.size)
      tx_->body.reserve(static_cast<std::size_t>(std::min({*tx_->params.size, cfg_.max_message_size, kMaxReserve})));
  }
  std::string ehlo_reply() const;
  void log_summary();

  std::shared_ptr<Shared> sh_;
  Service& svc_;
  const Settings& cfg_;
  LineBuffer lines_;
  Clock::time_point start_;
  std::string peer_;
  std::string session_id_;
  std::string out_;
  std::vector<char> inbuf_ = std::vector<char>(kReadChunk);
  bool eof_ = false;
  bool quit_ = false;

  std::string helo_;
  bool esmtp_ = false;
  bool tls_ = false;
  login::Channel channel_;  // submission: the login policy's view of this connection
  std::string user_;        // submission: the authenticated user ("" before AUTH)
  std::string auth_mech_;
  std::optional<Transaction> tx_;
  unsigned messages_ = 0;  // accepted
  unsigned transactions_ = 0;
  unsigned errors_ = 0;
  unsigned commands_ = 0;
  unsigned rcpts_ = 0, rejected_ = 0;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::string end_reason_ = "disconnected";
};

asio::awaitable<bool> Session::flush(std::chrono::milliseconds timeout) {
  if (out_.empty()) co_return true;
  if (!sh_->stream) co_return false;
  touch(timeout);
  auto [ec, n] = co_await stream().write_all(out_);
  bytes_out_ += n;
  out_.clear();
  if (ec) {
    end_reason_ = sh_->timed_out ? "timeout" : "write error";
    co_return false;
  }
  co_return true;
}

// Reads more input into `buf`: nullopt at EOF, error or timeout. Output is flushed first, so the
// client always sees every reply before we wait for it.
asio::awaitable<std::optional<std::size_t>> Session::read_more(std::vector<char>& buf,
                                                               std::chrono::milliseconds timeout) {
  if (eof_) co_return std::nullopt;
  if (!co_await flush(timeout)) {
    eof_ = true;
    co_return std::nullopt;
  }
  touch(timeout);
  auto [ec, n] = co_await stream().read_some(std::span<char>(buf.data(), buf.size()));
  if (ec || n == 0) {
    eof_ = true;
    end_reason_ = sh_->timed_out ? "timeout" : "disconnected";
    co_return std::nullopt;
  }
  bytes_in_ += n;
  co_return n;
}

asio::awaitable<std::optional<Line>> Session::next_line() {
  for (;;) {
    if (auto l = lines_.next()) co_return l;
    auto n = co_await read_more(inbuf_, cfg_.command_timeout);
    if (!n) co_return std::nullopt;
    lines_.append(std::string_view(inbuf_.data(), *n));
  }
}

// RFC 5321 §4.3.1 and §4.5.3.2.1: the client must wait for the greeting. Spammers' bulk tools
// often do not; the pause makes them show it (Postfix postscreen "pregreet", Exim/Sendmail
// greet_pause). Returns false when the client talked early (it has been refused).
asio::awaitable<bool> Session::early_talker() {
  using namespace asio::experimental::awaitable_operators;
  if (cfg_.greet_pause.count() <= 0 || lmtp()) co_return true;
  asio::steady_timer pause(co_await asio::this_coro::executor);
  pause.expires_after(cfg_.greet_pause);
  auto r = co_await (stream().read_some(std::span<char>(inbuf_.data(), inbuf_.size())) ||
                     pause.async_wait(asio::use_awaitable));
  if (r.index() == 1) co_return true;  // quiet: greet it
  auto [ec, n] = std::get<0>(r);
  if (ec || n == 0) {
    end_reason_ = "disconnected before the greeting";
    co_return false;
  }
  bytes_in_ += n;
  svc_.counters.early_talkers.fetch_add(1, std::memory_order_relaxed);
  reply(554, esc::kProtocolOther, fmt::format("{} Error: SMTP protocol synchronization (input before the greeting)",
                                              cfg_.hostname));
  end_reason_ = "early talker";
  co_return false;
}

std::string Session::ehlo_reply() const {
  std::vector<std::string> lines;
  lines.push_back(cfg_.hostname);
  lines.push_back("PIPELINING");
  lines.push_back(fmt::format("SIZE {}", cfg_.max_message_size));
  lines.push_back("8BITMIME");
  lines.push_back("SMTPUTF8");
  lines.push_back("ENHANCEDSTATUSCODES");
  lines.push_back("CHUNKING");
  if (svc_.start_tls && !tls_) lines.push_back("STARTTLS");
  if (submission() && user_.empty()) {
    // RFC 4954 §3; plaintext mechanisms only where they would be accepted (login policy).
    std::string auth = "AUTH";
    for (const auto& m : login::offered_mechanisms(cfg_, channel_)) auth += " " + m;
    if (auth.size() > 4) lines.push_back(std::move(auth));
  }
  return format_multiline(250, lines);
}

asio::awaitable<void> Session::run() {
  touch(cfg_.command_timeout);
  svc_.counters.sessions.fetch_add(1, std::memory_order_relaxed);
  if (!co_await early_talker()) {
    co_await flush();
    log_summary();
    co_return;
  }
  out_ += format_plain(220, fmt::format("{} {} buzon", cfg_.hostname, lmtp() ? "LMTP" : "ESMTP"));

  while (!quit_) {
    auto line = co_await next_line();
    if (!line) break;
    co_await handle(*line);
    if (!sh_->stream) break;  // a failed STARTTLS ended the connection
    if (errors_ >= cfg_.max_errors && !quit_) {
      out_ += format_reply(421, esc::kSecurityOther, fmt::format("{} Error: too many errors", cfg_.hostname));
      end_reason_ = "too many errors";
      break;
    }
  }
  co_await flush();
  log_summary();
}

void Session::log_summary() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
  svc_.counters.bytes_in.fetch_add(bytes_in_, std::memory_order_relaxed);
  spdlog::info("{} session peer={} helo={} tls={} user={} result={} cmds={} msgs={} rcpts={} rejected={} errors={} in={} out={} ms={}",
               lmtp() ? "lmtp" : submission() ? "submission" : "smtp", log_value(peer_), log_value(helo_),
               tls_ ? "yes" : "no", log_value(user_.empty() ? "-" : user_),
               log_value(end_reason_), commands_, messages_, rcpts_, rejected_, errors_, bytes_in_, bytes_out_, ms);
}

asio::awaitable<void> Session::handle(const Line& line) {
  ++commands_;
  switch (line.status) {
    case LineStatus::ok: break;
    case LineStatus::too_long:
      reply(500, esc::kSyntaxError, "Error: line too long");
      co_return;
    case LineStatus::bare_lf:
    case LineStatus::bare_cr:
      // RFC 5321 §2.3.8: only CRLF ends a line. Never guess where a command ends.
      svc_.counters.bare_line_ends.fetch_add(1, std::memory_order_relaxed);
      reply(500, esc::kSyntaxError,
            line.status == LineStatus::bare_lf ? "Error: bare <LF> received" : "Error: bare <CR> received");
      co_return;
  }
  if (line.text.size() + 2 > kMaxCommandLine) {
    // Only AUTH may use the longer submission buffer (RFC 4954 §4); SASL responses are read by
    // the AUTH exchange itself.
    const std::string_view t = line.text;
    const bool auth = t.size() > 5 && (t[0] | 0x20) == 'a' && (t[1] | 0x20) == 'u' && (t[2] | 0x20) == 't' &&
                      (t[3] | 0x20) == 'h' && t[4] == ' ';
    if (!auth) {
      reply(500, esc::kSyntaxError, "Error: line too long");
      co_return;
    }
  }
  if (looks_like_http(line.text)) {
    // Postfix's answer to a web client (smtpd.c): this is not an HTTP server.
    out_ += format_reply(221, esc::kSecurityOther, "Error: I can break rules, too. Goodbye.");
    end_reason_ = "http request";
    quit_ = true;
    co_return;
  }
  auto parsed = parse_command(line.text, ParseOptions{tx_ && tx_->params.smtputf8});
  if (!parsed) {
    const auto& e = parsed.error();
    reply(e.reply);
    if (e.verb == Verb::bdat) {
      // Without a valid count we cannot know where the chunk ends (RFC 3030 §2): the rest of the
      // input cannot be trusted as commands.
      out_ += format_reply(421, esc::kProtocolOther, fmt::format("{} Error: cannot find the end of the BDAT chunk", cfg_.hostname));
      end_reason_ = "bad BDAT";
      quit_ = true;
    }
    co_return;
  }
  const Command& c = *parsed;
  const auto flags = spec(c.verb).flags;
  if ((lmtp() && (flags & kSmtpOnly)) || (!lmtp() && (flags & kLmtpOnly))) {
    reply(500, esc::kInvalidCommand, lmtp() ? "Error: this is LMTP, use LHLO" : "Error: command not recognized");
    co_return;
  }
  switch (c.verb) {
    case Verb::helo:
    case Verb::ehlo:
    case Verb::lhlo: cmd_hello(c); break;
    case Verb::mail: cmd_mail(c); break;
    case Verb::rcpt: co_await cmd_rcpt(c); break;
    case Verb::data: co_await cmd_data(); break;
    case Verb::bdat: co_await cmd_bdat(c); break;
    case Verb::rset:
      tx_.reset();
      reply(250, esc::kOther, "Ok");
      break;
    case Verb::noop: reply(250, esc::kOther, "Ok"); break;
    case Verb::quit:
      out_ += format_reply(221, esc::kOther, fmt::format("{} closing connection", cfg_.hostname));
      end_reason_ = "quit";
      quit_ = true;
      break;
    case Verb::vrfy: co_await cmd_vrfy(c); break;
    case Verb::expn: reply(502, esc::kInvalidCommand, "Error: EXPN is not supported"); break;
    case Verb::help:
      reply(214, esc::kOther,
            lmtp() ? "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP (RFC 2033)"
                   : "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS (RFC 5321)");
      break;
    case Verb::starttls: co_await cmd_starttls(); break;
    case Verb::auth:
      if (submission())
        co_await cmd_auth(c);
      else
        reply(502, esc::kInvalidCommand, "Error: authentication is not enabled");  // no AUTH on port 25
      break;
    case Verb::unknown: reply(500, esc::kInvalidCommand, "Error: command not recognized"); break;
  }
}

void Session::cmd_hello(const Command& c) {
  // RFC 5321 §4.1.4: EHLO/HELO also resets any transaction in progress.
  tx_.reset();
  helo_ = c.domain;
  esmtp_ = c.verb != Verb::helo;
  if (esmtp_)
    out_ += ehlo_reply();
  else
    out_ += format_plain(250, cfg_.hostname);
}

void Session::cmd_mail(const Command& c) {
  if (helo_.empty()) {
    reply(503, esc::kInvalidCommand, lmtp() ? "Error: send LHLO first" : "Error: send HELO/EHLO first");
    return;
  }
  if (tx_) {
    reply(503, esc::kInvalidCommand, "Error: nested MAIL command");
    return;
  }
  if (submission()) {
    // RFC 6409 §4.3 / RFC 4954 §6: nothing is accepted before AUTH, so this port never relays.
    if (user_.empty()) {
      reply(530, esc::kSecurityOther, "Error: authentication required");
      return;
    }
    // RFC 6409 §6.1: the envelope sender must be the user's (or an alias granted to the user).
    // The null reverse-path is allowed (read receipts, vacation replies): From: is still checked.
    if (!c.path.null && !owns(c.path.mailbox.text)) {
      svc_.counters.sender_refused.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("submission sender refused peer={} user={} from={}", log_value(peer_), log_value(user_),
                   log_value(c.path.mailbox.text));
      reply(553, esc::kNotAuthorized, "Error: sender address not owned by the authenticated user");
      return;
    }
  }
  const auto& p = c.mail;
  const bool has_params = p.size || p.body != Body::unspecified || p.smtputf8 || p.ret != Ret::unspecified ||
                          !p.envid.empty() || p.auth;
  if (!esmtp_ && has_params) {
    reply(555, esc::kInvalidArguments, "Error: parameters need EHLO");
    return;
  }
  if (p.body == Body::binary_mime) {
    reply(555, esc::kInvalidArguments, "Error: BODY=BINARYMIME is not supported");
    return;
  }
  if (p.size && *p.size > cfg_.max_message_size) {
    // RFC 1870 §6.2: a declared size over the limit is refused at MAIL.
    reply(552, esc::kTooBig, fmt::format("Error: message size exceeds the limit of {} octets", cfg_.max_message_size));
    return;
  }
  tx_.emplace();
  tx_->id = fmt::format("{}{:02X}", session_id_, ++transactions_ & 0xFF);
  tx_->from = c.path;
  tx_->params = c.mail;
  // RFC 4954 §5: without a trusted authentication, AUTH= is treated as AUTH=<>.
  if (tx_->params.auth) tx_->params.auth = "<>";
  reply(250, esc::kAddressOther, "Ok");
}

asio::awaitable<void> Session::cmd_rcpt(const Command& c) {
  if (!tx_) {
    reply(503, esc::kInvalidCommand, "Error: need MAIL command");
    co_return;
  }
  if (tx_->bdat) {
    reply(503, esc::kInvalidCommand, "Error: RCPT after BDAT");
    co_return;
  }
  if ((c.rcpt.notify || !c.rcpt.orcpt.empty()) && !esmtp_) {
    reply(555, esc::kInvalidArguments, "Error: parameters need EHLO");
    co_return;
  }
  if (tx_->rcpts.size() >= cfg_.max_recipients) {
    // RFC 5321 §4.5.3.1.10: 452, and the client sends the rest in another transaction.
    reply(452, esc::kTooManyRecipients, "Error: too many recipients");
    co_return;
  }
  bool full = false;  // SIZE= (RFC 1870) does not fit the mailbox's quota (issue 10)
  auto r = co_await svc_.pool->run([&] {
    auto res = resolve_targets(c.path.mailbox, cfg_.recipients, *svc_.directory);
    if (tx_->params.size)
      for (const auto& box : res.local) full = full || !fits_quota(box, *tx_->params.size);
    return res;
  });
  if (r.verdict == RcptVerdict::relay_denied && submission() && svc_.spool) {
    // An authenticated submission: a remote recipient, for the outbound spool.
    Recipient rc;
    rc.path = c.path;
    rc.params = c.rcpt;
    rc.address = c.path.mailbox.text;
    rc.remote = true;
    tx_->rcpts.push_back(std::move(rc));
    ++rcpts_;
    reply(250, esc::kDestinationValid, "Ok");
    co_return;
  }
  switch (r.verdict) {
    case RcptVerdict::relay_denied:
      ++rejected_;
      svc_.counters.relay_denied.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("smtp relay denied peer={} from={} to={}", log_value(peer_),
                   log_value(tx_->from.null ? "<>" : tx_->from.mailbox.text), log_value(c.path.mailbox.text));
      reply(550, esc::kNotAuthorized, "Error: relay access denied");
      co_return;
    case RcptVerdict::unknown_user:
      ++rejected_;
      svc_.counters.rejected_recipients.fetch_add(1, std::memory_order_relaxed);
      reply(550, esc::kBadMailbox, "Error: no such user here");
      co_return;
    case RcptVerdict::temp_failure:
      spdlog::error("smtp recipient lookup failed to={} detail={}", log_value(c.path.mailbox.text), log_value(r.detail));
      reply(451, esc::kSystemOther, "Error: temporary failure looking up the recipient");
      co_return;
    case RcptVerdict::local: break;
  }
  if (full) {
    reply(quota_reply(quota_permanent()));
    co_return;
  }
  if (!r.remote.empty() && !svc_.spool) {
    // Start-up and SIGHUP refuse such aliases without a queue; never drop the forward silently.
    spdlog::error("{} alias forwards without an outbound queue to={} forward={}", lmtp() ? "lmtp" : "smtp",
                  log_value(c.path.mailbox.text), log_value(r.remote.front()));
    reply(451, esc::kSystemOther, "Error: temporary failure looking up the recipient");
    co_return;
  }
  Recipient rc;
  rc.path = c.path;
  rc.params = c.rcpt;
  rc.boxes = std::move(r.local);
  rc.forward = std::move(r.remote);
  rc.alias = std::move(r.alias);
  rc.address = c.path.mailbox.domain.empty() && !rc.boxes.empty() ? rc.boxes.front().address : c.path.mailbox.text;
  tx_->rcpts.push_back(std::move(rc));
  ++rcpts_;
  reply(250, esc::kDestinationValid, "Ok");
}

asio::awaitable<void> Session::cmd_vrfy(const Command& c) {
  // RFC 5321 §3.5.3: 252 when we will not tell (the default: no user enumeration).
  if (!cfg_.vrfy) {
    reply(252, esc::kOther, "Cannot VRFY user, but will accept message and attempt delivery");
    co_return;
  }
  std::string arg = c.arg;
  while (!arg.empty() && arg.back() == ' ') arg.pop_back();
  if (arg.empty() || arg.front() != '<') arg = "<" + arg + ">";
  auto path = parse_path(arg, false);
  if (!path) {
    reply(501, esc::kBadRecipientSyntax, "Error: bad address syntax");
    co_return;
  }
  auto r = co_await svc_.pool->run(
      [&] { return resolve_targets(path->mailbox, cfg_.recipients, *svc_.directory); });
  if (r.verdict == RcptVerdict::local)
    reply(250, esc::kDestinationValid, "<" + (r.local.empty() ? path->mailbox.text : r.local.front().address) + ">");
  else if (r.verdict == RcptVerdict::relay_denied)
    reply(252, esc::kOther, "Cannot VRFY user, but will accept message and attempt delivery");
  else
    reply(550, esc::kBadMailbox, "Error: no such user here");
}

void Session::reply_all(const Reply& r) {
  reply(r);  // counted as one error, however many recipients
  if (lmtp() && tx_) {
    // RFC 2033 §4.2: one reply per successful RCPT, in order.
    for (std::size_t i = 1; i < tx_->rcpts.size(); ++i) out_ += format_reply(r, utf8_replies());
  }
}

asio::awaitable<bool> Session::receive_data(DataReader& reader, std::string& body) {
  std::string rest = lines_.take_rest();
  std::size_t used = reader.feed(rest, body);
  if (reader.done()) {
    lines_.append(std::string_view(rest).substr(used));
    co_return true;
  }
  std::vector<char> buf(kDataChunk);
  while (!reader.done()) {
    auto n = co_await read_more(buf, cfg_.data_timeout);
    if (!n) co_return false;
    const std::string_view in(buf.data(), *n);
    used = reader.feed(in, body);
    if (reader.done()) lines_.append(in.substr(used));
  }
  co_return true;
}

asio::awaitable<bool> Session::receive_chunk(BdatReader& reader, std::string& body) {
  std::string rest = lines_.take_rest();
  std::size_t used = reader.feed(rest, body);
  if (reader.chunk_done()) {
    lines_.append(std::string_view(rest).substr(used));
    co_return true;
  }
  std::vector<char> buf(static_cast<std::size_t>(std::min<std::uint64_t>(kDataChunk, reader.remaining())));
  while (!reader.chunk_done()) {
    auto n = co_await read_more(buf, cfg_.data_timeout);
    if (!n) co_return false;
    const std::string_view in(buf.data(), *n);
    used = reader.feed(in, body);
    if (reader.chunk_done()) lines_.append(in.substr(used));
  }
  co_return true;
}

asio::awaitable<void> Session::cmd_data() {
  if (!tx_) {
    reply(503, esc::kInvalidCommand, "Error: need MAIL command");
    co_return;
  }
  if (tx_->bdat) {
    reply(503, esc::kInvalidCommand, "Error: DATA after BDAT");  // RFC 3030 §2
    co_return;
  }
  if (tx_->rcpts.empty()) {
    // RFC 5321 §3.3 (554 "no valid recipients"); RFC 2033 §4.2 (LMTP: 503).
    reply(lmtp() ? 503 : 554, esc::kInvalidCommand, "Error: no valid recipients");
    co_return;
  }
  out_ += format_reply(354, {}, "End data with <CR><LF>.<CR><LF>");
  DataReader reader(ContentLimits{cfg_.max_line_length, cfg_.max_message_size});
  reserve_body();
  if (!co_await receive_data(reader, tx_->body)) {
    // The connection ended inside the data: nothing is delivered, nothing was promised.
    end_reason_ = sh_->timed_out ? "timeout in DATA" : "disconnected in DATA";
    tx_.reset();
    quit_ = true;
    co_return;
  }
  co_await finish_message(reader.error());
}

// RFC 3030 §2: whatever the verdict, a chunk's octets are read; a refused one is dropped.
asio::awaitable<bool> Session::discard_chunk(std::uint64_t size) {
  BdatReader sink(ContentLimits{~std::size_t{0}, 0});
  std::string nothing;
  sink.start_chunk(size, false);
  co_return co_await receive_chunk(sink, nothing);
}

asio::awaitable<void> Session::cmd_bdat(const Command& c) {
  if (!tx_ || tx_->rcpts.empty() || tx_->bdat_failed) {
    if (!co_await discard_chunk(c.chunk_size)) {
      quit_ = true;
      co_return;
    }
    if (!tx_)
      reply(503, esc::kInvalidCommand, "Error: need MAIL command");
    else if (tx_->bdat_failed)
      reply(503, esc::kInvalidCommand, "Error: an earlier BDAT failed, send RSET");
    else
      reply(lmtp() ? 503 : 554, esc::kInvalidCommand, "Error: no valid recipients");
    if (tx_ && c.last) tx_.reset();
    co_return;
  }
  if (!tx_->bdat_reader) {
    tx_->bdat = true;
    tx_->bdat_reader = std::make_unique<BdatReader>(ContentLimits{cfg_.max_line_length, cfg_.max_message_size});
    reserve_body();
  }
  auto& reader = *tx_->bdat_reader;
  reader.start_chunk(c.chunk_size, c.last);
  if (!co_await receive_chunk(reader, tx_->body)) {
    end_reason_ = sh_->timed_out ? "timeout in BDAT" : "disconnected in BDAT";
    tx_.reset();
    quit_ = true;
    co_return;
  }
  if (c.last) {
    co_await finish_message(reader.error());
    co_return;
  }
  if (reader.error() != ContentError::none) {
    // Refused now (RFC 3030 §2); later chunks already pipelined are read and dropped.
    tx_->bdat_failed = true;
    tx_->body.clear();
    tx_->body.shrink_to_fit();
    if (reader.error() == ContentError::too_big)
      reply(552, esc::kTooBig, fmt::format("Error: message size exceeds the limit of {} octets", cfg_.max_message_size));
    else
      reply(554, esc::kMediaOther, fmt::format("Error: message refused: {}", to_string(reader.error())));
    co_return;
  }
  reply(250, esc::kOther, fmt::format("{} octets received", c.chunk_size));
}

asio::awaitable<void> Session::finish_message(ContentError content) {
  Transaction& tx = *tx_;
  if (content != ContentError::none) {
    Reply r;
    switch (content) {
      case ContentError::too_big:
        r = {552, esc::kTooBig, fmt::format("Error: message size exceeds the limit of {} octets", cfg_.max_message_size)};
        break;
      case ContentError::line_too_long:
        r = {554, esc::kMediaOther, fmt::format("Error: message has a line longer than {} octets (RFC 5321 4.5.3.1.6)",
                                                cfg_.max_line_length)};
        break;
      case ContentError::bare_lf:
      case ContentError::bare_cr:
        svc_.counters.bare_line_ends.fetch_add(1, std::memory_order_relaxed);
        r = {554, esc::kMediaOther,
             fmt::format("Error: {} in message; lines must end in CRLF (RFC 5321 2.3.8)",
                         content == ContentError::bare_lf ? "bare <LF>" : "bare <CR>")};
        break;
      case ContentError::none: break;
    }
    spdlog::info("{} message refused id={} peer={} reason={}", lmtp() ? "lmtp" : "smtp", tx.id, log_value(peer_),
                 to_string(content));
    reply_all(r);
    tx_.reset();
    co_return;
  }

  // Mail loops (RFC 5321 §6.3, issue 10): a Delivered-To: of a recipient, or too many Received:.
  {
    // Each RCPT as sent (a forward that comes back to the alias carries its Delivered-To:) and
    // each mailbox it reaches.
    std::vector<std::string> addresses;
    for (const auto& r : tx.rcpts) {
      addresses.push_back(r.address);
      if (!r.alias.empty()) addresses.push_back(r.alias);
      for (const auto& b : r.boxes)
        if (b.address != r.address) addresses.push_back(b.address);
    }
    const unsigned max_hops = cfg_.recipients.live ? cfg_.recipients.live->get()->max_hops : cfg_.recipients.max_hops;
    if (auto loop = check_loop(tx.body, addresses, max_hops); loop.verdict != LoopVerdict::ok) {
      spdlog::info("{} message refused id={} peer={} reason=loop detail={}", lmtp() ? "lmtp" : "smtp", tx.id,
                   log_value(peer_), log_value(loop.detail));
      reply_all(Reply{554, Enhanced{4, 6}, "Error: mail loop detected"});  // 5.4.6 Routing loop detected
      tx_.reset();
      co_return;
    }
  }

  // Trace fields: Received once (RFC 5321 §4.4), Return-Path and Delivered-To per copy.
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string received, signature;
  if (submission()) {
    if (!co_await prepare_submission(now, received, signature)) {
      tx_.reset();  // refused: the reply is queued
      co_return;
    }
    if (std::any_of(tx.rcpts.begin(), tx.rcpts.end(), [](const Recipient& r) { return r.remote; })) {
      co_await enqueue(now, received, signature);
      tx_.reset();
      co_return;
    }
  } else {
    ReceivedInfo info;
    info.helo = helo_;
    info.peer = peer_;
    info.by = cfg_.hostname;
    info.protocol = protocol_name(esmtp_, lmtp(), tls_, false, tx.params.smtputf8);
    info.id = tx.id;
    if (tls_ && sh_->stream) info.tls = sh_->stream->tls_summary();
    if (tx.rcpts.size() == 1) info.for_rcpt = tx.rcpts.front().address;
    info.time = now;
    received = format_received(info);
  }
  const std::string return_path = format_return_path(tx.from);

  // One copy per mailbox, however many RCPTs (or alias targets) reach it; one spool recipient per
  // forwarded address. copies_of/forwards_of: what each RCPT's success depends on.
  std::vector<store::DeliveryCopy> copies;
  std::vector<std::vector<std::size_t>> copies_of(tx.rcpts.size()), forwards_of(tx.rcpts.size());
  std::map<std::string, std::size_t> by_location;
  std::vector<queue::Recipient> forwards;
  std::string forward_trace;  // Delivered-To: of each alias that forwards (loop detection downstream)
  for (std::size_t i = 0; i < tx.rcpts.size(); ++i) {
    const auto& r = tx.rcpts[i];
    for (const auto& b : r.boxes) {
      auto [it, fresh] = by_location.try_emplace(b.box.location, copies.size());
      if (fresh) copies.push_back(store::DeliveryCopy{b.box, return_path + format_delivered_to(b.address)});
      copies_of[i].push_back(it->second);
    }
    // The alias itself (tag removed): whichever form of it the message comes back to, it is seen.
    if (!r.forward.empty()) forward_trace += format_delivered_to(r.alias.empty() ? r.address : r.alias);
    for (const auto& f : r.forward) {
      auto it = std::find_if(forwards.begin(), forwards.end(),
                             [&](const queue::Recipient& q) { return ascii_lower(q.address) == ascii_lower(f); });
      if (it == forwards.end()) {
        // DSNs name the address the sender used (RFC 3461 ORCPT), as Postfix does for aliases.
        forwards.push_back(spool_recipient(f, r.params, r.address));
        it = forwards.end() - 1;
      }
      forwards_of[i].push_back(static_cast<std::size_t>(it - forwards.begin()));
    }
  }
  const std::string_view parts[] = {received, signature, tx.body};
  const auto mode = lmtp() ? store::DeliveryMode::each : store::DeliveryMode::all_or_none;
  const auto t0 = Clock::now();

  // Forwarding first: the spool entry is committed (durable) before any local copy is made, and
  // the relay is woken only once the local copies are durable too. If they fail, the entry is
  // withdrawn (or reduced to the RCPTs that succeeded, LMTP), so a retry does not forward twice.
  // The envelope sender is kept (as Postfix does; no SRS): README "Forwarding".
  std::optional<std::string> queue_id;
  std::string queue_error;
  if (!forwards.empty()) {
    queue::NewMessage m = spool_message(tx);
    m.recipients = forwards;
    const std::string_view fparts[] = {received, forward_trace, signature, tx.body};
    auto id = co_await svc_.pool->run(
        [&] { return svc_.spool->enqueue(m, fparts, queue::TimePoint(std::chrono::seconds(now))); });
    if (id) {
      queue_id = *id;
    } else {
      queue_error = id.error();
      spdlog::error("{} forward enqueue failed id={} error={}", lmtp() ? "lmtp" : "smtp", tx.id, log_value(id.error()));
    }
  }
  // Which RCPTs can still succeed: all of them with a queue entry (or nothing to forward).
  std::vector<bool> alive(tx.rcpts.size(), true);
  for (std::size_t i = 0; i < tx.rcpts.size(); ++i)
    if (!forwards_of[i].empty() && !queue_id) alive[i] = false;

  // The copies to make: those of RCPTs that can still succeed (SMTP: all, or none at all).
  const bool all_alive = std::find(alive.begin(), alive.end(), false) == alive.end();
  std::vector<bool> wanted(copies.size(), false);
  for (std::size_t i = 0; i < tx.rcpts.size(); ++i)
    if (lmtp() ? alive[i] : all_alive)
      for (auto k : copies_of[i]) wanted[k] = true;
  std::vector<store::DeliveryCopy> todo;
  std::vector<std::size_t> todo_of;  // index into copies
  for (std::size_t k = 0; k < copies.size(); ++k)
    if (wanted[k]) {
      todo.push_back(copies[k]);
      todo_of.push_back(k);
    }
  std::vector<std::optional<store::Result<void>>> results(copies.size());  // nullopt: not attempted
  if (!todo.empty()) {
    auto done = co_await svc_.pool->run([&] { return svc_.delivery->deliver(todo, parts, mode); });
    for (std::size_t t = 0; t < todo_of.size(); ++t)
      results[todo_of[t]] = t < done.size() ? std::move(done[t])
                                            : store::Result<void>(std::unexpected(store::StoreError{store::StoreErrc::temp, "no result"}));
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();

  std::size_t ok = 0;
  for (const auto& r : results)
    if (r && *r) ++ok;
  for (const auto& r : results) {
    if (r && !*r)
      spdlog::error("{} delivery failed id={} error={} detail={}", lmtp() ? "lmtp" : "smtp", tx.id,
                    to_string(r->error().code), log_value(r->error().detail));
  }
  // A RCPT succeeded when every copy it reaches is durable and its forwards are queued.
  std::vector<bool> rcpt_ok(tx.rcpts.size());
  for (std::size_t i = 0; i < tx.rcpts.size(); ++i) {
    bool good = alive[i];
    for (auto k : copies_of[i]) good = good && results[k] && results[k]->has_value();
    rcpt_ok[i] = good;
  }
  const bool all_ok = std::find(rcpt_ok.begin(), rcpt_ok.end(), false) == rcpt_ok.end();
  if (queue_id) {
    // Keep only the forwards of RCPTs that are answered 250 (SMTP: all or none).
    std::vector<bool> keep(forwards.size(), false);
    for (std::size_t i = 0; i < tx.rcpts.size(); ++i)
      if (rcpt_ok[i] && (lmtp() || all_ok))
        for (auto f : forwards_of[i]) keep[f] = true;
    if (std::find(keep.begin(), keep.end(), false) != keep.end()) {
      auto kept = co_await svc_.pool->run([&] { return withdraw_forwards(*svc_.spool, *queue_id, forwards, keep); });
      if (!kept) {
        spdlog::warn("{} could not withdraw forwards id={} queue_id={} error={}: they may be sent twice",
                     lmtp() ? "lmtp" : "smtp", tx.id, *queue_id, log_value(kept.error()));
      } else if (!*kept) {
        queue_id.reset();  // nothing left to send
      }
    }
  }
  spdlog::info("{} message id={} peer={} from={} rcpts={} copies={} delivered={} forwards={} queue_id={} size={} ms={}",
               lmtp() ? "lmtp" : submission() ? "submission" : "smtp", tx.id, log_value(peer_),
               log_value(tx.from.null ? "<>" : tx.from.mailbox.text), tx.rcpts.size(), copies.size(), ok,
               forwards.size(), queue_id ? *queue_id : std::string("-"), tx.body.size(), ms);
  if (queue_id) {
    svc_.counters.queued.fetch_add(1, std::memory_order_relaxed);
    if (svc_.on_enqueued) svc_.on_enqueued();  // the relay sends the forwards now
  }
  const bool any_ok = std::find(rcpt_ok.begin(), rcpt_ok.end(), true) != rcpt_ok.end();
  if (lmtp() ? any_ok : all_ok) {
    ++messages_;
    svc_.counters.messages.fetch_add(1, std::memory_order_relaxed);
    svc_.counters.recipients.fetch_add(tx.rcpts.size(), std::memory_order_relaxed);
  }
  if (!all_ok) svc_.counters.delivery_failures.fetch_add(1, std::memory_order_relaxed);

  // The reply of a failed RCPT: the first failed copy's store error, else the queue's failure.
  auto failure = [&](std::size_t i) -> Reply {
    for (auto k : copies_of[i])
      if (results[k] && !*results[k]) return store_reply(results[k]->error(), quota_permanent());
    if (!queue_error.empty()) return Reply{451, esc::kSystemOther, "Error: queueing failed, try again later"};
    return Reply{451, esc::kSystemOther, "Error: local delivery failed, try again later"};
  };
  if (lmtp()) {
    for (std::size_t i = 0; i < tx.rcpts.size(); ++i) {
      if (rcpt_ok[i])
        reply(250, esc::kOther, fmt::format("<{}> Ok: delivered as {}", tx.rcpts[i].address, tx.id));
      else
        reply(failure(i));
    }
  } else if (all_ok) {
    reply(250, esc::kOther, fmt::format("Ok: delivered as {}", tx.id));
  } else {
    std::size_t first = 0;
    while (first < rcpt_ok.size() && rcpt_ok[first]) ++first;
    reply(failure(first < rcpt_ok.size() ? first : 0));
  }
  tx_.reset();
}

// ---- Submission: AUTH (RFC 4954) ------------------------------------------------------------

void Session::update_security() {
  if (!submission() || !sh_->stream) return;
  channel_ = login::channel_of(*sh_->stream, cfg_, cfg_.submission.require_tls);
}

// A penalised address waits before its attempt is even checked: on a timer, so this session
// yields and no other session notices (auth::FailurePenalty, shared with POP3).
asio::awaitable<void> Session::penalty_wait() {
  if (channel_.trusted || !svc_.penalty) co_return;
  const auto d = svc_.penalty->delay(peer_);
  if (d.count() <= 0) co_return;
  if (!co_await flush()) co_return;  // earlier replies are not held back by the wait
  touch(cfg_.command_timeout + std::chrono::duration_cast<std::chrono::milliseconds>(d));
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  touch(cfg_.command_timeout);
}

// The SMTP framing of a SASL exchange (RFC 4954 §4): "334 <base64>" challenges, base64 answers,
// "*" cancels.
class Session::SaslConversation final : public login::Conversation {
 public:
  explicit SaslConversation(Session& s) : s_(s) {}
  asio::awaitable<login::Answer> challenge(std::string_view data) override {
    s_.out_ += "334 " + base64_encode(data) + "\r\n";
    auto line = co_await s_.next_line();
    if (!line) co_return login::Answer{};
    if (line->status == LineStatus::too_long) {
      s_.reply(500, kAuthLineTooLong, "Error: authentication exchange line is too long");
      co_return login::Answer{};
    }
    if (line->status != LineStatus::ok) {
      s_.reply(500, esc::kSyntaxError, "Error: lines must end in CRLF");
      co_return login::Answer{};
    }
    if (line->text == "*") co_return login::Answer{login::Answer::Kind::cancelled, {}};
    auto d = login::decode_response(line->text);
    if (!d) {
      s_.reply(501, esc::kSyntaxError, "Error: invalid base64 data in the response");
      co_return login::Answer{};
    }
    co_return login::Answer{login::Answer::Kind::data, std::move(*d)};
  }
  asio::awaitable<void> before_check() override { co_await s_.penalty_wait(); }

 private:
  Session& s_;
};

asio::awaitable<void> Session::cmd_auth(const Command& c) {
  // RFC 4954 §4: once per session, never inside a transaction, after EHLO.
  if (!user_.empty()) {
    reply(503, esc::kInvalidCommand, "Error: already authenticated");
    co_return;
  }
  if (tx_) {
    reply(503, esc::kInvalidCommand, "Error: AUTH is not allowed during a mail transaction");
    co_return;
  }
  if (!esmtp_) {
    reply(503, esc::kInvalidCommand, "Error: send EHLO first");
    co_return;
  }
  std::string_view arg = c.arg;
  while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
  const auto sp = arg.find(' ');
  std::string mech(arg.substr(0, sp));
  std::string_view rest = sp == std::string_view::npos ? std::string_view() : arg.substr(sp + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (mech.empty() || rest.find(' ') != std::string_view::npos) {
    reply(501, esc::kInvalidArguments, "Syntax: AUTH mechanism [initial-response]");
    co_return;
  }
  for (char& ch : mech)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  const auto offered = login::offered_mechanisms(cfg_, channel_);
  if (std::find(offered.begin(), offered.end(), mech) == offered.end()) {
    if (login::refused_for_plaintext(cfg_, channel_, mech))
      // RFC 4954 §6 (538 is deprecated there, but it is the precise answer and clients know it).
      reply(538, kEncryptionRequired, "Error: encryption required for requested authentication mechanism");
    else
      reply(504, esc::kInvalidArguments, "Error: unrecognized authentication type");
    co_return;
  }
  std::optional<std::string> initial;
  if (!rest.empty()) {
    initial = login::decode_response(rest);  // "=" is an empty initial response
    if (!initial) {
      reply(501, esc::kSyntaxError, "Error: invalid base64 data in the initial response");
      co_return;
    }
  }
  const bool plus = std::find(offered.begin(), offered.end(), sasl::kScramSha256Plus) != offered.end();
  const login::Backend backend{svc_.directory, cfg_.recipients.names, &auth_pool(), cfg_.hostname, svc_.fake_salt_key};
  SaslConversation conv(*this);
  auto o = co_await login::authenticate(mech, std::move(initial), channel_, plus, backend, conv);
  switch (o.kind) {
    case login::Outcome::Kind::ended: co_return;  // answered, or the connection is gone
    case login::Outcome::Kind::cancelled:
      reply(501, esc::kOther, "Error: authentication cancelled");  // RFC 4954 §4
      co_return;
    case login::Outcome::Kind::failed:
      svc_.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
      if (svc_.penalty && !channel_.trusted && !o.verdict.temp) svc_.penalty->record_failure(peer_);
      spdlog::info("submission auth failed peer={} user={} mech={} reason={}", log_value(peer_), log_value(o.user),
                   log_value(mech), log_value(o.verdict.why));
      if (o.verdict.temp)
        reply(454, esc::kSecurityOther, "Error: temporary authentication failure, try again later");
      else
        reply(535, kAuthInvalid, "Error: authentication credentials invalid");  // the same for every reason
      co_return;
    case login::Outcome::Kind::ok: break;
  }
  user_ = o.verdict.canonical;
  auth_mech_ = mech;
  svc_.counters.logins.fetch_add(1, std::memory_order_relaxed);
  if (svc_.penalty && !channel_.trusted) svc_.penalty->record_success(peer_);
  spdlog::info("submission auth peer={} user={} mech={} tls={}", log_value(peer_), log_value(user_), log_value(mech),
               tls_ ? "yes" : "no");
  reply(235, kAuthOk, "Authentication successful");
}

// ---- Submission: the message (RFC 6409 §6.1, §8) ---------------------------------------------

// Checks From:/Sender:, adds Date:/Message-ID:, signs, builds Received:. False: refused (the
// reply is queued).
asio::awaitable<bool> Session::prepare_submission(std::int64_t now, std::string& received, std::string& signature) {
  Transaction& tx = *tx_;
  auto scan = scan_headers(tx.body);
  auto refuse = [&](std::string_view field, std::string_view address) {
    svc_.counters.sender_refused.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("submission message refused id={} user={} field={} address={}", tx.id, log_value(user_), field,
                 log_value(address));
    reply(550, esc::kNotAuthorized,
          address.empty() ? fmt::format("Error: the message has no {} address", field)
                          : fmt::format("Error: {} address <{}> does not belong to the authenticated user", field,
                                        address));
  };
  // Every author and the sender must be the user's (a message "From: the-boss" is refused).
  if (scan.from.empty()) {
    refuse("From:", "");
    co_return false;
  }
  for (const auto& a : scan.from)
    if (!owns(a)) {
      refuse("From:", a);
      co_return false;
    }
  if (scan.sender_fields > 0 && scan.sender.empty()) {
    refuse("Sender:", "");
    co_return false;
  }
  for (const auto& a : scan.sender)
    if (!owns(a)) {
      refuse("Sender:", a);
      co_return false;
    }
  // RFC 6409 §8.2, §8.3: complete the message as RFC 5322 §3.6 requires.
  if (auto added = missing_fields(scan, cfg_.hostname, now); !added.empty()) tx.body.insert(scan.end, added);

  // DKIM (RFC 6376) with every key of the author's domain, else of the envelope sender's (an RSA
  // and an Ed25519 key side by side, RFC 8463 §1); after the fixes, so they are covered. Received:
  // goes above the signatures and is not signed.
  std::vector<const dkim::Signer*> signers;
  for (const std::string& domain : {domain_of(scan.from.front()),
                                    tx.from.null ? std::string() : domain_of(tx.from.mailbox.text)}) {
    for (const auto& s : svc_.dkim)
      if (!domain.empty() && domain_of("@" + s.domain) == domain) signers.push_back(&s);
    if (!signers.empty()) break;
  }
  for (const dkim::Signer* signer : signers) {
    auto sig = co_await svc_.pool->run([&] { return dkim::sign(*signer, tx.body, now); });
    if (!sig) {
      spdlog::error("submission dkim signing failed id={} domain={} selector={} error={}", tx.id,
                    log_value(signer->domain), log_value(signer->selector), log_value(sig.error()));
      reply(451, esc::kSystemOther, "Error: cannot sign the message, try again later");
      co_return false;
    }
    signature += *sig;
  }
  if (!signers.empty()) svc_.counters.signed_messages.fetch_add(1, std::memory_order_relaxed);

  const std::string protocol = protocol_name(esmtp_, false, tls_, true, tx.params.smtputf8);
  const std::string tls = tls_ && sh_->stream ? sh_->stream->tls_summary() : std::string();
  const std::string for_rcpt = tx.rcpts.size() == 1 ? tx.rcpts.front().address : std::string();
  if (cfg_.submission.hide_client) {
    received = format_received_hidden(cfg_.hostname, protocol, tx.id, tls, for_rcpt, now);
  } else {
    ReceivedInfo info;
    info.helo = helo_;
    info.peer = peer_;
    info.by = cfg_.hostname;
    info.protocol = protocol;
    info.id = tx.id;
    info.tls = tls;
    info.for_rcpt = for_rcpt;
    info.time = now;
    received = format_received(info);
  }
  co_return true;
}

// A message with remote recipients: ALL its recipients, local ones too, go into one spool entry,
// and the relay delivers the local ones through Delivery. One durable commit (the env/ rename)
// then covers every recipient, so the single 250 is true for all of them and a client retrying
// after a 451 can never cause a duplicate local copy (delivering local copies first and then
// failing to enqueue would). Messages with only local recipients are delivered directly.
asio::awaitable<void> Session::enqueue(std::int64_t now, const std::string& received, const std::string& signature) {
  Transaction& tx = *tx_;
  queue::NewMessage m = spool_message(tx);
  // A local RCPT goes in as its final addresses (an alias's targets), which the relay resolves
  // as plain mailboxes; its forwards go in as they are.
  auto add = [&](const std::string& address, const Recipient& rc) {
    if (std::any_of(m.recipients.begin(), m.recipients.end(),
                    [&](const queue::Recipient& q) { return q.address == address; }))
      return;  // one copy per address
    m.recipients.push_back(spool_recipient(address, rc.params, rc.address));
  };
  for (const auto& rc : tx.rcpts) {
    if (rc.remote) add(rc.address, rc);
    for (const auto& b : rc.boxes) add(b.address, rc);
    for (const auto& f : rc.forward) add(f, rc);
  }
  const std::string_view parts[] = {received, signature, tx.body};
  const auto t0 = Clock::now();
  auto id = co_await svc_.pool->run([&] { return svc_.spool->enqueue(m, parts, queue::TimePoint(std::chrono::seconds(now))); });
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  if (!id) {
    svc_.counters.delivery_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("submission enqueue failed id={} error={}", tx.id, log_value(id.error()));
    reply(451, esc::kSystemOther, "Error: queueing failed, try again later");
    co_return;
  }
  ++messages_;
  svc_.counters.messages.fetch_add(1, std::memory_order_relaxed);
  svc_.counters.queued.fetch_add(1, std::memory_order_relaxed);
  svc_.counters.recipients.fetch_add(tx.rcpts.size(), std::memory_order_relaxed);
  spdlog::info("submission message id={} queue_id={} user={} from={} rcpts={} size={} signed={} ms={}", tx.id, *id,
               log_value(user_), log_value(m.sender.empty() ? "<>" : m.sender), m.recipients.size(), tx.body.size(),
               signature.empty() ? "no" : "yes", ms);
  if (svc_.on_enqueued) svc_.on_enqueued();  // the relay starts now instead of at its next scan
  reply(250, esc::kOther, fmt::format("Ok: queued as {}", *id));
}

asio::awaitable<void> Session::cmd_starttls() {
  if (!svc_.start_tls) {
    reply(502, esc::kInvalidCommand, "Error: STARTTLS is not offered");
    co_return;
  }
  if (tls_) {
    reply(554, esc::kInvalidCommand, "Error: TLS is already active");
    co_return;
  }
  out_ += format_reply(220, esc::kOther, "Ready to start TLS");
  if (!co_await flush()) {
    quit_ = true;
    co_return;
  }
  // RFC 3207 §4.2 (and CVE-2011-0411): anything the client pipelined after STARTTLS was sent in
  // plaintext and must not be acted upon inside TLS.
  if (auto dropped = lines_.take_rest(); !dropped.empty()) {
    spdlog::warn("smtp starttls peer={} discarded={} octets of pipelined plaintext", log_value(peer_), dropped.size());
  }
  lines_ = LineBuffer(line_max(), LineEnd::strict_crlf);
  auto up = co_await svc_.start_tls(std::move(sh_->stream));
  if (!up) {
    end_reason_ = "tls handshake failed: " + up.error().message();
    quit_ = true;
    co_return;
  }
  sh_->stream = std::move(*up);
  tls_ = true;
  update_security();
  user_.clear();  // RFC 3207 §4.2: nothing from before TLS survives, an AUTH neither
  // RFC 3207 §4.2: forget everything learnt before TLS; the client starts over with EHLO.
  helo_.clear();
  esmtp_ = false;
  tx_.reset();
  touch(cfg_.command_timeout);
}

}  // namespace

asio::awaitable<void> serve_session(std::unique_ptr<net::Stream> stream, Service& service) {
  auto sh = std::make_shared<Shared>(std::move(stream));
  sh->deadline = Clock::now() + service.settings.command_timeout;
  asio::co_spawn(sh->stream->get_executor(), watchdog(sh), asio::detached);
  {
    Session s(sh, service);
    try {
      co_await s.run();
    } catch (const std::exception& e) {
      spdlog::error("smtp session failed error={}", log_value(e.what()));
    }
  }
  sh->done = true;
  sh->timer.cancel();
  if (sh->stream) sh->stream->close();
}

}  // namespace buzon::smtp
