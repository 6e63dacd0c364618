// proto/pop3/dot_stuffer.cpp — streaming byte-stuffing encoder (see dot_stuffer.hpp).
//
// SECURITY: untrusted message octets; the state carried between chunks (line start, one pending
//   CR, header/body, line count) makes the output independent of how the input is split.
// STANDARDS: RFC 1939 §3, §7; RFC 5322 §2.1.
// LIMITS: no buffering beyond one CR.
#include "proto/pop3/dot_stuffer.hpp"

#include <cstring>

namespace buzon::pop3 {

DotStuffer::DotStuffer(std::optional<std::uint64_t> top_body_lines) : top_(top_body_lines) {}

// Writes CRLF for the line just completed and advances the TOP accounting.
void DotStuffer::end_line(std::string& out) {
  const bool blank = line_start_;
  out += "\r\n";
  line_start_ = true;
  if (!top_) return;
  if (!in_body_) {
    // RFC 5322 §2.1: the first empty line separates the header from the body. RFC 1939 §7: TOP
    // sends the header, that blank line, then n lines of the body.
    if (blank) {
      in_body_ = true;
      if (*top_ == 0) limit_reached_ = true;
    }
    return;
  }
  if (++body_lines_ >= *top_) limit_reached_ = true;
}

void DotStuffer::feed(std::string_view raw, std::string& out) {
  if (top_) {
    feed_lines(raw, out);
    return;
  }
  if (raw.empty() || finished_) return;
  // RETR, the hot path of big messages (issue 6, workload 3): the same rules as feed_lines, written
  // straight into `out`, sized once for the worst case (every octet a bare LF, or a '.' that starts
  // a line: at most two out per one in, plus a CR held from the previous piece).
  const std::size_t old = out.size();
  out.resize_and_overwrite(old + 2 * raw.size() + 2, [&](char* base, std::size_t) {
    char* o = base + old;
    const char* p = raw.data();
    const char* const end = p + raw.size();
    if (pending_cr_) {
      pending_cr_ = false;
      if (*p == '\n') {  // CRLF split across pieces
        ++p;
        *o++ = '\r';
        *o++ = '\n';
        line_start_ = true;
      } else {
        *o++ = '\r';  // a bare CR does not end a line; pass it on
        line_start_ = false;
      }
    }
    while (p < end) {
      if (line_start_ && *p == '.') *o++ = '.';  // RFC 1939 §3 byte-stuffing
      const auto* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      if (lf == nullptr) {
        auto n = static_cast<std::size_t>(end - p);
        if (p[n - 1] == '\r') {  // may be the first half of a CRLF: decide with the next octet
          pending_cr_ = true;
          --n;
        }
        std::memcpy(o, p, n);
        o += n;
        if (n != 0) line_start_ = false;
        break;
      }
      auto n = static_cast<std::size_t>(lf - p);
      if (n != 0 && p[n - 1] == '\r') --n;  // CRLF; else bare LF
      std::memcpy(o, p, n);
      o += n;
      *o++ = '\r';
      *o++ = '\n';
      line_start_ = true;
      p = lf + 1;
    }
    return static_cast<std::size_t>(o - base);
  });
}

// The general form, line by line with TOP's accounting (header, blank line, n body lines).
void DotStuffer::feed_lines(std::string_view raw, std::string& out) {
  while (!raw.empty() && !done()) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (raw.front() == '\n') {  // CRLF split across chunks
        raw.remove_prefix(1);
        end_line(out);
        continue;
      }
      out += '\r';  // a bare CR does not end a line; pass it on
      line_start_ = false;
    }
    if (line_start_ && raw.front() == '.') out += '.';  // RFC 1939 §3 byte-stuffing

    const void* lf = std::memchr(raw.data(), '\n', raw.size());
    if (lf == nullptr) {
      std::string_view seg = raw;
      raw = {};
      if (seg.back() == '\r') {  // may be the first half of a CRLF: decide with the next octet
        pending_cr_ = true;
        seg.remove_suffix(1);
      }
      out += seg;
      if (!seg.empty()) line_start_ = false;
      break;
    }
    const auto n = static_cast<std::size_t>(static_cast<const char*>(lf) - raw.data());
    std::string_view content = raw.substr(0, n);
    raw.remove_prefix(n + 1);
    if (!content.empty() && content.back() == '\r') content.remove_suffix(1);  // CRLF; else bare LF
    out += content;
    if (!content.empty()) line_start_ = false;
    end_line(out);
  }
}

void DotStuffer::finish(std::string& out) {
  if (finished_) return;
  finished_ = true;
  if (!limit_reached_) {
    // A final CR is taken as the start of the missing CRLF; any other unfinished line gets one.
    if (pending_cr_) {
      pending_cr_ = false;
      out += "\r\n";
    } else if (!line_start_) {
      out += "\r\n";
    }
  }
  out += ".\r\n";
}

std::uint64_t wire_size(std::string_view raw) {
  std::uint64_t size = raw.size();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) ++size;  // bare LF -> CRLF
  }
  if (!raw.empty() && raw.back() != '\n') size += raw.back() == '\r' ? 1U : 2U;
  return size;
}

bool is_wire_ready(std::string_view raw) {
  if (raw.empty()) return true;
  if (raw.size() < 2 || raw.substr(raw.size() - 2) != "\r\n") return false;
  if (raw.front() == '.') return false;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\n') continue;
    if (i == 0 || raw[i - 1] != '\r') return false;
    if (i + 1 < raw.size() && raw[i + 1] == '.') return false;
  }
  return true;
}

}  // namespace buzon::pop3
