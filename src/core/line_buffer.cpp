// core/line_buffer.cpp — bounded, incremental line splitter (see line_buffer.hpp).
//
// SECURITY: untrusted input; every path either returns a line of at most max() - 2 octets or
//   drops octets, so a peer that never sends a terminator cannot grow the buffer.
// STANDARDS: RFC 1939 §3, RFC 2449 §4 (POP3), RFC 5321 §2.3.8 (SMTP: CRLF only).
// LIMITS: max() includes the CRLF; see line_buffer.hpp.
#include "core/line_buffer.hpp"

#include <algorithm>
#include <utility>

namespace buzon {

namespace {

constexpr std::size_t kMinMax = 2;  // room for the CRLF alone

}  // namespace

LineBuffer::LineBuffer(std::size_t max_line, LineEnd mode)
    : max_(std::max(max_line, kMinMax)), mode_(mode) {}

void LineBuffer::append(std::string_view bytes) {
  compact();
  buf_.append(bytes);
}

void LineBuffer::compact() {
  if (pos_ == 0) return;
  buf_.erase(0, pos_);
  scan_ -= std::min(scan_, pos_);
  pos_ = 0;
}

// Index of the LF that ends the current line, searching from `from`.
std::optional<std::size_t> LineBuffer::find_end(std::size_t from) const {
  if (mode_ == LineEnd::crlf_or_lf) {
    const auto i = buf_.find('\n', from);
    if (i == std::string::npos) return std::nullopt;
    return i;
  }
  const auto i = buf_.find("\r\n", from);
  if (i == std::string::npos) return std::nullopt;
  return i + 1;
}

std::optional<Line> LineBuffer::next() {
  for (;;) {
    if (discarding_) {
      if (const auto end = find_end(std::max(scan_, pos_))) {
        pos_ = *end + 1;
        scan_ = pos_;
        discarding_ = false;
        Line line;
        line.status = LineStatus::too_long;
        return line;
      }
      // Drop the octets of the overlong line; in strict mode keep a final CR, which may be the
      // first half of the CRLF that ends it.
      const bool keep_cr =
          mode_ == LineEnd::strict_crlf && buf_.size() > pos_ && buf_.back() == '\r';
      buf_.clear();
      if (keep_cr) buf_.push_back('\r');
      pos_ = 0;
      scan_ = 0;
      return std::nullopt;
    }

    const auto end = find_end(std::max(scan_, pos_));
    if (!end) {
      // Without a terminator, max() pending octets already make the content at least
      // max() - 1 octets long (one may be the CR of a CRLF): the line is too long whatever
      // follows. Deciding it here keeps memory bounded and gives the same result as seeing the
      // whole line at once.
      if (buffered() >= max_) {
        discarding_ = true;
        continue;
      }
      scan_ = buf_.size();
      if (mode_ == LineEnd::strict_crlf && scan_ > pos_) --scan_;  // a CR may pair with a LF
      return std::nullopt;
    }

    std::string_view raw(buf_.data() + pos_, *end - pos_);  // without the LF
    pos_ = *end + 1;
    scan_ = pos_;

    Line line;
    std::string_view content = raw;
    if (!content.empty() && content.back() == '\r') {
      content.remove_suffix(1);
    } else {
      line.lf_only = true;  // only reachable in crlf_or_lf mode
    }
    if (content.size() > max_ - 2) {
      line.status = LineStatus::too_long;
      line.lf_only = false;
      return line;
    }
    if (mode_ == LineEnd::strict_crlf) {
      // RFC 5321 §2.3.8: CR and LF appear only together as CRLF.
      if (content.find('\n') != std::string_view::npos) {
        line.status = LineStatus::bare_lf;
        return line;
      }
      if (content.find('\r') != std::string_view::npos) {
        line.status = LineStatus::bare_cr;
        return line;
      }
    }
    line.text.assign(content);
    return line;
  }
}

std::string LineBuffer::take_rest() {
  std::string rest = buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  scan_ = 0;
  discarding_ = false;
  return rest;
}

void LineBuffer::set_max(std::size_t max_line) { max_ = std::max(max_line, kMinMax); }

}  // namespace buzon
