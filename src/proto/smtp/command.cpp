// proto/smtp/command.cpp — SMTP command parser (see command.hpp).
//
// SECURITY: untrusted input; every loop advances over the line and every value is length-checked
//   before it is copied. Nothing here allocates more than a few times the line's size.
// STANDARDS: RFC 5321 §4.1.1-§4.1.4; RFC 1870; RFC 6152; RFC 3030; RFC 6531 §3.3; RFC 3461 §4;
//   RFC 4954 §5; RFC 2033 §4.1; RFC 3207 §4.
// LIMITS: see command.hpp and limits.hpp.
#include "proto/smtp/command.hpp"

#include "proto/smtp/limits.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <vector>

namespace buzon::smtp {

namespace {

constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
constexpr char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (upper(a[i]) != upper(b[i])) return false;
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// RFC 5322 atext (RFC 5321 §4.1.2 Atom).
constexpr bool is_atext(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// Length of the well-formed UTF-8 sequence of a non-ASCII character at s[pos], or 0.
std::size_t utf8_len(std::string_view s, std::size_t pos) {
  const auto c = static_cast<unsigned char>(s[pos]);
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - pos < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  if (cp > 0x10FFFF) return 0;
  return len;
}

bool is_8bit(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// A client's parameter name echoed in a reply, cut so the reply line stays within RFC 5321
// §4.5.3.1.5's 512 octets whatever the client sent (found by fuzz/smtp_command.cpp).
std::string echo_keyword(std::string_view k) {
  constexpr std::size_t kMax = 40;
  return k.size() <= kMax ? std::string(k) : std::string(k.substr(0, kMax)) + "...";
}

ParseError perr(Verb v, int code, Enhanced st, std::string text) {
  return ParseError{v, Reply{code, st, std::move(text)}};
}

// ---- Paths (RFC 5321 §4.1.2, RFC 6531 §3.3) --------------------------------------------------

class PathParser {
 public:
  PathParser(std::string_view s, std::size_t pos) : s_(s), pos_(pos) {}
  std::size_t pos() const { return pos_; }

  std::expected<Path, std::string> path(bool reverse) {
    const std::size_t start = pos_;
    if (!eat('<')) return std::unexpected("the address must be enclosed in <>");
    Path p;
    if (reverse && eat('>')) {
      p.null = true;
      return p;
    }
    if (!reverse) {
      // RFC 5321 §4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted.
      constexpr std::string_view kPm = "postmaster>";
      if (s_.size() - pos_ >= kPm.size() && iequals(s_.substr(pos_, kPm.size()), kPm)) {
        p.mailbox.local = std::string(s_.substr(pos_, kPm.size() - 1));
        p.mailbox.text = p.mailbox.local;
        pos_ += kPm.size();
        return p;
      }
    }
    if (peek() == '@') {
      // A-d-l ":" — a source route; accepted and ignored (RFC 5321 §4.1.1.3, §C).
      for (;;) {
        if (!eat('@')) return std::unexpected("bad source route");
        std::string ignored;
        bool lit = false;
        if (auto e = domain(ignored, lit, true); !e.empty()) return std::unexpected(e);
        if (eat(',')) continue;
        if (eat(':')) break;
        return std::unexpected("bad source route");
      }
    }
    const std::size_t mb_start = pos_;
    if (auto e = local_part(p.mailbox); !e.empty()) return std::unexpected(e);
    if (!eat('@')) return std::unexpected("the address has no domain");
    if (auto e = domain(p.mailbox.domain, p.mailbox.literal, true); !e.empty()) return std::unexpected(e);
    p.mailbox.text = std::string(s_.substr(mb_start, pos_ - mb_start));
    if (!eat('>')) return std::unexpected("the address must be enclosed in <>");
    if (pos_ - start > kMaxPath) return std::unexpected("the address is too long");
    for (char c : p.mailbox.text)
      if (is_8bit(c)) p.mailbox.utf8 = true;
    return p;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  // Consumes one UTF-8 non-ASCII character into `out`; false when the octets are not one.
  bool utf8_char(std::string* out) {
    const std::size_t n = utf8_len(s_, pos_);
    if (n == 0) return false;
    if (out) out->append(s_.substr(pos_, n));
    pos_ += n;
    return true;
  }

  std::string local_part(Mailbox& m) {
    if (eat('"')) {
      m.quoted = true;
      for (;;) {
        if (pos_ >= s_.size()) return "unterminated quoted local part";
        const char c = s_[pos_];
        if (c == '"') {
          ++pos_;
          break;
        }
        if (c == '\\') {
          ++pos_;
          if (pos_ >= s_.size()) return "unterminated quoted local part";
          const auto q = static_cast<unsigned char>(s_[pos_]);
          if (q < 32 || q > 126) return "bad quoted-pair in local part";
          m.local += s_[pos_++];
          continue;
        }
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x80) {
          if (!utf8_char(&m.local)) return "invalid UTF-8 in local part";
          continue;
        }
        if (u < 32 || u > 126) return "bad character in quoted local part";
        m.local += c;
        ++pos_;
      }
      return {};
    }
    // Dot-string = Atom *("." Atom)
    bool need_atom = true;
    for (;;) {
      const char c = peek();
      if (is_atext(c)) {
        m.local += c;
        ++pos_;
        need_atom = false;
      } else if (is_8bit(c)) {
        if (!utf8_char(&m.local)) return "invalid UTF-8 in local part";
        need_atom = false;
      } else if (c == '.') {
        if (need_atom) return "empty atom in local part";
        m.local += c;
        ++pos_;
        need_atom = true;
      } else {
        break;
      }
    }
    if (m.local.empty()) return "empty local part";
    if (need_atom) return "local part ends with '.'";
    return {};
  }

  // Domain or address literal; appended to `out` as sent.
  std::string domain(std::string& out, bool& literal, bool allow_literal) {
    const std::size_t start = pos_;
    if (peek() == '[') {
      if (!allow_literal) return "address literal not allowed here";
      literal = true;
      const auto close = s_.find(']', pos_);
      if (close == std::string_view::npos) return "unterminated address literal";
      const std::string_view body = s_.substr(pos_ + 1, close - pos_ - 1);
      if (!valid_address_literal(body)) return "bad address literal";
      pos_ = close + 1;
      out = std::string(s_.substr(start, pos_ - start));
      return {};
    }
    std::size_t label_len = 0;
    bool label_start = true;
    char last = '\0';
    for (;;) {
      const char c = peek();
      if (is_alnum(c) || c == '-') {
        if (label_start && c == '-') return "domain label starts with '-'";
        ++pos_;
        ++label_len;
        label_start = false;
      } else if (is_8bit(c)) {
        const std::size_t n = utf8_len(s_, pos_);
        if (n == 0) return "invalid UTF-8 in domain";
        pos_ += n;
        label_len += n;
        label_start = false;
      } else if (c == '.') {
        if (label_start) return "empty domain label";
        if (last == '-') return "domain label ends with '-'";
        ++pos_;
        label_len = 0;
        label_start = true;
      } else {
        break;
      }
      if (label_len > kMaxDomainLabel) return "domain label too long";
      last = c;
    }
    if (pos_ == start) return "empty domain";
    if (label_start) return "domain ends with '.'";
    if (last == '-') return "domain label ends with '-'";
    if (pos_ - start > kMaxDomain) return "domain too long";
    out = std::string(s_.substr(start, pos_ - start));
    return {};
  }

  // RFC 5321 §4.1.3.
  static bool valid_address_literal(std::string_view b) {
    if (b.empty()) return false;
    if (istarts_with(b, "IPv6:")) {
      std::string a(b.substr(5));
      unsigned char buf[16];
      return inet_pton(AF_INET6, a.c_str(), buf) == 1;
    }
    if (is_digit(b.front())) {
      // IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT up to 255
      int parts = 0;
      std::size_t i = 0;
      while (i <= b.size()) {
        std::size_t j = i;
        unsigned v = 0;
        while (j < b.size() && is_digit(b[j]) && j - i < 3) v = v * 10 + static_cast<unsigned>(b[j++] - '0');
        if (j == i || v > 255) return false;
        ++parts;
        if (j == b.size()) break;
        if (b[j] != '.') return false;
        i = j + 1;
      }
      return parts == 4;
    }
    // General-address-literal = Standardized-tag ":" 1*dcontent
    const auto colon = b.find(':');
    if (colon == 0 || colon == std::string_view::npos || colon + 1 >= b.size()) return false;
    for (std::size_t i = 0; i < colon; ++i)
      if (!is_alnum(b[i]) && b[i] != '-') return false;
    for (std::size_t i = colon + 1; i < b.size(); ++i) {
      const auto c = static_cast<unsigned char>(b[i]);
      if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']') return false;
    }
    return true;
  }

  std::string_view s_;
  std::size_t pos_;
};

// ---- Parameters --------------------------------------------------------------------------------

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool valid_keyword(std::string_view k) {
  if (k.empty() || !is_alnum(k.front())) return false;
  for (char c : k)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 non-ASCII (RFC 6531 §3.3).
bool valid_value(std::string_view v) {
  if (v.empty()) return false;
  for (std::size_t i = 0; i < v.size();) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_len(v, i);
      if (n == 0) return false;
      i += n;
      continue;
    }
    if (c < 33 || c > 126 || c == '=') return false;
    ++i;
  }
  return true;
}

struct Param {
  std::string_view keyword;
  std::optional<std::string_view> value;
};

// Splits "K[=V] K[=V] ..." (after the path); spaces between parameters may repeat.
std::expected<std::vector<Param>, std::string> split_params(std::string_view s) {
  std::vector<Param> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    const auto end = std::min(s.find(' ', i), s.size());
    const std::string_view tok = s.substr(i, end - i);
    i = end;
    Param p;
    const auto eq = tok.find('=');
    p.keyword = tok.substr(0, eq);
    if (!valid_keyword(p.keyword)) return std::unexpected("bad parameter syntax");
    if (eq != std::string_view::npos) {
      p.value = tok.substr(eq + 1);
      if (!valid_value(*p.value)) return std::unexpected("bad parameter value");
    }
    for (const auto& q : out)
      if (iequals(q.keyword, p.keyword)) return std::unexpected("duplicate parameter");
    out.push_back(p);
  }
  return out;
}

std::expected<void, ParseError> mail_param(const Param& p, MailParams& m) {
  const Verb v = Verb::mail;
  auto bad = [&](std::string what) {
    return std::unexpected(perr(v, 501, esc::kInvalidArguments, "Bad " + what + " parameter"));
  };
  const std::string_view val = p.value.value_or(std::string_view{});
  if (iequals(p.keyword, "SIZE")) {
    std::uint64_t n = 0;
    if (!p.value || !parse_u64(val, n)) return bad("SIZE");
    m.size = n;
  } else if (iequals(p.keyword, "BODY")) {
    if (iequals(val, "7BIT"))
      m.body = Body::seven_bit;
    else if (iequals(val, "8BITMIME"))
      m.body = Body::eight_bit_mime;
    else if (iequals(val, "BINARYMIME"))
      m.body = Body::binary_mime;
    else
      return bad("BODY");
  } else if (iequals(p.keyword, "SMTPUTF8")) {
    if (p.value) return bad("SMTPUTF8");  // RFC 6531 §3.4: no value
    m.smtputf8 = true;
  } else if (iequals(p.keyword, "RET")) {
    if (iequals(val, "FULL"))
      m.ret = Ret::full;
    else if (iequals(val, "HDRS"))
      m.ret = Ret::hdrs;
    else
      return bad("RET");
  } else if (iequals(p.keyword, "ENVID")) {
    if (!p.value || val.size() > kMaxEnvid || !is_xtext(val)) return bad("ENVID");
    m.envid = std::string(val);
  } else if (iequals(p.keyword, "AUTH")) {
    if (!p.value || val.size() > kMaxAuthParam || (val != "<>" && !is_xtext(val, true))) return bad("AUTH");
    m.auth = std::string(val);
  } else {
    return std::unexpected(perr(v, 555, esc::kInvalidArguments, "Unsupported parameter " + echo_keyword(p.keyword)));
  }
  return {};
}

std::expected<void, ParseError> rcpt_param(const Param& p, RcptParams& r, bool utf8) {
  const Verb v = Verb::rcpt;
  auto bad = [&](std::string what) {
    return std::unexpected(perr(v, 501, esc::kInvalidArguments, "Bad " + what + " parameter"));
  };
  const std::string_view val = p.value.value_or(std::string_view{});
  if (iequals(p.keyword, "NOTIFY")) {
    if (!p.value) return bad("NOTIFY");
    std::uint8_t flags = 0;
    std::size_t i = 0;
    while (i <= val.size()) {
      const auto comma = std::min(val.find(',', i), val.size());
      const std::string_view item = val.substr(i, comma - i);
      if (iequals(item, "NEVER"))
        flags |= kNotifyNever;
      else if (iequals(item, "SUCCESS"))
        flags |= kNotifySuccess;
      else if (iequals(item, "FAILURE"))
        flags |= kNotifyFailure;
      else if (iequals(item, "DELAY"))
        flags |= kNotifyDelay;
      else
        return bad("NOTIFY");
      i = comma + 1;
    }
    // RFC 3461 §4.1: NEVER must appear alone.
    if ((flags & kNotifyNever) && flags != kNotifyNever) return bad("NOTIFY");
    r.notify = flags;
  } else if (iequals(p.keyword, "ORCPT")) {
    // ORCPT = addr-type ";" xtext; addr-type = atom (RFC 3461 §4.2).
    const auto semi = val.find(';');
    if (!p.value || val.size() > kMaxOrcpt || semi == std::string_view::npos || semi == 0) return bad("ORCPT");
    for (char c : val.substr(0, semi))
      if (!is_atext(c)) return bad("ORCPT");
    if (!is_xtext(val.substr(semi + 1), utf8)) return bad("ORCPT");
    r.orcpt = std::string(val);
  } else {
    return std::unexpected(perr(v, 555, esc::kInvalidArguments, "Unsupported parameter " + echo_keyword(p.keyword)));
  }
  return {};
}

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// HELO/EHLO/LHLO name: a domain or an address literal. Real clients send names outside the
// grammar ("DESKTOP-AB_1", "localhost"), so we accept any run of letters, digits, '-', '.', '_',
// and UTF-8; an address literal in brackets; nothing that could break the Received: header.
bool valid_helo(std::string_view s) {
  if (s.empty() || s.size() > kMaxHeloName) return false;
  if (s.front() == '[') {
    if (s.back() != ']') return false;
    for (char c : s.substr(1, s.size() - 2)) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 33 || u > 126 || c == '[' || c == ']' || c == '\\') return false;
    }
    return s.size() > 2;
  }
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (is_alnum(c) || c == '-' || c == '.' || c == '_') {
      ++i;
      continue;
    }
    if (is_8bit(c)) {
      const std::size_t n = utf8_len(s, i);
      if (n == 0) return false;
      i += n;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (!is_8bit(s[i])) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool is_xtext(std::string_view s, bool utf8) {
  if (s.empty()) return false;
  auto hex = [](char c) { return is_digit(c) || (c >= 'A' && c <= 'F'); };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size()) return false;
      if (!hex(s[i + 1]) || !hex(s[i + 2])) return false;
      i += 3;
      continue;
    }
    if (c >= 0x80) {
      if (!utf8) return false;
      const std::size_t n = utf8_len(s, i);
      if (n == 0) return false;
      i += n;
      continue;
    }
    if (c < 33 || c > 126 || c == '=') return false;
    ++i;
  }
  return true;
}

std::expected<Path, std::string> parse_path(std::string_view text, bool reverse) {
  PathParser p(text, 0);
  auto r = p.path(reverse);
  if (!r) return r;
  if (p.pos() != text.size()) return std::unexpected("unexpected text after the address");
  return r;
}

std::expected<Command, ParseError> parse_command(std::string_view line, const ParseOptions& opts) {
  if (line.empty()) return std::unexpected(perr(Verb::unknown, 500, esc::kSyntaxError, "Error: empty command"));
  for (char c : line) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F)
      return std::unexpected(perr(Verb::unknown, 500, esc::kSyntaxError, "Error: control character in command"));
  }
  if (!is_valid_utf8(line))
    return std::unexpected(perr(Verb::unknown, 500, esc::kSyntaxError, "Error: invalid UTF-8 in command"));

  const auto sp = line.find(' ');
  const std::string_view keyword = line.substr(0, sp);
  const std::string_view rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);

  Command cmd;
  for (const auto& s : kVerbs) {
    if (s.verb != Verb::unknown && iequals(keyword, s.name)) {
      cmd.verb = s.verb;
      break;
    }
  }
  if (cmd.verb == Verb::unknown)
    return std::unexpected(perr(Verb::unknown, 500, esc::kInvalidCommand, "Error: command not recognized"));
  const Verb v = cmd.verb;
  auto usage = [&](int code = 501) {
    return std::unexpected(perr(v, code, esc::kInvalidArguments, std::string(spec(v).usage)));
  };

  switch (v) {
    case Verb::helo:
    case Verb::ehlo:
    case Verb::lhlo: {
      const std::string_view name = trim_right(rest);
      if (name.empty() || name.find(' ') != std::string_view::npos) return usage();
      if (!valid_helo(name)) return std::unexpected(perr(v, 501, esc::kInvalidArguments, "Error: invalid hostname"));
      cmd.domain = std::string(name);
      return cmd;
    }
    case Verb::mail:
    case Verb::rcpt: {
      const bool mail = v == Verb::mail;
      const std::string_view prefix = mail ? "FROM:" : "TO:";
      if (!istarts_with(rest, prefix)) return usage();
      std::size_t pos = sp + 1 + prefix.size();
      while (pos < line.size() && line[pos] == ' ') ++pos;  // "MAIL FROM: <a@b>" is common
      PathParser pp(line, pos);
      auto path = pp.path(mail);
      if (!path) {
        return std::unexpected(perr(v, 501, mail ? esc::kBadSenderSyntax : esc::kBadRecipientSyntax,
                                    (mail ? "Bad sender address syntax: " : "Bad recipient address syntax: ") +
                                        path.error()));
      }
      cmd.path = std::move(*path);
      const std::string_view tail = line.substr(pp.pos());
      if (!tail.empty() && tail.front() != ' ') {
        return std::unexpected(perr(v, 501, mail ? esc::kBadSenderSyntax : esc::kBadRecipientSyntax,
                                    "Error: unexpected text after the address"));
      }
      auto params = split_params(tail);
      if (!params) return std::unexpected(perr(v, 501, esc::kInvalidArguments, "Error: " + params.error()));
      for (const auto& p : *params) {
        auto r = mail ? mail_param(p, cmd.mail) : rcpt_param(p, cmd.rcpt, opts.smtputf8);
        if (!r) return std::unexpected(r.error());
      }
      // RFC 6531 §3.5: non-ASCII addresses need SMTPUTF8 on MAIL (550/553 5.6.7).
      const bool utf8_ok = mail ? cmd.mail.smtputf8 : opts.smtputf8;
      if (cmd.path.mailbox.utf8 && !utf8_ok) {
        return std::unexpected(perr(v, mail ? 550 : 553, esc::kNonAsciiAddress,
                                    "Error: non-ASCII address needs the SMTPUTF8 parameter"));
      }
      return cmd;
    }
    case Verb::bdat: {
      const std::string_view a = trim_right(rest);
      const auto sp2 = a.find(' ');
      const std::string_view count = a.substr(0, sp2);
      if (!parse_u64(count, cmd.chunk_size)) return usage();
      if (sp2 != std::string_view::npos) {
        if (!iequals(a.substr(sp2 + 1), "LAST")) return usage();
        cmd.last = true;
      }
      return cmd;
    }
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
      if (!trim_right(rest).empty()) return usage();
      return cmd;
    case Verb::vrfy:
    case Verb::expn:
    case Verb::auth:
      if (trim_right(rest).empty()) return usage();
      cmd.arg = std::string(rest);
      return cmd;
    case Verb::noop:
    case Verb::help:
      cmd.arg = std::string(rest);
      return cmd;
    case Verb::unknown:
      break;
  }
  return std::unexpected(perr(Verb::unknown, 500, esc::kInvalidCommand, "Error: command not recognized"));
}

}  // namespace buzon::smtp
