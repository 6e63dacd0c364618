// bench/loadgen — the load generator of `make bench` (issue 6). Standalone Asio, C++20 coroutines.
//
// Modes (each prints one "RESULT {json}" line on standard output; diagnostics go to stderr):
//   pop3-mailbox  K concurrent clients: connect, USER/PASS, STAT, LIST, UIDL, RETR every message,
//                 QUIT; validates every response and that each RETR delivers exactly the octets
//                 LIST announced. Reports sessions/s, messages/s, MB/s, p50/p99 session latency.
//   pop3-login    K concurrent clients: connect, USER, PASS, QUIT (the login storm).
//   pop3-retr     one session, RETR of one (big) message R times, MiB/s; with --ceiling the raw TCP
//                 loopback bandwidth (the physical ceiling) is measured before each RETR, same run.
//   tcp-ceiling   only the raw TCP loopback measurement.
//   pop3-idle     opens N authenticated sessions (at most --inflight logins at a time), prints
//                 "READY ..." and holds them until a line arrives on standard input (the driver
//                 measures the server's memory meanwhile), then QUITs them all.
//   crypt-rate    SHA512-CRYPT (crypt(3), 5000 rounds) hashes per second on --threads threads.
//
// --tls makes pop3-mailbox and pop3-login speak POP3S (TLS from the first octet, RFC 8314): each
// session does a full handshake (no resumption), verifying the server against --cafile when given.
// --tls-version / --tls-ciphers / --tls-groups pin what the client offers, so two servers can be
// held to the same suite; the result names what was negotiated ("tls").
//
// Users are <prefix><index> with the index zero-padded to --digits, index 1..--users. Sessions
// take users round-robin, so with more users than clients no two sessions share a mailbox.
// Options: see usage() below.
#include "pop3_client.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include <crypt.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using asio::awaitable;
using asio::use_awaitable;

// ------------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------------

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  unsigned port = 110;
  std::string prefix = "u";
  unsigned digits = 5;
  std::string user;  // a single user (pop3-retr)
  std::string password = "bench-pw";
  unsigned users = 1000;
  unsigned concurrency = 32;
  unsigned threads = 1;
  double duration = 0;    // seconds; 0 = use --sessions
  std::uint64_t sessions = 0;
  long expect_msgs = -1;  // pop3-mailbox: every maildrop must hold this many messages
  unsigned repeat = 3;
  bool ceiling = false;
  std::uint64_t ceiling_bytes = 50ull << 20;
  unsigned inflight = 64;
  unsigned sources = 1;   // pop3-idle: spread clients over 127.0.0.1..127.0.0.<sources>
  double timeout = 60;    // per session (idle: per login)
  std::size_t bufsize = 64 * 1024;
  bool tls = false;
  std::string cafile;       // verify the server certificate against this (else: no verification)
  std::string tls_version;  // "1.2" | "1.3" | "" (both)
  std::string tls_ciphers;  // TLS 1.3 suites (1.3) or OpenSSL cipher list (1.2); "" = OpenSSL's default
  std::string tls_groups;   // key exchange groups, e.g. "X25519"; "" = OpenSSL's default
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "loadgen: %s\n"
               "usage: loadgen MODE [options]\n"
               "  MODE: pop3-mailbox | pop3-login | pop3-retr | tcp-ceiling | pop3-idle | crypt-rate\n"
               "  --host A (127.0.0.1) --port P --prefix u --digits 5 --users N --password PW\n"
               "  --user NAME (pop3-retr) --concurrency K (32) --threads T (1)\n"
               "  --duration SECONDS | --sessions N     --expect-msgs M    --timeout SECONDS (60)\n"
               "  --repeat R (pop3-retr, 3) --ceiling (pop3-retr: raw TCP before each RETR) --ceiling-bytes B\n"
               "  --inflight P (pop3-idle, 64) --sources S (pop3-idle: source addresses 127.0.0.1..S)\n"
               "  --bufsize BYTES (client read buffer, 65536)\n"
               "  --tls (POP3S) --cafile PEM --tls-version 1.2|1.3 --tls-ciphers LIST --tls-groups LIST\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("no mode given");
  Options o;
  o.mode = argv[1];
  auto num = [&](int& i, const char* name) -> double {
    if (i + 1 >= argc) usage(std::string("missing value for ") + name);
    char* end = nullptr;
    double v = std::strtod(argv[++i], &end);
    if (!end || *end) usage(std::string("bad number for ") + name + ": " + argv[i]);
    return v;
  };
  auto str = [&](int& i, const char* name) -> std::string {
    if (i + 1 >= argc) usage(std::string("missing value for ") + name);
    return argv[++i];
  };
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host") o.host = str(i, "--host");
    else if (a == "--port") o.port = static_cast<unsigned>(num(i, "--port"));
    else if (a == "--prefix") o.prefix = str(i, "--prefix");
    else if (a == "--digits") o.digits = static_cast<unsigned>(num(i, "--digits"));
    else if (a == "--user") o.user = str(i, "--user");
    else if (a == "--password") o.password = str(i, "--password");
    else if (a == "--users") o.users = static_cast<unsigned>(num(i, "--users"));
    else if (a == "--concurrency") o.concurrency = static_cast<unsigned>(num(i, "--concurrency"));
    else if (a == "--threads") o.threads = static_cast<unsigned>(num(i, "--threads"));
    else if (a == "--duration") o.duration = num(i, "--duration");
    else if (a == "--sessions") o.sessions = static_cast<std::uint64_t>(num(i, "--sessions"));
    else if (a == "--expect-msgs") o.expect_msgs = static_cast<long>(num(i, "--expect-msgs"));
    else if (a == "--repeat") o.repeat = static_cast<unsigned>(num(i, "--repeat"));
    else if (a == "--ceiling") o.ceiling = true;
    else if (a == "--ceiling-bytes") o.ceiling_bytes = static_cast<std::uint64_t>(num(i, "--ceiling-bytes"));
    else if (a == "--inflight") o.inflight = static_cast<unsigned>(num(i, "--inflight"));
    else if (a == "--sources") o.sources = static_cast<unsigned>(num(i, "--sources"));
    else if (a == "--timeout") o.timeout = num(i, "--timeout");
    else if (a == "--bufsize") o.bufsize = static_cast<std::size_t>(num(i, "--bufsize"));
    else if (a == "--tls") o.tls = true;
    else if (a == "--cafile") o.cafile = str(i, "--cafile");
    else if (a == "--tls-version") o.tls_version = str(i, "--tls-version");
    else if (a == "--tls-ciphers") o.tls_ciphers = str(i, "--tls-ciphers");
    else if (a == "--tls-groups") o.tls_groups = str(i, "--tls-groups");
    else usage("unknown option " + a);
  }
  if (o.users == 0 || o.concurrency == 0 || o.threads == 0 || o.inflight == 0 || o.sources == 0 || o.sources > 250)
    usage("--users, --concurrency, --threads, --inflight must be positive; --sources 1..250");
  if (o.bufsize < 1024) usage("--bufsize must be at least 1024");
  if (!o.tls_version.empty() && o.tls_version != "1.2" && o.tls_version != "1.3") usage("--tls-version is 1.2 or 1.3");
  return o;
}

std::string user_name(const Options& o, std::uint64_t index) {
  std::string n = std::to_string(index);
  if (n.size() < o.digits) n.insert(0, o.digits - n.size(), '0');
  return o.prefix + n;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// ------------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------------

struct Stats {
  std::uint64_t sessions = 0, errors = 0, messages = 0, octets = 0, bytes_in = 0, bytes_out = 0;
  std::vector<std::uint32_t> latency_us;  // per successful session
  std::map<std::string, std::uint64_t> error_kinds;

  void error(const std::string& what) {
    ++errors;
    if (error_kinds.size() < 20 || error_kinds.count(what)) ++error_kinds[what];
  }
  void merge(const Stats& s) {
    sessions += s.sessions;
    errors += s.errors;
    messages += s.messages;
    octets += s.octets;
    bytes_in += s.bytes_in;
    bytes_out += s.bytes_out;
    latency_us.insert(latency_us.end(), s.latency_us.begin(), s.latency_us.end());
    for (auto& [k, v] : s.error_kinds) error_kinds[k] += v;
  }
};

double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;  // ms
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out + "\"";
}

std::string error_json(const Stats& s) {
  std::string out = "{";
  bool first = true;
  for (auto& [k, v] : s.error_kinds) {
    if (!first) out += ",";
    first = false;
    out += json_str(k) + ":" + std::to_string(v);
  }
  return out + "}";
}

void print_result(const std::string& body) {
  std::printf("RESULT {%s}\n", body.c_str());
  std::fflush(stdout);
}

// Closes the client's socket when the session's time runs out (a stuck server must not hang the
// benchmark); cancel() on every normal end.
class Watchdog {
 public:
  Watchdog(asio::any_io_executor ex, Pop3Client& c, double seconds) : t_(ex), alive_(std::make_shared<bool>(true)) {
    t_.expires_after(std::chrono::milliseconds(static_cast<long>(seconds * 1000)));
    t_.async_wait([&c, alive = alive_](const asio::error_code& ec) {
      if (!ec && *alive) c.close();
    });
  }
  ~Watchdog() {
    *alive_ = false;
    t_.cancel();
  }

 private:
  asio::steady_timer t_;
  std::shared_ptr<bool> alive_;
};

// ------------------------------------------------------------------------------------------------
// POP3 sessions
// ------------------------------------------------------------------------------------------------

// The client TLS context of --tls: what every session offers. Throws BenchError on a bad option.
std::unique_ptr<asio::ssl::context> make_tls_context(const Options& o) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  int ver = o.tls_version == "1.2" ? TLS1_2_VERSION : o.tls_version == "1.3" ? TLS1_3_VERSION : 0;
  SSL_CTX_set_min_proto_version(c, ver ? ver : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c, ver);
  // Every session pays for a full handshake, as a new client would.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  if (!o.tls_ciphers.empty()) {
    bool ok = ver == TLS1_2_VERSION ? SSL_CTX_set_cipher_list(c, o.tls_ciphers.c_str()) == 1
                                    : SSL_CTX_set_ciphersuites(c, o.tls_ciphers.c_str()) == 1;
    if (!ok) throw BenchError("--tls-ciphers: OpenSSL refuses '" + o.tls_ciphers + "'");
  }
  if (!o.tls_groups.empty() && SSL_CTX_set1_groups_list(c, o.tls_groups.c_str()) != 1)
    throw BenchError("--tls-groups: OpenSSL refuses '" + o.tls_groups + "'");
  if (!o.cafile.empty()) {
    ctx->load_verify_file(o.cafile);
    ctx->set_verify_mode(asio::ssl::verify_peer);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none);
  }
  return ctx;
}

struct Shared {
  Options opt;
  std::unique_ptr<asio::ssl::context> tls;  // --tls
  std::mutex tls_mu;
  std::string tls_negotiated;  // of the first session that completed a handshake
  asio::ip::tcp::endpoint server;
  std::atomic<std::uint64_t> next{0};  // round-robin user counter
  Clock::time_point deadline;
  bool by_count = false;
};

// Workload 1: connect, USER/PASS, STAT, LIST, UIDL, RETR all, QUIT. Returns messages retrieved.
awaitable<void> mailbox_session(Pop3Client& c, const std::string& user, const Options& o, Stats& st) {
  co_await c.status("greeting");
  co_await c.cmd("USER " + user);
  co_await c.cmd("PASS " + o.password);
  auto stat = co_await c.cmd("STAT");
  unsigned long count = 0;
  unsigned long long total = 0;
  if (std::sscanf(std::string(stat).c_str(), " %lu %llu", &count, &total) != 2)
    throw BenchError("STAT reply without 'nn mm': '" + printable(stat) + "'");
  if (o.expect_msgs >= 0 && count != static_cast<unsigned long>(o.expect_msgs))
    throw BenchError("STAT says " + std::to_string(count) + " messages, expected " + std::to_string(o.expect_msgs));

  std::vector<std::uint64_t> sizes;
  sizes.reserve(count);
  co_await c.cmd("LIST");
  co_await c.listing([&](std::string_view l) {
    unsigned long n = 0;
    unsigned long long sz = 0;
    if (std::sscanf(std::string(l).c_str(), "%lu %llu", &n, &sz) != 2 || n != sizes.size() + 1)
      throw BenchError("bad scan listing line '" + printable(l) + "'");
    sizes.push_back(sz);
  });
  std::uint64_t sum = 0;
  for (auto s : sizes) sum += s;
  if (sizes.size() != count || sum != total)
    throw BenchError("LIST (" + std::to_string(sizes.size()) + " msgs, " + std::to_string(sum) +
                     " octets) disagrees with STAT (" + std::to_string(count) + ", " + std::to_string(total) + ")");

  co_await c.cmd("UIDL");
  std::size_t uids = 0;
  co_await c.listing([&](std::string_view l) {
    auto sp = l.find(' ');
    if (sp == std::string_view::npos) throw BenchError("bad unique-id listing line '" + printable(l) + "'");
    auto uid = l.substr(sp + 1);
    if (uid.empty() || uid.size() > 70) throw BenchError("UIDL of bad length: '" + printable(l) + "'");
    for (char ch : uid)
      if (ch < 0x21 || ch > 0x7e) throw BenchError("UIDL with a character outside 0x21..0x7E");
    ++uids;
  });
  if (uids != count) throw BenchError("UIDL lists " + std::to_string(uids) + " messages, STAT " + std::to_string(count));

  std::uint64_t octets = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    co_await c.cmd("RETR " + std::to_string(i + 1));
    auto got = co_await c.body();
    if (got != sizes[i])
      throw BenchError("RETR " + std::to_string(i + 1) + " delivered " + std::to_string(got) + " octets, LIST said " +
                       std::to_string(sizes[i]));
    octets += got;
  }
  co_await c.cmd("QUIT");
  co_await c.expect_eof();
  st.messages += count;
  st.octets += octets;
}

// Workload 2: connect, USER, PASS, QUIT.
awaitable<void> login_session(Pop3Client& c, const std::string& user, const Options& o, Stats&) {
  co_await c.status("greeting");
  co_await c.cmd("USER " + user);
  co_await c.cmd("PASS " + o.password);
  co_await c.cmd("QUIT");
  co_await c.expect_eof();
}

using SessionFn = awaitable<void> (*)(Pop3Client&, const std::string&, const Options&, Stats&);

awaitable<void> client_loop(Shared& sh, Stats& st, SessionFn fn) {
  auto ex = co_await asio::this_coro::executor;
  const auto& o = sh.opt;
  for (;;) {
    std::uint64_t k = sh.next.fetch_add(1, std::memory_order_relaxed);
    if (sh.by_count ? k >= o.sessions : Clock::now() >= sh.deadline) break;
    auto user = user_name(o, k % o.users + 1);
    Pop3Client c(ex, o.bufsize, sh.tls.get());
    Watchdog wd(ex, c, o.timeout);
    auto t0 = Clock::now();
    try {
      Stats s;
      co_await c.connect(sh.server, std::nullopt);
      if (sh.tls) {
        std::lock_guard lk(sh.tls_mu);
        if (sh.tls_negotiated.empty()) sh.tls_negotiated = c.tls_summary();
      }
      co_await fn(c, user, o, s);
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
      ++st.sessions;
      st.messages += s.messages;
      st.octets += s.octets;
      st.latency_us.push_back(static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
    } catch (const BenchError& e) {
      st.error(e.what());
    } catch (const std::system_error& e) {
      st.error(std::string("socket: ") + e.code().message());
    }
    st.bytes_in += c.bytes_in();
    st.bytes_out += c.bytes_out();
    c.close();
  }
}

int run_sessions(const Options& o, SessionFn fn) {
  Shared sh;
  sh.opt = o;
  sh.server = asio::ip::tcp::endpoint(asio::ip::make_address(o.host), static_cast<unsigned short>(o.port));
  sh.by_count = o.duration <= 0;
  if (sh.by_count && o.sessions == 0) usage("give --duration or --sessions");
  if (o.tls) sh.tls = make_tls_context(o);

  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<Stats> stats(o.concurrency);
  for (unsigned t = 0; t < o.threads; ++t) ios.push_back(std::make_unique<asio::io_context>(1));
  double cpu0 = cpu_seconds();
  auto t0 = Clock::now();
  sh.deadline = t0 + std::chrono::milliseconds(static_cast<long>(o.duration * 1000));
  for (unsigned i = 0; i < o.concurrency; ++i)
    asio::co_spawn(*ios[i % o.threads], client_loop(sh, stats[i], fn), asio::detached);
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < o.threads; ++t) threads.emplace_back([&, t] { ios[t]->run(); });
  ios[0]->run();
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = cpu_seconds() - cpu0;

  Stats all;
  for (auto& s : stats) all.merge(s);
  double p50 = percentile(all.latency_us, 0.50), p99 = percentile(all.latency_us, 0.99);
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "\"mode\":%s,\"seconds\":%.4f,\"sessions\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"messages\":%" PRIu64
                ",\"octets\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                ",\"sessions_per_s\":%.2f,\"messages_per_s\":%.2f,\"mb_per_s\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f"
                ",\"client_cpu_s\":%.3f,\"concurrency\":%u,\"threads\":%u",
                json_str(o.mode).c_str(), secs, all.sessions, all.errors, all.messages, all.octets, all.bytes_in,
                all.bytes_out, all.sessions / secs, all.messages / secs, all.bytes_in / secs / 1e6, p50, p99, cpu,
                o.concurrency, o.threads);
  print_result(std::string(buf) + ",\"tls\":" + json_str(sh.tls_negotiated) + ",\"error_kinds\":" + error_json(all));
  for (auto& [k, v] : all.error_kinds) std::fprintf(stderr, "loadgen: %" PRIu64 " x %s\n", v, k.c_str());
  return 0;
}

// ------------------------------------------------------------------------------------------------
// Big RETR and the raw TCP ceiling
// ------------------------------------------------------------------------------------------------

// Sends `bytes` octets over a loopback TCP connection as fast as the kernel takes them and receives
// them with the same buffer size the POP3 client uses. Returns MiB/s.
double tcp_ceiling(std::uint64_t bytes, std::size_t bufsize) {
  asio::io_context io(1);
  asio::ip::tcp::acceptor acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto ep = acc.local_endpoint();
  std::thread sender([&] {
    asio::ip::tcp::socket s = acc.accept();
    std::string block(1 << 20, 'x');
    for (std::size_t i = 76; i < block.size(); i += 78) block[i] = '\r', block[i + 1] = '\n';
    std::uint64_t left = bytes;
    while (left > 0) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, block.size()));
      asio::write(s, asio::buffer(block.data(), n));
      left -= n;
    }
    asio::error_code ec;
    s.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  });
  asio::ip::tcp::socket c(io);
  c.connect(ep);
  auto buf = std::make_unique<char[]>(bufsize);
  std::uint64_t got = 0;
  auto t0 = Clock::now();
  for (;;) {
    asio::error_code ec;
    std::size_t n = c.read_some(asio::buffer(buf.get(), bufsize), ec);
    got += n;
    if (ec) break;
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  sender.join();
  if (got != bytes) throw BenchError("tcp ceiling: received " + std::to_string(got) + " of " + std::to_string(bytes));
  return static_cast<double>(bytes) / (1 << 20) / secs;
}

int run_retr(const Options& o) {
  std::vector<double> ceilings;
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  auto ceil_json = [&] {
    std::string j = "\"ceiling_mib_s\":" + std::to_string(median(ceilings)) + ",\"ceiling_runs\":[";
    for (std::size_t i = 0; i < ceilings.size(); ++i) j += (i ? "," : "") + std::to_string(ceilings[i]);
    return j + "]";
  };
  if (o.mode == "tcp-ceiling") {
    for (unsigned i = 0; i < std::max(1u, o.repeat); ++i) ceilings.push_back(tcp_ceiling(o.ceiling_bytes, o.bufsize));
    print_result("\"mode\":\"tcp-ceiling\"," + ceil_json());
    return 0;
  }
  if (o.user.empty()) usage("pop3-retr needs --user");

  asio::io_context io(1);
  std::vector<double> rates;
  std::uint64_t size = 0;
  std::string error;
  double cpu0 = cpu_seconds();
  asio::co_spawn(io, [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Pop3Client c(ex, o.bufsize);
    Watchdog wd(ex, c, o.timeout * (o.repeat + 1));
    try {
      co_await c.connect(asio::ip::tcp::endpoint(asio::ip::make_address(o.host), static_cast<unsigned short>(o.port)), std::nullopt);
      co_await c.status("greeting");
      co_await c.cmd("USER " + o.user);
      co_await c.cmd("PASS " + o.password);
      auto l = co_await c.cmd("LIST 1");
      unsigned long n = 0;
      unsigned long long sz = 0;
      if (std::sscanf(std::string(l).c_str(), " %lu %llu", &n, &sz) != 2 || n != 1) throw BenchError("LIST 1 -> '" + printable(l) + "'");
      size = sz;
      for (unsigned r = 0; r < o.repeat; ++r) {
        // The ceiling and the RETR alternate, so both see the same machine (noise included). The
        // session waits meanwhile (the ceiling blocks this thread for a fraction of a second).
        if (o.ceiling) ceilings.push_back(tcp_ceiling(o.ceiling_bytes, o.bufsize));
        auto t0 = Clock::now();
        co_await c.cmd("RETR 1");
        auto got = co_await c.body();
        double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        if (got != size) throw BenchError("RETR 1 delivered " + std::to_string(got) + " octets, LIST said " + std::to_string(size));
        rates.push_back(static_cast<double>(size) / (1 << 20) / secs);
      }
      co_await c.cmd("QUIT");
      co_await c.expect_eof();
    } catch (const BenchError& e) {
      error = e.what();
    } catch (const std::system_error& e) {
      error = std::string("socket: ") + e.code().message();
    }
  }, asio::detached);
  io.run();
  double cpu = cpu_seconds() - cpu0;
  std::string runs = "[";
  for (std::size_t i = 0; i < rates.size(); ++i) runs += (i ? "," : "") + std::to_string(rates[i]);
  runs += "]";
  if (!error.empty()) std::fprintf(stderr, "loadgen: %s\n", error.c_str());
  print_result("\"mode\":\"pop3-retr\",\"size\":" + std::to_string(size) + ",\"mib_s\":" + std::to_string(median(rates)) +
               ",\"runs\":" + runs + ",\"errors\":" + std::to_string(error.empty() ? 0 : 1) +
               ",\"error_kinds\":{" + (error.empty() ? "" : json_str(error) + ":1") + "},\"client_cpu_s\":" +
               std::to_string(cpu) + "," + ceil_json());
  return 0;
}

// ------------------------------------------------------------------------------------------------
// Idle authenticated sessions
// ------------------------------------------------------------------------------------------------

int run_idle(const Options& o) {
  asio::io_context io(1);
  auto server = asio::ip::tcp::endpoint(asio::ip::make_address(o.host), static_cast<unsigned short>(o.port));
  const std::uint64_t n = o.users;
  std::vector<std::unique_ptr<Pop3Client>> clients(n);
  Stats st;
  std::uint64_t next = 0;
  auto t0 = Clock::now();
  auto last_report = t0;

  auto opener = [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      std::uint64_t i = next++;
      if (i >= n) co_return;
      auto c = std::make_unique<Pop3Client>(ex, o.bufsize);
      std::optional<asio::ip::address> src;
      if (o.sources > 1) src = asio::ip::make_address_v4(static_cast<asio::ip::address_v4::uint_type>((127u << 24) | (1u + i % o.sources)));
      try {
        Watchdog wd(ex, *c, o.timeout);
        co_await c->connect(server, src);
        co_await c->status("greeting");
        co_await c->cmd("USER " + user_name(o, i + 1));
        co_await c->cmd("PASS " + o.password);
        clients[i] = std::move(c);
        ++st.sessions;
      } catch (const BenchError& e) {
        st.error(e.what());
      } catch (const std::system_error& e) {
        st.error(std::string("socket: ") + e.code().message());
      }
      auto now = Clock::now();
      if (now - last_report > std::chrono::seconds(5)) {
        last_report = now;
        std::fprintf(stderr, "loadgen: idle: %" PRIu64 " of %" PRIu64 " sessions open, %" PRIu64 " errors\n", st.sessions, n,
                     st.errors);
      }
    }
  };
  for (unsigned k = 0; k < o.inflight; ++k) asio::co_spawn(io, opener(), asio::detached);
  io.run();
  double open_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& [k, v] : st.error_kinds) std::fprintf(stderr, "loadgen: %" PRIu64 " x %s\n", v, k.c_str());
  std::printf("READY open=%" PRIu64 " errors=%" PRIu64 "\n", st.sessions, st.errors);
  std::fflush(stdout);

  // Hold the sessions until the driver has measured.
  std::string line;
  std::getline(std::cin, line);

  // QUIT them all (at most --inflight at a time); each must answer +OK and close.
  io.restart();
  std::uint64_t quit_ok = 0, quit_err = 0;
  next = 0;
  auto quitter = [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      std::uint64_t i = next++;
      if (i >= n) co_return;
      if (!clients[i]) continue;
      try {
        Watchdog wd(ex, *clients[i], o.timeout);
        co_await clients[i]->cmd("QUIT");
        co_await clients[i]->expect_eof();
        ++quit_ok;
      } catch (const std::exception& e) {
        if (quit_err++ < 5) std::fprintf(stderr, "loadgen: QUIT of an idle session: %s\n", e.what());
      }
      clients[i].reset();
    }
  };
  for (unsigned k = 0; k < o.inflight; ++k) asio::co_spawn(io, quitter(), asio::detached);
  io.run();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "\"mode\":\"pop3-idle\",\"requested\":%" PRIu64 ",\"opened\":%" PRIu64 ",\"errors\":%" PRIu64
                ",\"open_seconds\":%.3f,\"quit_ok\":%" PRIu64 ",\"quit_errors\":%" PRIu64,
                n, st.sessions, st.errors, open_secs, quit_ok, quit_err);
  print_result(std::string(buf) + ",\"error_kinds\":" + error_json(st));
  return 0;
}

// ------------------------------------------------------------------------------------------------
// crypt(3) rate: what SHA512-CRYPT costs this machine on all cores
// ------------------------------------------------------------------------------------------------

int run_crypt(const Options& o) {
  const double secs = o.duration > 0 ? o.duration : 3;
  std::atomic<std::uint64_t> total{0};
  std::atomic<bool> bad{false};
  std::vector<std::thread> th;
  auto t0 = Clock::now();
  const double cpu0 = cpu_seconds();
  auto end = t0 + std::chrono::milliseconds(static_cast<long>(secs * 1000));
  for (unsigned t = 0; t < o.threads; ++t) {
    th.emplace_back([&, t] {
      auto data = std::make_unique<crypt_data>();
      // 16 salt characters and 5000 rounds (the default), like the hashes `buzon user add` writes.
      std::string setting = "$6$benchsalt" + std::to_string(1000000 + t) + "$";
      std::uint64_t n = 0;
      while (Clock::now() < end) {
        data->initialized = 0;
        const char* h = crypt_r(o.password.c_str(), setting.c_str(), data.get());
        if (!h || std::strncmp(h, "$6$", 3) != 0) bad = true;
        ++n;
      }
      total += n;
    });
  }
  for (auto& t : th) t.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  if (bad) std::fprintf(stderr, "loadgen: crypt_r failed for SHA512-CRYPT\n");
  char buf[320];
  // per_s: hashes per wall-clock second on --threads threads (what the machine gave us now);
  // cpu_ms_per_hash: CPU time of one hash (independent of how busy the machine is).
  std::snprintf(buf, sizeof buf,
                "\"mode\":\"crypt-rate\",\"threads\":%u,\"seconds\":%.3f,\"hashes\":%" PRIu64
                ",\"per_s\":%.2f,\"cpu_ms_per_hash\":%.4f,\"errors\":%d",
                o.threads, s, total.load(), static_cast<double>(total.load()) / s,
                total.load() ? cpu * 1000 / static_cast<double>(total.load()) : 0.0, bad ? 1 : 0);
  print_result(buf);
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  Options o = parse(argc, argv);
  raise_fd_limit();
  try {
    if (o.mode == "pop3-mailbox") return run_sessions(o, mailbox_session);
    if (o.mode == "pop3-login") return run_sessions(o, login_session);
    if (o.mode == "pop3-retr" || o.mode == "tcp-ceiling") return run_retr(o);
    if (o.mode == "pop3-idle") return run_idle(o);
    if (o.mode == "crypt-rate") return run_crypt(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s\n", e.what());
    return 1;
  }
  usage("unknown mode " + o.mode);
}
