#include "proto/pop3/server_session.hpp"

#include "auth/password.hpp"
#include "core/line_buffer.hpp"
#include "core/log.hpp"
#include "core/mail_location.hpp"
#include "proto/pop3/command.hpp"
#include "proto/pop3/dot_stuffer.hpp"
#include "proto/pop3/limits.hpp"
#include "proto/pop3/reply.hpp"

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
#include <vector>

namespace buzon::pop3 {

using Clock = std::chrono::steady_clock;

std::chrono::seconds LoginTracker::check_and_record(const std::string& user, std::chrono::seconds delay) {
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  if (delay.count() > 0) {
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
      sh->stream->close();
      co_return;
    }
  }
}

RespCode code_for(store::StoreErrc c) {
  switch (c) {
    case store::StoreErrc::in_use: return RespCode::in_use;
    case store::StoreErrc::temp: return RespCode::sys_temp;
    default: return RespCode::sys_perm;
  }
}

class Session {
 public:
  Session(std::shared_ptr<Shared> sh, Service& svc)
      : sh_(std::move(sh)), svc_(svc), cfg_(svc.settings), lines_(kMaxCommandLine, LineEnd::crlf_or_lf),
        start_(Clock::now()) {}

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
  asio::awaitable<void> login(const std::string& user);
  // TRANSACTION
  void cmd_stat();
  void cmd_list(const Command& c, bool uidl);
  asio::awaitable<bool> cmd_retr(const Command& c, bool top);
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
  bool eof_ = false;

  enum class State { authorization, transaction, update } state_ = State::authorization;
  std::string timestamp_;   // APOP challenge (RFC 1939 §7)
  std::string pending_user_;  // from USER, as typed
  bool utf8_ = false;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
  std::string user_;
  std::unique_ptr<store::Maildrop> drop_;
  std::unique_ptr<bool[]> deleted_;
  std::vector<bool> retrieved_;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  unsigned commands_ = 0, retr_count_ = 0, top_count_ = 0, dele_count_ = 0;
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
  o.user = true;
  o.apop_ok = cfg_.apop;
  o.stls = false;
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
    if (!co_await handle(*line)) break;
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
  co_await svc_.pool->run([&]() -> bool {
    if (!seen.empty()) (void)drop->mark_seen(seen);
    drop.reset();  // releases the lock
    return true;
  });
}

void Session::log_summary(std::string_view result) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
  svc_.counters.bytes_out.fetch_add(bytes_out_, std::memory_order_relaxed);
  spdlog::info("pop3 session peer={} user={} result={} cmds={} retr={}/{} top={} dele={} deleted={} in={} out={} ms={}",
               log_value(stream().peer()), log_value(user_.empty() ? pending_user_ : user_), log_value(result),
               commands_, retr_count_, retr_bytes_, top_count_, dele_count_, deleted_on_quit_, bytes_in_, bytes_out_, ms);
}

asio::awaitable<bool> Session::handle(const Line& line) {
  ++commands_;
  if (line.status == LineStatus::too_long) {
    bad("Command line too long.");  // RFC 2449 §4: 255 octets including CRLF
    co_return true;
  }
  auto parsed = parse_command(line.text);
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
    case Verb::auth:
    case Verb::stls:
    default: bad("Command not supported."); break;
  }
  co_return true;
}

asio::awaitable<void> Session::cmd_pass(const Command& c) {
  if (pending_user_.empty()) {
    bad("No user name given: send USER first.");
    co_return;
  }
  std::string typed = std::exchange(pending_user_, {});
  std::string password = c.rest;
  struct Verdict {
    bool ok = false;
    std::string canonical;
    std::string why;
  };
  auto v = co_await svc_.pool->run([&]() -> Verdict {
    auto name = auth::canonical_username(typed, cfg_.names);
    if (!name) return {false, "", name.error()};
    auto user = svc_.directory->lookup(*name);
    if (!user) {
      auth::verify_dummy(password);  // the same work for unknown users: timing reveals no names
      return {false, *name, "unknown user"};
    }
    if (!auth::verify_password(user->password, password)) return {false, *name, "wrong password"};
    return {true, *name, ""};
  });
  if (!v.ok) {
    ++auth_failures_;
    ++bad_commands_;
    svc_.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("pop3 auth failed peer={} user={} reason={}", log_value(stream().peer()), log_value(typed),
                 log_value(v.why));
    out_ += err(RespCode::auth, "Authentication failed.");  // RFC 3206 §4
    co_return;
  }
  co_await login(v.canonical);
}

asio::awaitable<void> Session::cmd_apop(const Command& c) {
  if (!cfg_.apop || timestamp_.empty()) {
    bad("APOP is not enabled.");
    co_return;
  }
  std::string typed = c.args.at(0);
  std::string digest = c.args.at(1);
  struct Verdict {
    bool ok = false;
    std::string canonical;
    std::string why;
  };
  auto v = co_await svc_.pool->run([&]() -> Verdict {
    auto name = auth::canonical_username(typed, cfg_.names);
    if (!name) return {false, "", name.error()};
    auto user = svc_.directory->lookup(*name);
    if (!user) return {false, *name, "unknown user"};
    // RFC 1939 §7: APOP needs the shared secret; only users with a cleartext-capable scheme can use it.
    auto secret = auth::plaintext_secret(user->password);
    if (!secret) return {false, *name, "stored scheme does not allow APOP"};
    if (!auth::verify_apop(timestamp_, *secret, digest)) return {false, *name, "wrong digest"};
    return {true, *name, ""};
  });
  if (!v.ok) {
    ++auth_failures_;
    ++bad_commands_;
    svc_.counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("pop3 apop failed peer={} user={} reason={}", log_value(stream().peer()), log_value(typed),
                 log_value(v.why));
    out_ += err(RespCode::auth, "Authentication failed.");
    co_return;
  }
  co_await login(v.canonical);
}

asio::awaitable<void> Session::login(const std::string& user) {
  struct Opened {
    store::Result<std::unique_ptr<store::Maildrop>> drop{std::unexpected(store::StoreError{store::StoreErrc::temp, ""})};
  };
  auto opened = co_await svc_.pool->run([&]() -> Opened {
    auto entry = svc_.directory->lookup(user);
    if (!entry) return {std::unexpected(store::StoreError{store::StoreErrc::perm, "user vanished"})};
    auto where = mail_location(cfg_.mail_template, cfg_.base_dir, user, entry->mail, entry->home);
    if (!where) return {std::unexpected(store::StoreError{store::StoreErrc::perm, where.error()})};
    return {svc_.store->open_maildrop(store::MailboxRef{user, where->string()}, cfg_.maildrop)};
  });
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
  auto reader = co_await svc_.pool->run([&] { return drop_->open_message(*i); });
  if (!reader) {
    if (reader.error().code == store::StoreErrc::not_found)
      out_ += err(fmt::format("Message {} no longer exists.", *i + 1));
    else
      out_ += err(code_for(reader.error().code), "Unable to read the message; try again later.");
    spdlog::warn("pop3 read failed user={} msg={} error={} detail={}", log_value(user_), *i + 1,
                 to_string(reader.error().code), log_value(reader.error().detail));
    co_return true;
  }
  const auto size = drop_->messages()[*i].size;
  out_ += top ? ok("Top of message follows") : ok(fmt::format("{} octets", size));
  DotStuffer stuffer(lines);
  std::string chunk(kMessageChunk, '\0');
  std::uint64_t sent_before = bytes_out_ + out_.size();
  for (;;) {
    auto n = co_await svc_.pool->run([&] { return (*reader)->read(std::span<char>(chunk.data(), chunk.size())); });
    if (!n) {
      // The +OK line is already out: the only honest thing left is to drop the connection, so the
      // client sees an incomplete reply instead of a truncated message (RFC 1939 gives no -ERR here).
      spdlog::error("pop3 read failed mid-message user={} msg={} detail={}", log_value(user_), *i + 1,
                    log_value(n.error().detail));
      end_reason_ = "store error";
      co_return false;
    }
    if (*n == 0) break;
    stuffer.feed(std::string_view(chunk.data(), *n), out_);
    if (out_.size() >= kFlushThreshold && !co_await flush()) co_return false;
    if (stuffer.done()) break;
  }
  stuffer.finish(out_);
  reader->reset();
  if (top) {
    ++top_count_;
  } else {
    ++retr_count_;
    retr_bytes_ += bytes_out_ + out_.size() - sent_before;
    retrieved_[*i] = true;
    svc_.counters.retr.fetch_add(1, std::memory_order_relaxed);
  }
  co_return true;
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
  sh->deadline = Clock::now() + service.settings.autologout;
  asio::co_spawn(sh->stream->get_executor(), watchdog(sh), asio::detached);
  {
    Session s(sh, service);
    try {
      co_await s.run();
    } catch (const std::exception& e) {
      spdlog::error("pop3 session failed peer={} error={}", log_value(sh->stream->peer()), log_value(e.what()));
    }
  }
  sh->done = true;
  sh->timer.cancel();
  sh->stream->close();
}

}  // namespace buzon::pop3
