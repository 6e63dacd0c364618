// proto/smtp/loop_check.cpp — Received: counting and Delivered-To: matching (see loop_check.hpp).
//
// SECURITY  Linear scan of the header only.
// STANDARDS RFC 5321 §6.3; RFC 5322 §2.2.3.
// LIMITS    None.
#include "proto/smtp/loop_check.hpp"

#include <fmt/format.h>

namespace buzon::smtp {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

}  // namespace

LoopCheck check_loop(std::string_view message, std::span<const std::string> addresses, unsigned max_hops) {
  LoopCheck out;
  unsigned received = 0;
  std::size_t pos = 0;
  while (pos < message.size()) {
    // One field: its first line, then continuation lines (starting with space or tab).
    std::size_t end = pos;
    while (true) {
      const auto nl = message.find('\n', end);
      end = nl == std::string_view::npos ? message.size() : nl + 1;
      if (end >= message.size() || (message[end] != ' ' && message[end] != '\t')) break;
    }
    const std::string_view field = message.substr(pos, end - pos);
    pos = end;
    if (trim(field).empty()) break;  // the empty line: end of the header
    const auto colon = field.find(':');
    if (colon == std::string_view::npos) continue;  // not a field (the body began without a blank line)
    const std::string_view name = trim(field.substr(0, colon));
    if (iequal(name, "Received")) {
      ++received;
    } else if (iequal(name, "Delivered-To")) {
      std::string value;
      for (char c : trim(field.substr(colon + 1)))
        if (c != '\r' && c != '\n') value += c;
      for (const auto& a : addresses)
        if (iequal(trim(value), a)) {
          out.verdict = LoopVerdict::delivered_to;
          out.detail = a;
          return out;
        }
    }
  }
  if (max_hops > 0 && received >= max_hops) {
    out.verdict = LoopVerdict::too_many_hops;
    out.detail = fmt::format("{} Received: fields", received);
  }
  return out;
}

}  // namespace buzon::smtp
