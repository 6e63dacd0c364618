#include "proto/pop3/server_session.hpp"

#include "auth/password.hpp"
#include "core/base64.hpp"
#include "core/line_buffer.hpp"
#include "core/log.hpp"
#include "core/mail_location.hpp"
#include "proto/pop3/command.hpp"
#include "proto/pop3/dot_stuffer.hpp"
#include "proto/pop3/limits.hpp"
#include "proto/pop3/reply.hpp"
#include "proto/sasl/mechanism.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <openssl/rand.h>
#include <unistd.h>

#include <array>
#include <variant>
#include <vector>

namespace buzon::pop3 {

using Clock = std::chrono::steady_clock;

std::chrono::seconds LoginTracker::check_and_record(const std::string& user, std::chrono::seconds delay) {
  if (delay.count() <= 0) return std::chrono::seconds(0);  // not configured: nothing to remember
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  {
    if (auto it = last_.find(user); it != last_.end()) {
      auto since = now - it->second;
      if (since < delay) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(delay - since);
        return left.count() > 0 ? left : std::chrono::seconds(1);
      }
    }
  }
  last_[user] = now;
  if (last_.size() > 100000) {  // bounded: forget logins older than the delay
    for (auto it = last_.begin(); it != last_.end();) it = (now - it->second >= delay) ? last_.erase(it) : std::next(it);
  }
  return std::chrono::seconds(0);
}

namespace {

constexpr std::size_t kReadChunk = 2048;  // commands are short; idle sessions should cost little memory
constexpr std::size_t kMessageChunk = 128 * 1024;
constexpr std::size_t kFlushThreshold = 64 * 1024;  // write out before reading or producing more
constexpr std::size_t kWholeMessageMax = 256 * 1024;  // RETR reads messages up to this size in one pool job

// State shared with the watchdog, which closes the stream when a deadline passes.
struct Shared {
  std::unique_ptr<net::Stream> stream;
  asio::steady_timer timer;
  Clock::time_point deadline;
  bool done = false;
  bool timed_out = false;
  Shared(std::unique_ptr<net::Stream> s) : stream(std::move(s)), timer(stream->get_executor()) {}
};

asio::awaitable<void> watchdog(std::shared_ptr<Shared> sh) {
  for (;;) {
    sh->timer.expires_at(sh->deadline);
    co_await sh->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    if (sh->done) co_return;
    if (Clock::now() >= sh->deadline) {
      sh->timed_out = true;
      if (sh->stream) sh->stream->close();  // absent only during an STLS handshake (own timeout)
      co_return;
    }
  }
}

// Metrics: one command by its name from the verb table (never the raw input) and by how its reply
// began: at stream offset `reply_at`, now either still in `out` or already written (only RETR/TOP
// write while handling a command, and only after +OK). AUTH counts by its outcome.
void count_command(metrics::ProtocolMetrics& m, const Line& line, std::uint64_t reply_at, std::uint64_t written,
                   const std::string& out, bool logged_in) {
  std::string_view name = "invalid";
  if (line.status != LineStatus::too_long) {
    auto parsed = parse_command(line.text);
    Verb v = parsed ? parsed->verb : parsed.error().verb;
    name = v == Verb::unknown ? std::string_view(parsed ? "unknown" : "invalid") : verb_name(v);
    if (v == Verb::auth) return m.command(name, logged_in ? "ok" : "err");
  }
  if (reply_at < written) return m.command(name, "ok");
  if (reply_at - written < out.size()) return m.command(name, out[reply_at - written] == '+' ? "ok" : "err");
  m.command(name, "none");
}

RespCode code_for(store::StoreErrc c) {
  switch (c) {
    case store::StoreErrc::in_use: return RespCode::in_use;
    case store::StoreErrc::temp: return RespCode::sys_temp;
    default: return RespCode::sys_perm;
  }
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// The outcome of one authentication attempt, decided on the auth pool.
using login::Verdict;

class Session {
 public:
  Session(std::shared_ptr<Shared> sh, Service& svc)
      : sh_(std::move(sh)), svc_(svc), cfg_(svc.settings), lines_(kMaxAuthLine, LineEnd::crlf_or_lf),
        start_(Clock::now()), peer_(sh_->stream->peer()) {
    update_security();
  }

  asio::awaitable<void> run();

 private:
  net::Stream& stream() { return *sh_->stream; }
  void touch() {
    auto idle = Clock::now() + cfg_.autologout;
    auto hard = start_ + cfg_.max_session_time;
    sh_->deadline = std::min(idle, hard);
  }
  asio::awaitable<bool> flush();
  asio::awaitable<std::optional<Line>> next_line();
  asio::awaitable<bool> handle(const Line& line);  // false: end the session

  // AUTHORIZATION
  asio::awaitable<void> cmd_pass(const Command& c);
  asio::awaitable<void> cmd_apop(const Command& c);
  asio::awaitable<bool> cmd_auth(const Command& c);
  asio::awaitable<bool> cmd_stls();
  // A maildrop opened on a pool thread (or why not).
  struct Opened {
    // A constructor, not a default member initializer: clang (the sanitizer and fuzz build) cannot
    // use an initializer of a nested class before the enclosing class is complete, so
    // WorkerPool::run's is_default_constructible check failed there (CWG 1397).
    Opened() : drop(std::unexpected(store::StoreError{store::StoreErrc::temp, ""})) {}
    Opened(store::Result<std::unique_ptr<store::Maildrop>> d) : drop(std::move(d)) {}
    store::Result<std::unique_ptr<store::Maildrop>> drop;
  };
  Opened open_maildrop(const std::string& user);  // blocking: pool threads only
  // After the credentials were verified: opens the maildrop (unless `opened` already holds it) and
  // enters TRANSACTION, or answers why not.
  asio::awaitable<void> login(const std::string& user, std::optional<Opened> opened = std::nullopt);
  // Authentication helpers
  void update_security();  // after connect and after STLS: TLS state, trust, plaintext policy
  std::vector<std::string> offered_mechanisms() const;
  void refuse_plaintext();
  asio::awaitable<void> penalty_wait();
  net::WorkerPool& auth_pool() { return svc_.auth_pool ? *svc_.auth_pool : *svc_.pool; }
  login::Backend backend() {
    return login::Backend{svc_.directory, cfg_.names, &auth_pool(), cfg_.hostname, svc_.fake_salt_key};
  }
  void auth_failed(std::string_view typed, std::string_view mech, const Verdict& v);
  asio::awaitable<login::Answer> sasl_response();
  class SaslConversation;
  // TRANSACTION
  void cmd_stat();
  void cmd_list(const Command& c, bool uidl);
  asio::awaitable<bool> cmd_retr(const Command& c, bool top);
  store::Result<void> read_whole(std::size_t i);
  void retr_failed(std::size_t i, const store::StoreError& e);
  void retr_done(std::size_t i, bool top, std::uint64_t octets);
  void cmd_dele(const Command& c);
  void cmd_rset();
  asio::awaitable<void> cmd_quit();

  void bad(std::string_view text) {
    ++bad_commands_;
    out_ += err(text);
  }
  std::optional<std::size_t> msgnum(std::string_view arg) {
    auto r = parse_msgnum(arg, drop_->messages().size(), std::span<const bool>(deleted_.get(), drop_->messages().size()));
    if (!r) {
      out_ += err(r.error());
      return std::nullopt;
    }
    return *r;
  }
  asio::awaitable<void> release_maildrop();
  std::string capa() const;
  void log_summary(std::string_view result);

  std::shared_ptr<Shared> sh_;
  Service& svc_;
  const Settings& cfg_;
  LineBuffer lines_;
  Clock::time_point start_;
  std::string out_;
  std::array<char, kReadChunk> inbuf_{};
  std::string msgbuf_;  // RETR/TOP: the message being sent (reused between commands)
  bool eof_ = false;

  enum class State { authorization, transaction, update } state_ = State::authorization;
  std::string timestamp_;   // APOP challenge (RFC 1939 §7)
  std::string pending_user_;  // from USER, as typed
  bool utf8_ = false;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
  std::string user_;
  std::string peer_;         // fixed at connect (the stream is swapped by STLS)
  bool tls_ = false;         // the stream is TLS (implicit, or after STLS)
  bool trusted_ = false;     // the peer is in trusted_networks
  bool plaintext_ok_ = false;  // USER/PASS, PLAIN and LOGIN are allowed on this connection
  login::Channel channel_;   // the login policy's view of this connection
  std::string tls_summary_;  // for the log
  std::string auth_mech_;    // how the user logged in, for the log
  std::string authed_user_;  // credentials accepted for this name (the maildrop may still be busy)
  std::unique_ptr<store::Maildrop> drop_;
  std::unique_ptr<bool[]> deleted_;
  std::vector<bool> retrieved_;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  unsigned commands_ = 0, retr_count_ = 0, top_count_ = 0, dele_count_ = 0;
  unsigned cached_reads_ = 0;  // small RETR/TOP and big-message pieces read on the loop from the page cache
  std::uint64_t retr_bytes_ = 0;
  std::size_t deleted_on_quit_ = 0;
  std::string end_reason_ = "disconnected";
};

asio::awaitable<bool> Session::flush() {
  if (out_.empty()) co_return true;
  touch();
  auto [ec, n] = co_await stream().write_all(out_);
  bytes_out_ += n;
  out_.clear();
  if (ec) {
    end_reason_ = sh_->timed_out ? "timeout" : "write error";
    co_return false;
  }
  co_return true;
}

asio::awaitable<std::optional<Line>> Session::next_line() {
  for (;;) {
    if (auto l = lines_.next()) co_return l;
    if (eof_) co_return std::nullopt;
    // Pipelined commands are answered together; nothing more is read until they are written.
    if (!co_await flush()) co_return std::nullopt;
    touch();
    auto [ec, n] = co_await stream().read_some(inbuf_);
    if (ec || n == 0) {
      eof_ = true;
      end_reason_ = sh_->timed_out ? "timeout" : "disconnected";
      co_return std::nullopt;
    }
    bytes_in_ += n;
    lines_.append(std::string_view(inbuf_.data(), n));
  }
}

std::string Session::capa() const {
  CapaOptions o;
  // RFC 5034 §4, RFC 2595 §2.4: no plaintext mechanism is advertised where it would be refused.
  o.user = plaintext_ok_;
  o.sasl = offered_mechanisms();
  o.apop_ok = cfg_.apop;
  o.stls = !tls_ && svc_.start_tls && state_ == State::authorization;
  o.utf8 = true;
  o.lang = true;
  o.expire_days = cfg_.expire_days ? std::optional<int>(static_cast<int>(*cfg_.expire_days)) : std::nullopt;
  o.login_delay = static_cast<int>(cfg_.login_delay.count());
  o.implementation = "buzon";
  o.pipelining = true;
  return format_capa(o);
}

asio::awaitable<void> Session::run() {
  touch();
  if (cfg_.apop) {
    unsigned char rnd[8];
    RAND_bytes(rnd, sizeof rnd);
    std::uint64_t r = 0;
    for (auto b : rnd) r = (r << 8) | b;
    timestamp_ = fmt::format("<{}.{:x}.{}@{}>", ::getpid(), r,
                             std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch()).count(),
                             cfg_.hostname);
    out_ += ok("buzon POP3 server ready " + timestamp_);
  } else {
    out_ += ok("buzon POP3 server ready");
  }
  svc_.counters.sessions.fetch_add(1, std::memory_order_relaxed);

  while (state_ != State::update) {
    auto line = co_await next_line();
    if (!line) break;
    const auto reply_at = bytes_out_ + out_.size();
    const bool more = co_await handle(*line);
    count_command(svc_.metrics, *line, reply_at, bytes_out_, out_, state_ == State::transaction);
    if (!more) break;
    if (out_.size() >= kFlushThreshold && !co_await flush()) break;
    if (bad_commands_ >= cfg_.max_bad_commands) {
      out_ += err("Too many bad commands, closing connection.");
      end_reason_ = "too many bad commands";
      break;
    }
  }
  co_await flush();

  // An aborted session deletes nothing (RFC 1939 §6).
  co_await release_maildrop();
  log_summary(end_reason_);
}

// Records what was retrieved, as Dovecot does also for an aborted session (other readers then see
// those messages as read), and releases the lock. Never deletes.
asio::awaitable<void> Session::release_maildrop() {
  if (!drop_) co_return;
  std::vector<std::size_t> seen;
  for (std::size_t i = 0; i < retrieved_.size(); ++i)
    if (retrieved_[i] && !(state_ == State::update && deleted_[i])) seen.push_back(i);
  auto drop = std::move(drop_);
  if (seen.empty() && drop->release_is_instant()) {
    drop.reset();  // nothing to write: no hand-off to the pool just to close fds (workload 2)
    co_return;
  }
  co_await svc_.pool->run([&]() -> bool {
    if (!seen.empty()) (void)drop->mark_seen(seen);
    drop.reset();  // releases the lock
    return true;
  });
}

void Session::log_summary(std::string_view result) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
  svc_.counters.bytes_out.fetch_add(bytes_out_, std::memory_order_relaxed);
  svc_.metrics.bytes(bytes_in_, bytes_out_);
  spdlog::info("pop3 session peer={} user={} result={} tls={} auth={} cmds={} retr={}/{} top={} dele={} deleted={} "
               "cached={} in={} out={} ms={}",
               log_value(peer_), log_value(!user_.empty() ? user_ : !authed_user_.empty() ? authed_user_ : pending_user_),
               log_value(result),
               log_value(tls_summary_.empty() ? "no" : tls_summary_), log_value(auth_mech_.empty() ? "-" : auth_mech_),
               commands_, retr_count_, retr_bytes_, top_count_, dele_count_, deleted_on_quit_, cached_reads_, bytes_in_,
               bytes_out_, ms);
}

asio::awaitable<bool> Session::handle(const Line& line) {
  ++commands_;
  if (line.status == LineStatus::too_long) {
    bad("Command line too long.");  // RFC 2449 §4: 255 octets including CRLF
    co_return true;
  }
  auto parsed = parse_command(line.text);
  // Before login the buffer takes kMaxAuthLine so that AUTH can carry a long initial response
  // (RFC 5034 §4 asks clients to keep to 255, but SCRAM/GSSAPI tokens and some clients do not);
  // every other command is still held to RFC 2449 §4's 255 octets.
  if (line.text.size() > kMaxCommandLine - 2 && !(parsed && parsed->verb == Verb::auth)) {
    bad("Command line too long.");
    co_return true;
  }
  if (!parsed) {
    bad(parsed.error().message);
    co_return true;
  }
  const Command& c = *parsed;
  if (c.verb == Verb::unknown) {
    bad("Unknown command.");
    co_return true;
  }
  const bool authz = state_ == State::authorization;
  if (!allowed_in(c.verb, authz ? pop3::State::authorization : pop3::State::transaction)) {
    bad(authz ? "Command not valid before login." : "Command not valid after login.");
    co_return true;
  }

  switch (c.verb) {
    case Verb::capa: out_ += capa(); break;
    case Verb::quit:
      if (authz) {
        out_ += ok("buzon POP3 server signing off.");
        end_reason_ = "quit";
        state_ = State::update;  // nothing to update: no maildrop
      } else {
        co_await cmd_quit();
      }
      co_return false;
    case Verb::user:
      if (!plaintext_ok_) {
        refuse_plaintext();
        break;
      }
      pending_user_ = c.args.at(0);
      out_ += ok("Send your password.");  // the same answer for every name (no user enumeration)
      break;
    case Verb::pass: co_await cmd_pass(c); break;
    case Verb::apop: co_await cmd_apop(c); break;
    case Verb::utf8:
      // RFC 6856 §2.1: switches to UTF-8 mode; user names and passwords may then be UTF-8.
      utf8_ = true;
      out_ += ok("UTF8 enabled.");
      break;
    case Verb::lang:
      // RFC 6856 §3: we have one language. "LANG" lists it, "LANG en" or "LANG *" selects it.
      if (c.args.empty()) {
        out_ += ok("Language listing follows");
        out_ += "en English\r\n.\r\n";
      } else if (c.args[0] == "en" || c.args[0] == "EN" || c.args[0] == "*") {
        out_ += ok("en Language is English");
      } else {
        out_ += err("Unsupported language.");
      }
      break;
    case Verb::stat: cmd_stat(); break;
    case Verb::list: cmd_list(c, false); break;
    case Verb::uidl: cmd_list(c, true); break;
    case Verb::retr: co_return co_await cmd_retr(c, false);
    case Verb::top: co_return co_await cmd_retr(c, true);
    case Verb::dele: cmd_dele(c); break;
    case Verb::rset: cmd_rset(); break;
    case Verb::noop: out_ += ok(""); break;
    case Verb::auth: co_return co_await cmd_auth(c);
    case Verb::stls: co_return co_await cmd_stls();
    default: bad("Command not supported."); break;
  }
  co_return true;
}

asio::awaitable<void> Session::cmd_pass(const Command& c) {
  if (!plaintext_ok_) {
    refuse_plaintext();
    co_return;
  }
  if (pending_user_.empty()) {
    bad("No user name given: send USER first.");
    co_return;
  }
  std::string typed = std::exchange(pending_user_, {});
  // One pool job checks the password and, when it is right, opens the maildrop: half the thread
  // hand-offs of a login (issue 6, workload 2). It runs on the auth pool, right after this login's
  // own hash, so it delays no other session's store work.
  co_await penalty_wait();
  struct Checked {
    Verdict v;
    std::optional<Opened> opened;
  } r;
  try {
    r = co_await auth_pool().run([&]() -> Checked {
      Checked out{login::check_password(backend(), typed, c.rest), std::nullopt};
      if (out.v.ok) out.opened = open_maildrop(out.v.canonical);
      return out;
    });
  } catch (const std::exception& e) {
    r.v = Verdict{false, true, "", e.what()};
  }
  if (!r.v.ok) {
    auth_failed(typed, "USER", r.v);
    co_return;
  }
  auth_mech_ = "USER";
  co_await login(r.v.canonical, std::move(r.opened));
}

asio::awaitable<void> Session::cmd_apop(const Command& c) {
  if (!cfg_.apop || timestamp_.empty()) {
    bad("APOP is not enabled.");
    co_return;
  }
  std::string typed = c.args.at(0);
  std::string digest = c.args.at(1);
  co_await penalty_wait();
  Verdict v;
  try {
    v = co_await auth_pool().run([&]() -> Verdict {
      auto name = auth::canonical_username(typed, cfg_.names);
      if (!name) return {false, false, "", name.error()};
      auto user = svc_.directory->lookup(*name);
      if (!user) return {false, false, *name, "unknown user"};
      // RFC 1939 §7: APOP needs the shared secret; only users with a cleartext-capable scheme can use it.
      auto secret = auth::plaintext_secret(user->password);
      if (!secret) return {false, false, *name, "stored scheme does not allow APOP"};
      if (!auth::verify_apop(timestamp_, *secret, digest)) return {false, false, *name, "wrong digest"};
      return {true, false, *name, ""};
    });
  } catch (const std::exception& e) {
    v = {false, true, "", e.what()};
  }
  if (!v.ok) {
    auth_failed(typed, "APOP", v);
    co_return;
  }
  auth_mech_ = "APOP";
  co_await login(v.canonical);
}

// ---- Authentication policy and helpers -------------------------------------------------------

void Session::update_security() {
  auto& s = *sh_->stream;
  channel_ = login::channel_of(s, cfg_);
  tls_ = channel_.tls;
  tls_summary_ = s.tls_summary();
  trusted_ = channel_.trusted;
  plaintext_ok_ = channel_.plaintext_ok;
}

// The mechanisms this connection offers, in the configured order.
std::vector<std::string> Session::offered_mechanisms() const { return login::offered_mechanisms(cfg_, channel_); }

void Session::refuse_plaintext() {
  // Dovecot's wording, which clients and administrators recognise. Not a failed login: no penalty.
  ++bad_commands_;
  svc_.counters.plaintext_refused.fetch_add(1, std::memory_order_relaxed);
  out_ += err(RespCode::auth, "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
}

// A penalised address waits before its attempt is even checked: on a timer, so this session
// yields and no other session notices.
asio::awaitable<void> Session::penalty_wait() {
  if (trusted_) co_return;
  const auto d = svc_.penalty.delay(peer_);
  if (d.count() <= 0) co_return;
  svc_.counters.penalty_waits.fetch_add(1, std::memory_order_relaxed);
  if (!co_await flush()) co_return;  // earlier replies are not held back by the wait
  asio::steady_timer t(sh_->stream->get_executor());
  t.expires_after(d);
  co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  touch();
}

void Session::auth_failed(std::string_view typed, std::string_view mech, const Verdict& v) {
  ++auth_failures_;
  ++bad_commands_;
  svc_.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
  svc_.metrics.auth(mech, false);
  if (!trusted_ && !v.temp) svc_.penalty.record_failure(peer_);
  spdlog::info("pop3 auth failed peer={} user={} mech={} reason={}", log_value(peer_), log_value(typed),
               log_value(mech), log_value(v.why));
  if (v.temp)
    out_ += err(RespCode::sys_temp, "Temporary authentication failure, try again later.");  // RFC 3206 §4
  else
    out_ += err(RespCode::auth, "Authentication failed.");  // RFC 3206 §5: the same for every reason
}

// One client response inside AUTH (RFC 5034 §4): the decoded octets, "*" (cancelled), or ended
// (the -ERR is already queued, or the connection is gone: eof_).
asio::awaitable<login::Answer> Session::sasl_response() {
  auto line = co_await next_line();
  if (!line) co_return login::Answer{};
  if (line->status != LineStatus::ok) {
    bad("Authentication response too long.");
    co_return login::Answer{};
  }
  if (line->text == "*") co_return login::Answer{login::Answer::Kind::cancelled, {}};  // the client gave up
  auto d = login::decode_response(line->text);  // "=": some clients' empty answer
  if (!d) {
    bad("Invalid base64 data in continued response.");
    co_return login::Answer{};
  }
  co_return login::Answer{login::Answer::Kind::data, std::move(*d)};
}

// The POP3 framing of a SASL exchange (RFC 5034 §4): "+ <base64>" challenges, base64 answers.
class Session::SaslConversation final : public login::Conversation {
 public:
  explicit SaslConversation(Session& s) : s_(s) {}
  asio::awaitable<login::Answer> challenge(std::string_view data) override {
    s_.out_ += pop3::challenge(base64_encode(data));
    co_return co_await s_.sasl_response();
  }
  asio::awaitable<void> before_check() override { co_await s_.penalty_wait(); }

 private:
  Session& s_;
};

asio::awaitable<bool> Session::cmd_auth(const Command& c) {
  const auto offered = offered_mechanisms();
  if (c.args.empty()) {
    // "AUTH" alone lists the mechanisms (what Outlook and others probe with, before RFC 5034).
    out_ += ok("Supported SASL mechanisms follow");
    for (const auto& m : offered) append_line(out_, m);
    append_end(out_);
    co_return true;
  }
  const std::string mech = upper(c.args[0]);
  if (std::find(offered.begin(), offered.end(), mech) == offered.end()) {
    if (login::refused_for_plaintext(cfg_, channel_, mech))
      refuse_plaintext();
    else
      bad("Unsupported authentication mechanism.");
    co_return true;
  }
  std::optional<std::string> initial;
  if (c.args.size() == 2) {
    // RFC 5034 §4: "=" is an empty initial response.
    initial = login::decode_response(c.args[1]);
    if (!initial) {
      bad("Invalid base64 data in initial response.");
      co_return true;
    }
  }
  const bool plus = std::find(offered.begin(), offered.end(), sasl::kScramSha256Plus) != offered.end();
  SaslConversation conv(*this);
  auto o = co_await login::authenticate(mech, std::move(initial), channel_, plus, backend(), conv);
  switch (o.kind) {
    case login::Outcome::Kind::ended: co_return !eof_;
    case login::Outcome::Kind::cancelled:
      out_ += err("Authentication cancelled.");  // RFC 5034 §4: the client gave up
      co_return true;
    case login::Outcome::Kind::failed: auth_failed(o.user, mech, o.verdict); co_return true;
    case login::Outcome::Kind::ok: break;
  }
  auth_mech_ = mech;
  co_await login(o.verdict.canonical);
  co_return true;
}

// RFC 2595 §4: "+OK", then the TLS handshake on the same connection; the session starts over in
// AUTHORIZATION, and nothing the client sent before the handshake survives it.
asio::awaitable<bool> Session::cmd_stls() {
  if (tls_) {
    bad("TLS is already active.");
    co_return true;
  }
  if (!svc_.start_tls) {
    bad("STLS is not available.");
    co_return true;
  }
  out_ += ok("Begin TLS negotiation now.");
  if (!co_await flush()) co_return false;
  // CVE-2011-0411: commands pipelined after STLS were sent in plaintext; executing them inside the
  // TLS session would let a man in the middle inject commands. Drop every buffered octet.
  const auto dropped = lines_.take_rest();
  if (!dropped.empty())
    spdlog::warn("pop3 stls dropped {} octets sent after STLS before the handshake peer={}", dropped.size(),
                 log_value(peer_));
  touch();
  auto up = co_await svc_.start_tls(std::move(sh_->stream));
  if (!up) {
    spdlog::info("pop3 stls handshake failed peer={} error={}", log_value(peer_), log_value(up.error().message()));
    end_reason_ = up.error() == std::errc::timed_out ? "tls handshake timeout" : "tls handshake failed";
    eof_ = true;
    co_return false;
  }
  sh_->stream = std::move(*up);
  svc_.counters.stls.fetch_add(1, std::memory_order_relaxed);
  // RFC 2595 §4: forget what the client told us before (USER, UTF8); the policy may change too.
  pending_user_.clear();
  utf8_ = false;
  update_security();
  co_return true;
}

Session::Opened Session::open_maildrop(const std::string& user) {
  try {
    auto entry = svc_.directory->lookup(user);
    if (!entry) return {std::unexpected(store::StoreError{store::StoreErrc::perm, "user vanished"})};
    auto where = mail_location(cfg_.mail_template, cfg_.base_dir, user, entry->mail, entry->home);
    if (!where) return {std::unexpected(store::StoreError{store::StoreErrc::perm, where.error()})};
    return {svc_.store->open_maildrop(store::MailboxRef{user, where->string()}, cfg_.maildrop)};
  } catch (const std::exception& e) {
    return {std::unexpected(store::StoreError{store::StoreErrc::temp, e.what()})};
  }
}

asio::awaitable<void> Session::login(const std::string& user, std::optional<Opened> pre) {
  svc_.metrics.auth(auth_mech_, true);  // the credentials were right (the maildrop may still be busy)
  // The credentials were right: the address's failures are forgiven (as Dovecot does).
  if (!trusted_) svc_.penalty.record_success(peer_);
  authed_user_ = user;
  // (Not `pre ? ... : co_await ...`: g++ 12 miscompiles co_await inside a conditional expression.)
  Opened opened;
  if (pre)
    opened = std::move(*pre);
  else
    opened = co_await svc_.pool->run([&] { return open_maildrop(user); });
  if (!opened.drop) {
    const auto& e = opened.drop.error();
    spdlog::warn("pop3 maildrop open failed user={} error={} detail={}", log_value(user), to_string(e.code),
                 log_value(e.detail));
    if (e.code == store::StoreErrc::in_use)
      out_ += err(RespCode::in_use, "Mailbox is locked by another POP3 session.");  // RFC 2449 §8.1.1
    else
      out_ += err(code_for(e.code), "Unable to open the mailbox; try again later.");
    co_return;
  }
  // RFC 2449 §6.8 / §8.1.2: LOGIN-DELAY is enforced, not just advertised.
  if (auto wait = svc_.logins.check_and_record(user, cfg_.login_delay); wait.count() > 0) {
    auto drop = std::move(*opened.drop);
    co_await svc_.pool->run([&] { drop.reset(); return true; });
    out_ += err(RespCode::login_delay, fmt::format("Login allowed again in {} seconds.", wait.count()));
    co_return;
  }
  drop_ = std::move(*opened.drop);
  user_ = user;
  lines_.set_max(kMaxCommandLine);  // TRANSACTION: RFC 2449 §4 line length only
  auto n = drop_->messages().size();
  deleted_ = std::make_unique<bool[]>(n);
  retrieved_.assign(n, false);
  state_ = State::transaction;
  svc_.counters.logins.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t total = 0;
  for (auto& m : drop_->messages()) total += m.size;
  out_ += ok(fmt::format("Logged in, {} messages ({} octets).", n, total));
}

void Session::cmd_stat() {
  std::size_t count = 0;
  std::uint64_t size = 0;
  const auto& msgs = drop_->messages();
  for (std::size_t i = 0; i < msgs.size(); ++i)
    if (!deleted_[i]) {
      ++count;
      size += msgs[i].size;
    }
  out_ += ok(fmt::format("{} {}", count, size));  // RFC 1939 §5: "+OK nn mm"
}

void Session::cmd_list(const Command& c, bool uidl) {
  const auto& msgs = drop_->messages();
  auto field = [&](std::size_t i) { return uidl ? msgs[i].uidl : std::to_string(msgs[i].size); };
  if (!c.args.empty()) {
    auto i = msgnum(c.args[0]);
    if (!i) return;
    out_ += ok(fmt::format("{} {}", *i + 1, field(*i)));
    return;
  }
  if (uidl) {
    out_ += ok("Unique-ID listing follows");
  } else {
    std::size_t count = 0;
    std::uint64_t size = 0;
    for (std::size_t i = 0; i < msgs.size(); ++i)
      if (!deleted_[i]) ++count, size += msgs[i].size;
    out_ += ok(fmt::format("{} messages ({} octets)", count, size));
  }
  // A message marked as deleted is not listed (RFC 1939 §5).
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    if (deleted_[i]) continue;
    out_ += fmt::format("{} {}\r\n", i + 1, field(i));
  }
  out_ += ".\r\n";
}

asio::awaitable<bool> Session::cmd_retr(const Command& c, bool top) {
  auto i = msgnum(c.args.at(0));
  if (!i) co_return true;
  std::optional<std::uint64_t> lines;
  if (top) {
    auto n = parse_line_count(c.args.at(1));
    if (!n) {
      bad(n.error());
      co_return true;
    }
    lines = *n;
  }
  const auto size = drop_->messages()[*i].size;
  // Small messages (the common case) are read whole into a buffer the session reuses (no per-RETR
  // allocation or zero-fill): right here on the event loop when the store can do it without waiting
  // for I/O (the page cache has them: read_if_cached never blocks), else in one worker-pool job
  // (open, read to the end, close). The hand-off to the pool and back was a third of the server's
  // CPU in workload 1 (futex wake-ups, docs/benchmarks.md). Bigger messages stream in
  // kMessageChunk pieces, one job per piece, so memory stays bounded.
  if (size <= kWholeMessageMax) {
    store::Result<void> whole{};
    if (drop_->read_if_cached(*i, msgbuf_, 2 * kWholeMessageMax))
      ++cached_reads_;
    else
      whole = co_await svc_.pool->run([&]() -> store::Result<void> { return read_whole(*i); });
    if (!whole) {
      retr_failed(*i, whole.error());
      co_return true;
    }
    out_ += top ? ok("Top of message follows") : ok(fmt::format("{} octets", size));
    DotStuffer stuffer(lines);
    const std::uint64_t sent_before = bytes_out_ + out_.size();
    std::string_view rest(msgbuf_);
    while (!rest.empty() && !stuffer.done()) {
      const auto piece = rest.substr(0, kFlushThreshold);
      rest.remove_prefix(piece.size());
      stuffer.feed(piece, out_);
      if (out_.size() >= kFlushThreshold && !co_await flush()) co_return false;
    }
    stuffer.finish(out_);
    retr_done(*i, top, bytes_out_ + out_.size() - sent_before);
    co_return true;
  }
  auto reader = co_await svc_.pool->run([&] { return drop_->open_message(*i); });
  if (!reader) {
    retr_failed(*i, reader.error());
    co_return true;
  }
  out_ += top ? ok("Top of message follows") : ok(fmt::format("{} octets", size));
  DotStuffer stuffer(lines);
  if (msgbuf_.size() < kMessageChunk)
    msgbuf_.resize_and_overwrite(kMessageChunk, [](char*, std::size_t n) { return n; });  // no zero-fill
  std::uint64_t sent_before = bytes_out_ + out_.size();
  for (;;) {
    // Each piece from the page cache on the loop when it is there, else from a pool thread.
    const std::span<char> piece(msgbuf_.data(), kMessageChunk);
    store::Result<std::size_t> n{};
    if (auto now = (*reader)->read_if_cached(piece))
      n = *now, ++cached_reads_;
    else
      n = co_await svc_.pool->run([&] { return (*reader)->read(piece); });
    if (!n) {
      // The +OK line is already out: the only honest thing left is to drop the connection, so the
      // client sees an incomplete reply instead of a truncated message (RFC 1939 gives no -ERR here).
      spdlog::error("pop3 read failed mid-message user={} msg={} detail={}", log_value(user_), *i + 1,
                    log_value(n.error().detail));
      end_reason_ = "store error";
      co_return false;
    }
    if (*n == 0) break;
    stuffer.feed(std::string_view(msgbuf_.data(), *n), out_);
    if (out_.size() >= kFlushThreshold && !co_await flush()) co_return false;
    if (stuffer.done()) break;
  }
  stuffer.finish(out_);
  reader->reset();
  retr_done(*i, top, bytes_out_ + out_.size() - sent_before);
  co_return true;
}

// Runs on the worker pool: the whole message `i` into msgbuf_ (bounded: a file that grew past
// twice kWholeMessageMax since the listing is reported as changed rather than read on).
store::Result<void> Session::read_whole(std::size_t i) {
  auto reader = drop_->open_message(i);
  if (!reader) return std::unexpected(reader.error());
  msgbuf_.clear();
  for (;;) {
    const std::size_t old = msgbuf_.size();
    if (old > 2 * kWholeMessageMax)
      return std::unexpected(store::StoreError{store::StoreErrc::temp, "message grew while being read"});
    std::optional<store::StoreError> failed;
    std::size_t got = 0;
    msgbuf_.resize_and_overwrite(old + kMessageChunk, [&](char* p, std::size_t) {
      auto n = (*reader)->read(std::span<char>(p + old, kMessageChunk));
      if (!n) {
        failed = n.error();
        return old;
      }
      got = *n;
      return old + got;
    });
    if (failed) return std::unexpected(*failed);
    if (got == 0) return {};
  }
}

void Session::retr_failed(std::size_t i, const store::StoreError& e) {
  if (e.code == store::StoreErrc::not_found)
    out_ += err(fmt::format("Message {} no longer exists.", i + 1));
  else
    out_ += err(code_for(e.code), "Unable to read the message; try again later.");
  spdlog::warn("pop3 read failed user={} msg={} error={} detail={}", log_value(user_), i + 1, to_string(e.code),
               log_value(e.detail));
}

void Session::retr_done(std::size_t i, bool top, std::uint64_t octets) {
  if (msgbuf_.capacity() > 4 * kMessageChunk) std::string().swap(msgbuf_);  // keep idle sessions small
  if (top) {
    ++top_count_;
  } else {
    ++retr_count_;
    retr_bytes_ += octets;
    retrieved_[i] = true;
    svc_.counters.retr.fetch_add(1, std::memory_order_relaxed);
  }
}

void Session::cmd_dele(const Command& c) {
  auto i = msgnum(c.args.at(0));
  if (!i) return;
  deleted_[*i] = true;  // only a mark: removal happens in UPDATE (RFC 1939 §6)
  ++dele_count_;
  out_ += ok(fmt::format("Message {} deleted.", *i + 1));
}

void Session::cmd_rset() {
  const auto& msgs = drop_->messages();
  std::uint64_t size = 0;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    deleted_[i] = false;
    size += msgs[i].size;
  }
  out_ += ok(fmt::format("Maildrop has {} messages ({} octets).", msgs.size(), size));
}

asio::awaitable<void> Session::cmd_quit() {
  // RFC 1939 §6: UPDATE state. RFC 2449 §6.7: with EXPIRE 0 a retrieved message is deleted too; with
  // EXPIRE n, messages retrieved in an earlier session and older than n days are removed.
  state_ = State::update;
  end_reason_ = "quit";
  const auto& msgs = drop_->messages();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<std::size_t> doomed;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    bool expire = false;
    if (cfg_.expire_days) {
      if (*cfg_.expire_days == 0)
        expire = retrieved_[i];
      else
        expire = msgs[i].seen && now - msgs[i].received >= static_cast<std::int64_t>(*cfg_.expire_days) * 86400;
    }
    if (deleted_[i] || expire) {
      deleted_[i] = true;
      doomed.push_back(i);
    }
  }
  store::Result<void> r;
  if (!doomed.empty()) r = co_await svc_.pool->run([&] { return drop_->commit_deletes(doomed); });
  if (!r) {
    spdlog::error("pop3 update failed user={} detail={}", log_value(user_), log_value(r.error().detail));
    out_ += err(code_for(r.error().code), "Some deleted messages were not removed.");
    end_reason_ = "update failed";
    co_return;
  }
  deleted_on_quit_ = doomed.size();
  svc_.counters.dele.fetch_add(doomed.size(), std::memory_order_relaxed);
  // Release the maildrop before the +OK goes out: a client that reconnects the moment it reads the
  // reply must not find its own mailbox still locked ([IN-USE]).
  co_await release_maildrop();
  out_ += ok(fmt::format("buzon POP3 server signing off ({} messages deleted).", doomed.size()));
}

}  // namespace

asio::awaitable<void> serve_session(std::unique_ptr<net::Stream> stream, Service& service) {
  auto sh = std::make_shared<Shared>(std::move(stream));
  const auto peer = sh->stream->peer();
  sh->deadline = Clock::now() + service.settings.autologout;
  asio::co_spawn(sh->stream->get_executor(), watchdog(sh), asio::detached);
  {
    Session s(sh, service);
    try {
      co_await s.run();
    } catch (const std::exception& e) {
      spdlog::error("pop3 session failed peer={} error={}", log_value(peer), log_value(e.what()));
    }
  }
  // The stream is gone only when an STLS handshake failed (the upgrade consumed it).
  if (sh->stream && !sh->timed_out) co_await sh->stream->shutdown();  // TLS: close_notify
  sh->done = true;
  sh->timer.cancel();
  if (sh->stream) sh->stream->close();
}

}  // namespace buzon::pop3
