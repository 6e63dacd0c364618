// proto/pop3/client_reply.cpp — client-side POP3 reply parsing (see client_reply.hpp).
//
// SECURITY  Server input is untrusted; nothing here allocates more than the input it is given.
// STANDARDS RFC 1939 §3, §5, §7; RFC 2449 §5, §6, §8; RFC 3206; RFC 5034 §4.
// LIMITS    See client_reply.hpp.
#include "proto/pop3/client_reply.hpp"

#include "proto/pop3/limits.hpp"

#include <algorithm>
#include <charconv>

namespace buzon::pop3 {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto up = [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; };
           return up(x) == up(y);
         });
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<std::uint64_t> number(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

RespCode known_code(std::string_view name) {
  // Hierarchical codes (RFC 2449 §8): "SYS/TEMP/DISK" is still SYS/TEMP.
  auto is = [&](std::string_view c) {
    return name.size() >= c.size() && iequals(name.substr(0, c.size()), c) &&
           (name.size() == c.size() || name[c.size()] == '/');
  };
  if (is("IN-USE")) return RespCode::in_use;
  if (is("LOGIN-DELAY")) return RespCode::login_delay;
  if (is("SYS/TEMP")) return RespCode::sys_temp;
  if (is("SYS/PERM")) return RespCode::sys_perm;
  if (is("AUTH")) return RespCode::auth;
  if (is("UTF8")) return RespCode::utf8;
  return RespCode::none;
}

}  // namespace

std::optional<StatusLine> parse_status_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  StatusLine s;
  std::string_view rest;
  if (line.size() >= 3 && iequals(line.substr(0, 3), "+OK") && (line.size() == 3 || line[3] == ' ')) {
    s.status = Status::ok;
    rest = line.substr(3);
  } else if (line.size() >= 4 && iequals(line.substr(0, 4), "-ERR") && (line.size() == 4 || line[4] == ' ')) {
    s.status = Status::err;
    rest = line.substr(4);
  } else if (line == "+" || line.starts_with("+ ")) {
    s.status = Status::cont;
    s.text = std::string(trim(line.substr(1)));
    return s;
  } else {
    return std::nullopt;
  }
  if (!rest.empty()) rest.remove_prefix(1);
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close != std::string_view::npos && close > 1) {
      s.code_text = std::string(rest.substr(1, close - 1));
      s.code = known_code(s.code_text);
      rest.remove_prefix(close + 1);
      if (rest.starts_with(' ')) rest.remove_prefix(1);
    }
  }
  s.text = std::string(rest);
  return s;
}

std::optional<std::string> apop_timestamp(std::string_view text) {
  auto open = text.find('<');
  if (open == std::string_view::npos) return std::nullopt;
  auto close = text.find('>', open);
  if (close == std::string_view::npos) return std::nullopt;
  auto ts = text.substr(open, close - open + 1);
  bool at = false;
  for (std::size_t i = 1; i + 1 < ts.size(); ++i) {
    const auto c = static_cast<unsigned char>(ts[i]);
    if (c <= 0x20 || c >= 0x7F || c == '<') return std::nullopt;
    if (c == '@') at = true;
  }
  if (!at || ts.size() < 5) return std::nullopt;
  return std::string(ts);
}

// ---- MultiLineDecoder -------------------------------------------------------------------------

void MultiLineDecoder::line_end(std::string& out, bool had_cr) {
  if (had_cr && ends_ == LineEnds::wire) put(out, '\r');
  put(out, '\n');
  ++lines_;
  state_ = St::line_start;
}

std::size_t MultiLineDecoder::feed(std::string_view in, std::string& out) {
  std::size_t i = 0;
  for (; i < in.size() && state_ != St::done; ++i) {
    const char c = in[i];
    switch (state_) {
      case St::line_start:
        if (c == '.') {
          state_ = St::dot;
        } else if (c == '\r') {
          state_ = St::cr;
        } else if (c == '\n') {
          line_end(out, false);
        } else {
          put(out, c);
          state_ = St::mid;
        }
        break;
      case St::dot:  // a line that started with '.': the dot is stuffing or the terminator
        if (c == '\r') {
          state_ = St::dot_cr;
        } else if (c == '\n') {
          state_ = St::done;  // ".\n": lenient terminator
        } else {
          put(out, c);  // the stuffing dot is dropped (RFC 1939 §3)
          state_ = St::mid;
        }
        break;
      case St::dot_cr:
        if (c == '\n') {
          state_ = St::done;
        } else {
          // ".\r" + data: the dot was stuffing, the CR is data (or starts a line end).
          put(out, '\r');
          if (c == '\r') {
            state_ = St::cr;  // this CR is pending: line end or data
          } else {
            put(out, c);
            state_ = St::mid;
          }
        }
        break;
      case St::mid:
        if (c == '\r') {
          state_ = St::cr;
        } else if (c == '\n') {
          line_end(out, false);
        } else {
          // Fast path: the rest of the line's data in one append.
          const auto end = in.find_first_of("\r\n", i);
          const std::size_t stop = end == std::string_view::npos ? in.size() : end;
          out.append(in.data() + i, stop - i);
          content_ += stop - i;
          i = stop - 1;
        }
        break;
      case St::cr:  // a CR whose successor decides: line end or data
        if (c == '\n') {
          line_end(out, true);
        } else if (c == '\r') {
          put(out, '\r');  // the earlier CR was data; this one is pending
        } else {
          put(out, '\r');
          put(out, c);
          state_ = St::mid;
        }
        break;
      case St::done:
        break;
    }
  }
  wire_ += i;
  return i;
}

std::optional<std::string_view> unstuff_line(std::string_view line) {
  if (line == ".") return std::nullopt;
  if (line.starts_with('.')) line.remove_prefix(1);
  return line;
}

// ---- CAPA -----------------------------------------------------------------------------------

bool Capabilities::has_sasl(std::string_view mech) const {
  return std::any_of(sasl.begin(), sasl.end(), [&](const std::string& m) { return iequals(m, mech); });
}

Capabilities parse_capa(std::span<const std::string> lines) {
  Capabilities c;
  c.known = true;
  for (const auto& raw : lines) {
    std::string_view line = trim(raw);
    auto sp = line.find(' ');
    std::string tag = upper(line.substr(0, sp));
    std::string_view args = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp + 1));
    if (tag == "TOP") c.top = true;
    else if (tag == "USER") c.user = true;
    else if (tag == "UIDL") c.uidl = true;
    else if (tag == "PIPELINING") c.pipelining = true;
    else if (tag == "RESP-CODES") c.resp_codes = true;
    else if (tag == "AUTH-RESP-CODE") c.auth_resp_code = true;
    else if (tag == "STLS") c.stls = true;
    else if (tag == "UTF8") c.utf8 = true;
    else if (tag == "IMPLEMENTATION") c.implementation = std::string(args);
    else if (tag == "EXPIRE") c.expire = upper(args);
    else if (tag == "LOGIN-DELAY") {
      auto sp2 = args.find(' ');
      if (auto n = number(args.substr(0, sp2)); n && *n < 1'000'000'000) c.login_delay = static_cast<long>(*n);
    } else if (tag == "SASL") {
      while (!args.empty()) {
        auto e = args.find(' ');
        auto name = args.substr(0, e);
        if (!name.empty() && name.size() <= kMaxSaslMechanismName) {
          auto u = upper(name);
          if (!c.has_sasl(u)) c.sasl.push_back(u);
        }
        if (e == std::string_view::npos) break;
        args = trim(args.substr(e + 1));
      }
    }
  }
  return c;
}

// ---- Listings -------------------------------------------------------------------------------

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_scan_line(std::string_view line) {
  line = trim(line);
  auto sp = line.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto n = number(line.substr(0, sp));
  auto rest = trim(line.substr(sp + 1));
  auto size = number(rest.substr(0, rest.find(' ')));
  if (!n || !size || *n == 0) return std::nullopt;
  return std::pair{*n, *size};
}

std::optional<std::pair<std::uint64_t, std::string>> parse_uid_line(std::string_view line) {
  line = trim(line);
  auto sp = line.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto n = number(line.substr(0, sp));
  auto uid = trim(line.substr(sp + 1));
  if (!n || *n == 0 || uid.find(' ') != std::string_view::npos || !valid_uid(uid)) return std::nullopt;
  return std::pair{*n, std::string(uid)};
}

}  // namespace buzon::pop3
