// proto/smtp/client_session.cpp — the SMTP client session (see client_session.hpp).
#include "proto/smtp/client_session.hpp"

#include "core/base64.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

namespace buzon::smtp {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kDataChunk = 256 * 1024;

bool is_8bit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}
// (The SASL library's own helpers are not called here: buzon_smtp does not link buzon_sasl; the
// mechanisms come in through AuthOptions::sasl.)
}  // namespace

std::string_view to_string(ClientErrc e) {
  switch (e) {
    case ClientErrc::network: return "network";
    case ClientErrc::timeout: return "timeout";
    case ClientErrc::protocol: return "protocol";
    case ClientErrc::tls: return "tls";
    case ClientErrc::auth: return "auth";
    case ClientErrc::policy: return "policy";
    case ClientErrc::temporary: return "temporary";
    case ClientErrc::permanent: return "permanent";
  }
  return "?";
}

struct ClientSession::Watch {
  explicit Watch(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  net::Stream* stream = nullptr;
  bool done = false, fired = false, running = false;
  std::weak_ptr<Watch> self;

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
      asio::co_spawn(timer.get_executor(), run(self.lock()), asio::detached);
    }
  }
  void disarm() { deadline = Clock::time_point::max(); }
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
  if (watch_->fired) return {ClientErrc::timeout, fmt::format("timed out {}", what)};
  return {ClientErrc::network, fmt::format("connection lost {}", what)};
}

ClientError ClientSession::reply_error(const ClientReply& r, std::string_view command) const {
  auto kind = r.transient() ? ClientErrc::temporary : ClientErrc::permanent;
  return {kind, fmt::format("the server refused {}: {}", command, r.str()), r.code};
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

asio::awaitable<ClientResult<ClientReply>> ClientSession::read_reply(std::string_view command) {
  if (auto r = co_await flush(); !r) co_return std::unexpected(r.error());
  for (;;) {
    auto lf = buf_.find('\n', pos_);
    if (lf == std::string::npos) {
      if (buf_.size() - pos_ > kMaxClientReplyLine)
        co_return std::unexpected(ClientError{ClientErrc::protocol, "reply line too long"});
      if (pos_ > 0) {
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      const auto old = buf_.size();
      buf_.resize(old + kReadChunk);
      watch_->arm(opt_.timeout);
      auto [ec, n] = co_await stream_->read_some(std::span<char>(buf_.data() + old, kReadChunk));
      watch_->disarm();
      buf_.resize(old + (ec ? 0 : n));
      if (ec || n == 0) co_return std::unexpected(io_error(fmt::format("waiting for the reply to {}", command)));
      continue;
    }
    std::string_view line(buf_.data() + pos_, lf - pos_);
    pos_ = lf + 1;
    switch (parser_.feed(line)) {
      case ReplyParser::Step::more: break;
      case ReplyParser::Step::done: co_return parser_.take();
      case ReplyParser::Step::error:
        co_return std::unexpected(ClientError{ClientErrc::protocol, fmt::format("after {}: {}", command, parser_.error())});
    }
  }
}

asio::awaitable<ClientResult<ClientReply>> ClientSession::greeting() {
  auto r = co_await read_reply("the connection (greeting)");
  if (!r) co_return r;
  if (r->code != 220) co_return std::unexpected(reply_error(*r, "the connection"));
  co_return r;
}

asio::awaitable<ClientResult<EhloInfo>> ClientSession::ehlo(std::string_view name) {
  out_ += fmt::format("EHLO {}\r\n", name);
  auto r = co_await read_reply("EHLO");
  if (!r) co_return std::unexpected(r.error());
  if (r->positive()) {
    ehlo_ = parse_ehlo(*r);
    co_return ehlo_;
  }
  out_ += fmt::format("HELO {}\r\n", name);
  r = co_await read_reply("HELO");
  if (!r) co_return std::unexpected(r.error());
  if (!r->positive()) co_return std::unexpected(reply_error(*r, "HELO"));
  ehlo_ = EhloInfo{};
  co_return ehlo_;
}

asio::awaitable<ClientResult<void>> ClientSession::starttls(const TlsUpgrade& upgrade) {
  if (!upgrade) co_return std::unexpected(ClientError{ClientErrc::tls, "TLS is not available in this build of buzon"});
  out_ += "STARTTLS\r\n";
  auto r = co_await read_reply("STARTTLS");
  if (!r) co_return std::unexpected(r.error());
  if (r->code != 220)
    co_return std::unexpected(ClientError{ClientErrc::tls, fmt::format("the server refused STARTTLS: {}", r->str()), r->code});
  if (pos_ != buf_.size())
    co_return std::unexpected(ClientError{ClientErrc::protocol, "the server sent data after its STARTTLS reply (possible injection)"});
  buf_.clear();
  pos_ = 0;
  watch_->stream = nullptr;
  watch_->arm(opt_.timeout);
  auto tls = co_await upgrade(std::move(stream_));
  watch_->disarm();
  if (!tls) co_return std::unexpected(ClientError{ClientErrc::tls, tls.error()});
  stream_ = std::move(*tls);
  watch_->stream = stream_.get();
  ehlo_ = EhloInfo{};
  co_return ClientResult<void>{};
}

asio::awaitable<ClientResult<std::string>> ClientSession::authenticate(const AuthOptions& a) {
  const bool plain_ok = a.allow_plaintext || is_tls() || stream_->peer_is_loopback();
  std::string mech;
  bool policy_refused = false;
  for (auto& m : a.preference) {
    if (!ehlo_.has_auth(m)) continue;
    if ((m == sasl::kPlain || m == sasl::kLogin) && !plain_ok) {
      policy_refused = true;
      continue;
    }
    mech = m;
    break;
  }
  if (mech.empty()) {
    std::string offered;
    for (auto& m : ehlo_.auth) offered += (offered.empty() ? "" : " ") + m;
    if (policy_refused)
      co_return std::unexpected(ClientError{ClientErrc::policy,
                                            "refusing to send the password in the clear over a connection without TLS "
                                            "(fix: tls = \"starttls\" or \"implicit\"; or allow_plaintext = true)"});
    co_return std::unexpected(ClientError{ClientErrc::policy,
                                          fmt::format("no authentication mechanism in common (server offers: {})",
                                                      offered.empty() ? "none" : offered)});
  }
  auto mc = a.sasl ? a.sasl(mech) : nullptr;
  if (!mc) co_return std::unexpected(ClientError{ClientErrc::policy, fmt::format("SASL {} is not available", mech)});
  std::string cmd = "AUTH " + mech;
  if (auto ir = mc->initial()) cmd += " " + (ir->empty() ? std::string("=") : base64_encode(*ir));
  out_ += cmd + "\r\n";
  for (int round = 0;; ++round) {
    auto r = co_await read_reply("AUTH " + mech);
    if (!r) co_return std::unexpected(r.error());
    if (r->code == 235) {
      if (!mc->complete())
        co_return std::unexpected(ClientError{ClientErrc::auth, "the server accepted AUTH without proving it knows the password"});
      co_return mech;
    }
    if (r->code != 334 || round > 10) {
      auto e = reply_error(*r, "AUTH " + mech);
      if (r->code == 535 || r->code == 534 || r->code == 538 || r->code == 454) e.code = ClientErrc::auth;
      co_return std::unexpected(e);
    }
    auto ch = base64_decode(r->lines.empty() ? std::string_view{} : std::string_view(r->lines.front()));
    std::expected<std::string, sasl::Errc> ans = ch ? mc->respond(*ch) : std::unexpected(sasl::Errc::malformed);
    if (!ans) {
      out_ += "*\r\n";
      (void)co_await read_reply("AUTH cancel");
      co_return std::unexpected(ClientError{ClientErrc::auth, fmt::format("AUTH {}: the server's challenge was not acceptable (SASL error {})", mech, static_cast<int>(ans.error()))});
    }
    out_ += base64_encode(*ans) + "\r\n";
  }
}

asio::awaitable<ClientResult<ClientReply>> ClientSession::send(const Envelope& env, std::string_view message) {
  if (env.recipients.empty()) co_return std::unexpected(ClientError{ClientErrc::policy, "no recipients"});
  for (auto* s : {&env.from}) {
    if (s->find_first_of("\r\n<>") != std::string::npos)
      co_return std::unexpected(ClientError{ClientErrc::policy, "bad sender address"});
  }
  for (auto& r : env.recipients)
    if (r.empty() || r.find_first_of("\r\n<> ") != std::string::npos)
      co_return std::unexpected(ClientError{ClientErrc::policy, fmt::format("bad recipient address \"{}\"", r)});
  const std::uint64_t size = data_octets(message);
  if (ehlo_.size && *ehlo_.size > 0 && size > *ehlo_.size)
    co_return std::unexpected(ClientError{ClientErrc::permanent,
                                          fmt::format("the message ({} octets) is larger than the server accepts ({})", size, *ehlo_.size),
                                          552});
  std::string mail = fmt::format("MAIL FROM:<{}>", env.from);
  if (ehlo_.size) mail += fmt::format(" SIZE={}", size);
  if (ehlo_.eightbitmime && is_8bit(message)) mail += " BODY=8BITMIME";
  out_ += mail + "\r\n";
  const bool pipe = ehlo_.pipelining;
  if (!pipe) {
    auto r = co_await read_reply("MAIL FROM");
    if (!r) co_return std::unexpected(r.error());
    if (!r->positive()) co_return std::unexpected(reply_error(*r, "MAIL FROM"));
  }
  for (auto& rc : env.recipients) out_ += fmt::format("RCPT TO:<{}>\r\n", rc);
  if (pipe) out_ += "DATA\r\n";
  // Read the replies in order (RFC 2920 §3.1).
  std::optional<ClientError> failed;
  if (pipe) {
    auto r = co_await read_reply("MAIL FROM");
    if (!r) co_return std::unexpected(r.error());
    if (!r->positive()) failed = reply_error(*r, "MAIL FROM");
  }
  for (auto& rc : env.recipients) {
    auto r = co_await read_reply("RCPT TO");
    if (!r) co_return std::unexpected(r.error());
    if (!r->positive() && !failed) failed = reply_error(*r, fmt::format("recipient <{}>", rc));
    if (!pipe && failed) break;
  }
  if (!pipe && !failed) {
    out_ += "DATA\r\n";
  }
  if (!pipe && failed) {
    out_ += "RSET\r\n";
    (void)co_await read_reply("RSET");
    co_return std::unexpected(*failed);
  }
  auto d = co_await read_reply("DATA");
  if (!d) co_return std::unexpected(d.error());
  if (d->code != 354) {
    if (!failed) failed = reply_error(*d, "DATA");
    out_ += "RSET\r\n";
    (void)co_await read_reply("RSET");
    co_return std::unexpected(*failed);
  }
  if (failed) {
    // DATA was accepted though a recipient was refused: drop the connection so that the server
    // never sees a complete message (RFC 5321 §3.3: no "." = no transaction).
    close();
    co_return std::unexpected(*failed);
  }
  auto fin = co_await send_data(message);
  if (!fin) co_return std::unexpected(fin.error());
  if (!fin->positive()) co_return std::unexpected(reply_error(*fin, "the message"));
  co_return *fin;
}

// The message in its DATA wire form, then the reply to the final ".".
asio::awaitable<ClientResult<ClientReply>> ClientSession::send_data(std::string_view message) {
  DataEncoder enc;
  for (std::size_t i = 0; i < message.size(); i += kDataChunk) {
    enc.feed(message.substr(i, kDataChunk), out_);
    if (out_.size() >= kDataChunk)
      if (auto r = co_await flush(); !r) co_return std::unexpected(r.error());
  }
  enc.finish(out_);
  co_return co_await read_reply("the end of data");
}

asio::awaitable<ClientResult<RelayResult>> ClientSession::relay(const RelayRequest& req, std::string_view message) {
  if (req.recipients.empty()) co_return std::unexpected(ClientError{ClientErrc::policy, "no recipients"});
  if (req.from.find_first_of("\r\n<>") != std::string::npos)
    co_return std::unexpected(ClientError{ClientErrc::policy, "bad sender address"});
  for (auto& r : req.recipients)
    if (r.empty() || r.find_first_of("\r\n<> ") != std::string::npos)
      co_return std::unexpected(ClientError{ClientErrc::policy, fmt::format("bad recipient address \"{}\"", r)});
  RelayResult res;
  std::string mail = fmt::format("MAIL FROM:<{}>", req.from);
  if (ehlo_.size) mail += fmt::format(" SIZE={}", data_octets(message));
  if (req.eightbit) mail += " BODY=8BITMIME";
  if (req.smtputf8) mail += " SMTPUTF8";
  out_ += mail + "\r\n";
  const bool pipe = ehlo_.pipelining;
  auto reply = [&](std::string_view what) { return read_reply(what); };
  if (!pipe) {
    auto r = co_await reply("MAIL FROM");
    if (!r) co_return std::unexpected(r.error());
    res.mail = *r;
    if (!r->positive()) co_return res;
  }
  for (auto& rc : req.recipients) {
    out_ += fmt::format("RCPT TO:<{}>\r\n", rc);
    if (!pipe) {
      auto r = co_await reply("RCPT TO");
      if (!r) co_return std::unexpected(r.error());
      res.rcpts.push_back(*r);
    }
  }
  if (pipe) {
    out_ += "DATA\r\n";
    auto r = co_await reply("MAIL FROM");
    if (!r) co_return std::unexpected(r.error());
    res.mail = *r;
    for (std::size_t i = 0; i < req.recipients.size(); ++i) {
      auto rr = co_await reply("RCPT TO");
      if (!rr) co_return std::unexpected(rr.error());
      res.rcpts.push_back(*rr);
    }
    if (!res.mail.positive()) res.rcpts.clear();
  }
  const bool any = res.mail.positive() &&
                   std::any_of(res.rcpts.begin(), res.rcpts.end(), [](const ClientReply& r) { return r.positive(); });
  if (!pipe && any) out_ += "DATA\r\n";
  if (pipe || any) {
    auto d = co_await reply("DATA");
    if (!d) co_return std::unexpected(d.error());
    if (!any) {
      if (d->code == 354) {
        // DATA accepted without a valid recipient: never complete the message, drop the connection.
        reusable_ = false;
        close();
      }
      co_return res;
    }
    if (d->code != 354) {
      res.data = *d;
      co_return res;
    }
  }
  if (!any) co_return res;
  auto fin = co_await send_data(message);
  if (!fin) co_return std::unexpected(fin.error());
  res.data = *fin;
  co_return res;
}

asio::awaitable<ClientResult<void>> ClientSession::quit() {
  out_ += "QUIT\r\n";
  auto r = co_await read_reply("QUIT");
  close();
  if (!r) co_return std::unexpected(r.error());
  co_return ClientResult<void>{};
}

}  // namespace buzon::smtp
