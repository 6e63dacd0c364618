// relay/relay.cpp — the outbound delivery engine (see relay.hpp and docs/RELAY.md).
//
// SECURITY  See relay.hpp. Every recipient's result is written to the spool (Spool::update, fsync)
//           right after the peer's reply, before QUIT and before any other recipient is tried.
// STANDARDS RFC 5321 §4.5.4.1, §5.1, §6.1; RFC 7505; RFC 3464; RFC 1870; RFC 6152; RFC 6531 §3.5.
// THREADS   One executor (relay.hpp); blocking calls on the worker pool.
// LIMITS    See relay.hpp.
#include "relay/relay.hpp"

#include <asio/post.hpp>

#include "core/log.hpp"
#include "proto/sasl/mechanism.hpp"
#include "proto/smtp/received.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/address.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <random>

namespace buzon::relay {

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : lower(address.substr(at + 1));
}

bool has_8bit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

smtp::Mailbox mailbox_of(const std::string& address) {
  smtp::Mailbox m;
  auto at = address.rfind('@');
  m.local = at == std::string::npos ? address : address.substr(0, at);
  m.domain = at == std::string::npos ? std::string() : address.substr(at + 1);
  m.text = address;
  m.utf8 = has_8bit(address);
  m.literal = !m.domain.empty() && m.domain.front() == '[';
  return m;
}

std::string random_token(std::size_t n) {
  static const char kAlnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += kAlnum[rng() % (sizeof kAlnum - 1)];
  return s;
}

bool is_ip(const std::string& host) {
  asio::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

queue::TimePoint system_now() { return std::chrono::floor<std::chrono::seconds>(queue::Clock::now()); }

std::size_t count_state(const queue::Entry& e, queue::RcptState s) {
  return static_cast<std::size_t>(
      std::count_if(e.recipients.begin(), e.recipients.end(), [s](const queue::Recipient& r) { return r.state == s; }));
}

}  // namespace

std::expected<Options, std::string> options_from_config(const Config& cfg) {
  Options o;
  const auto& r = cfg.relay;
  o.hostname = !r.helo_name.empty() ? r.helo_name : (!cfg.smtp.hostname.empty() ? cfg.smtp.hostname : cfg.server.hostname);
  o.port = r.port;
  o.tls = r.tls == "none" ? TlsPolicy::none : r.tls == "verify" ? TlsPolicy::verify : TlsPolicy::may;
  if (!r.smarthost.empty()) o.smarthost = Target{r.smarthost, r.smarthost_port};
  o.auth_user = r.user;
  if (!r.password_file.empty()) {
    std::ifstream in(cfg.resolve(r.password_file));
    if (!in) return std::unexpected(fmt::format("{}: cannot read [relay] password_file {} (fix: check the path and permissions)",
                                                cfg.file.string(), cfg.resolve(r.password_file).string()));
    std::getline(in, o.auth_password);
    while (!o.auth_password.empty() && (o.auth_password.back() == '\r' || o.auth_password.back() == '\n'))
      o.auth_password.pop_back();
  }
  if (!o.auth_user.empty() && !o.smarthost)
    return std::unexpected(fmt::format("{}: [relay] user is set without a smarthost (fix: set smarthost or remove user)",
                                       cfg.file.string()));
  for (const auto& t : r.transports) o.transports[t.domain] = Target{t.host, t.port};
  const auto& q = cfg.queue;
  o.scan_interval = std::chrono::seconds(q.scan_interval);
  o.retry.first = std::chrono::seconds(q.retry_first);
  o.retry.max_interval = std::chrono::seconds(q.retry_max_interval);
  o.retry.max_age = std::chrono::seconds(q.max_age);
  o.retry.delay_warning = std::chrono::seconds(q.delay_warning);
  o.max_connections = r.max_connections;
  o.max_per_domain = r.max_per_domain;
  o.connect_timeout = std::chrono::seconds(r.connect_timeout);
  o.command_timeout = std::chrono::seconds(r.command_timeout);
  o.source_address = r.source_address;
  o.local.local_domains = cfg.smtp.local_domains;
  o.local.require_local_domain = true;
  o.local.names = auth::NameRules{cfg.users.default_domain, cfg.users.lowercase};
  o.local.mail_template = cfg.mail.location;
  o.local.base_dir = cfg.dir;
  return o;
}

dns::ResolverOptions resolver_options(const Config& cfg) {
  dns::ResolverOptions o;
  o.servers = cfg.dns.servers;
  o.timeout = std::chrono::seconds(cfg.dns.timeout);
  o.tries = cfg.dns.tries;
  return o;
}

// One delivery round of one entry, under its lease.
struct Relay::Round {
  queue::Lease lease;
  queue::Entry e;
  std::string msg;
  queue::TimePoint now;
};

Relay::Relay(asio::any_io_executor ex, Services services, Options options)
    : ex_(std::move(ex)), s_(services), o_(std::move(options)), now_(system_now) {
  connect_ = [src = o_.source_address](std::string address, std::uint16_t port, std::chrono::milliseconds timeout) {
    return tcp_connect(std::move(address), port, timeout, src);
  };
}

Relay::~Relay() { stop(); }

void Relay::start() {
  stopping_ = false;
  timer_ = std::make_shared<asio::steady_timer>(ex_);
  asio::co_spawn(ex_, scan_loop(), asio::detached);
}

void Relay::stop() {
  stopping_ = true;
  // Released here, not in ~Relay: the relay may outlive its io_context (the server destroys the
  // loop first, with the coroutines that refer to the relay); the scan loop keeps its own copy.
  if (timer_) timer_->cancel();
  timer_.reset();
  // The parked connections too, for the same reason: their sockets and timers belong to the
  // io_context (ASan/UBSan caught ~Relay cancelling an idle session's timer after the loop went).
  idle_.clear();
}

void Relay::wake() {
  asio::post(ex_, [this] {
    woken_ = true;
    if (timer_) timer_->cancel();
  });
}

asio::awaitable<void> Relay::scan_loop() {
  auto timer = timer_;
  while (!stopping_) {
    woken_ = false;
    auto entries = co_await s_.pool->run([this] { return s_.spool->list(); });
    const auto now = now_();
    backlog_ = false;
    for (const auto& e : entries) {
      if (stopping_) break;
      if (inflight_.size() >= std::size_t{o_.max_connections} * 4) {
        backlog_ = true;  // the rest starts when a slot frees (deliver() wakes us), not a scan later
        break;
      }
      if (e.held || e.next_attempt > now || inflight_.contains(e.id)) continue;
      asio::co_spawn(ex_, deliver(e.id), asio::detached);
    }
    co_await close_idle(false);
    if (stopping_) break;
    if (woken_) continue;  // an enqueue arrived during this scan
    timer->expires_after(o_.scan_interval);
    co_await timer->async_wait(kTuple);
  }
}

// Parked connections idle longer than kIdleTime (or all of them) get QUIT.
asio::awaitable<void> Relay::close_idle(bool all) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<smtp::ClientSession>> old;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& v = it->second;
    for (auto s = v.begin(); s != v.end();) {
      if (all || now - s->since > kIdleTime) {
        old.push_back(std::move(s->session));
        s = v.erase(s);
      } else {
        ++s;
      }
    }
    it = v.empty() ? idle_.erase(it) : std::next(it);
  }
  for (auto& s : old) (void)co_await s->quit();
}

asio::awaitable<void> Relay::run_once() {
  auto entries = co_await s_.pool->run([this] { return s_.spool->list(); });
  const auto now = now_();
  for (const auto& e : entries)
    if (!e.held && e.next_attempt <= now && !inflight_.contains(e.id)) asio::co_spawn(ex_, deliver(e.id), asio::detached);
  asio::steady_timer t(ex_);
  while (!inflight_.empty()) {
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(kTuple);
  }
  co_await close_idle(true);
}

asio::awaitable<void> Relay::acquire(const std::string& domain) {
  asio::steady_timer t(ex_);
  while (active_ >= o_.max_connections || per_domain_[domain] >= o_.max_per_domain) {
    t.expires_after(std::chrono::milliseconds(50));
    co_await t.async_wait(kTuple);
  }
  ++active_;
  ++per_domain_[domain];
}

void Relay::release(const std::string& domain) {
  --active_;
  if (--per_domain_[domain] == 0) per_domain_.erase(domain);
}

asio::awaitable<bool> Relay::save(Round& r) {
  auto res = co_await s_.pool->run([&] { return s_.spool->update(r.lease, r.e); });
  if (!res) {
    spdlog::error("relay id={} cannot update the spool: {}", r.e.id, log_value(res.error()));
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> Relay::deliver(std::string id) {
  if (inflight_.contains(id)) co_return;
  inflight_.insert(id);
  struct Done {
    Relay& relay;
    std::string id;
    ~Done() {
      relay.inflight_.erase(id);
      if (relay.backlog_ && !relay.stopping_) {
        relay.backlog_ = false;
        relay.wake();
      }
    }
  } done{*this, id};

  struct Loaded {
    std::optional<queue::Lease> lease;
    queue::Entry e;
    std::string msg, error;
  };
  auto l = co_await s_.pool->run([&] {
    Loaded x;
    auto lease = s_.spool->try_lease(id);
    if (!lease) return x;
    auto e = s_.spool->load(*lease);
    if (!e) {
      x.error = e.error();
      return x;
    }
    auto m = s_.spool->read_message(id);
    if (!m) {
      x.error = m.error();
      return x;
    }
    x.e = std::move(*e);
    x.msg = std::move(*m);
    x.lease = std::move(lease);
    return x;
  });
  if (!l.lease) {
    if (!l.error.empty()) spdlog::error("relay id={} cannot load the entry: {}", id, log_value(l.error));
    co_return;
  }
  Round r{std::move(*l.lease), std::move(l.e), std::move(l.msg), now_()};
  if (r.e.held) co_return;

  if (queue::expired(o_.retry, r.e, r.now)) {
    for (auto& rc : r.e.recipients) {
      if (rc.state != queue::RcptState::pending) continue;
      rc.state = queue::RcptState::failed;
      rc.last_reply = fmt::format("554 5.4.7 delivery time expired; last error: {}",
                                  rc.last_reply.empty() ? "none" : rc.last_reply);
      spdlog::info("relay id={} rcpt={} host=- status=failed reply={}", r.e.id, log_value(rc.address),
                   log_value(rc.last_reply));
    }
  } else {
    co_await deliver_local(r);
    std::map<std::string, std::vector<std::size_t>> by_domain;
    for (std::size_t i = 0; i < r.e.recipients.size(); ++i) {
      const auto& rc = r.e.recipients[i];
      if (rc.state != queue::RcptState::pending) continue;
      by_domain[domain_of(rc.address)].push_back(i);
    }
    for (auto& [domain, idx] : by_domain) {
      if (stopping_) break;
      co_await deliver_domain(r, domain, idx);
    }
  }

  ++r.e.attempts;
  if (count_state(r.e, queue::RcptState::pending) == 0) {
    if (count_state(r.e, queue::RcptState::failed) > 0) co_await send_dsn(queue::DsnKind::failure, r.e, r.msg);
    auto rm = co_await s_.pool->run([&] { return s_.spool->remove(r.lease); });
    if (!rm) spdlog::error("relay id={} cannot remove the finished entry: {}", r.e.id, log_value(rm.error()));
    else
      spdlog::info("relay id={} done delivered={} failed={}", r.e.id, count_state(r.e, queue::RcptState::delivered),
                   count_state(r.e, queue::RcptState::failed));
    co_return;
  }
  r.e.next_attempt = queue::next_attempt(o_.retry, r.e.created, r.e.attempts, r.now);
  if (!r.e.delay_warned && queue::delay_warning_due(o_.retry, r.e, r.now)) {
    co_await send_dsn(queue::DsnKind::delay, r.e, r.msg);
    r.e.delay_warned = true;
  }
  co_await save(r);
  spdlog::info("relay id={} deferred pending={} next_attempt_in={}s", r.e.id, count_state(r.e, queue::RcptState::pending),
               (r.e.next_attempt - r.now).count());
}

asio::awaitable<void> Relay::deliver_local(Round& r) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < r.e.recipients.size(); ++i)
    if (r.e.recipients[i].state == queue::RcptState::pending &&
        smtp::is_local_domain(domain_of(r.e.recipients[i].address), o_.local.local_domains))
      idx.push_back(i);
  if (idx.empty()) co_return;
  auto resolved = co_await s_.pool->run([&] {
    std::vector<smtp::ResolvedRecipient> out;
    for (auto i : idx) out.push_back(smtp::resolve_recipient(mailbox_of(r.e.recipients[i].address), o_.local, *s_.directory));
    return out;
  });
  smtp::Path from;
  from.null = r.e.sender.empty();
  if (!from.null) from.mailbox = mailbox_of(r.e.sender);
  const std::string return_path = smtp::format_return_path(from);
  std::vector<store::DeliveryCopy> copies;
  std::vector<std::size_t> copy_rcpt;
  for (std::size_t k = 0; k < idx.size(); ++k) {
    auto& rc = r.e.recipients[idx[k]];
    const auto& v = resolved[k];
    ++rc.attempts;
    rc.remote_mta = o_.hostname;
    switch (v.verdict) {
      case smtp::RcptVerdict::local:
        copies.push_back(store::DeliveryCopy{v.box, return_path + smtp::format_delivered_to(v.address)});
        copy_rcpt.push_back(idx[k]);
        break;
      case smtp::RcptVerdict::unknown_user:
      case smtp::RcptVerdict::relay_denied:
        rc.state = queue::RcptState::failed;
        rc.last_reply = fmt::format("550 5.1.1 <{}>: no such user here", rc.address);
        break;
      case smtp::RcptVerdict::temp_failure:
        rc.last_reply = fmt::format("451 4.3.0 <{}>: mailbox temporarily unavailable", rc.address);
        break;
    }
  }
  if (!copies.empty()) {
    const std::string_view parts[] = {r.msg};
    auto results = co_await s_.pool->run([&] { return s_.delivery->deliver(copies, parts, store::DeliveryMode::each); });
    for (std::size_t k = 0; k < copy_rcpt.size(); ++k) {
      auto& rc = r.e.recipients[copy_rcpt[k]];
      if (k < results.size() && results[k]) {
        rc.state = queue::RcptState::delivered;
        rc.last_reply = "250 2.0.0 delivered to the local mailbox";
      } else {
        rc.last_reply = fmt::format("452 4.2.0 <{}>: the local mailbox could not take the message", rc.address);
      }
    }
  }
  for (auto i : idx) {
    const auto& rc = r.e.recipients[i];
    spdlog::info("relay id={} rcpt={} host=local status={} reply={}", r.e.id, log_value(rc.address),
                 queue::to_string(rc.state), log_value(rc.last_reply));
  }
  co_await save(r);
}

asio::awaitable<void> Relay::deliver_domain(Round& r, std::string domain, std::vector<std::size_t> rcpts) {
  auto settle = [&](queue::RcptState state, const std::string& reply, std::string_view host) {
    for (auto i : rcpts) {
      auto& rc = r.e.recipients[i];
      if (rc.state != queue::RcptState::pending) continue;
      rc.state = state;
      rc.last_reply = reply;
      spdlog::info("relay id={} rcpt={} host={} status={} reply={}", r.e.id, log_value(rc.address), log_value(host),
                   queue::to_string(state), log_value(reply));
    }
  };
  for (auto i : rcpts) ++r.e.recipients[i].attempts;
  std::vector<Target> targets;
  if (auto t = o_.transports.find(domain); t != o_.transports.end()) {
    targets.push_back(t->second);
  } else if (o_.smarthost) {
    targets.push_back(*o_.smarthost);
  } else {
    auto route = co_await s_.pool->run([&] { return std::optional<dns::DnsResult<dns::Route>>(dns::route(*s_.resolver, domain)); });
    const auto& rt = *route;
    if (!rt) {
      if (rt.error().code == dns::DnsErrc::temporary)
        settle(queue::RcptState::pending, fmt::format("451 4.4.3 {}", rt.error().message), "dns");
      else
        settle(queue::RcptState::failed, fmt::format("550 5.1.2 {}: domain not found ({})", domain, rt.error().message), "dns");
      co_await save(r);
      co_return;
    }
    if (rt->null_mx) {
      settle(queue::RcptState::failed, fmt::format("556 5.1.10 {} accepts no mail (null MX, RFC 7505)", domain), "dns");
      co_await save(r);
      co_return;
    }
    for (const auto& h : rt->hosts) targets.push_back(Target{h, o_.port});
  }
  std::string last_error = "no mail host";
  bool done = false;
  co_await acquire(domain);
  for (const auto& t : targets) {
    if (stopping_) break;
    if ((done = co_await try_host(r, domain, rcpts, t, last_error))) break;
  }
  release(domain);
  if (!done) {
    settle(queue::RcptState::pending, fmt::format("451 4.4.1 {}", last_error), targets.empty() ? "-" : targets.front().host);
    co_await save(r);
  }
}

asio::awaitable<bool> Relay::try_host(Round& r, const std::string& domain, const std::vector<std::size_t>& rcpts,
                                      const Target& t, std::string& last_error) {
  (void)domain;
  std::vector<std::string> addresses;
  if (is_ip(t.host)) {
    addresses.push_back(t.host);
  } else {
    auto a = co_await s_.pool->run(
        [&] { return std::optional<dns::DnsResult<std::vector<std::string>>>(s_.resolver->addresses(t.host)); });
    if (!*a) {
      last_error = fmt::format("{}: {}", t.host, (*a).error().message);
      co_return false;
    }
    addresses = std::move(**a);
  }
  const bool smart = (o_.smarthost && o_.smarthost->host == t.host && o_.smarthost->port == t.port);
  std::vector<std::size_t> todo;
  for (auto i : rcpts)
    if (r.e.recipients[i].state == queue::RcptState::pending) todo.push_back(i);
  if (todo.empty()) co_return true;

  for (const auto& addr : addresses) {
    const std::string where = fmt::format("{}[{}]:{}", t.host, addr, t.port);
    for (int pass = 0; pass < 2; ++pass) {  // pass 1: "may" after a failed TLS handshake, without TLS
      const bool use_tls = o_.tls != TlsPolicy::none && pass == 0;
      // Connection reuse: a session parked by an earlier transaction to the same host and address.
      const std::string key = fmt::format("{}|{}", where, smart);
      std::unique_ptr<smtp::ClientSession> sp;
      if (auto it = idle_.find(key); it != idle_.end() && !it->second.empty()) {
        sp = std::move(it->second.back().session);
        it->second.pop_back();
        if (it->second.empty()) idle_.erase(it);
      }
      const bool reused = sp != nullptr;
      if (!reused) {
        auto st = co_await connect_(addr, t.port, o_.connect_timeout);
        if (!st) {
          last_error = fmt::format("connect to {}: {}", where, st.error());
          spdlog::info("relay id={} host={} connect failed: {}", r.e.id, log_value(where), log_value(st.error()));
          break;
        }
        sp = std::make_unique<smtp::ClientSession>(std::move(*st), smtp::ClientOptions{o_.command_timeout});
      }
      auto& cs = *sp;
      if (!reused) {
        auto g = co_await cs.greeting();
        if (!g) {
          last_error = fmt::format("{} greeting: {}", where, g.error().message);
          break;
        }
        auto eh = co_await cs.ehlo(o_.hostname);
        if (!eh) {
          last_error = fmt::format("{} EHLO: {}", where, eh.error().message);
          break;
        }
        if (use_tls && cs.ehlo_info().starttls) {
          auto s = co_await cs.starttls(starttls_client(t.host, o_.tls == TlsPolicy::verify, o_.command_timeout));
          if (!s) {
            last_error = fmt::format("{} STARTTLS: {}", where, s.error().message);
            spdlog::info("relay id={} host={} starttls failed: {}", r.e.id, log_value(where), log_value(s.error().message));
            if (o_.tls == TlsPolicy::may) continue;  // opportunistic: once more without TLS
            break;
          }
          eh = co_await cs.ehlo(o_.hostname);
          if (!eh) {
            last_error = fmt::format("{} EHLO after STARTTLS: {}", where, eh.error().message);
            break;
          }
        } else if (o_.tls == TlsPolicy::verify) {
          last_error = fmt::format("{} offers no STARTTLS and [relay] tls = \"verify\"", where);
          (void)co_await cs.quit();
          break;
        }
        if (smart && !o_.auth_user.empty()) {
          smtp::AuthOptions a;
          a.user = o_.auth_user;
          a.password = o_.auth_password;
          a.sasl = [u = o_.auth_user, p = o_.auth_password](std::string_view mech) {
            return sasl::make_client(mech, sasl::ClientCredentials{u, p, ""});
          };
          auto au = co_await cs.authenticate(a);
          if (!au) {
            last_error = fmt::format("{} AUTH: {}", where, au.error().message);
            (void)co_await cs.quit();
            break;
          }
        }
      }
      const auto& info = cs.ehlo_info();
      const std::uint64_t size = smtp::data_octets(r.msg);
      std::string refuse;
      if (info.size && *info.size > 0 && size > *info.size)
        refuse = fmt::format("552 5.3.4 message size {} exceeds the limit of {} ({} octets)", size, t.host, *info.size);
      else if (r.e.smtputf8 && !info.smtputf8)
        refuse = fmt::format("553 5.6.7 {} does not support SMTPUTF8 and the message needs it (RFC 6531 §3.5)", t.host);
      else if (r.e.eightbit && !info.eightbitmime)
        refuse = fmt::format("554 5.6.3 {} does not support 8BITMIME; conversion to 7 bit is not implemented", t.host);
      if (!refuse.empty()) {
        (void)co_await cs.quit();
        for (auto i : todo) {
          auto& rc = r.e.recipients[i];
          rc.state = queue::RcptState::failed;
          rc.last_reply = refuse;
          rc.remote_mta = t.host;
          spdlog::info("relay id={} rcpt={} host={} status=failed reply={}", r.e.id, log_value(rc.address),
                       log_value(where), log_value(refuse));
        }
        co_await save(r);
        co_return true;
      }
      smtp::RelayRequest req;
      req.from = r.e.sender;
      for (auto i : todo) req.recipients.push_back(r.e.recipients[i].address);
      req.eightbit = r.e.eightbit;
      req.smtputf8 = r.e.smtputf8;
      auto res = co_await cs.relay(req, r.msg);
      if (!res && reused) {
        // The parked connection went stale (the peer closed it): a fresh one.
        spdlog::info("relay id={} host={} reused connection failed: {}", r.e.id, log_value(where), log_value(res.error().message));
        pass = -1;
        continue;
      }
      if (!res) {
        last_error = fmt::format("{}: {}", where, res.error().message);
        spdlog::info("relay id={} host={} transaction failed: {}", r.e.id, log_value(where), log_value(res.error().message));
        break;
      }
      for (std::size_t k = 0; k < todo.size(); ++k) {
        auto& rc = r.e.recipients[todo[k]];
        const smtp::ClientReply* rep = nullptr;
        if (!res->mail.positive()) rep = &res->mail;
        else if (k < res->rcpts.size() && !res->rcpts[k].positive()) rep = &res->rcpts[k];
        else if (res->data) rep = &*res->data;
        rc.remote_mta = t.host;
        if (!rep) {
          rc.last_reply = "451 4.4.2 the transaction ended without a reply to the data";
        } else {
          rc.last_reply = rep->str();
          if (rep->positive()) rc.state = queue::RcptState::delivered;
          else if (rep->code >= 500) rc.state = queue::RcptState::failed;
        }
      }
      // The peer's replies are commitments: on disk before anything else (RFC 5321 §6.1).
      co_await save(r);
      for (auto i : todo) {
        const auto& rc = r.e.recipients[i];
        spdlog::info("relay id={} rcpt={} host={} tls={} status={} reply={}", r.e.id, log_value(rc.address),
                     log_value(where), cs.is_tls() ? "yes" : "no", queue::to_string(rc.state), log_value(rc.last_reply));
        if (reused) spdlog::debug("relay id={} host={} on a reused connection", r.e.id, log_value(where));
      }
      if (cs.reusable()) {
        auto& parked = idle_[key];
        if (parked.size() < o_.max_per_domain && !stopping_)
          parked.push_back(IdleSession{std::move(sp), std::chrono::steady_clock::now()});
        else
          (void)co_await cs.quit();
      }
      co_return true;
    }
  }
  co_return false;
}

asio::awaitable<void> Relay::send_dsn(queue::DsnKind kind, const queue::Entry& e, std::string_view message) {
  if (e.sender.empty()) co_return;  // never bounce a bounce
  const std::string msgid = fmt::format("<{}.{}@{}>", random_token(12), e.id, o_.hostname);
  auto dsn = queue::make_dsn(kind, e, message, o_.hostname, now_(), msgid, e.created + o_.retry.max_age);
  if (!dsn) co_return;
  const char* what = kind == queue::DsnKind::failure ? "failure" : "delay";
  if (smtp::is_local_domain(domain_of(e.sender), o_.local.local_domains)) {
    auto resolved = co_await s_.pool->run([&] { return smtp::resolve_recipient(mailbox_of(e.sender), o_.local, *s_.directory); });
    if (resolved.verdict == smtp::RcptVerdict::unknown_user || resolved.verdict == smtp::RcptVerdict::relay_denied) {
      spdlog::warn("relay id={} {} DSN dropped: the sender {} is not a local user", e.id, what, log_value(e.sender));
      co_return;
    }
    if (resolved.verdict == smtp::RcptVerdict::local) {
      std::vector<store::DeliveryCopy> copies{
          store::DeliveryCopy{resolved.box, "Return-Path: <>\r\n" + smtp::format_delivered_to(resolved.address)}};
      const std::string_view parts[] = {*dsn};
      auto res = co_await s_.pool->run([&] { return s_.delivery->deliver(copies, parts, store::DeliveryMode::each); });
      if (!res.empty() && res.front()) {
        spdlog::info("relay id={} {} DSN delivered to {} (local)", e.id, what, log_value(e.sender));
        co_return;
      }
    }
    // Not deliverable now: through the spool like a remote one (the relay retries it locally).
  }
  queue::NewMessage m;
  queue::Recipient rc;
  rc.address = e.sender;
  rc.notify.failure = rc.notify.delay = false;
  m.recipients.push_back(rc);
  m.smtputf8 = has_8bit(e.sender);
  m.eightbit = has_8bit(*dsn);
  const std::string_view parts[] = {*dsn};
  auto id = co_await s_.pool->run([&] { return std::optional(s_.spool->enqueue(m, parts, now_())); });
  if (!*id) spdlog::error("relay id={} cannot queue the {} DSN: {}", e.id, what, log_value((*id).error()));
  else spdlog::info("relay id={} {} DSN queued as {} for {}", e.id, what, **id, log_value(e.sender));
}

}  // namespace buzon::relay
