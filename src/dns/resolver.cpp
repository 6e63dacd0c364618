// dns/resolver.cpp — the c-ares Resolver (see resolver.hpp).
//
// SECURITY  Every call uses a fresh channel whose server list is exactly ResolverOptions::servers
//           (ares_set_servers_ports_csv replaces what c-ares read from /etc/resolv.conf). Names in
//           answers pass normalize_hostname() or are dropped; addresses are formatted by inet_ntop.
// THREADS   A call owns its channel and waits for it with poll(2) in the calling (worker) thread, so
//           calls from several threads never share c-ares state. ares_library_init runs once.
// LIMITS    A call takes at most about timeout x tries (c-ares' own bound per server); A and AAAA
//           are asked in parallel on one channel.
#include "dns/names.hpp"
#include "dns/resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <type_traits>

namespace buzon::dns {

namespace {

std::once_flag g_library_once;
int g_library_status = ARES_SUCCESS;

int library_init() {
  std::call_once(g_library_once, [] { g_library_status = ares_library_init(ARES_LIB_INIT_ALL); });
  return g_library_status;
}

// RAII for one channel.
struct Channel {
  ares_channel ch = nullptr;
  Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel() {
    if (ch) ares_destroy(ch);
  }
};

std::expected<void, std::string> open_channel(Channel& c, const ResolverOptions& o, const std::string& csv) {
  if (int st = library_init(); st != ARES_SUCCESS) return std::unexpected(std::string("c-ares: ") + ares_strerror(st));
  ares_options opts{};
  opts.timeout = static_cast<int>(o.timeout.count());
  opts.tries = static_cast<int>(o.tries == 0 ? 1 : o.tries);
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  if (int st = ares_init_options(&c.ch, &opts, mask); st != ARES_SUCCESS) {
    c.ch = nullptr;
    return std::unexpected(std::string("c-ares: ") + ares_strerror(st));
  }
  if (!csv.empty()) {
    if (int st = ares_set_servers_ports_csv(c.ch, csv.c_str()); st != ARES_SUCCESS)
      return std::unexpected("invalid DNS server list \"" + csv + "\": " + ares_strerror(st) +
                             " (fix: numeric addresses such as 127.0.0.1:53 or [::1]:53)");
  }
  return {};
}

// Runs the channel until every query has called back (c-ares ends each query with a status,
// ARES_ETIMEOUT included, so this loop ends after at most timeout x tries per server).
void run(Channel& c) {
  for (;;) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(c.ch, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (!ev) continue;
      fds[n++] = pollfd{socks[i], ev, 0};
    }
    if (n == 0) return;  // nothing in flight: every callback has run
    timeval tv{};
    timeval* tvp = ares_timeout(c.ch, nullptr, &tv);
    int ms = tvp ? static_cast<int>(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000) : 1000;
    int r = ::poll(fds, n, ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      r = 0;
    }
    if (r == 0) {
      ares_process_fd(c.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts and retries
      continue;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      bool rd = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
      bool wr = fds[i].revents & POLLOUT;
      ares_process_fd(c.ch, rd ? fds[i].fd : ARES_SOCKET_BAD, wr ? fds[i].fd : ARES_SOCKET_BAD);
    }
  }
}

struct Answer {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<unsigned char> data;
};

void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  auto* a = static_cast<Answer*>(arg);
  a->done = true;
  a->status = status;
  if (status == ARES_SUCCESS && abuf && alen > 0) a->data.assign(abuf, abuf + alen);
}

DnsError error_of(int status, std::string_view name, std::string_view what) {
  std::string prefix = std::string(name) + ": " + std::string(what) + " lookup ";
  switch (status) {
    case ARES_ENOTFOUND:
      return {DnsErrc::nxdomain, std::string(name) + ": no such domain"};
    case ARES_ENODATA:
      return {DnsErrc::nodata, std::string(name) + ": no " + std::string(what) + " record"};
    case ARES_ETIMEOUT:
      return {DnsErrc::temporary, prefix + "timed out"};
    case ARES_EBADNAME:
      return {DnsErrc::invalid, std::string(name) + ": invalid domain name"};
    case ARES_ESERVFAIL:
      return {DnsErrc::temporary, prefix + "failed (SERVFAIL)"};
    case ARES_EREFUSED:
      return {DnsErrc::temporary, prefix + "refused by the server"};
    default:
      return {DnsErrc::temporary, prefix + "failed: " + ares_strerror(status)};
  }
}

// "192.0.2.1", "192.0.2.1:53", "2001:db8::1", "[2001:db8::1]:53" (what ares_set_servers_ports_csv
// takes), checked here because c-ares accepts ports above 65535 and names it cannot use.
bool valid_server(std::string_view s) {
  std::string host;
  std::string_view port;
  if (s.starts_with('[')) {
    auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(1, close - 1);
    auto rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    host = s.substr(0, s.find(':'));
    port = s.substr(s.find(':') + 1);
    if (port.empty()) return false;
  } else {
    host = s;
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > 65535) return false;
  }
  return port.empty() || value > 0;
}

// Appends the addresses of an A (AF_INET) or AAAA (AF_INET6) answer, up to kMaxAddresses in all.
template <class Ttl, class Parse>
void append_addresses(const Answer& a, int family, Parse parse, std::vector<std::string>& out) {
  if (!a.done || a.status != ARES_SUCCESS) return;
  Ttl ttls[kMaxAddresses];
  int n = static_cast<int>(kMaxAddresses);
  hostent* he = nullptr;
  if (parse(a.data.data(), static_cast<int>(a.data.size()), &he, ttls, &n) == ARES_SUCCESS) {
    char text[INET6_ADDRSTRLEN];
    for (int i = 0; i < n && out.size() < kMaxAddresses; ++i) {
      const void* addr;
      if constexpr (std::is_same_v<Ttl, ares_addrttl>) addr = &ttls[i].ipaddr;
      else addr = &ttls[i].ip6addr;
      if (inet_ntop(family, addr, text, sizeof text)) out.emplace_back(text);
    }
  }
  if (he) ares_free_hostent(he);
}

class AresResolver final : public Resolver {
 public:
  AresResolver(ResolverOptions options, std::string csv) : options_(std::move(options)), csv_(std::move(csv)) {}

  DnsResult<std::vector<MxRecord>> mx(std::string_view domain) override {
    auto name = normalize_hostname(domain);
    if (!name) return std::unexpected(DnsError{DnsErrc::invalid, std::string(domain) + ": invalid domain name"});
    Channel c;
    if (auto ok = open_channel(c, options_, csv_); !ok) return std::unexpected(DnsError{DnsErrc::temporary, ok.error()});
    Answer a;
    ares_query(c.ch, name->c_str(), ns_c_in, ns_t_mx, on_answer, &a);
    run(c);
    if (!a.done) return std::unexpected(DnsError{DnsErrc::temporary, *name + ": MX lookup did not complete"});
    if (a.status != ARES_SUCCESS) return std::unexpected(error_of(a.status, *name, "MX"));
    ares_mx_reply* list = nullptr;
    int st = ares_parse_mx_reply(a.data.data(), static_cast<int>(a.data.size()), &list);
    if (st != ARES_SUCCESS) {
      if (list) ares_free_data(list);
      if (st == ARES_ENODATA) return std::unexpected(error_of(st, *name, "MX"));
      return std::unexpected(DnsError{DnsErrc::temporary, *name + ": malformed MX answer: " + ares_strerror(st)});
    }
    std::vector<MxRecord> out;
    for (auto* p = list; p; p = p->next) {
      std::string_view host = p->host ? std::string_view(p->host) : std::string_view();
      if (host.empty() || host == ".") {
        out.push_back({p->priority, ""});
        continue;
      }
      auto h = normalize_hostname(host);
      if (!h) continue;  // untrusted answer: drop what is not a host name
      out.push_back({p->priority, std::move(*h)});
      if (out.size() == 4 * kMaxMx) break;
    }
    ares_free_data(list);
    if (out.empty()) return std::unexpected(DnsError{DnsErrc::invalid, *name + ": no valid MX record in the answer"});
    return out;
  }

  DnsResult<std::vector<std::string>> addresses(std::string_view host) override {
    auto name = normalize_hostname(host);
    if (!name) return std::unexpected(DnsError{DnsErrc::invalid, std::string(host) + ": invalid host name"});
    Channel c;
    if (auto ok = open_channel(c, options_, csv_); !ok) return std::unexpected(DnsError{DnsErrc::temporary, ok.error()});
    Answer a4, a6;
    ares_query(c.ch, name->c_str(), ns_c_in, ns_t_a, on_answer, &a4);
    ares_query(c.ch, name->c_str(), ns_c_in, ns_t_aaaa, on_answer, &a6);
    run(c);
    std::vector<std::string> out;
    append_addresses<ares_addrttl>(a4, AF_INET, ares_parse_a_reply, out);
    append_addresses<ares_addr6ttl>(a6, AF_INET6, ares_parse_aaaa_reply, out);
    if (!out.empty()) return out;
    // No address: the most hopeful error wins (a temporary failure may still find one later).
    int s4 = a4.done ? a4.status : ARES_ETIMEOUT, s6 = a6.done ? a6.status : ARES_ETIMEOUT;
    auto e4 = error_of(s4 == ARES_SUCCESS ? ARES_ENODATA : s4, *name, "A");
    auto e6 = error_of(s6 == ARES_SUCCESS ? ARES_ENODATA : s6, *name, "AAAA");
    if (e4.code == DnsErrc::temporary) return std::unexpected(e4);
    if (e6.code == DnsErrc::temporary) return std::unexpected(e6);
    if (e4.code == DnsErrc::nxdomain || e6.code == DnsErrc::nxdomain) return std::unexpected(DnsError{DnsErrc::nxdomain, *name + ": no such domain"});
    return std::unexpected(DnsError{DnsErrc::nodata, *name + ": no A or AAAA record"});
  }

 private:
  ResolverOptions options_;
  std::string csv_;
};

}  // namespace

std::expected<std::unique_ptr<Resolver>, std::string> make_resolver(const ResolverOptions& options) {
  std::string csv;
  for (auto& s : options.servers) {
    if (!valid_server(s))
      return std::unexpected("invalid DNS server \"" + s +
                             "\" (fix: a numeric address with an optional port: 127.0.0.1:53, [::1]:53, 10.0.0.1)");
    if (!csv.empty()) csv += ',';
    csv += s;
    if (s.ends_with(']')) csv += ":53";  // c-ares wants a port after "[v6]"
  }
  if (options.timeout.count() <= 0) return std::unexpected(std::string("DNS timeout must be positive"));
  Channel probe;  // checks the server list (and that c-ares starts) once, at start-up
  if (auto ok = open_channel(probe, options, csv); !ok) return std::unexpected(ok.error());
  return std::make_unique<AresResolver>(options, std::move(csv));
}

}  // namespace buzon::dns
