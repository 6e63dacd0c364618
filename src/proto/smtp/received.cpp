// proto/smtp/received.cpp — trace header fields (see received.hpp).
//
// SECURITY: clean() drops control characters from every inserted value.
// STANDARDS: RFC 5321 §4.4, RFC 5322 §3.3, §3.6.7, RFC 3848, RFC 6531 §4.3.
// LIMITS: see received.hpp.
#include "proto/smtp/received.hpp"

#include <fmt/format.h>

#include <ctime>

namespace buzon::smtp {

namespace {

std::string clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) continue;
    out += c;
  }
  return out;
}

}  // namespace

std::string format_date(std::int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                     kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string protocol_name(bool esmtp, bool lmtp, bool tls, bool authenticated, bool utf8) {
  if (!esmtp && !lmtp) return "SMTP";
  std::string p = utf8 ? "UTF8" : "";
  if (lmtp)
    p += "LMTP";
  else
    p += utf8 ? "SMTP" : "ESMTP";  // RFC 6531 §4.3: UTF8SMTP stands for ESMTP with SMTPUTF8
  if (tls) p += 'S';
  if (authenticated) p += 'A';
  return p;
}

std::string peer_literal(std::string_view peer) {
  if (peer.empty()) return {};
  if (peer.front() == '[') {
    const auto close = peer.find(']');
    if (close == std::string_view::npos || close < 2) return {};
    return "[IPv6:" + clean(peer.substr(1, close - 1)) + "]";
  }
  const auto colon = peer.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  const auto ip = peer.substr(0, colon);
  if (ip.find(':') != std::string_view::npos) return "[IPv6:" + clean(ip) + "]";
  return "[" + clean(ip) + "]";
}

std::string format_received(const ReceivedInfo& info) {
  std::string out = "Received: from " + clean(info.helo);
  if (auto lit = peer_literal(info.peer); !lit.empty()) out += " (" + lit + ")";
  if (!info.tls.empty()) out += "\r\n\t(using " + clean(info.tls) + ")";
  out += "\r\n\tby " + clean(info.by) + " (buzon) with " + clean(info.protocol);
  if (!info.id.empty()) out += " id " + clean(info.id);
  if (!info.for_rcpt.empty()) out += "\r\n\tfor <" + clean(info.for_rcpt) + ">";
  out += "; " + format_date(info.time) + "\r\n";
  return out;
}

std::string format_return_path(const Path& reverse) {
  if (reverse.null) return "Return-Path: <>\r\n";
  return "Return-Path: <" + clean(reverse.mailbox.text) + ">\r\n";
}

std::string format_delivered_to(std::string_view address) {
  return "Delivered-To: " + clean(address) + "\r\n";
}

}  // namespace buzon::smtp
