// core/ip_network.hpp — IP networks in CIDR notation ("10.0.0.0/8", "::1/128", "192.0.2.7") and
// the test "is this peer address inside one of them" (pure, no sockets).
//
// SECURITY  Used for policy (which peers may send plaintext passwords without TLS, which peers are
//           exempt from the failure penalty): parsing is strict (numeric addresses only, prefix in
//           range, no host bits set, so "10.0.0.1/8" is refused as a likely typo). IPv4-mapped IPv6
//           peers ("::ffff:10.1.2.3") match IPv4 networks.
// STANDARDS RFC 4632 §3.1 (CIDR prefix notation), RFC 4291 §2.5.5.2 (IPv4-mapped addresses).
// LIMITS    none.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon {

struct IpNetwork {
  std::array<std::uint8_t, 16> addr{};  // IPv4 in the first 4 octets
  bool v4 = true;
  unsigned prefix = 32;

  std::string str() const;
};

// "a.b.c.d[/n]" or "x:y::z[/n]"; a bare address is a /32 or /128.
std::expected<IpNetwork, std::string> parse_ip_network(std::string_view text);

// A peer as the streams print it ("1.2.3.4:5678", "[::1]:5678") or a bare address: the address.
std::optional<IpNetwork> parse_peer_address(std::string_view peer);

// 127.0.0.0/8 and ::1/128: the default trusted networks.
std::vector<IpNetwork> loopback_networks();

bool contains(const IpNetwork& net, const IpNetwork& address);
bool contains_any(const std::vector<IpNetwork>& nets, const IpNetwork& address);

}  // namespace buzon
