// send/message.cpp — see message.hpp.
#include "send/message.hpp"

#include <algorithm>

namespace buzon::send {

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// The header part: up to and including the line end before the first empty line.
std::size_t header_end(std::string_view m) {
  std::size_t pos = 0;
  while (pos < m.size()) {
    if (m[pos] == '\n') return pos;  // empty line (LF)
    if (m[pos] == '\r' && pos + 1 < m.size() && m[pos + 1] == '\n') return pos;
    auto nl = m.find('\n', pos);
    if (nl == std::string_view::npos) return m.size();
    pos = nl + 1;
  }
  return m.size();
}

}  // namespace

std::vector<HeaderField> parse_header(std::string_view message) {
  std::vector<HeaderField> out;
  std::string_view h = message.substr(0, header_end(message));
  std::size_t pos = 0;
  while (pos < h.size()) {
    auto nl = h.find('\n', pos);
    std::string_view line = h.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? h.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (!out.empty()) out.back().value += std::string(line);
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // not a field (e.g. a From_ line)
    out.push_back({std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1)))});
  }
  for (auto& f : out) {
    auto v = trim(f.value);
    f.value = std::string(v);
  }
  return out;
}

std::vector<std::string> header_recipients(std::string_view message) {
  auto fields = parse_header(message);
  const bool resent = std::any_of(fields.begin(), fields.end(), [](const HeaderField& f) {
    auto n = lower(f.name);
    return n == "resent-to" || n == "resent-cc" || n == "resent-bcc";
  });
  std::vector<std::string> out;
  for (auto& f : fields) {
    auto n = lower(f.name);
    const bool want = resent ? (n == "resent-to" || n == "resent-cc" || n == "resent-bcc")
                             : (n == "to" || n == "cc" || n == "bcc");
    if (!want) continue;
    for (auto& a : parse_address_list(f.value))
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

std::string header_from(std::string_view message) {
  for (auto& f : parse_header(message)) {
    if (lower(f.name) != "from") continue;
    auto a = parse_address_list(f.value);
    return a.empty() ? std::string() : a.front();
  }
  return {};
}

std::string strip_bcc(std::string_view message) {
  const std::size_t end = header_end(message);
  std::string out;
  out.reserve(message.size());
  std::size_t pos = 0;
  bool skipping = false;
  while (pos < end) {
    auto nl = message.find('\n', pos);
    std::size_t next = (nl == std::string_view::npos || nl >= end) ? end : nl + 1;
    std::string_view line = message.substr(pos, next - pos);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (!skipping) out += line;
    } else {
      auto colon = line.find(':');
      auto name = colon == std::string_view::npos ? std::string() : lower(trim(line.substr(0, colon)));
      skipping = name == "bcc" || name == "resent-bcc";
      if (!skipping) out += line;
    }
    pos = next;
  }
  out += message.substr(end);
  return out;
}

std::string cut_at_dot_line(std::string_view in) {
  std::size_t pos = 0;
  while (pos < in.size()) {
    auto nl = in.find('\n', pos);
    std::string_view line = in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (line == "." || line == ".\r") return std::string(in.substr(0, pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return std::string(in);
}

}  // namespace buzon::send
