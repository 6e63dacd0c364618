// core/ip_network.cpp — see ip_network.hpp.
#include "core/ip_network.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace buzon {

namespace {

std::optional<IpNetwork> parse_address(std::string_view text) {
  std::string s(text);
  IpNetwork n;
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    std::memcpy(n.addr.data(), buf, 4);
    n.v4 = true;
    n.prefix = 32;
    return n;
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(buf, kMapped, 12) == 0) {  // ::ffff:a.b.c.d is the IPv4 peer a.b.c.d
      std::memcpy(n.addr.data(), buf + 12, 4);
      n.v4 = true;
      n.prefix = 32;
      return n;
    }
    std::memcpy(n.addr.data(), buf, 16);
    n.v4 = false;
    n.prefix = 128;
    return n;
  }
  return std::nullopt;
}

bool prefix_equal(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b, unsigned bits) {
  const unsigned whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::string IpNetwork::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix);
}

std::expected<IpNetwork, std::string> parse_ip_network(std::string_view text) {
  const auto slash = text.find('/');
  auto n = parse_address(text.substr(0, slash));
  if (!n) return std::unexpected("not a numeric IPv4 or IPv6 address");
  const unsigned max = n->v4 ? 32 : 128;
  // An IPv4-mapped network written in IPv6 form keeps its IPv6 prefix length meaning.
  const bool mapped = n->v4 && text.substr(0, slash).find(':') != std::string_view::npos;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    const unsigned written_max = mapped ? 128 : max;
    unsigned prefix = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || prefix > written_max)
      return std::unexpected("the prefix length must be a number from 0 to " + std::to_string(written_max));
    if (mapped) {
      if (prefix < 96) return std::unexpected("an IPv4-mapped network needs a prefix of at least 96");
      prefix -= 96;
    }
    n->prefix = prefix;
  }
  // Host bits must be zero: "10.0.0.1/8" is more likely a mistake than a network.
  IpNetwork zeroed = *n;
  for (unsigned bit = n->prefix; bit < max; ++bit) zeroed.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  if (zeroed.addr != n->addr) return std::unexpected("host bits are set after the prefix (did you mean " + zeroed.str() + "?)");
  return *n;
}

std::optional<IpNetwork> parse_peer_address(std::string_view peer) {
  if (auto direct = parse_address(peer)) return direct;
  if (!peer.empty() && peer.front() == '[') {
    const auto close = peer.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    return parse_address(peer.substr(1, close - 1));
  }
  const auto colon = peer.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return parse_address(peer.substr(0, colon));
}

std::vector<IpNetwork> loopback_networks() { return {*parse_ip_network("127.0.0.0/8"), *parse_ip_network("::1/128")}; }

bool contains(const IpNetwork& net, const IpNetwork& address) {
  return net.v4 == address.v4 && prefix_equal(net.addr, address.addr, net.prefix);
}

bool contains_any(const std::vector<IpNetwork>& nets, const IpNetwork& address) {
  for (const auto& n : nets)
    if (contains(n, address)) return true;
  return false;
}

}  // namespace buzon
