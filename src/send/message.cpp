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

std::vector<std::string> parse_address_list(std::string_view value) {
  // Remove comments and split on top-level commas; ':' opens a group (its display name is
  // dropped), ';' closes it.
  std::vector<std::string> items;
  std::string cur;
  int depth = 0;
  bool quoted = false, angle = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (quoted) {
      cur += c;
      if (c == '\\' && i + 1 < value.size()) cur += value[++i];
      else if (c == '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++depth;
      else if (c == ')') --depth;
      continue;
    }
    switch (c) {
      case '(': ++depth; break;
      case '"': quoted = true; cur += c; break;
      case '<': angle = true; cur += c; break;
      case '>': angle = false; cur += c; break;
      case ':':
        if (angle) cur += c;
        else cur.clear();  // group display name
        break;
      case ',':
      case ';':
        if (angle) {
          cur += c;
        } else {
          items.push_back(cur);
          cur.clear();
        }
        break;
      default: cur += c;
    }
  }
  items.push_back(cur);
  std::vector<std::string> out;
  for (auto& it : items) {
    std::string_view s = trim(it);
    auto lt = s.rfind('<');
    if (lt != std::string_view::npos) {
      auto gt = s.find('>', lt);
      s = s.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
      if (auto route = s.find(':'); route != std::string_view::npos && s.starts_with('@')) s = s.substr(route + 1);
      s = trim(s);
    }
    if (s.empty() || (s.find('@') == std::string_view::npos && s.find(' ') != std::string_view::npos)) continue;
    out.emplace_back(s);
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
