// dns/route.cpp — RFC 5321 §5.1 route computation (see resolver.hpp): pure MX ordering plus the
// MX-or-implicit-MX decision over any Resolver.
//
// STANDARDS RFC 5321 §5.1: MX hosts in increasing preference, equal preferences in random order;
//           no MX record (NODATA) = the domain itself is the only host ("implicit MX"); MX records
//           that are all unusable are an error, never a fallback to the implicit MX.
//           RFC 7505 §3: a null MX is the single record "0 ." — the domain accepts no mail.
// THREADS   order_mx() is pure; route() blocks as long as the resolver does.
#include "dns/names.hpp"
#include "dns/resolver.hpp"

#include <algorithm>
#include <random>

namespace buzon::dns {

Route order_mx(std::vector<MxRecord> records, std::uint64_t seed) {
  Route r;
  if (records.size() == 1 && records[0].preference == 0 && (records[0].host.empty() || records[0].host == ".")) {
    r.null_mx = true;
    return r;
  }
  std::vector<MxRecord> usable;
  for (auto& m : records) {
    auto name = normalize_hostname(m.host);
    if (!name) continue;  // "." among other records, or a malformed answer: not a host to try
    usable.push_back({m.preference, std::move(*name)});
  }
  std::stable_sort(usable.begin(), usable.end(),
                   [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
  // Shuffle each run of equal preference with our own Fisher-Yates (std::shuffle's use of the
  // engine is unspecified, this one is the same with every standard library).
  std::mt19937_64 rng(seed);
  for (std::size_t begin = 0; begin < usable.size();) {
    std::size_t end = begin;
    while (end < usable.size() && usable[end].preference == usable[begin].preference) ++end;
    for (std::size_t i = end - begin; i > 1; --i) std::swap(usable[begin + i - 1], usable[begin + rng() % i]);
    begin = end;
  }
  for (auto& m : usable) {
    if (std::find(r.hosts.begin(), r.hosts.end(), m.host) != r.hosts.end()) continue;  // keep the first
    if (r.hosts.size() == kMaxMx) break;
    r.hosts.push_back(std::move(m.host));
  }
  return r;
}

DnsResult<Route> route(Resolver& resolver, std::string_view domain) {
  auto name = normalize_hostname(domain);
  if (!name) return std::unexpected(DnsError{DnsErrc::invalid, std::string(domain) + ": invalid domain name"});
  auto mx = resolver.mx(*name);
  if (!mx) {
    if (mx.error().code != DnsErrc::nodata) return std::unexpected(mx.error());
    // No MX: the domain itself is the host (its A/AAAA are looked up by the caller).
    Route r;
    r.hosts.push_back(*name);
    return r;
  }
  if (mx->empty()) {
    Route r;
    r.hosts.push_back(*name);
    return r;
  }
  std::random_device rd;
  auto r = order_mx(std::move(*mx), (std::uint64_t(rd()) << 32) | rd());
  if (!r.null_mx && r.hosts.empty())
    return std::unexpected(DnsError{DnsErrc::invalid, *name + ": no usable MX host (malformed MX records)"});
  return r;
}

}  // namespace buzon::dns
