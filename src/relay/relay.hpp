// relay/relay.hpp — the outbound delivery engine: takes due entries of the spool (queue/queue.hpp)
// and delivers each pending recipient, locally through store::Delivery or to the recipient's
// domain over SMTP (MX route, smarthost or a per-domain transport), records every result durably,
// retries with backoff, and sends the DSNs (docs/RELAY.md).
//
// SECURITY  Everything a peer or DNS says is untrusted: replies go through the client's bounded
//           parser, host names through the resolver's checks. The message octets are sent exactly as
//           spooled (DataEncoder: CRLF, dot-stuffing, no bare CR/LF). TLS is opportunistic by default
//           (RFC 7435: unauthenticated encryption beats none), "verify" checks the peer certificate
//           against the system CAs and the MX host name, "none" never uses TLS. AUTH at a smarthost
//           is refused over a connection without TLS unless the peer is loopback.
// STANDARDS RFC 5321 §4.5.4.1 (retries), §5.1 (MX routing), §6.1 (a 250 commits: it is written to
//           the spool before anything else), §3.6.3 and §6.1 (no bounce of a bounce); RFC 7505
//           (null MX: 556 5.1.10); RFC 3464 (DSN); RFC 1870 (SIZE: 552 5.3.4 before sending);
//           RFC 6152 (8BITMIME: 5.6.3 when absent, no conversion); RFC 6531 §3.5 (SMTPUTF8 absent:
//           5.6.7); RFC 2920 (PIPELINING); RFC 3207 (STARTTLS).
// THREADS   A Relay lives on one executor (one thread: the server gives it its own io_context);
//           its state is touched only there. Spool, resolver, directory and store calls block and
//           run on the worker pool.
// LIMITS    max_connections outbound connections in use at once, max_per_domain per destination
//           domain (plus at most max_per_domain idle ones per host kept for reuse, kIdleTime);
//           one entry is delivered by at most one task (in-flight set + the spool's lease).
#pragma once

#include "auth/directory.hpp"
#include "core/config.hpp"
#include "dns/resolver.hpp"
#include "net/stream.hpp"
#include "net/worker_pool.hpp"
#include "proto/smtp/client_session.hpp"
#include "proto/smtp/recipient.hpp"
#include "queue/queue.hpp"
#include "store/delivery.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace buzon::relay {

enum class TlsPolicy { none, may, verify };

struct Target {
  std::string host;  // name or numeric address
  std::uint16_t port = 25;
};

struct Options {
  std::string hostname = "localhost";   // EHLO name; the reporting MTA of DSNs
  std::chrono::milliseconds scan_interval{5000};
  queue::RetryPolicy retry;
  std::uint16_t port = 25;              // port of MX hosts
  TlsPolicy tls = TlsPolicy::may;
  std::optional<Target> smarthost;
  std::string auth_user, auth_password; // AUTH at the smarthost
  std::map<std::string, Target> transports;  // lower-case domain -> where its mail goes
  unsigned max_connections = 20, max_per_domain = 4;
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds command_timeout{300'000};
  std::string source_address;           // outbound connections bind to it; "" = the kernel chooses
  smtp::RecipientPolicy local;          // local domains and mailbox locations
};

// The relay's options from [relay], [queue] (scan interval, retry policy), [smtp] and [mail]
// (local domains and mailboxes); reads [relay] password_file.
std::expected<Options, std::string> options_from_config(const Config& cfg);
dns::ResolverOptions resolver_options(const Config& cfg);

struct Services {
  queue::Spool* spool = nullptr;
  dns::Resolver* resolver = nullptr;
  store::Delivery* delivery = nullptr;
  const auth::Directory* directory = nullptr;
  net::WorkerPool* pool = nullptr;
};

// Opens a TCP connection to a numeric address (tests may replace it); the default one binds to
// Options::source_address when set.
using Connector = std::function<asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>>(
    std::string address, std::uint16_t port, std::chrono::milliseconds timeout)>;
asio::awaitable<std::expected<std::unique_ptr<net::Stream>, std::string>> tcp_connect(
    std::string address, std::uint16_t port, std::chrono::milliseconds timeout, std::string source = {});

// The STARTTLS upgrade of the relay's client (relay/starttls.cpp): no verification with `verify`
// false (opportunistic TLS), else the system CAs and `host`.
smtp::TlsUpgrade starttls_client(std::string host, bool verify, std::chrono::milliseconds timeout);

class Relay {
 public:
  Relay(asio::any_io_executor ex, Services services, Options options);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Starts the scan loop (every scan_interval); stop() ends it (deliveries in flight finish unless
  // the executor stops: what is on disk stays the truth).
  void start();
  void stop();
  // A new entry is in the spool: scan now instead of at the next interval. Any thread.
  void wake();
  // One scan: starts every due entry and waits until they are done (tests, `queue flush`).
  asio::awaitable<void> run_once();
  // One delivery round of one entry, now (skipped when another task holds it).
  asio::awaitable<void> deliver(std::string id);

  void set_connector(Connector c) { connect_ = std::move(c); }
  // Overrides the clock (tests).
  void set_clock(std::function<queue::TimePoint()> now) { now_ = std::move(now); }
  std::size_t in_flight() const { return inflight_.size(); }
  // Connections parked for reuse (all hosts).
  std::size_t idle_connections() const {
    std::size_t n = 0;
    for (const auto& [key, v] : idle_) n += v.size();
    return n;
  }

 private:
  struct Round;
  asio::awaitable<void> scan_loop();
  asio::awaitable<void> deliver_local(Round& r);
  asio::awaitable<void> deliver_domain(Round& r, std::string domain, std::vector<std::size_t> rcpts);
  asio::awaitable<bool> try_host(Round& r, const std::string& domain, const std::vector<std::size_t>& rcpts,
                                 const Target& t, std::string& last_error);
  asio::awaitable<void> send_dsn(queue::DsnKind kind, const queue::Entry& e, std::string_view message);
  asio::awaitable<bool> save(Round& r);
  asio::awaitable<void> acquire(const std::string& domain);
  asio::awaitable<void> close_idle(bool all);
  void release(const std::string& domain);

  asio::any_io_executor ex_;
  Services s_;
  Options o_;
  Connector connect_;
  std::function<queue::TimePoint()> now_;
  std::set<std::string> inflight_;
  unsigned active_ = 0;
  std::map<std::string, unsigned> per_domain_;
  bool stopping_ = false;
  bool woken_ = false;  // a wake() arrived while a scan was running: scan again at once
  bool backlog_ = false;  // the last scan stopped at the in-flight cap: a finished delivery wakes it
  std::shared_ptr<asio::steady_timer> timer_;
  // Connection reuse: sessions whose transaction ended cleanly, by "host[address]:port|smarthost",
  // kept up to kIdleTime for the next message to the same host (at most max_per_domain per key).
  static constexpr std::chrono::seconds kIdleTime{10};
  struct IdleSession {
    std::unique_ptr<smtp::ClientSession> session;
    std::chrono::steady_clock::time_point since;
  };
  std::map<std::string, std::vector<IdleSession>> idle_;
};

}  // namespace buzon::relay
