#include "server/server.hpp"

#include "auth/passwd_file.hpp"
#include "core/log.hpp"
#include "net/tcp_stream.hpp"
#include "net/tls_context.hpp"
#include "net/worker_pool.hpp"
#include "proto/pop3/server_session.hpp"
#include "proto/sasl/crypto.hpp"
#include "server/conn_limiter.hpp"
#include "core/ip_network.hpp"
#include "core/metrics.hpp"
#include "server/metrics_http.hpp"
#include "server/proxy_protocol.hpp"
#include "server/systemd.hpp"
#include "relay/relay.hpp"
#include "store/maildir/maildir_store.hpp"
#include "net/unix_stream.hpp"
#include "proto/smtp/server_session.hpp"
#include "proto/smtp/service_config.hpp"
#include "store/maildir/maildir_deliverer.hpp"

#include <asio/local/stream_protocol.hpp>
#include <sys/stat.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

namespace buzon::server {

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// One event loop: its own io_context, thread, acceptors, and the streams of its live sessions.
// A protocol served on some addresses: how to run a session on an accepted socket, and the one
// line that refuses a connection over the limits (in that protocol's syntax).
// Who is at the other end: the TCP peer, or the client named by a trusted PROXY header.
struct Peer {
  asio::ip::tcp::endpoint endpoint;
  bool proxied = false;
};

struct Service {
  std::string name;  // "pop3", later "pop3s", "smtp", ...
  std::function<asio::awaitable<void>(asio::ip::tcp::socket, Peer)> run;
  std::string busy_reply;      // over max_connections
  std::string per_ip_reply;    // over max_connections_per_ip
  // Sessions accepted on a unix-domain socket (LMTP from a local MTA); empty for TCP-only services.
  std::function<asio::awaitable<void>(std::unique_ptr<net::Stream>)> run_stream;
};

// A unix-domain listening socket (only the first loop has it: no SO_REUSEPORT for AF_UNIX).
struct UnixListener {
  Service* service;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor;
  std::string path;
};

struct Listener {
  Service* service;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  std::string address;  // "127.0.0.1:1110": logs and metric labels
  asio::ip::tcp::endpoint endpoint;
  bool proxy = false;   // expects a PROXY protocol header ([proxy] listeners)
  metrics::Gauge* active = nullptr;
  metrics::Counter* total = nullptr;
};

// One event loop: its own io_context, thread, acceptors, and the sockets of its live sessions.
struct Loop {
  asio::io_context io{1};
  std::vector<Listener> listeners;
  std::vector<UnixListener> unix_listeners;
  std::set<int> sockets;  // native handles of live sessions; touched only on this loop's thread
  bool stopping = false;
  std::thread thread;
};

// [tls] as the TLS layer wants it: absolute paths, built-in cipher defaults, "file:line" origins.
net::TlsSettings tls_settings(const Config& cfg) {
  auto files = [&](const TlsCertConfig& t) {
    net::TlsCertFiles f;
    f.cert = cfg.resolve(t.cert);
    f.key = cfg.resolve(t.key);
    if (!t.chain.empty()) f.chain = cfg.resolve(t.chain);
    f.names = t.names;
    f.origin = t.line > 0 ? fmt::format("{}:{}", cfg.file.string(), t.line) : cfg.file.string();
    return f;
  };
  net::TlsSettings s;
  s.main = files(cfg.tls.main);
  for (const auto& t : cfg.tls.sni) s.sni.push_back(files(t));
  s.min_version = cfg.tls.min_version;
  if (!cfg.tls.ciphers.empty()) s.ciphers = cfg.tls.ciphers;
  if (!cfg.tls.ciphersuites.empty()) s.ciphersuites = cfg.tls.ciphersuites;
  s.handshake_timeout = std::chrono::seconds(cfg.tls.handshake_timeout);
  return s;
}

store::UidlFormat uidl_format(const std::string& s) {
  if (s == "dovecot") return store::UidlFormat::dovecot;
  if (s == "x-uidl") return store::UidlFormat::x_uidl;
  return store::UidlFormat::buzon;
}

}  // namespace

struct Server::Impl {
  Config cfg;
  std::unique_ptr<auth::PasswdFileDirectory> directory;
  std::shared_ptr<auth::AliasFile> aliases;  // [aliases] file (issue 10), swapped on SIGHUP
  std::shared_ptr<smtp::LiveRules> rules;    // delimiter, postmaster, domain aliases, quota: SIGHUP
  store::maildir::MaildirStore store;
  std::unique_ptr<net::WorkerPool> pool;
  std::unique_ptr<ConnLimiter> limiter;
  pop3::Service pop3;
  store::maildir::MaildirDeliverer deliverer;  // SMTP/LMTP delivery with group commit
  smtp::Service smtp;
  smtp::Service lmtp;
  // Submission (issue 8) and the outbound spool it fills. The spool is shared: the relay engine
  // takes messages out of it (open_spool() opens it once, for whoever needs it first).
  smtp::Service submission;
  std::unique_ptr<queue::Spool> spool;
  std::vector<std::string> unix_socket_paths;  // removed at exit
  std::shared_ptr<net::TlsServerContext> tls;  // [tls]; null when not configured
  std::unique_ptr<net::WorkerPool> auth_pool;  // password hashing only ([auth] hash_threads)
  // The outbound relay (issue 8, docs/RELAY.md): one thread with its own event loop, started when
  // there is a spool. relay_io is declared after relay: it is destroyed first, with the relay's
  // coroutines, while the relay they refer to still exists.
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<relay::Relay> relay;
  asio::io_context relay_io{1};
  std::thread relay_thread;
  std::expected<void, std::string> start_relay();
  std::vector<std::unique_ptr<Service>> services;
  std::vector<std::unique_ptr<Loop>> loops;
  asio::io_context control{1};

  std::expected<void, std::string> listen(Service& svc, const std::vector<ListenAddress>& addrs, std::string_view key);
  asio::awaitable<void> accept_loop(Loop& loop, Listener& l);
  asio::awaitable<void> serve_pop3s(asio::ip::tcp::socket sock, Peer peer);
  asio::awaitable<void> session(Loop& loop, Listener& l, asio::ip::tcp::socket sock, Peer peer, std::string ip);
  asio::awaitable<void> drain();
  asio::awaitable<void> handle_signals();
  std::expected<void, std::string> start_smtp();
  std::expected<void, std::string> start_submission();
  std::expected<queue::Spool*, std::string> open_spool();
  asio::awaitable<void> serve_submissions(asio::ip::tcp::socket sock, Peer peer);
  std::expected<void, std::string> listen_unix(Service& svc, const std::filesystem::path& path, unsigned mode,
                                               std::string_view key);
  asio::awaitable<void> accept_unix_loop(Loop& loop, UnixListener& l);
  asio::awaitable<void> unix_session(Loop& loop, UnixListener& l, asio::local::stream_protocol::socket sock);

  // Operations (issue 7): socket activation, PROXY protocol, metrics, config reload.
  InheritedSockets inherited;
  std::vector<IpNetwork> trusted_proxies;
  std::vector<ReloadHook> reload_hooks;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  std::string last_reload = "none";
  std::unique_ptr<MetricsHttp> metrics_http;
  std::vector<metrics::CallbackHandle> metric_callbacks;
  metrics::Family<metrics::Counter>& refused = metrics::registry().counter(
      "buzon_connections_refused_total", "Connections closed without a session, by protocol, listener and reason.",
      {"protocol", "listener", "reason"});
  metrics::Family<metrics::Counter>& reloads = metrics::registry().counter(
      "buzon_config_reloads_total", "Configuration reloads on SIGHUP, by result.", {"result"});

  void add_listener(Loop& loop, Service& svc, std::unique_ptr<asio::ip::tcp::acceptor> acc,
                    const asio::ip::tcp::endpoint& ep);
  std::expected<void, std::string> adopt(Service& svc, const InheritedSocket& s);
  void admit(Loop& loop, Listener& l, asio::ip::tcp::socket sock, Peer peer);
  asio::awaitable<void> proxied(Loop& loop, Listener& l, asio::ip::tcp::socket sock, asio::ip::tcp::endpoint remote);
  void register_metrics();
  void reload();
  std::string status() const;
};

Server::Server(Config cfg) : impl_(std::make_unique<Impl>()) { impl_->cfg = std::move(cfg); }
Server::~Server() = default;

std::expected<void, std::string> Server::start() {
  auto& d = *impl_;
  const auto& cfg = d.cfg;
  // Listening sockets passed by systemd socket activation, used instead of binding (systemd.hpp).
  auto inherited = InheritedSockets::from_environment();
  if (!inherited) return std::unexpected(inherited.error());
  d.inherited = std::move(*inherited);
  for (const auto& t : cfg.proxy.trusted)
    if (auto net = parse_ip_network(t)) d.trusted_proxies.push_back(*net);  // validated by the config
  auth::NameRules rules{cfg.users.default_domain, cfg.users.lowercase};
  auto dir = auth::PasswdFileDirectory::open(cfg.resolve(cfg.users.passwd_file), rules);
  if (!dir) return std::unexpected(dir.error());
  d.directory = std::move(*dir);
  // Aliases and the address rules (issue 10): loaded and checked now; SIGHUP re-reads the file and
  // the rules ([smtp] recipient_delimiter, [aliases] postmaster/domains, [quota]) all or nothing.
  // Forwarding needs the queue the server opens at start-up (a new [queue] takes a restart).
  const bool forwarding = smtp::forwarding_configured(cfg);
  auto load_aliases = [forwarding](const Config& c) {
    return smtp::load_server_aliases(c.aliases.file.empty() ? std::filesystem::path() : c.resolve(c.aliases.file),
                                     smtp::settings_from_config(c, smtp::Mode::smtp).recipients, forwarding,
                                     c.file.string());
  };
  auto rules_of = [](const Config& c) {
    const auto s = smtp::settings_from_config(c, smtp::Mode::smtp);
    return smtp::rules_of(s.recipients, s.over_quota_permanent);
  };
  auto alias_table = load_aliases(cfg);
  if (!alias_table) return std::unexpected(alias_table.error());
  d.aliases = auth::AliasFile::from_table(std::move(*alias_table));
  d.rules = std::make_shared<smtp::LiveRules>(rules_of(cfg));
  d.reload_hooks.push_back(ReloadHook{
      "aliases", [&d, load_aliases, rules_of](const Config& next) -> std::expected<std::function<void()>, std::string> {
        auto t = load_aliases(next);
        if (!t) return std::unexpected(t.error());
        return [&d, t = std::move(*t), r = rules_of(next)] {
          d.aliases->replace(t);
          d.rules->set(r);
          spdlog::info("reload: address rules delimiter=\"{}\" postmaster={} domain_aliases={} quota_bytes={} "
                       "quota_messages={} aliases={}",
                       r.delimiter, r.postmaster.empty() ? std::string("-") : r.postmaster, r.domain_aliases.size(),
                       r.default_quota.bytes, r.default_quota.messages, t.size());
        };
      }});

  unsigned threads = cfg.server.io_threads ? cfg.server.io_threads : std::max(1u, std::thread::hardware_concurrency());
  d.pool = std::make_unique<net::WorkerPool>(cfg.server.worker_threads, cfg.server.worker_threads * 64);
  d.limiter = std::make_unique<ConnLimiter>(cfg.server.max_connections, cfg.server.max_connections_per_ip);

  auto& s = d.pop3.settings;
  s.hostname = cfg.server.hostname;
  s.apop = cfg.pop3.apop;
  s.autologout = std::chrono::seconds(cfg.pop3.autologout);
  s.max_session_time = std::chrono::seconds(cfg.pop3.max_session_time);
  s.max_bad_commands = cfg.pop3.max_bad_commands;
  s.login_delay = std::chrono::seconds(cfg.pop3.login_delay);
  s.expire_days = cfg.pop3.expire_days;
  s.maildrop.uidl_format = uidl_format(cfg.mail.uidl_format);
  s.names = rules;
  s.mail_template = cfg.mail.location;
  s.base_dir = cfg.dir;
  d.pop3.directory = d.directory.get();
  d.pop3.store = &d.store;
  d.pop3.pool = d.pool.get();

  // Authentication (issue 3): hashing has its own bounded pool, so a storm of wrong passwords
  // queues there and never in front of the store work of logged-in users.
  d.auth_pool = std::make_unique<net::WorkerPool>(cfg.auth.hash_threads, cfg.auth.hash_threads * 64);
  d.pop3.auth_pool = d.auth_pool.get();
  s.sasl_mechanisms = cfg.auth.mechanisms;
  s.plaintext_requires_tls = cfg.auth.plaintext_requires_tls;
  s.trusted_networks.clear();
  for (const auto& t : cfg.auth.trusted_networks)
    if (auto net = parse_ip_network(t)) s.trusted_networks.push_back(*net);  // validated by the config
  d.pop3.penalty.configure(std::chrono::milliseconds(cfg.auth.failure_delay_ms),
                           std::chrono::milliseconds(cfg.auth.failure_delay_max_ms));
  d.pop3.fake_salt_key = sasl::random_bytes(32);

  // TLS (issue 3): certificates are read now (still privileged), reloaded on SIGHUP.
  if (cfg.tls.enabled()) {
    auto tls = net::TlsServerContext::create(tls_settings(cfg));
    if (!tls) return std::unexpected(tls.error());
    d.tls = std::move(*tls);
    for (const auto& line : d.tls->describe()) spdlog::info("tls certificate {}", line);
    if (cfg.pop3.stls)
      d.pop3.start_tls = [tls = d.tls](net::StreamPtr plain) { return tls->start_tls(std::move(plain)); };
    d.reload_hooks.push_back(ReloadHook{
        "tls", [&d](const Config& next) -> std::expected<std::function<void()>, std::string> {
          if (!next.tls.enabled()) {
            spdlog::warn("reload: [tls] has no certificate any more; TLS stays on with the old one until a restart");
            return std::function<void()>();
          }
          auto commit = d.tls->prepare(tls_settings(next));
          if (!commit) return std::unexpected(commit.error());
          return [&d, commit = std::move(*commit)] {
            commit();
            for (const auto& line : d.tls->describe()) spdlog::info("tls certificate reloaded: {}", line);
          };
        }});
  }

  for (unsigned i = 0; i < threads; ++i) d.loops.push_back(std::make_unique<Loop>());

  auto& pop3 = *d.services.emplace_back(std::make_unique<Service>(Service{
      "pop3",
      [&d](asio::ip::tcp::socket sock, Peer peer) {
        return pop3::serve_session(std::make_unique<net::TcpStream>(std::move(sock), peer.endpoint), d.pop3);
      },
      "-ERR [SYS/TEMP] Server busy, try again later.\r\n",
      "-ERR [SYS/TEMP] Too many connections from your address.\r\n"}));
  if (auto r = d.listen(pop3, cfg.pop3.listen, "[pop3] listen"); !r) return r;
  if (d.tls && !cfg.pop3.listen_tls.empty()) {
    // POP3S (RFC 8314): TLS from the first octet. Over the limits the connection is just closed:
    // a plaintext -ERR would only confuse a TLS client.
    auto& pop3s = *d.services.emplace_back(std::make_unique<Service>(Service{
        "pop3s", [&d](asio::ip::tcp::socket sock, Peer peer) { return d.serve_pop3s(std::move(sock), peer); }, "",
        ""}));
    if (auto r = d.listen(pop3s, cfg.pop3.listen_tls, "[pop3] listen_tls"); !r) return r;
  }
  if (auto r = d.start_smtp(); !r) return r;
  if (auto r = d.start_submission(); !r) return r;
  if (auto r = d.start_relay(); !r) return r;
  return {};
}

std::expected<std::vector<std::string>, std::string> check_tls(const Config& cfg) {
  if (!cfg.tls.enabled()) return std::vector<std::string>{};
  auto tls = net::TlsServerContext::create(tls_settings(cfg));
  if (!tls) return std::unexpected(tls.error());
  return (*tls)->describe();
}

asio::awaitable<void> Server::Impl::serve_pop3s(asio::ip::tcp::socket sock, Peer peer) {
  auto stream = co_await tls->accept(std::move(sock), peer.endpoint);
  if (!stream) {
    auto a = peer.endpoint.address();
    spdlog::info("pop3s tls handshake failed peer={} error={}", log_value(a.to_string()), log_value(stream.error().message()));
    co_return;
  }
  co_await pop3::serve_session(std::move(*stream), pop3);
}

std::expected<void, std::string> Server::Impl::listen(Service& svc, const std::vector<ListenAddress>& addrs,
                                                     std::string_view key) {
  // Socket activation: sockets named after the service replace its configured addresses.
  if (auto named = inherited.take_named(svc.name); !named.empty()) {
    for (auto& s : named)
      if (auto r = adopt(svc, s); !r) return r;
    return {};
  }
  for (const auto& addr : addrs) {
    auto ep = asio::ip::tcp::endpoint(asio::ip::make_address(addr.host), addr.port);
    if (auto s = inherited.take_address(ep)) {
      if (auto r = adopt(svc, *s); !r) return r;
      continue;
    }
    auto fix = fmt::format("stop the program using {} or change {} in {}", addr.str(), key, cfg.file.string());
    // SO_REUSEPORT lets each loop accept on its own socket, but would also let a second server share
    // the port silently: probe once without it, so "address in use" is reported as it should be.
    {
      asio::ip::tcp::acceptor probe(control);
      asio::error_code ec;
      probe.open(ep.protocol(), ec);
      if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) probe.bind(ep, ec);
      if (ec) return std::unexpected(fmt::format("cannot listen on {}: {} (fix: {})", addr.str(), ec.message(), fix));
    }
    for (auto& loop : loops) {
      auto acc = std::make_unique<asio::ip::tcp::acceptor>(loop->io);
      asio::error_code ec;
      acc->open(ep.protocol(), ec);
      if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) acc->set_option(reuse_port(true), ec);
      if (!ec && ep.protocol() == asio::ip::tcp::v6()) acc->set_option(asio::ip::v6_only(true), ec);
      if (!ec) acc->bind(ep, ec);
      if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return std::unexpected(fmt::format("cannot listen on {}: {} (fix: {})", addr.str(), ec.message(), fix));
      add_listener(*loop, svc, std::move(acc), ep);
    }
    spdlog::info("{} listening on {}", svc.name, addr.str());
  }
  return {};
}

asio::awaitable<void> Server::Impl::accept_loop(Loop& loop, Listener& l) {
  auto& acc = *l.acceptor;
  asio::steady_timer backoff(loop.io);
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(kTuple);
    if (loop.stopping) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of descriptors (EMFILE/ENFILE) and the like: back off instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    asio::error_code rec;
    auto remote = sock.remote_endpoint(rec);
    if (rec) continue;
    if (l.proxy) {
      // Only a trusted proxy may tell us who the client is (proxy_protocol.hpp).
      auto from = parse_peer_address(remote.address().to_string());
      if (!from || !contains_any(trusted_proxies, *from)) {
        spdlog::warn("{} connection refused peer={} listener={} reason=\"not a trusted proxy\"", l.service->name,
                     remote.address().to_string(), l.address);
        refused.with({l.service->name, l.address, "untrusted_proxy"}).inc();
        asio::error_code ig;
        sock.close(ig);
        continue;
      }
      asio::co_spawn(loop.io, proxied(loop, l, std::move(sock), remote), asio::detached);
      continue;
    }
    admit(loop, l, std::move(sock), Peer{remote, false});
  }
}

// Applies the connection limits to the client's address, then runs the session.
void Server::Impl::admit(Loop& loop, Listener& l, asio::ip::tcp::socket sock, Peer peer) {
  auto addr = peer.endpoint.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  auto ip = addr.to_string();
  auto verdict = limiter->acquire(ip);
  if (verdict != ConnLimiter::Verdict::ok) {
    // Answer with a response code and close, without a session (bounded work per connection).
    auto msg = std::make_shared<std::string>(verdict == ConnLimiter::Verdict::too_many_from_ip ? l.service->per_ip_reply
                                                                                               : l.service->busy_reply);
    auto s = std::make_shared<asio::ip::tcp::socket>(std::move(sock));
    asio::async_write(*s, asio::buffer(*msg), [s, msg](asio::error_code, std::size_t) {
      asio::error_code ig;
      s->close(ig);
    });
    bool per_ip = verdict == ConnLimiter::Verdict::too_many_from_ip;
    spdlog::info("{} connection refused peer={} reason={}", l.service->name, ip, per_ip ? "per-ip limit" : "connection limit");
    refused.with({l.service->name, l.address, per_ip ? "per_ip_limit" : "connection_limit"}).inc();
    return;
  }
  asio::co_spawn(loop.io, session(loop, l, std::move(sock), peer, ip), asio::detached);
}

// A connection on a PROXY listener from a trusted proxy: the header names the client.
asio::awaitable<void> Server::Impl::proxied(Loop& loop, Listener& l, asio::ip::tcp::socket sock,
                                            asio::ip::tcp::endpoint remote) {
  auto h = co_await proxy::read_header(sock, std::chrono::seconds(cfg.proxy.timeout));
  if (loop.stopping) co_return;
  if (!h) {
    spdlog::warn("{} connection refused peer={} listener={} reason=\"bad PROXY header\" detail={}", l.service->name,
                 remote.address().to_string(), l.address, log_value(h.error()));
    refused.with({l.service->name, l.address, "bad_proxy_header"}).inc();
    asio::error_code ig;
    sock.close(ig);
    co_return;
  }
  // LOCAL (the proxy's own health check) and unsupported families keep the proxy's address.
  Peer peer{h->local || !h->source ? remote : *h->source, !h->local && h->source.has_value()};
  admit(loop, l, std::move(sock), peer);
}

asio::awaitable<void> Server::Impl::session(Loop& loop, Listener& l, asio::ip::tcp::socket sock, Peer peer,
                                            std::string ip) {
  int fd = sock.native_handle();
  loop.sockets.insert(fd);
  struct Done {
    Loop& loop;
    int fd;
    ConnLimiter& lim;
    std::string ip;
    metrics::Gauge* active;
    ~Done() {
      loop.sockets.erase(fd);
      lim.release(ip);
      active->dec();
    }
  } done{loop, fd, *limiter, ip, l.active};
  l.total->inc();
  l.active->inc();
  co_await l.service->run(std::move(sock), peer);
}

// SMTP (MX for the local domains) and LMTP (for an MTA in front), issue 4. Both deliver through
// the Maildir deliverer (group commit) on the worker pool.
std::expected<void, std::string> Server::Impl::start_smtp() {
  for (auto* svc : {&smtp, &lmtp}) {
    svc->directory = directory.get();
    svc->delivery = &deliverer;
    svc->pool = pool.get();
  }
  smtp.settings = smtp::settings_from_config(cfg, smtp::Mode::smtp);
  lmtp.settings = smtp::settings_from_config(cfg, smtp::Mode::lmtp);
  smtp.settings.recipients.aliases = lmtp.settings.recipients.aliases = aliases;
  smtp.settings.recipients.live = lmtp.settings.recipients.live = rules;
  if (smtp::forwarding_configured(cfg)) {
    // Aliases that forward to remote addresses put the message into the outbound spool (issue 10).
    auto sp = open_spool();
    if (!sp) return std::unexpected(sp.error());
    smtp.spool = lmtp.spool = *sp;
  }
  if (tls && cfg.smtp.starttls) {
    auto up = [t = tls](net::StreamPtr plain) { return t->start_tls(std::move(plain)); };
    smtp.start_tls = up;
    lmtp.start_tls = up;
  }
  if (!cfg.smtp.listen.empty() && cfg.smtp.local_domains.empty())
    spdlog::warn("[smtp] local_domains is empty: every recipient will be refused (fix: list your domains in {})",
                 cfg.file.string());
  auto& s = *services.emplace_back(std::make_unique<Service>(Service{
      "smtp",
      [this](asio::ip::tcp::socket sock, Peer peer) {
        return smtp::serve_session(std::make_unique<net::TcpStream>(std::move(sock), peer.endpoint), smtp);
      },
      "421 4.3.2 Server busy, try again later\r\n", "421 4.7.0 Too many connections from your address\r\n", {}}));
  if (auto r = listen(s, cfg.smtp.listen, "[smtp] listen"); !r) return r;
  auto& l = *services.emplace_back(std::make_unique<Service>(Service{
      "lmtp",
      [this](asio::ip::tcp::socket sock, Peer peer) {
        return smtp::serve_session(std::make_unique<net::TcpStream>(std::move(sock), peer.endpoint), lmtp);
      },
      "421 4.3.2 Server busy, try again later\r\n", "421 4.7.0 Too many connections from your address\r\n",
      [this](std::unique_ptr<net::Stream> stream) { return smtp::serve_session(std::move(stream), lmtp); }}));
  if (auto r = listen(l, cfg.lmtp.listen, "[lmtp] listen"); !r) return r;
  if (!cfg.lmtp.socket.empty())
    if (auto r = listen_unix(l, cfg.lmtp.socket, cfg.lmtp.socket_mode, "[lmtp] socket"); !r) return r;
  // Counters of both services, by protocol, for Prometheus (/metrics).
  auto counter = [this](const char* name, const char* help, std::atomic<std::uint64_t> smtp::Counters::*field) {
    metric_callbacks.push_back(metrics::registry().callback(
        name, help, metrics::Type::counter, [this, field](metrics::Emitter& e) {
          e.sample({{"protocol", "smtp"}}, static_cast<double>((smtp.counters.*field).load(std::memory_order_relaxed)));
          e.sample({{"protocol", "lmtp"}}, static_cast<double>((lmtp.counters.*field).load(std::memory_order_relaxed)));
          e.sample({{"protocol", "submission"}},
                   static_cast<double>((submission.counters.*field).load(std::memory_order_relaxed)));
        }));
  };
  counter("buzon_smtp_messages_total", "Messages accepted (250 after the data), by protocol.", &smtp::Counters::messages);
  counter("buzon_smtp_recipients_total", "Recipients of accepted messages, by protocol.", &smtp::Counters::recipients);
  counter("buzon_smtp_rejected_recipients_total", "RCPTs refused as unknown users, by protocol.",
          &smtp::Counters::rejected_recipients);
  counter("buzon_smtp_relay_denied_total", "RCPTs refused because the domain is not local (no relay).",
          &smtp::Counters::relay_denied);
  counter("buzon_smtp_delivery_failures_total", "Messages whose delivery into the store failed (4xx).",
          &smtp::Counters::delivery_failures);
  counter("buzon_smtp_bare_line_ends_total", "Commands or messages refused for a bare CR or LF (smuggling).",
          &smtp::Counters::bare_line_ends);
  counter("buzon_smtp_early_talkers_total", "Clients refused for talking before the greeting.",
          &smtp::Counters::early_talkers);
  counter("buzon_smtp_received_bytes_total", "Octets received from SMTP/LMTP clients.", &smtp::Counters::bytes_in);
  counter("buzon_smtp_logins_total", "Successful AUTH (submission).", &smtp::Counters::logins);
  counter("buzon_smtp_auth_failures_total", "Failed AUTH (submission; wrong credentials or a failed check).",
          &smtp::Counters::auth_failures);
  counter("buzon_smtp_sender_refused_total", "Submissions refused because the sender or From:/Sender: is not the user's.",
          &smtp::Counters::sender_refused);
  counter("buzon_smtp_queued_total", "Messages put into the outbound queue (submission, forwards of aliases).",
          &smtp::Counters::queued);
  counter("buzon_smtp_dkim_signed_total", "Messages DKIM-signed (submission).", &smtp::Counters::signed_messages);
  return {};
}

// The outbound spool ([queue] dir), opened once for whoever needs it first (submission, relay).
std::expected<queue::Spool*, std::string> Server::Impl::open_spool() {
  if (spool) return spool.get();
  const auto dir = cfg.resolve(cfg.queue.dir);
  auto s = queue::Spool::open(dir);
  if (!s) return std::unexpected(fmt::format("cannot open the queue {}: {}", dir.string(), s.error()));
  spool = std::move(*s);
  return spool.get();
}

// Submission (RFC 6409 on 587 with STARTTLS, RFC 8314 implicit TLS on 465), issue 8: AUTH first,
// then local recipients go through the deliverer and remote ones into the spool.
std::expected<void, std::string> Server::Impl::start_submission() {
  const auto& sc = cfg.submission;
  if (sc.listen.empty() && sc.listen_tls.empty()) return {};
  auto& sub = submission;
  sub.settings = smtp::settings_from_config(cfg, smtp::Mode::submission);
  sub.settings.recipients.aliases = aliases;
  sub.settings.recipients.live = rules;
  sub.directory = directory.get();
  sub.delivery = &deliverer;
  sub.pool = pool.get();
  sub.auth_pool = auth_pool.get();
  sub.penalty = &pop3.penalty;  // one failure record per address, whatever the protocol
  sub.fake_salt_key = pop3.fake_salt_key;
  auto sp = open_spool();
  if (!sp) return std::unexpected(sp.error());
  sub.spool = *sp;
  for (const auto& k : cfg.dkim_keys) {
    // Read now, while still privileged; never logged.
    const auto path = cfg.resolve(k.key);
    auto key = dkim::Key::load(path);
    if (!key)
      return std::unexpected(fmt::format("{}:{}: cannot load the DKIM key {}: {} (fix: create it with `buzon dkim "
                                         "keygen`, or correct key = in [[dkim.key]])",
                                         cfg.file.string(), k.line, path.string(), key.error()));
    sub.dkim.push_back(dkim::Signer{k.domain, k.selector, std::move(*key)});
    spdlog::info("dkim key domain={} selector={} file={}", k.domain, k.selector, path.string());
  }
  if (tls)
    sub.start_tls = [t = tls](net::StreamPtr plain) { return t->start_tls(std::move(plain)); };
  else if (!sc.listen.empty())
    spdlog::warn("[submission] without [tls]: no STARTTLS, so PLAIN/LOGIN are refused{} (fix: configure [tls])",
                 sc.require_tls ? "" : " except from trusted_networks");
  auto& s = *services.emplace_back(std::make_unique<Service>(Service{
      "submission",
      [this](asio::ip::tcp::socket sock, Peer peer) {
        return smtp::serve_session(std::make_unique<net::TcpStream>(std::move(sock), peer.endpoint), submission);
      },
      "421 4.3.2 Server busy, try again later\r\n", "421 4.7.0 Too many connections from your address\r\n", {}}));
  if (auto r = listen(s, sc.listen, "[submission] listen"); !r) return r;
  if (tls && !sc.listen_tls.empty()) {
    // Implicit TLS (RFC 8314 §3): over the limits the connection is just closed.
    auto& st = *services.emplace_back(std::make_unique<Service>(Service{
        "submissions", [this](asio::ip::tcp::socket sock, Peer peer) { return serve_submissions(std::move(sock), peer); },
        "", ""}));
    if (auto r = listen(st, sc.listen_tls, "[submission] listen_tls"); !r) return r;
  }
  return {};
}

asio::awaitable<void> Server::Impl::serve_submissions(asio::ip::tcp::socket sock, Peer peer) {
  auto stream = co_await tls->accept(std::move(sock), peer.endpoint);
  if (!stream) {
    spdlog::info("submissions tls handshake failed peer={} error={}", log_value(peer.endpoint.address().to_string()),
                 log_value(stream.error().message()));
    co_return;
  }
  co_await smtp::serve_session(std::move(*stream), submission);
}

std::expected<void, std::string> Server::Impl::listen_unix(Service& svc, const std::filesystem::path& path,
                                                          unsigned mode, std::string_view key) {
  const std::string p = cfg.resolve(path).string();
  auto fail = [&](std::string_view what) {
    return std::unexpected(fmt::format("cannot listen on unix socket {}: {} (fix: change {} in {})", p, what, key,
                                       cfg.file.string()));
  };
  if (p.size() >= sizeof(sockaddr_un::sun_path)) return fail("the path is too long for a unix socket");
  std::error_code fec;
  if (std::filesystem::is_socket(p, fec)) {
    // Left by a server that died: remove it, unless somebody still answers on it.
    asio::local::stream_protocol::socket probe(control);
    asio::error_code pec;
    probe.connect(asio::local::stream_protocol::endpoint(p), pec);
    if (!pec) return fail("another server is listening on it");
    ::unlink(p.c_str());
  } else if (std::filesystem::exists(p, fec)) {
    return fail("the path exists and is not a socket");
  }
  auto& loop = *loops.front();
  auto acc = std::make_unique<asio::local::stream_protocol::acceptor>(loop.io);
  asio::error_code ec;
  acc->open(asio::local::stream_protocol(), ec);
  if (!ec) acc->bind(asio::local::stream_protocol::endpoint(p), ec);
  if (!ec && ::chmod(p.c_str(), static_cast<mode_t>(mode)) != 0) ec = asio::error_code(errno, asio::system_category());
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec.message());
  loop.unix_listeners.push_back(UnixListener{&svc, std::move(acc), p});
  unix_socket_paths.push_back(p);
  spdlog::info("{} listening on unix:{} (mode {:o})", svc.name, p, mode);
  return {};
}

asio::awaitable<void> Server::Impl::accept_unix_loop(Loop& loop, UnixListener& l) {
  asio::steady_timer backoff(loop.io);
  for (;;) {
    auto [ec, sock] = co_await l.acceptor->async_accept(kTuple);
    if (loop.stopping) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      spdlog::warn("accept on unix:{} failed: {}", l.path, ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    // All local clients count as one address for the per-address limit.
    if (limiter->acquire("unix") != ConnLimiter::Verdict::ok) {
      auto s = std::make_shared<asio::local::stream_protocol::socket>(std::move(sock));
      auto msg = std::make_shared<std::string>(l.service->busy_reply);
      asio::async_write(*s, asio::buffer(*msg), [s, msg](asio::error_code, std::size_t) {
        asio::error_code ig;
        s->close(ig);
      });
      spdlog::info("{} connection refused peer=unix reason=\"connection limit\"", l.service->name);
      continue;
    }
    asio::co_spawn(loop.io, unix_session(loop, l, std::move(sock)), asio::detached);
  }
}

asio::awaitable<void> Server::Impl::unix_session(Loop& loop, UnixListener& l, asio::local::stream_protocol::socket sock) {
  int fd = sock.native_handle();
  loop.sockets.insert(fd);
  struct Done {
    Loop& loop;
    int fd;
    ConnLimiter& lim;
    ~Done() {
      loop.sockets.erase(fd);
      lim.release("unix");
    }
  } done{loop, fd, *limiter};
  co_await l.service->run_stream(std::make_unique<net::UnixStream>(std::move(sock)));
}

// The relay takes messages out of the spool the submission service fills.
std::expected<void, std::string> Server::Impl::start_relay() {
  if (!spool) return {};
  auto opt = relay::options_from_config(cfg);
  if (!opt) return std::unexpected(opt.error());
  {
    // Local recipients of the spool follow the same address policy as SMTP (issue 10).
    const auto policy = smtp::settings_from_config(cfg, smtp::Mode::smtp).recipients;
    opt->local.delimiter = policy.delimiter;
    opt->local.domain_aliases = policy.domain_aliases;
    opt->local.postmaster = policy.postmaster;
    opt->local.default_quota = policy.default_quota;
    opt->local.domain_quota = policy.domain_quota;
    opt->local.aliases = aliases;
    opt->local.live = rules;
  }
  const std::string relay_helo = opt->hostname;
  auto res = dns::make_resolver(relay::resolver_options(cfg));
  if (!res) return std::unexpected(fmt::format("{}: [dns]: {}", cfg.file.string(), res.error()));
  resolver = std::move(*res);
  relay = std::make_unique<relay::Relay>(relay_io.get_executor(),
                                         relay::Services{spool.get(), resolver.get(), &deliverer, directory.get(), pool.get()},
                                         std::move(*opt));
  submission.on_enqueued = smtp.on_enqueued = lmtp.on_enqueued = [r = relay.get()] { r->wake(); };
  spdlog::info("relay started helo={} tls={} dns={} smarthost={}", relay_helo, cfg.relay.tls,
               cfg.dns.servers.empty() ? std::string("system") : fmt::format("{}", fmt::join(cfg.dns.servers, ",")),
               cfg.relay.smarthost.empty() ? std::string("-") : cfg.relay.smarthost);
  return {};
}

asio::awaitable<void> Server::Impl::drain() {
  if (relay) asio::post(relay_io, [r = relay.get()] { r->stop(); });  // no new deliveries
  notify("STOPPING=1");
  spdlog::info("shutting down: no new connections, {} sessions active", limiter->total());
  for (auto& loop : loops)
    asio::post(loop->io, [l = loop.get()] {
      l->stopping = true;
      for (auto& li : l->listeners) {
        asio::error_code ec;
        li.acceptor->close(ec);
      }
      for (auto& ul : l->unix_listeners) {
        asio::error_code ec;
        ul.acceptor->close(ec);
      }
    });
  asio::steady_timer t(control);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.server.shutdown_grace);
  while (limiter->total() > 0 && std::chrono::steady_clock::now() < until) {
    t.expires_after(std::chrono::milliseconds(50));
    co_await t.async_wait(kTuple);
  }
  if (limiter->total() > 0) {
    spdlog::info("grace period over: closing {} sessions (nothing is deleted)", limiter->total());
    for (auto& loop : loops)
      asio::post(loop->io, [l = loop.get()] {
        // Shutting the socket down makes every pending read end; sessions then finish their own way
        // (a POP3 session that did not reach UPDATE deletes nothing).
        for (int fd : l->sockets) ::shutdown(fd, SHUT_RDWR);
      });
    auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (limiter->total() > 0 && std::chrono::steady_clock::now() < hard) {
      t.expires_after(std::chrono::milliseconds(20));
      co_await t.async_wait(kTuple);
    }
  }
  if (metrics_http) metrics_http->stop();  // the control loop may then run out of work and return
  for (auto& loop : loops) loop->io.stop();
}

asio::awaitable<void> Server::Impl::handle_signals() {
  asio::signal_set signals(control, SIGTERM, SIGINT, SIGHUP);
  // Ready only now: before the signal set exists, a SIGHUP (systemctl reload) would kill the process.
  notify(fmt::format("READY=1\nSTATUS=serving, {} event loops", loops.size()));
  for (;;) {
    auto [ec, sig] = co_await signals.async_wait(kTuple);
    if (ec) co_return;
    if (sig == SIGHUP) {
      reload();
      continue;
    }
    co_await drain();
    co_return;
  }
}

int Server::run() {
  auto& d = *impl_;
  ::signal(SIGPIPE, SIG_IGN);
  // Signals are caught before the first session can start: run the handler up to its first wait
  // (a SIGHUP or SIGTERM in between would otherwise kill the process without a drain).
  asio::co_spawn(d.control, d.handle_signals(), asio::detached);
  d.control.poll();
  for (auto& loop : d.loops) {
    for (auto& li : loop->listeners) asio::co_spawn(loop->io, d.accept_loop(*loop, li), asio::detached);
    for (auto& ul : loop->unix_listeners) asio::co_spawn(loop->io, d.accept_unix_loop(*loop, ul), asio::detached);
    loop->thread = std::thread([l = loop.get()] {
      auto guard = asio::make_work_guard(l->io);
      l->io.run();
    });
  }
  if (d.relay) {
    d.relay->start();
    d.relay_thread = std::thread([&d] {
      auto guard = asio::make_work_guard(d.relay_io);
      d.relay_io.run();
    });
  }
  if (d.metrics_http) d.metrics_http->start();
  spdlog::info("buzon serving with {} event loops and {} worker threads", d.loops.size(), d.cfg.server.worker_threads);
  d.control.run();
  if (d.metrics_http) d.metrics_http->stop();
  for (auto& loop : d.loops) {
    loop->io.stop();
    if (loop->thread.joinable()) loop->thread.join();
  }
  d.relay_io.stop();  // deliveries in flight end here; the spool on disk stays the truth
  if (d.relay_thread.joinable()) d.relay_thread.join();
  // The relay's timer must go while relay_io exists (relay_io is destroyed before the relay:
  // UBSan caught ~Relay cancelling a timer of a destroyed io_context).
  if (d.relay) d.relay->stop();
  d.pool->stop();
  if (d.auth_pool) d.auth_pool->stop();
  for (const auto& p : d.unix_socket_paths) ::unlink(p.c_str());
  spdlog::info("buzon stopped");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Operations (issue 7): listeners from systemd, metrics, privileges, reload, status.

namespace {

std::string endpoint_str(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port()) : fmt::format("{}:{}", a.to_string(), ep.port());
}

asio::ip::tcp::endpoint endpoint_of(const ListenAddress& a) {
  return asio::ip::tcp::endpoint(asio::ip::make_address(a.host), a.port);
}

// The directory part of a mail location template before its first variable ("mail/%d/%n" -> "mail").
std::filesystem::path mail_root(const Config& cfg) {
  auto loc = cfg.mail.location.substr(0, cfg.mail.location.find('%'));
  auto slash = loc.rfind('/');
  loc = slash == std::string::npos ? std::string(".") : loc.substr(0, slash == 0 ? 1 : slash);
  return cfg.resolve(loc).lexically_normal();
}

}  // namespace

void Server::Impl::add_listener(Loop& loop, Service& svc, std::unique_ptr<asio::ip::tcp::acceptor> acc,
                                const asio::ip::tcp::endpoint& ep) {
  Listener l{&svc, std::move(acc)};
  l.endpoint = ep;
  l.address = endpoint_str(ep);
  for (const auto& a : cfg.proxy.listeners)
    if (endpoint_of(a) == ep) l.proxy = true;
  l.active = &metrics::registry()
                  .gauge("buzon_sessions_active", "Sessions open now, by protocol and listener.", {"protocol", "listener"})
                  .with({svc.name, l.address});
  l.total = &metrics::registry()
                 .counter("buzon_sessions_total", "Sessions started, by protocol and listener.", {"protocol", "listener"})
                 .with({svc.name, l.address});
  loop.listeners.push_back(std::move(l));
}

// A listening socket from systemd: every loop accepts on its own duplicate of it.
std::expected<void, std::string> Server::Impl::adopt(Service& svc, const InheritedSocket& s) {
  for (auto& loop : loops) {
    int fd = ::fcntl(s.fd, F_DUPFD_CLOEXEC, 3);
    asio::error_code ec;
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(loop->io);
    if (fd >= 0) acc->assign(s.local.protocol(), fd, ec);
    if (fd < 0 || ec) {
      if (fd >= 0) ::close(fd);
      return std::unexpected(fmt::format("cannot use the socket {} passed by systemd for {}: {}", endpoint_str(s.local),
                                         svc.name, fd < 0 ? std::string(std::strerror(errno)) : ec.message()));
    }
    add_listener(*loop, svc, std::move(acc), s.local);
  }
  ::close(s.fd);
  spdlog::info("{} listening on {} (socket from systemd, name {})", svc.name, endpoint_str(s.local), s.name);
  return {};
}

void Server::Impl::register_metrics() {
  auto& r = metrics::registry();
  r.gauge("buzon_build_info", "Version of the running buzon.", {"version"}).with({BUZON_VERSION}).set(1);
  r.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.")
      .get()
      .set(static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(started.time_since_epoch()).count()));
  r.gauge("buzon_worker_pool_capacity", "Jobs the worker pool queues or runs at most before callers wait.")
      .get()
      .set(static_cast<double>(cfg.server.worker_threads) * 64);
  r.gauge("buzon_worker_pool_threads", "Threads of the worker pool (blocking work: disk, fsync, password hashing).")
      .get()
      .set(cfg.server.worker_threads);
  metric_callbacks.push_back(r.callback("buzon_worker_pool_pending", "Jobs queued or running in the worker pool now.",
                                        metrics::Type::gauge, [this](metrics::Emitter& e) {
                                          e.sample(static_cast<double>(pool ? pool->pending() : 0));
                                        }));
  metric_callbacks.push_back(r.callback("buzon_connections_active", "Client connections counted against the limits now.",
                                        metrics::Type::gauge, [this](metrics::Emitter& e) {
                                          e.sample(static_cast<double>(limiter ? limiter->total() : 0));
                                        }));
  metric_callbacks.push_back(r.callback("buzon_uptime_seconds", "Seconds since buzon started.", metrics::Type::gauge,
                                        [this](metrics::Emitter& e) {
                                          e.sample(std::chrono::duration<double>(std::chrono::system_clock::now() - started).count());
                                        }));
  metric_callbacks.push_back(r.callback("buzon_users", "Users loaded from the passwd-file.", metrics::Type::gauge,
                                        [this](metrics::Emitter& e) {
                                          e.sample(static_cast<double>(directory ? directory->size() : 0));
                                        }));
  reloads.with({"success"});
  reloads.with({"failure"});
  for (auto& li : loops.front()->listeners)
    for (auto* reason : {"connection_limit", "per_ip_limit"}) refused.with({li.service->name, li.address, reason});
}

std::string Server::Impl::status() const {
  using namespace std::chrono;
  auto up = duration_cast<seconds>(system_clock::now() - started).count();
  std::string out = fmt::format("buzon {}\nconfig: {}\nrunning as: {}\nuptime: {}s\nlast reload: {}\n", BUZON_VERSION,
                                cfg.file.string(), describe_credentials(), up, last_reload);
  out += fmt::format("sessions: {} (limit {}, {} per address)\nusers: {}\nworker pool: {} pending of {}\nlisteners:\n",
                     limiter ? limiter->total() : 0, cfg.server.max_connections, cfg.server.max_connections_per_ip,
                     directory ? directory->size() : 0, pool ? pool->pending() : 0, cfg.server.worker_threads * 64);
  if (!loops.empty())
    for (auto& li : loops.front()->listeners)
      out += fmt::format("  {} {}{} active={} total={}\n", li.service->name, li.address, li.proxy ? " (proxy protocol)" : "",
                         li.active->value(), li.total->value());
  if (cfg.metrics.enabled) out += fmt::format("  metrics {} (http: /metrics /status)\n", cfg.metrics.listen.str());
  return out;
}

std::expected<void, std::string> Server::finish_start(const PrivilegePlan& plan) {
  auto& d = *impl_;
  const auto& cfg = d.cfg;
  if (cfg.metrics.enabled) {
    auto ep = endpoint_of(cfg.metrics.listen);
    asio::ip::tcp::acceptor acc(d.control);
    asio::error_code ec;
    auto named = d.inherited.take_named("metrics");
    auto by_addr = named.empty() ? d.inherited.take_address(ep) : std::nullopt;
    if (!named.empty() || by_addr) {
      const auto& s = by_addr ? *by_addr : named.front();
      acc.assign(s.local.protocol(), s.fd, ec);
      for (std::size_t i = 1; i < named.size(); ++i) ::close(named[i].fd);
      if (ec) return std::unexpected(fmt::format("cannot use the metrics socket passed by systemd: {}", ec.message()));
    } else {
      acc.open(ep.protocol(), ec);
      if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec && ep.protocol() == asio::ip::tcp::v6()) acc.set_option(asio::ip::v6_only(true), ec);
      if (!ec) acc.bind(ep, ec);
      if (!ec) acc.listen(64, ec);
      if (ec)
        return std::unexpected(fmt::format("cannot listen on {} for metrics: {} (fix: change [metrics] listen in {}, or "
                                           "set [metrics] enabled = false)", cfg.metrics.listen.str(), ec.message(),
                                           cfg.file.string()));
    }
    spdlog::info("metrics listening on {} (http: /metrics /status)", endpoint_str(acc.local_endpoint(ec)));
    d.metrics_http = std::make_unique<MetricsHttp>(
        std::move(acc), MetricsPages{[] { return metrics::registry().render(); }, [&d] { return d.status(); }});
  }
  if (!d.inherited.empty()) {
    std::string names;
    for (auto& s : d.inherited.rest()) names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", endpoint_str(s.local), s.name);
    d.inherited.close_rest();
    return std::unexpected(fmt::format("systemd passed sockets that no service uses: {} (fix: name them after a service "
                                       "with FileDescriptorName=pop3|metrics, or list their addresses in {})",
                                       names, cfg.file.string()));
  }
  for (const auto& a : cfg.proxy.listeners) {
    bool found = false;
    for (auto& li : d.loops.front()->listeners) found = found || li.endpoint == endpoint_of(a);
    if (!found)
      return std::unexpected(fmt::format("[proxy] listeners has {}, which is not a listen address of any service (fix: "
                                         "add it to a service's listen list in {}, or remove it)", a.str(), cfg.file.string()));
  }
  d.register_metrics();

  // Privileges: everything that needs root is done; from here on nothing runs as root.
  if (plan.action == PrivilegePlan::Action::stay_root)
    spdlog::warn("{}", plan.note);
  else
    spdlog::info("{}", plan.note);
  if (plan.action == PrivilegePlan::Action::drop && d.spool) {
    // The outbound spool was opened (and maybe created) as root: hand it to the user that will
    // write it (lchown: links inside are not followed).
    std::error_code ec;
    auto own = [&](const std::filesystem::path& p) {
      if (::lchown(p.c_str(), plan.uid, plan.gid) != 0)
        spdlog::warn("cannot give {} to user {}: {} (fix: chown -R {} {})", p.string(), plan.user, std::strerror(errno),
                     plan.user, d.spool->dir().string());
    };
    own(d.spool->dir());
    for (auto it = std::filesystem::recursive_directory_iterator(d.spool->dir(), ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      own(it->path());
  }
  if (auto r = drop_privileges(plan); !r) return std::unexpected("cannot drop privileges: " + r.error());
  spdlog::info("running as {}", describe_credentials());
  if (plan.action == PrivilegePlan::Action::drop) {
    // What the unprivileged process still needs: warn now rather than fail at the first login or SIGHUP.
    auto passwd = cfg.resolve(cfg.users.passwd_file).string();
    if (!can_access(passwd, R_OK))
      spdlog::warn("user {} cannot read the users file {}: SIGHUP reloads will fail (fix: chgrp {} {}; chmod 640 {})",
                   plan.user, passwd, plan.user, passwd, passwd);
    if (!can_access(cfg.file.string(), R_OK))
      spdlog::warn("user {} cannot read the config file {}: SIGHUP reloads will fail (fix: chgrp {} {}; chmod 640 {})",
                   plan.user, cfg.file.string(), plan.user, cfg.file.string(), cfg.file.string());
    auto root = mail_root(cfg).string();
    std::error_code ec;
    if (!std::filesystem::exists(root, ec))
      spdlog::warn("mail root {} does not exist yet (user {} must be able to create it)", root, plan.user);
    else if (!can_access(root, R_OK | W_OK | X_OK))
      spdlog::warn("user {} cannot read and write the mail root {}: logins will fail with [SYS/PERM] (fix: chown -R {} {})",
                   plan.user, root, plan.user, root);
  }
  return {};
}

void Server::add_reload_hook(ReloadHook hook) { impl_->reload_hooks.push_back(std::move(hook)); }

// SIGHUP: all or nothing. The new file must load, every hook must accept it and the users file must
// load; only then do users, limits, log level and the hooks' parts switch.
void Server::Impl::reload() {
  notify("RELOADING=1");
  auto done = [&](bool ok, const std::string& what) {
    reloads.with({ok ? "success" : "failure"}).inc();
    last_reload = fmt::format("{} at {:%Y-%m-%dT%H:%M:%S}Z{}{}", ok ? "ok" : "refused",
                              fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())),
                              what.empty() ? "" : ": ", what);
    notify("READY=1");
  };
  auto next = load_config(cfg.file);
  if (!next) {
    spdlog::error("reload refused: {}; the running configuration stays in force", next.error().str());
    return done(false, next.error().str());
  }
  std::vector<std::function<void()>> commits;
  for (auto& h : reload_hooks) {
    auto c = h.prepare(*next);
    if (!c) {
      spdlog::error("reload refused by {}: {}; the running configuration stays in force", h.name, c.error());
      return done(false, h.name + ": " + c.error());
    }
    if (*c) commits.push_back(std::move(*c));
  }
  if (next->resolve(next->users.passwd_file) != cfg.resolve(cfg.users.passwd_file))
    spdlog::warn("reload: [users] passwd_file changed to {}; a new path takes effect at restart, re-reading {}",
                 next->resolve(next->users.passwd_file).string(), cfg.resolve(cfg.users.passwd_file).string());
  auto users = directory->reload();
  if (!users) {
    spdlog::error("reload refused: users: {}; the running configuration stays in force", users.error());
    return done(false, users.error());
  }
  limiter->set_limits(next->server.max_connections, next->server.max_connections_per_ip);
  cfg.server.max_connections = next->server.max_connections;
  cfg.server.max_connections_per_ip = next->server.max_connections_per_ip;
  cfg.server.shutdown_grace = next->server.shutdown_grace;
  cfg.log.level = next->log.level;
  for (auto& c : commits) c();
  // Logged before the new level applies, so that the line is seen even when the level goes up.
  spdlog::info("reloaded {}: users={} max_connections={} max_connections_per_ip={} shutdown_grace={} log_level={}{}",
               cfg.file.string(), *users, cfg.server.max_connections, cfg.server.max_connections_per_ip,
               cfg.server.shutdown_grace, cfg.log.level,
               reload_hooks.empty() ? std::string() : fmt::format(" hooks={}", reload_hooks.size()));
  spdlog::default_logger()->set_level(spdlog::level::from_str(next->log.level));
  done(true, "");
}

}  // namespace buzon::server
