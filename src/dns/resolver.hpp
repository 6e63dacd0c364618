// dns/resolver.hpp — the DNS lookups the outbound relay needs (MX, A/AAAA), on c-ares, and the
// RFC 5321 §5.1 route computation on top of them.
//
// SECURITY  Answers are untrusted: host names are validated (LDH labels, length <= 253) before use;
//           the resolver only talks to the servers in ResolverOptions when they are set (tests point
//           it at a private dnsmasq on loopback; nothing reaches the system resolver).
// STANDARDS RFC 5321 §5.1 (MX by preference, equal preferences shuffled, implicit MX = A/AAAA of
//           the domain when there is no MX), RFC 7505 (null MX "0 ." = the domain accepts no mail),
//           RFC 1035/3596 (records).
// THREADS   Resolver calls block (bounded by timeout x tries) and are made from worker-pool threads,
//           never from an event loop. An implementation is safe to call from several threads.
// LIMITS    At most kMaxMx MX hosts and kMaxAddresses addresses per host are returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::dns {

inline constexpr std::size_t kMaxMx = 16;
inline constexpr std::size_t kMaxAddresses = 16;

struct ResolverOptions {
  // "127.0.0.1:5353", "[::1]:53", "10.0.0.1" (port 53). Empty = the system's /etc/resolv.conf.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{5000};  // per try
  unsigned tries = 2;
};

enum class DnsErrc {
  nxdomain,   // the name does not exist (permanent)
  nodata,     // the name exists but has no record of that type
  temporary,  // SERVFAIL, timeout, refused, network: try again later
  invalid,    // a malformed name in the question or the answer (permanent)
};

struct DnsError {
  DnsErrc code;
  std::string message;  // for logs and DSNs: "b.test: MX lookup timed out"
};

template <class T>
using DnsResult = std::expected<T, DnsError>;

struct MxRecord {
  std::uint16_t preference = 0;
  std::string host;  // lower case, no trailing dot; "" for the null MX target "."
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  virtual DnsResult<std::vector<MxRecord>> mx(std::string_view domain) = 0;
  // A and AAAA of `host` as numeric strings ("192.0.2.1", "2001:db8::1"), IPv4 first.
  virtual DnsResult<std::vector<std::string>> addresses(std::string_view host) = 0;
};

// The c-ares implementation. Errors (bad server string) are start-up errors, returned as text.
std::expected<std::unique_ptr<Resolver>, std::string> make_resolver(const ResolverOptions& options);

// Where mail for `domain` goes (RFC 5321 §5.1).
struct Route {
  bool null_mx = false;             // RFC 7505: bounce at once with 556 5.1.10
  std::vector<std::string> hosts;   // MX hosts in the order to try (or the domain itself: implicit MX)
};
DnsResult<Route> route(Resolver& resolver, std::string_view domain);

// Pure helper of route(): sorts by preference (shuffling equal ones with `seed`), detects null MX,
// drops invalid names. Exposed for unit tests.
Route order_mx(std::vector<MxRecord> records, std::uint64_t seed);

}  // namespace buzon::dns
