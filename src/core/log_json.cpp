#include "core/log_json.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

namespace buzon {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return 0;
  if (n == 2 && c < 0xC2) return 0;  // overlong
  return n;
}

bool is_key(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

bool is_number(std::string_view v) {
  if (v.empty() || v.size() > 15) return false;
  std::size_t i = v[0] == '-' ? 1 : 0;
  if (i == v.size() || (v[i] == '0' && v.size() > i + 1)) return false;
  for (; i < v.size(); ++i)
    if (v[i] < '0' || v[i] > '9') return false;
  return true;
}

struct Field {
  std::string key, value;
  bool quoted = false;
};

// "words words k=v k="quoted \" value" k=v" -> ("words words", fields); nullopt when the message is
// not in that shape (free text after the fields, a stray quote...).
std::optional<std::pair<std::string, std::vector<Field>>> split_fields(std::string_view m) {
  std::vector<Field> fields;
  std::string head;
  std::size_t i = 0;
  while (i < m.size()) {
    auto sp = m.find(' ', i);
    std::string_view tok = m.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
    auto eq = tok.find('=');
    if (eq == std::string_view::npos || !is_key(tok.substr(0, eq))) {
      if (!fields.empty()) return std::nullopt;
      if (!head.empty()) head.push_back(' ');
      head += tok;
      if (sp == std::string_view::npos) break;
      i = sp + 1;
      continue;
    }
    Field f;
    f.key = std::string(tok.substr(0, eq));
    std::size_t v = i + eq + 1;
    if (v < m.size() && m[v] == '"') {
      // log_value quoting: \" and \\ are escapes; \xNN stays as written.
      std::size_t j = v + 1;
      bool closed = false;
      for (; j < m.size(); ++j) {
        if (m[j] == '\\' && j + 1 < m.size() && (m[j + 1] == '"' || m[j + 1] == '\\')) {
          f.value.push_back(m[j + 1]);
          ++j;
        } else if (m[j] == '"') {
          closed = true;
          break;
        } else {
          f.value.push_back(m[j]);
        }
      }
      if (!closed || (j + 1 < m.size() && m[j + 1] != ' ')) return std::nullopt;
      f.quoted = true;
      fields.push_back(std::move(f));
      i = j + 2;
    } else {
      auto end = m.find(' ', v);
      f.value = std::string(m.substr(v, end == std::string_view::npos ? std::string_view::npos : end - v));
      fields.push_back(std::move(f));
      if (end == std::string_view::npos) break;
      i = end + 1;
    }
  }
  if (fields.empty()) return std::nullopt;
  return std::make_pair(std::move(head), std::move(fields));
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (c == '\r') {
      out += "\\r", ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04x}", c);
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (auto n = utf8_len(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  return out;
}

std::string log_line_to_json(std::string_view ts, std::string_view level, std::string_view message) {
  std::string out = fmt::format("{{\"ts\":\"{}\",\"level\":\"{}\"", json_escape(ts), json_escape(level));
  auto split = split_fields(message);
  if (!split) {
    out += fmt::format(",\"msg\":\"{}\"}}", json_escape(message));
    return out;
  }
  out += fmt::format(",\"msg\":\"{}\"", json_escape(split->first));
  for (auto& f : split->second) {
    std::string key = (f.key == "ts" || f.key == "level" || f.key == "msg") ? "_" + f.key : f.key;
    if (!f.quoted && is_number(f.value))
      out += fmt::format(",\"{}\":{}", json_escape(key), f.value);
    else
      out += fmt::format(",\"{}\":\"{}\"", json_escape(key), json_escape(f.value));
  }
  out += '}';
  return out;
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()) % 1000;
  auto secs = std::chrono::system_clock::to_time_t(msg.time);
  auto ts = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(secs), static_cast<int>(ms.count()));
  auto level = spdlog::level::to_string_view(msg.level);
  auto line = log_line_to_json(ts, std::string_view(level.data(), level.size()),
                               std::string_view(msg.payload.data(), msg.payload.size()));
  line.push_back('\n');
  dest.append(line.data(), line.data() + line.size());
}

}  // namespace buzon
