// proto/smtp/client_reply.cpp — see client_reply.hpp.
#include "proto/smtp/client_reply.hpp"

#include <algorithm>
#include <charconv>

namespace buzon::smtp {

namespace {

bool is_enhanced(std::string_view w) {
  // class "." 1*3digit "." 1*3digit, class in 2/4/5 (RFC 3463 §2)
  if (w.size() < 5 || (w[0] != '2' && w[0] != '4' && w[0] != '5') || w[1] != '.') return false;
  int dots = 0, digits = 0;
  for (std::size_t i = 2; i < w.size(); ++i) {
    if (w[i] == '.') {
      if (digits == 0 || ++dots > 1) return false;
      digits = 0;
    } else if (w[i] >= '0' && w[i] <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

std::string upper(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return o;
}

}  // namespace

std::string ClientReply::str() const {
  std::string s = std::to_string(code);
  if (!enhanced.empty()) s += " " + enhanced;
  if (!lines.empty() && !lines.front().empty()) s += " " + lines.front();
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  return s;
}

ReplyParser::Step ReplyParser::feed(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  int code = 0;
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !std::isdigit(static_cast<unsigned char>(line[1])) ||
      !std::isdigit(static_cast<unsigned char>(line[2])) || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    error_ = "not an SMTP reply line: \"" + std::string(line.substr(0, 100)) + "\"";
    cur_ = {};
    return Step::error;
  }
  std::from_chars(line.data(), line.data() + 3, code);
  if (cur_.code != 0 && cur_.code != code) {
    error_ = "reply lines with different codes";
    cur_ = {};
    return Step::error;
  }
  if (cur_.lines.size() >= kMaxReplyLines) {
    error_ = "reply with too many lines";
    cur_ = {};
    return Step::error;
  }
  cur_.code = code;
  const bool last = line.size() == 3 || line[3] == ' ';
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  auto sp = text.find(' ');
  auto first = text.substr(0, sp);
  if (is_enhanced(first) && first[0] == line[0]) {
    cur_.enhanced = std::string(first);
    text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
  }
  cur_.lines.emplace_back(text);
  return last ? Step::done : Step::more;
}

ClientReply ReplyParser::take() {
  ClientReply r = std::move(cur_);
  cur_ = {};
  return r;
}

bool EhloInfo::has_auth(std::string_view mech) const { return std::find(auth.begin(), auth.end(), mech) != auth.end(); }

EhloInfo parse_ehlo(const ClientReply& reply) {
  EhloInfo e;
  e.esmtp = true;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {  // line 0 is the greeting text
    std::string_view l = reply.lines[i];
    auto sp = l.find_first_of(" =");
    std::string kw = upper(l.substr(0, sp));
    std::string_view args = sp == std::string_view::npos ? std::string_view{} : l.substr(sp + 1);
    if (kw == "PIPELINING") e.pipelining = true;
    else if (kw == "STARTTLS") e.starttls = true;
    else if (kw == "8BITMIME") e.eightbitmime = true;
    else if (kw == "SMTPUTF8") e.smtputf8 = true;
    else if (kw == "ENHANCEDSTATUSCODES") e.enhanced_codes = true;
    else if (kw == "DSN") e.dsn = true;
    else if (kw == "CHUNKING") e.chunking = true;
    else if (kw == "SIZE") {
      std::uint64_t n = 0;
      auto [p, ec] = std::from_chars(args.data(), args.data() + args.size(), n);
      e.size = (ec == std::errc() && p != args.data()) ? n : 0;
    } else if (kw == "AUTH") {
      while (!args.empty()) {
        auto s2 = args.find(' ');
        auto m = upper(args.substr(0, s2));
        if (!m.empty() && !e.has_auth(m)) e.auth.push_back(m);
        if (s2 == std::string_view::npos) break;
        args = args.substr(s2 + 1);
      }
    }
  }
  return e;
}

void DataEncoder::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    if (pending_cr_) {
      pending_cr_ = false;
      out += "\r\n";
      octets_ += 2;
      line_start_ = true;
      if (c == '\n') continue;  // CRLF
      // a lone CR ended the line; c starts the next one
    }
    if (c == '\r') {
      pending_cr_ = true;
      continue;
    }
    if (c == '\n') {
      out += "\r\n";
      octets_ += 2;
      line_start_ = true;
      continue;
    }
    if (line_start_ && c == '.') out += '.';
    out += c;
    ++octets_;
    line_start_ = false;
  }
}

void DataEncoder::finish(std::string& out) {
  if (pending_cr_ || !line_start_) {
    out += "\r\n";
    octets_ += 2;
  }
  pending_cr_ = false;
  line_start_ = true;
  out += ".\r\n";
}

std::uint64_t data_octets(std::string_view message) {
  DataEncoder e;
  std::string scratch;
  for (std::size_t i = 0; i < message.size(); i += 65536) {
    scratch.clear();
    e.feed(message.substr(i, 65536), scratch);
  }
  scratch.clear();
  e.finish(scratch);
  return e.octets();
}

}  // namespace buzon::smtp
