// proto/pop3/client_session.cpp — the POP3 client session (see client_session.hpp).
//
// SECURITY  See client_session.hpp: bounded lines, streamed bodies, plaintext policy, STLS drops
//           buffered plaintext.
// STANDARDS RFC 1939, RFC 2449, RFC 2595 §4, RFC 3206, RFC 5034.
// LIMITS    kReadChunk octets per read; RetrieveOptions bound what is in flight.
#include "proto/pop3/client_session.hpp"

#include "auth/password.hpp"
#include "core/base64.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <deque>
#include <map>

namespace buzon::pop3 {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kReadChunk = 256 * 1024;
constexpr std::size_t kSinkChunk = 256 * 1024;   // content handed to the sink at once (at most ~)
constexpr std::size_t kMaxSaslLine = 255;        // RFC 5034 §4: AUTH with initial response

std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  if (s.size() > max) out += "...";
  return out;
}

// Why a client mechanism gave up (sasl::to_string lives in the sasl library, which this layer
// does not link; the fetch and send modules do).
std::string_view sasl_failure(sasl::Errc e) {
  switch (e) {
    case sasl::Errc::server_signature: return "the server could not prove it knows the password";
    case sasl::Errc::server_error: return "the server reported an error";
    case sasl::Errc::iterations: return "the server asked for an out-of-bounds iteration count";
    case sasl::Errc::nonce: return "the server's nonce does not extend ours";
    case sasl::Errc::channel_binding: return "channel binding refused";
    default: return "the server's challenge was malformed";
  }
}

}  // namespace

std::string_view to_string(ClientErrc e) {
  switch (e) {
    case ClientErrc::network: return "network";
    case ClientErrc::timeout: return "timeout";
    case ClientErrc::protocol: return "protocol";
    case ClientErrc::tls: return "tls";
    case ClientErrc::auth: return "auth";
    case ClientErrc::in_use: return "in-use";
    case ClientErrc::login_delay: return "login-delay";
    case ClientErrc::server: return "server";
    case ClientErrc::policy: return "policy";
    case ClientErrc::local: return "local";
  }
  return "?";
}

std::string_view to_string(AuthMethod m) {
  switch (m) {
    case AuthMethod::scram_sha256: return "scram-sha-256";
    case AuthMethod::plain: return "plain";
    case AuthMethod::login: return "login";
    case AuthMethod::apop: return "apop";
    case AuthMethod::user: return "user";
  }
  return "?";
}

std::optional<AuthMethod> parse_auth_method(std::string_view name) {
  std::string n(name);
  for (char& c : n)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  for (auto m : {AuthMethod::scram_sha256, AuthMethod::plain, AuthMethod::login, AuthMethod::apop, AuthMethod::user})
    if (to_string(m) == n) return m;
  return std::nullopt;
}

// The watchdog: closes the stream when the deadline of the current read or write passes.
struct ClientSession::Watch {
  explicit Watch(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  net::Stream* stream = nullptr;
  bool done = false;
  bool fired = false;
  bool running = false;

  static asio::awaitable<void> run(std::shared_ptr<Watch> w) {
    while (!w->done) {
      w->timer.expires_at(w->deadline);
      co_await w->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      if (w->done) break;
      if (Clock::now() >= w->deadline) {
        w->fired = true;
        if (w->stream) w->stream->close();
        break;
      }
    }
    w->running = false;
  }
  void arm(std::chrono::milliseconds t) {
    deadline = Clock::now() + t;
    if (!running && !fired && !done) {
      running = true;
      asio::co_spawn(timer.get_executor(), run(shared_from_this_()), asio::detached);
    }
  }
  void disarm() { deadline = Clock::time_point::max(); }
  std::weak_ptr<Watch> self;
  std::shared_ptr<Watch> shared_from_this_() { return self.lock(); }
};

ClientSession::ClientSession(std::unique_ptr<net::Stream> stream, ClientOptions options)
    : stream_(std::move(stream)), opt_(options) {
  watch_ = std::make_shared<Watch>(stream_->get_executor());
  watch_->self = watch_;
  watch_->stream = stream_.get();
}

ClientSession::~ClientSession() {
  watch_->done = true;
  watch_->stream = nullptr;
  watch_->timer.cancel();
}

bool ClientSession::is_tls() const { return stream_ && stream_->is_tls(); }

void ClientSession::close() {
  if (stream_) stream_->close();
}

ClientError ClientSession::io_error(std::string_view what) const {
  if (watch_->fired)
    return {ClientErrc::timeout, fmt::format("timed out {} after {} s without progress", what,
                                             std::chrono::duration_cast<std::chrono::seconds>(opt_.timeout).count())};
  return {ClientErrc::network, fmt::format("connection lost {}", what)};
}

asio::awaitable<ClientResult<void>> ClientSession::flush() {
  if (out_.empty()) co_return ClientResult<void>{};
  watch_->arm(opt_.timeout);
  auto [ec, n] = co_await stream_->write_all(out_);
  watch_->disarm();
  out_.clear();
  if (ec) co_return std::unexpected(io_error("while sending"));
  co_return ClientResult<void>{};
}

asio::awaitable<ClientResult<void>> ClientSession::fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > kReadChunk) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  const std::size_t old = buf_.size();
  buf_.resize(old + kReadChunk);
  watch_->arm(opt_.timeout);
  auto [ec, n] = co_await stream_->read_some(std::span<char>(buf_.data() + old, kReadChunk));
  watch_->disarm();
  buf_.resize(old + (ec ? 0 : n));
  if (ec || n == 0) co_return std::unexpected(io_error("while waiting for the server"));
  octets_in_ += n;
  co_return ClientResult<void>{};
}

asio::awaitable<ClientResult<std::string>> ClientSession::read_line() {
  std::size_t scanned = 0;  // octets after pos_ known to hold no LF (fill() may move pos_)
  for (;;) {
    auto lf = buf_.find('\n', pos_ + scanned);
    if (lf != std::string::npos) {
      std::string line = buf_.substr(pos_, lf - pos_);
      pos_ = lf + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      co_return line;
    }
    if (buf_.size() - pos_ > kMaxClientLine)
      co_return std::unexpected(ClientError{ClientErrc::protocol,
                                            fmt::format("server sent a line longer than {} octets", kMaxClientLine)});
    scanned = buf_.size() - pos_;
    if (auto r = co_await flush(); !r) co_return std::unexpected(r.error());
    if (auto r = co_await fill(); !r) co_return std::unexpected(r.error());
  }
}

asio::awaitable<ClientResult<StatusLine>> ClientSession::read_status(std::string_view command) {
  // Every command queued so far goes out before we wait for a reply (pipelined ones together).
  if (auto r = co_await flush(); !r) co_return std::unexpected(r.error());
  auto line = co_await read_line();
  if (!line) co_return std::unexpected(line.error());
  auto s = parse_status_line(*line);
  if (!s)
    co_return std::unexpected(ClientError{ClientErrc::protocol, fmt::format("the server answered {} with \"{}\", not +OK or -ERR",
                                                                            command, printable(*line))});
  co_return *s;
}

asio::awaitable<ClientResult<std::vector<std::string>>> ClientSession::read_listing() {
  std::vector<std::string> lines;
  for (;;) {
    auto line = co_await read_line();
    if (!line) co_return std::unexpected(line.error());
    auto l = unstuff_line(*line);
    if (!l) co_return lines;
    if (lines.size() > 10'000'000)
      co_return std::unexpected(ClientError{ClientErrc::protocol, "listing of more than 10 million lines"});
    lines.emplace_back(*l);
  }
}

ClientError ClientSession::error_for(const StatusLine& s, std::string_view command, ClientErrc fallback) const {
  std::string said = s.code_text.empty() ? printable(s.text) : fmt::format("[{}] {}", s.code_text, printable(s.text));
  switch (s.code) {
    case RespCode::in_use:
      return {ClientErrc::in_use, fmt::format("the mailbox is locked by another session ([IN-USE]: {}); "
                                              "another client is probably reading it, try again later",
                                              printable(s.text))};
    case RespCode::login_delay:
      return {ClientErrc::login_delay,
              fmt::format("the server allows a login only every {} ([LOGIN-DELAY]: {}); poll less often",
                          caps_.login_delay ? fmt::format("{} s", *caps_.login_delay) : std::string("few minutes"),
                          printable(s.text))};
    case RespCode::sys_temp:
      return {ClientErrc::server, fmt::format("temporary server failure on {}: {}", command, said)};
    case RespCode::sys_perm:
      return {ClientErrc::server, fmt::format("permanent server failure on {}: {}", command, said)};
    case RespCode::auth:
      return {ClientErrc::auth, fmt::format("login refused on {}: {}", command, said)};
    default:
      return {fallback, fmt::format("the server refused {}: {}", command, said)};
  }
}

asio::awaitable<ClientResult<void>> ClientSession::greeting() {
  auto s = co_await read_status("the connection (greeting)");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok) co_return std::unexpected(error_for(*s, "the connection", ClientErrc::server));
  greeting_ = s->text;
  timestamp_ = apop_timestamp(s->text);
  co_return ClientResult<void>{};
}

asio::awaitable<ClientResult<Capabilities>> ClientSession::capa() {
  out_ += "CAPA\r\n";
  auto s = co_await read_status("CAPA");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok) {
    caps_ = Capabilities{};
    caps_.user = true;  // RFC 1939 servers without CAPA: USER/PASS is all there is
    co_return caps_;
  }
  auto lines = co_await read_listing();
  if (!lines) co_return std::unexpected(lines.error());
  caps_ = parse_capa(*lines);
  co_return caps_;
}

asio::awaitable<ClientResult<void>> ClientSession::stls(const TlsUpgrade& upgrade) {
  if (!upgrade)
    co_return std::unexpected(ClientError{ClientErrc::tls, "TLS is not available in this build of buzon"});
  out_ += "STLS\r\n";
  auto s = co_await read_status("STLS");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok)
    co_return std::unexpected(ClientError{ClientErrc::tls, fmt::format("the server refused STLS: {} (fix: use tls = \"implicit\" "
                                                                       "on the POP3S port, or tls = \"none\" only if you must)",
                                                                       printable(s->text))});
  // RFC 2595 §4: nothing the server sent before the handshake may be used afterwards.
  if (pos_ != buf_.size())
    co_return std::unexpected(ClientError{ClientErrc::protocol, "the server sent data after its STLS reply (possible injection)"});
  buf_.clear();
  pos_ = 0;
  watch_->stream = nullptr;
  watch_->arm(opt_.timeout);
  auto tls = co_await upgrade(std::move(stream_));
  watch_->disarm();
  if (!tls) co_return std::unexpected(ClientError{ClientErrc::tls, tls.error()});
  stream_ = std::move(*tls);
  watch_->stream = stream_.get();
  auto c = co_await capa();
  if (!c) co_return std::unexpected(c.error());
  co_return ClientResult<void>{};
}

bool ClientSession::plaintext_allowed(const AuthOptions& a) const {
  return a.allow_plaintext || is_tls() || stream_->peer_is_loopback();
}

asio::awaitable<ClientResult<AuthMethod>> ClientSession::authenticate(const AuthOptions& a) {
  const bool plain_ok = plaintext_allowed(a);
  std::vector<std::string> refused_by_policy;
  for (auto m : a.preference) {
    switch (m) {
      case AuthMethod::scram_sha256:
        if (a.sasl && caps_.has_sasl(sasl::kScramSha256)) co_return co_await auth_sasl(m, sasl::kScramSha256, a);
        break;
      case AuthMethod::plain:
      case AuthMethod::login: {
        auto mech = m == AuthMethod::plain ? sasl::kPlain : sasl::kLogin;
        if (a.sasl && caps_.has_sasl(mech)) {
          if (plain_ok) co_return co_await auth_sasl(m, mech, a);
          refused_by_policy.emplace_back(mech);
        }
        break;
      }
      case AuthMethod::apop:
        if (timestamp_) co_return co_await auth_apop(a);
        break;
      case AuthMethod::user:
        if (caps_.user || !caps_.known) {
          if (plain_ok) co_return co_await auth_user_pass(a);
          refused_by_policy.emplace_back("USER/PASS");
        }
        break;
    }
  }
  std::string offered;
  for (auto& m : caps_.sasl) offered += (offered.empty() ? "" : ", ") + m;
  if (caps_.user) offered += std::string(offered.empty() ? "" : ", ") + "USER/PASS";
  if (timestamp_) offered += std::string(offered.empty() ? "" : ", ") + "APOP";
  if (!refused_by_policy.empty())
    co_return std::unexpected(ClientError{
        ClientErrc::policy,
        fmt::format("refusing to send the password in the clear ({}) over a connection without TLS "
                    "(fix: tls = \"stls\" or \"implicit\"; or allow_plaintext = true / --allow-plaintext)",
                    fmt::join(refused_by_policy, ", "))});
  co_return std::unexpected(ClientError{
      ClientErrc::policy, fmt::format("no authentication method in common: the server offers {}; allowed: {}",
                                      offered.empty() ? "nothing we know" : offered,
                                      [&] {
                                        std::string s;
                                        for (auto m : a.preference) s += (s.empty() ? "" : ", ") + std::string(to_string(m));
                                        return s;
                                      }())});
}

asio::awaitable<ClientResult<AuthMethod>> ClientSession::auth_user_pass(const AuthOptions& a) {
  if (a.user.find_first_of("\r\n") != std::string::npos || a.password.find_first_of("\r\n") != std::string::npos)
    co_return std::unexpected(ClientError{ClientErrc::policy, "user name or password contains a line break"});
  out_ += "USER " + a.user + "\r\n";
  auto s = co_await read_status("USER");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok) co_return std::unexpected(error_for(*s, "USER", ClientErrc::auth));
  out_ += "PASS " + a.password + "\r\n";
  s = co_await read_status("PASS");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok) co_return std::unexpected(error_for(*s, "PASS", ClientErrc::auth));
  co_return AuthMethod::user;
}

asio::awaitable<ClientResult<AuthMethod>> ClientSession::auth_apop(const AuthOptions& a) {
  if (a.user.find_first_of("\r\n ") != std::string::npos)
    co_return std::unexpected(ClientError{ClientErrc::policy, "user name contains a space or line break (APOP)"});
  out_ += "APOP " + a.user + " " + auth::apop_digest(*timestamp_, a.password) + "\r\n";
  auto s = co_await read_status("APOP");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok) co_return std::unexpected(error_for(*s, "APOP", ClientErrc::auth));
  co_return AuthMethod::apop;
}

asio::awaitable<ClientResult<AuthMethod>> ClientSession::auth_sasl(AuthMethod m, std::string_view mech,
                                                                   const AuthOptions& a) {
  auto mc = a.sasl(mech);
  if (!mc) co_return std::unexpected(ClientError{ClientErrc::policy, fmt::format("SASL {} is not available", mech)});
  auto initial = mc->initial();
  std::string cmd = fmt::format("AUTH {}", mech);
  if (initial) {
    std::string ir = initial->empty() ? "=" : base64_encode(*initial);
    if (cmd.size() + 1 + ir.size() + 2 <= kMaxSaslLine) {
      cmd += " " + ir;
      initial.reset();
    }
  }
  out_ += cmd + "\r\n";
  std::string label = fmt::format("AUTH {}", mech);
  for (int rounds = 0;; ++rounds) {
    auto s = co_await read_status(label);
    if (!s) co_return std::unexpected(s.error());
    if (s->status == Status::ok) {
      if (!mc->complete())
        co_return std::unexpected(ClientError{ClientErrc::auth, fmt::format("{}: the server accepted the login without "
                                                                            "proving it knows the password; not trusted",
                                                                            label)});
      co_return m;
    }
    if (s->status == Status::err) co_return std::unexpected(error_for(*s, label, ClientErrc::auth));
    if (rounds > 10) co_return std::unexpected(ClientError{ClientErrc::protocol, label + ": too many challenges"});
    std::string answer;
    if (initial) {  // the initial response did not fit on the AUTH line: send it now (RFC 5034 §4)
      answer = *initial;
      initial.reset();
    } else {
      auto ch = base64_decode(s->text);
      if (!ch) {
        out_ += "*\r\n";
        (void)co_await read_status(label);
        co_return std::unexpected(ClientError{ClientErrc::protocol, label + ": challenge is not base64"});
      }
      auto r = mc->respond(*ch);
      if (!r) {
        out_ += "*\r\n";
        (void)co_await read_status(label);
        co_return std::unexpected(ClientError{ClientErrc::auth, fmt::format("{}: {}", label, sasl_failure(r.error()))});
      }
      answer = std::move(*r);
    }
    out_ += base64_encode(answer) + "\r\n";
  }
}

asio::awaitable<ClientResult<std::vector<RemoteMessage>>> ClientSession::list() {
  const bool try_uidl = caps_.uidl || !caps_.known;
  const bool pipe = caps_.pipelining;
  std::vector<RemoteMessage> msgs;
  std::map<std::uint64_t, std::string> uids;
  auto read_uidl = [&]() -> asio::awaitable<ClientResult<void>> {
    auto s = co_await read_status("UIDL");
    if (!s) co_return std::unexpected(s.error());
    if (s->status != Status::ok) co_return ClientResult<void>{};  // no UIDL: the caller falls back
    auto lines = co_await read_listing();
    if (!lines) co_return std::unexpected(lines.error());
    for (auto& l : *lines) {
      auto u = parse_uid_line(l);
      if (!u) co_return std::unexpected(ClientError{ClientErrc::protocol, "bad UIDL line \"" + printable(l) + "\""});
      uids[u->first] = std::move(u->second);
    }
    co_return ClientResult<void>{};
  };
  if (try_uidl) out_ += "UIDL\r\n";
  if (!try_uidl || pipe) out_ += "LIST\r\n";
  if (try_uidl) {
    if (auto r = co_await read_uidl(); !r) co_return std::unexpected(r.error());
    if (!pipe) out_ += "LIST\r\n";
  }
  auto s = co_await read_status("LIST");
  if (!s) co_return std::unexpected(s.error());
  if (s->status != Status::ok) co_return std::unexpected(error_for(*s, "LIST", ClientErrc::server));
  auto lines = co_await read_listing();
  if (!lines) co_return std::unexpected(lines.error());
  for (auto& l : *lines) {
    auto sl = parse_scan_line(l);
    if (!sl) co_return std::unexpected(ClientError{ClientErrc::protocol, "bad LIST line \"" + printable(l) + "\""});
    RemoteMessage m{sl->first, sl->second, {}};
    if (auto it = uids.find(m.number); it != uids.end()) m.uid = it->second;
    msgs.push_back(std::move(m));
  }
  if (!uids.empty()) {
    // Every message needs its UID, and UIDs must be unique (RFC 1939 §7); else the list is useless.
    std::map<std::string_view, int> seen;
    for (auto& m : msgs) {
      if (m.uid.empty() || ++seen[m.uid] > 1) {
        for (auto& x : msgs) x.uid.clear();
        break;
      }
    }
  }
  co_return msgs;
}

asio::awaitable<ClientResult<std::vector<std::optional<std::string>>>> ClientSession::top_headers(
    std::span<const std::uint64_t> numbers, std::size_t max_octets) {
  std::vector<std::optional<std::string>> out;
  const std::size_t window = caps_.pipelining ? 16 : 1;
  std::size_t sent = 0;
  for (std::size_t got = 0; got < numbers.size(); ++got) {
    while (sent < numbers.size() && sent - got < window) out_ += fmt::format("TOP {} 0\r\n", numbers[sent++]);
    auto s = co_await read_status("TOP");
    if (!s) co_return std::unexpected(s.error());
    if (s->status != Status::ok) {
      if (got == 0 && !caps_.top)
        co_return std::unexpected(ClientError{ClientErrc::server, "the server supports neither UIDL nor TOP"});
      out.emplace_back(std::nullopt);
      continue;
    }
    MultiLineDecoder dec(LineEnds::wire);
    std::string header;
    std::string scratch;
    while (!dec.done()) {
      if (pos_ == buf_.size()) {
        if (auto r = co_await flush(); !r) co_return std::unexpected(r.error());
        if (auto r = co_await fill(); !r) co_return std::unexpected(r.error());
      }
      scratch.clear();
      pos_ += dec.feed(std::string_view(buf_).substr(pos_), scratch);
      if (header.size() < max_octets) header += scratch.substr(0, max_octets - header.size());
    }
    out.emplace_back(std::move(header));
  }
  co_return out;
}

asio::awaitable<ClientResult<RetrieveResult>> ClientSession::retrieve(std::span<const RemoteMessage> messages,
                                                                      RetrieveSink& sink, const RetrieveOptions& o) {
  struct Pending {
    bool retr;
    std::size_t index;  // into messages
  };
  RetrieveResult res;
  const std::size_t max_inflight = (o.pipelining && caps_.pipelining) ? std::max<std::size_t>(o.window, 1) : 1;
  std::deque<Pending> inflight;
  std::size_t next = 0, retr_inflight = 0;
  std::vector<std::size_t> uncommitted, to_dele;
  std::uint64_t uncommitted_octets = 0;
  std::string chunk;
  chunk.reserve(kSinkChunk + kReadChunk);

  auto local = [](std::string_view what, const std::string& e) {
    return std::unexpected(ClientError{ClientErrc::local, fmt::format("{}: {}", what, e)});
  };

  while (next < messages.size() || !inflight.empty() || !uncommitted.empty() || !to_dele.empty()) {
    // Commit when the batch is big enough or nothing more will arrive.
    if (!uncommitted.empty() && (uncommitted.size() >= o.commit_messages || uncommitted_octets >= o.commit_bytes ||
                                 (next == messages.size() && retr_inflight == 0))) {
      if (auto r = co_await sink.commit(); !r) co_return local("saving messages", r.error());
      res.retrieved += uncommitted.size();
      if (o.dele) to_dele.insert(to_dele.end(), uncommitted.begin(), uncommitted.end());
      uncommitted.clear();
      uncommitted_octets = 0;
    }
    // Queue commands: DELEs first (small, and they free nothing on the server until QUIT anyway).
    std::size_t di = 0;
    for (; di < to_dele.size() && inflight.size() < max_inflight; ++di) {
      out_ += fmt::format("DELE {}\r\n", messages[to_dele[di]].number);
      inflight.push_back({false, to_dele[di]});
    }
    to_dele.erase(to_dele.begin(), to_dele.begin() + static_cast<std::ptrdiff_t>(di));
    while (next < messages.size() && inflight.size() < max_inflight) {
      out_ += fmt::format("RETR {}\r\n", messages[next].number);
      inflight.push_back({true, next++});
      ++retr_inflight;
    }
    if (inflight.empty()) continue;
    if (auto r = co_await flush(); !r) co_return std::unexpected(r.error());

    Pending p = inflight.front();
    inflight.pop_front();
    const RemoteMessage& m = messages[p.index];
    if (!p.retr) {
      auto s = co_await read_status("DELE");
      if (!s) co_return std::unexpected(s.error());
      if (s->status != Status::ok) co_return std::unexpected(error_for(*s, fmt::format("DELE {}", m.number), ClientErrc::server));
      res.deleted.push_back(m.number);
      continue;
    }
    --retr_inflight;
    auto s = co_await read_status("RETR");
    if (!s) co_return std::unexpected(s.error());
    if (s->status != Status::ok) {
      if (s->code == RespCode::sys_temp || s->code == RespCode::sys_perm || s->code == RespCode::none) {
        res.refused.emplace_back(m.number, printable(s->text));
        if (o.progress) o.progress(m, 0);
        continue;
      }
      co_return std::unexpected(error_for(*s, fmt::format("RETR {}", m.number), ClientErrc::server));
    }
    if (auto r = co_await sink.begin(m); !r) co_return local("saving a message", r.error());
    MultiLineDecoder dec(opt_.line_ends);
    for (;;) {
      if (pos_ < buf_.size()) pos_ += dec.feed(std::string_view(buf_).substr(pos_), chunk);
      if (dec.done() || chunk.size() >= kSinkChunk) {
        if (!chunk.empty()) {
          if (auto r = co_await sink.data(chunk); !r) {
            sink.abort();
            co_return local("saving a message", r.error());
          }
          chunk.clear();
        }
        if (dec.done()) break;
      }
      if (pos_ == buf_.size()) {
        if (auto r = co_await fill(); !r) {
          sink.abort();
          co_return std::unexpected(r.error());
        }
      }
    }
    if (auto r = co_await sink.end(); !r) co_return local("saving a message", r.error());
    res.octets += dec.content_octets();
    uncommitted.push_back(p.index);
    uncommitted_octets += dec.content_octets();
    if (o.progress) o.progress(m, dec.wire_octets());
  }
  co_return res;
}

asio::awaitable<ClientResult<std::vector<std::uint64_t>>> ClientSession::dele(std::span<const std::uint64_t> numbers,
                                                                               bool pipelining) {
  std::vector<std::uint64_t> done;
  const std::size_t window = (pipelining && caps_.pipelining) ? 64 : 1;
  std::size_t sent = 0;
  for (std::size_t got = 0; got < numbers.size(); ++got) {
    while (sent < numbers.size() && sent - got < window) out_ += fmt::format("DELE {}\r\n", numbers[sent++]);
    auto s = co_await read_status("DELE");
    if (!s) co_return std::unexpected(s.error());
    if (s->status != Status::ok) co_return std::unexpected(error_for(*s, fmt::format("DELE {}", numbers[got]), ClientErrc::server));
    done.push_back(numbers[got]);
  }
  co_return done;
}

asio::awaitable<ClientResult<void>> ClientSession::quit() {
  out_ += "QUIT\r\n";
  quit_sent_ = true;
  auto s = co_await read_status("QUIT");
  if (!s) co_return std::unexpected(s.error());
  stream_->close();
  if (s->status != Status::ok)
    co_return std::unexpected(error_for(*s, "QUIT (messages marked for deletion may still be on the server)",
                                        ClientErrc::server));
  co_return ClientResult<void>{};
}

}  // namespace buzon::pop3
