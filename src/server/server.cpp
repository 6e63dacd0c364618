#include "server/server.hpp"

#include "auth/passwd_file.hpp"
#include "core/log.hpp"
#include "net/tcp_stream.hpp"
#include "net/worker_pool.hpp"
#include "proto/pop3/server_session.hpp"
#include "server/conn_limiter.hpp"
#include "store/maildir/maildir_store.hpp"

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

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

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
struct Service {
  std::string name;  // "pop3", later "pop3s", "smtp", ...
  std::function<asio::awaitable<void>(asio::ip::tcp::socket)> run;
  std::string busy_reply;      // over max_connections
  std::string per_ip_reply;    // over max_connections_per_ip
};

struct Listener {
  Service* service;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
};

// One event loop: its own io_context, thread, acceptors, and the sockets of its live sessions.
struct Loop {
  asio::io_context io{1};
  std::vector<Listener> listeners;
  std::set<int> sockets;  // native handles of live sessions; touched only on this loop's thread
  bool stopping = false;
  std::thread thread;
};

store::UidlFormat uidl_format(const std::string& s) {
  if (s == "dovecot") return store::UidlFormat::dovecot;
  if (s == "x-uidl") return store::UidlFormat::x_uidl;
  return store::UidlFormat::buzon;
}

}  // namespace

struct Server::Impl {
  Config cfg;
  std::unique_ptr<auth::PasswdFileDirectory> directory;
  store::maildir::MaildirStore store;
  std::unique_ptr<net::WorkerPool> pool;
  std::unique_ptr<ConnLimiter> limiter;
  pop3::Service pop3;
  std::vector<std::unique_ptr<Service>> services;
  std::vector<std::unique_ptr<Loop>> loops;
  asio::io_context control{1};

  std::expected<void, std::string> listen(Service& svc, const std::vector<ListenAddress>& addrs, std::string_view key);
  asio::awaitable<void> accept_loop(Loop& loop, Listener& l);
  asio::awaitable<void> session(Loop& loop, Service& svc, asio::ip::tcp::socket sock, std::string ip);
  asio::awaitable<void> drain();
  asio::awaitable<void> handle_signals();
};

Server::Server(Config cfg) : impl_(std::make_unique<Impl>()) { impl_->cfg = std::move(cfg); }
Server::~Server() = default;

std::expected<void, std::string> Server::start() {
  auto& d = *impl_;
  const auto& cfg = d.cfg;
  auth::NameRules rules{cfg.users.default_domain, cfg.users.lowercase};
  auto dir = auth::PasswdFileDirectory::open(cfg.resolve(cfg.users.passwd_file), rules);
  if (!dir) return std::unexpected(dir.error());
  d.directory = std::move(*dir);

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

  for (unsigned i = 0; i < threads; ++i) d.loops.push_back(std::make_unique<Loop>());

  auto& pop3 = *d.services.emplace_back(std::make_unique<Service>(Service{
      "pop3",
      [&d](asio::ip::tcp::socket sock) {
        return pop3::serve_session(std::make_unique<net::TcpStream>(std::move(sock)), d.pop3);
      },
      "-ERR [SYS/TEMP] Server busy, try again later.\r\n",
      "-ERR [SYS/TEMP] Too many connections from your address.\r\n"}));
  if (auto r = d.listen(pop3, cfg.pop3.listen, "[pop3] listen"); !r) return r;
  return {};
}

std::expected<void, std::string> Server::Impl::listen(Service& svc, const std::vector<ListenAddress>& addrs,
                                                     std::string_view key) {
  for (const auto& addr : addrs) {
    auto ep = asio::ip::tcp::endpoint(asio::ip::make_address(addr.host), addr.port);
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
      loop->listeners.push_back(Listener{&svc, std::move(acc)});
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
    auto ip = remote.address().to_string();
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
      spdlog::info("{} connection refused peer={} reason={}", l.service->name, ip,
                   verdict == ConnLimiter::Verdict::too_many_from_ip ? "per-ip limit" : "connection limit");
      continue;
    }
    asio::co_spawn(loop.io, session(loop, *l.service, std::move(sock), ip), asio::detached);
  }
}

asio::awaitable<void> Server::Impl::session(Loop& loop, Service& svc, asio::ip::tcp::socket sock, std::string ip) {
  int fd = sock.native_handle();
  loop.sockets.insert(fd);
  struct Done {
    Loop& loop;
    int fd;
    ConnLimiter& lim;
    std::string ip;
    ~Done() {
      loop.sockets.erase(fd);
      lim.release(ip);
    }
  } done{loop, fd, *limiter, ip};
  co_await svc.run(std::move(sock));
}

asio::awaitable<void> Server::Impl::drain() {
  spdlog::info("shutting down: no new connections, {} sessions active", limiter->total());
  for (auto& loop : loops)
    asio::post(loop->io, [l = loop.get()] {
      l->stopping = true;
      for (auto& li : l->listeners) {
        asio::error_code ec;
        li.acceptor->close(ec);
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
  for (auto& loop : loops) loop->io.stop();
}

asio::awaitable<void> Server::Impl::handle_signals() {
  asio::signal_set signals(control, SIGTERM, SIGINT, SIGHUP);
  for (;;) {
    auto [ec, sig] = co_await signals.async_wait(kTuple);
    if (ec) co_return;
    if (sig == SIGHUP) {
      if (auto r = directory->reload(); !r)
        spdlog::error("reload failed, keeping the old users: {}", r.error());
      else
        spdlog::info("reloaded users from {}", cfg.resolve(cfg.users.passwd_file).string());
      continue;
    }
    co_await drain();
    co_return;
  }
}

int Server::run() {
  auto& d = *impl_;
  ::signal(SIGPIPE, SIG_IGN);
  for (auto& loop : d.loops) {
    for (auto& li : loop->listeners) asio::co_spawn(loop->io, d.accept_loop(*loop, li), asio::detached);
    loop->thread = std::thread([l = loop.get()] {
      auto guard = asio::make_work_guard(l->io);
      l->io.run();
    });
  }
  asio::co_spawn(d.control, d.handle_signals(), asio::detached);
  spdlog::info("buzon serving with {} event loops and {} worker threads", d.loops.size(), d.cfg.server.worker_threads);
  d.control.run();
  for (auto& loop : d.loops) {
    loop->io.stop();
    if (loop->thread.joinable()) loop->thread.join();
  }
  d.pool->stop();
  spdlog::info("buzon stopped");
  return 0;
}

}  // namespace buzon::server
