// proto/smtp/data_reader.cpp — DATA and BDAT content readers (see data_reader.hpp).
//
// SECURITY: a state machine over untrusted octets; only the sequence CR LF "." CR LF (with the
//   first CR LF being the end of the previous line or of the DATA command) sets done_. Bare CR and
//   bare LF are content plus an error, never line ends. Output is bounded by max_size.
// STANDARDS: RFC 5321 §2.3.8, §4.1.1.4, §4.5.2, §4.5.3.1.6; RFC 1870 §6.3; RFC 3030 §2.
// LIMITS: see data_reader.hpp.
#include "proto/smtp/data_reader.hpp"

#include <algorithm>

namespace buzon::smtp {

namespace {
constexpr std::string_view kCrlf = "\r\n";
}

std::string_view to_string(ContentError e) {
  switch (e) {
    case ContentError::none: return "none";
    case ContentError::bare_lf: return "bare LF";
    case ContentError::bare_cr: return "bare CR";
    case ContentError::line_too_long: return "line too long";
    case ContentError::too_big: return "too big";
  }
  return "unknown";
}

// ---- Shared accounting -----------------------------------------------------------------------

namespace {

// A run of `run` content octets is added to a line of `line_len` octets and a message of `size`:
// true when the line limit is crossed, at an octet no later than the size limit. Of the two limits
// the one crossed first names the error (ties: the line), so the verdict does not depend on how
// the client's octets were split into reads (found by fuzz/smtp_data.cpp: a long run used to
// report "line too long" when read whole and "too big" when read in pieces).
bool line_limit_first(std::uint64_t line_len, std::uint64_t size, std::size_t run, const ContentLimits& l) {
  const std::uint64_t used = line_len + kCrlf.size();
  const std::uint64_t line_room = used >= l.max_line ? 0 : l.max_line - used;
  const std::uint64_t size_room = size >= l.max_size ? 0 : l.max_size - size;
  return run > line_room && line_room <= size_room;
}

}  // namespace

void ContentCounter::keep(std::string_view s, std::string& out) {
  size_ += s.size();
  if (error_ != ContentError::none) return;
  if (size_ > limits_.max_size) {
    fail(ContentError::too_big);
    return;
  }
  out.append(s);
}

void ContentCounter::text(std::string_view s, std::string& out) {
  if (line_limit_first(line_len_, size_, s.size(), limits_)) fail(ContentError::line_too_long);
  line_len_ += s.size();
  keep(s, out);
}

void ContentCounter::line_end(std::string& out) {
  keep(kCrlf, out);
  line_len_ = 0;
}

// ---- DATA ------------------------------------------------------------------------------------

std::size_t DataReader::feed(std::string_view in, std::string& out) {
  std::size_t i = 0;
  auto content = [&](std::string_view s) {
    line_start_ = false;
    content_.text(s, out);
  };
  while (i < in.size() && !done_) {
    const char c = in[i];
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        ++i;
        if (dot_line_ && content_.line_length() == 0) {  // the line was exactly "." CRLF: end of data
          done_ = true;
          break;
        }
        content_.line_end(out);
        line_start_ = true;
        dot_line_ = false;
        continue;
      }
      // A CR not followed by LF is data, not a line end (and an error); `c` is looked at again.
      content_.fail(ContentError::bare_cr);
      content("\r");
      continue;
    }
    if (c == '\r') {
      pending_cr_ = true;
      ++i;
      continue;
    }
    if (c == '\n') {
      content_.fail(ContentError::bare_lf);  // never a line end: "\n.\n" and friends are plain content
      content("\n");
      ++i;
      continue;
    }
    if (line_start_ && c == '.') {
      dot_line_ = true;  // RFC 5321 §4.5.2: the first dot of a line is removed
      line_start_ = false;
      ++i;
      continue;
    }
    auto j = in.find_first_of(kCrlf, i);
    if (j == std::string_view::npos) j = in.size();
    content(in.substr(i, j - i));
    i = j;
  }
  return i;
}

// ---- BDAT ------------------------------------------------------------------------------------

void BdatReader::start_chunk(std::uint64_t size, bool last) {
  remaining_ = size;
  last_ = last;
  if (remaining_ == 0) finish_if_last();
}

void BdatReader::finish_if_last() {
  if (!last_ || !pending_cr_) return;
  pending_cr_ = false;  // the message ends in a CR that no LF follows
  content_.fail(ContentError::bare_cr);
  content_.count(1);
}

std::size_t BdatReader::feed(std::string_view in, std::string& out) {
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
  const std::string_view chunk = in.substr(0, n);
  std::size_t i = 0;
  while (i < chunk.size()) {
    const char c = chunk[i];
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        ++i;
        content_.line_end(out);
        continue;
      }
      content_.fail(ContentError::bare_cr);
      content_.text("\r", out);
      continue;
    }
    if (c == '\r') {
      pending_cr_ = true;
      ++i;
      continue;
    }
    if (c == '\n') {
      content_.fail(ContentError::bare_lf);
      content_.text("\n", out);
      ++i;
      continue;
    }
    auto j = chunk.find_first_of(kCrlf, i);
    if (j == std::string_view::npos) j = chunk.size();
    content_.text(chunk.substr(i, j - i), out);
    i = j;
  }
  remaining_ -= n;
  if (remaining_ == 0) finish_if_last();
  return n;
}

}  // namespace buzon::smtp
