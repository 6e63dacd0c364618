// proto/smtp/reply.cpp — SMTP reply formatting (see reply.hpp).
//
// SECURITY: all free text passes through append_text(), which removes control characters, hides
//   8-bit octets outside SMTPUTF8 and bounds the line; nothing here can emit a CR or LF except the
//   line terminators it adds.
// STANDARDS: RFC 5321 §4.2, §4.5.3.1.5; RFC 2034 §3; RFC 3463; RFC 6531 §3.7.4.
// LIMITS: kMaxReplyLine octets per line, CRLF included.
#include "proto/smtp/reply.hpp"

#include "proto/smtp/limits.hpp"

#include <fmt/format.h>

namespace buzon::smtp {

namespace {

constexpr std::string_view kCrlf = "\r\n";

// Appends `text` with control characters turned into spaces and (unless utf8) 8-bit octets into
// '?', cut to at most `budget` octets at a UTF-8 character boundary.
void append_text(std::string& out, std::string_view text, std::size_t budget, bool utf8) {
  if (text.size() > budget) {
    std::size_t cut = budget;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut);
  }
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F)
      out += ' ';
    else if (u >= 0x80 && !utf8)
      out += '?';
    else
      out += c;
  }
}

std::string line(std::string head, std::string_view text, bool utf8) {
  if (!text.empty()) {
    head += ' ';
    const std::size_t used = head.size() + kCrlf.size();
    const std::size_t budget = used < kMaxReplyLine ? kMaxReplyLine - used : 0;
    append_text(head, text, budget, utf8);
  }
  head += kCrlf;
  return head;
}

}  // namespace

std::string enhanced_string(int code, Enhanced status) {
  const int cls = code / 100;
  if (cls != 2 && cls != 4 && cls != 5) return {};
  return fmt::format("{}.{}.{}", cls, status.subject, status.detail);
}

std::string format_reply(int code, Enhanced status, std::string_view text, bool utf8) {
  std::string head = std::to_string(code);
  if (auto e = enhanced_string(code, status); !e.empty()) {
    head += ' ';
    head += e;
  }
  return line(std::move(head), text, utf8);
}

std::string format_reply(const Reply& r, bool utf8) { return format_reply(r.code, r.status, r.text, utf8); }

std::string format_plain(int code, std::string_view text, bool utf8) {
  return line(std::to_string(code), text, utf8);
}

std::string format_multiline(int code, std::span<const std::string> lines) {
  if (lines.empty()) return std::to_string(code) + std::string(kCrlf);
  std::string out;
  const std::string c = std::to_string(code);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += c;
    out += (i + 1 == lines.size()) ? ' ' : '-';
    const std::size_t used = c.size() + 1 + kCrlf.size();
    append_text(out, lines[i], kMaxReplyLine - used, false);
    out += kCrlf;
  }
  return out;
}

}  // namespace buzon::smtp
