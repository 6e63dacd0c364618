#include "server/proxy_protocol.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <string_view>
#include <vector>

namespace buzon::server::proxy {

namespace {

constexpr unsigned char kV2Sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";

ParseResult bad(std::string why) { return ParseResult{Status::invalid, {}, std::move(why)}; }

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::optional<asio::ip::address> parse_addr(std::string_view s, bool v6) {
  std::string z(s);
  if (v6) {
    asio::ip::address_v6::bytes_type b{};
    if (inet_pton(AF_INET6, z.c_str(), b.data()) != 1) return std::nullopt;
    return asio::ip::address(asio::ip::address_v6(b));
  }
  asio::ip::address_v4::bytes_type b{};
  if (inet_pton(AF_INET, z.c_str(), b.data()) != 1) return std::nullopt;
  return asio::ip::address(asio::ip::address_v4(b));
}

ParseResult parse_v1(std::string_view s) {
  // "PROXY TCP4 192.0.2.1 198.51.100.1 56324 110\r\n" or "PROXY UNKNOWN ...\r\n"
  auto crlf = s.find("\r\n");
  if (crlf == std::string_view::npos) {
    if (s.size() >= kMaxV1) return bad("v1 header longer than 107 octets");
    if (s.find('\n') != std::string_view::npos) return bad("v1 header line not ended by CRLF");
    return ParseResult{Status::need_more, {}, {}};
  }
  if (crlf + 2 > kMaxV1) return bad("v1 header longer than 107 octets");
  std::string_view line = s.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  std::vector<std::string_view> f;
  while (!line.empty()) {
    auto sp = line.find(' ');
    f.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
    if (line.empty()) f.push_back({});  // a trailing space: an empty field, refused below
  }
  Header h;
  h.version = 1;
  h.length = crlf + 2;
  if (!f.empty() && f[0] == "UNKNOWN") {  // the rest of the line is ignored (spec 2.1)
    h.local = true;
    return ParseResult{Status::done, h, {}};
  }
  if (f.size() != 5 || (f[0] != "TCP4" && f[0] != "TCP6")) return bad("v1 header is not 'PROXY TCP4|TCP6 src dst sport dport'");
  bool v6 = f[0] == "TCP6";
  auto src = parse_addr(f[1], v6), dst = parse_addr(f[2], v6);
  auto sport = parse_port(f[3]), dport = parse_port(f[4]);
  if (!src || !dst) return bad(fmt::format("v1 header has a bad {} address", v6 ? "IPv6" : "IPv4"));
  if (!sport || !dport) return bad("v1 header has a bad port");
  h.source = asio::ip::tcp::endpoint(*src, *sport);
  h.destination = asio::ip::tcp::endpoint(*dst, *dport);
  return ParseResult{Status::done, h, {}};
}

ParseResult parse_v2(std::span<const unsigned char> b) {
  if (b.size() < 16) return ParseResult{Status::need_more, {}, {}};
  unsigned ver = b[12] >> 4, cmd = b[12] & 0x0F;
  if (ver != 2) return bad(fmt::format("v2 header has version {}", ver));
  if (cmd > 1) return bad(fmt::format("v2 header has unknown command {}", cmd));
  std::size_t len = (std::size_t(b[14]) << 8) | b[15];
  if (len > kMaxV2Payload) return bad(fmt::format("v2 header of {} octets is over the limit of {}", len, kMaxV2Payload));
  unsigned fam = b[13] >> 4, proto = b[13] & 0x0F;
  if (fam > 3 || proto > 2) return bad("v2 header has an unknown address family or transport");
  std::size_t need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
  if (len < need) return bad("v2 header is too short for its address family");
  if (b.size() < 16 + len) return ParseResult{Status::need_more, {}, {}};
  Header h;
  h.version = 2;
  h.length = 16 + len;
  // LOCAL (health checks of the proxy itself), UNSPEC, UDP and UNIX: keep the connection's addresses.
  if (cmd == 0 || proto != 1 || (fam != 1 && fam != 2)) {
    h.local = true;
    return ParseResult{Status::done, h, {}};
  }
  const unsigned char* a = b.data() + 16;
  if (fam == 1) {
    asio::ip::address_v4::bytes_type s{}, d{};
    std::memcpy(s.data(), a, 4);
    std::memcpy(d.data(), a + 4, 4);
    h.source = asio::ip::tcp::endpoint(asio::ip::address_v4(s), std::uint16_t((a[8] << 8) | a[9]));
    h.destination = asio::ip::tcp::endpoint(asio::ip::address_v4(d), std::uint16_t((a[10] << 8) | a[11]));
  } else {
    asio::ip::address_v6::bytes_type s{}, d{};
    std::memcpy(s.data(), a, 16);
    std::memcpy(d.data(), a + 16, 16);
    h.source = asio::ip::tcp::endpoint(asio::ip::address_v6(s), std::uint16_t((a[32] << 8) | a[33]));
    h.destination = asio::ip::tcp::endpoint(asio::ip::address_v6(d), std::uint16_t((a[34] << 8) | a[35]));
  }
  return ParseResult{Status::done, h, {}};
}

}  // namespace

ParseResult parse(std::span<const unsigned char> buf) {
  if (buf.empty()) return ParseResult{Status::need_more, {}, {}};
  if (buf[0] == 'P') {
    std::string_view s(reinterpret_cast<const char*>(buf.data()), buf.size());
    auto n = std::min(s.size(), kV1Prefix.size());
    if (s.substr(0, n) != kV1Prefix.substr(0, n)) return bad("not a PROXY protocol header");
    if (s.size() <= kV1Prefix.size()) return ParseResult{Status::need_more, {}, {}};
    return parse_v1(s);
  }
  if (buf[0] == kV2Sig[0]) {
    auto n = std::min(buf.size(), sizeof kV2Sig);
    if (std::memcmp(buf.data(), kV2Sig, n) != 0) return bad("not a PROXY protocol header");
    return parse_v2(buf);
  }
  return bad("not a PROXY protocol header");
}

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

asio::awaitable<std::expected<Header, std::string>> read_loop(asio::ip::tcp::socket& sock) {
  std::vector<unsigned char> have;
  std::vector<unsigned char> buf(kMaxHeader);
  for (;;) {
    // Peek, so that nothing after the header is consumed; then read exactly what was parsed.
    auto room = kMaxHeader - have.size();
    auto [ec, n] = co_await sock.async_receive(asio::buffer(buf.data(), room), asio::socket_base::message_peek, kTuple);
    if (ec) co_return std::unexpected(ec == asio::error::eof ? std::string("closed before a PROXY header")
                                                              : "reading the PROXY header: " + ec.message());
    std::vector<unsigned char> view(have);
    view.insert(view.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = parse(view);
    if (r.status == Status::invalid) co_return std::unexpected(r.error);
    std::size_t take = r.status == Status::done ? r.header.length - have.size() : n;
    auto [rec, got] = co_await asio::async_read(sock, asio::buffer(buf.data(), take), kTuple);
    if (rec) co_return std::unexpected("reading the PROXY header: " + rec.message());
    if (r.status == Status::done) co_return r.header;
    have.insert(have.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    if (have.size() >= kMaxHeader) co_return std::unexpected(std::string("PROXY header too long"));
  }
}

}  // namespace

asio::awaitable<std::expected<Header, std::string>> read_header(asio::ip::tcp::socket& sock,
                                                                std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(timeout);
  auto r = co_await (read_loop(sock) || timer.async_wait(asio::use_awaitable));
  if (r.index() == 1) co_return std::unexpected(fmt::format("no PROXY header within {} ms", timeout.count()));
  co_return std::get<0>(std::move(r));
}

}  // namespace buzon::server::proxy
