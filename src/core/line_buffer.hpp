// core/line_buffer.hpp — bounded, incremental splitter of network input into lines.
//
// A session appends whatever octets a read returned and then calls next() until it returns
// nullopt. Lines come out without their terminator. A line longer than the limit is never held
// in memory: its octets are dropped as they arrive and ONE too_long event is reported when its
// terminator is finally seen, so replies stay in step with a pipelining client.
//
// SECURITY: the input is untrusted network data. Memory is bounded: when the caller drains
//   next() before each append(), buffered() never exceeds max() + the size of the last append.
//   Content is passed on byte-exact (NUL and 8-bit octets included); the protocol parser judges it.
// STANDARDS: RFC 1939 §3 and RFC 2449 §4 (POP3 lines end in CRLF; many clients send LF alone,
//   which LineEnd::crlf_or_lf accepts); RFC 5321 §2.3.8 and §4.1.1.4 (SMTP: only CRLF ends a line;
//   a bare CR or LF is an error — LineEnd::strict_crlf, which also defeats "SMTP smuggling").
// LIMITS: max() counts the octets of a line including a two-octet CRLF, whatever terminator the
//   line really had, so a line's content may be at most max() - 2 octets. max() is at least 2.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace buzon {

enum class LineEnd {
  crlf_or_lf,   // POP3: CRLF or a bare LF ends a line; one CR right before the LF is stripped.
  strict_crlf,  // SMTP: only CRLF ends a line; a CR or LF elsewhere makes the line an error.
};

enum class LineStatus {
  ok,        // text holds the line.
  too_long,  // the line exceeded max(); its content was discarded (text is empty).
  bare_lf,   // strict_crlf only: the line held a LF not preceded by CR; discarded.
  bare_cr,   // strict_crlf only: the line held a CR not followed by LF; discarded.
};

struct Line {
  LineStatus status = LineStatus::ok;
  std::string text;      // content without the terminator; empty unless status == ok
  bool lf_only = false;  // crlf_or_lf: the line ended with a LF alone (informational)
};

class LineBuffer {
 public:
  // max_line: the longest accepted line in octets, including a CRLF terminator.
  explicit LineBuffer(std::size_t max_line, LineEnd mode = LineEnd::crlf_or_lf);

  // Adds raw octets. Call next() until it returns nullopt before the next append().
  void append(std::string_view bytes);

  // The next complete line, or nullopt when more input is needed.
  std::optional<Line> next();

  // Octets held and not yet returned as a line.
  std::size_t buffered() const { return buf_.size() - pos_; }

  // Returns and clears every unconsumed raw octet (after STARTTLS they must be dropped; RFC 3207
  // §4.2, RFC 2595 §4) and forgets a partially discarded overlong line.
  std::string take_rest();

  // Changes the limit for the line being read and those after it (SASL responses may be longer
  // than commands). Values below 2 are raised to 2.
  void set_max(std::size_t max_line);
  std::size_t max() const { return max_; }
  LineEnd mode() const { return mode_; }

  // True while the octets of an overlong line are being dropped (its too_long event is pending).
  bool discarding() const { return discarding_; }

 private:
  std::optional<std::size_t> find_end(std::size_t from) const;
  void compact();

  std::string buf_;
  std::size_t pos_ = 0;   // start of the current (unreturned) line in buf_
  std::size_t scan_ = 0;  // where the search for a terminator resumes
  std::size_t max_;
  LineEnd mode_;
  bool discarding_ = false;
};

}  // namespace buzon
