// proto/pop3/dot_stuffer.hpp — streaming encoder from a stored message's raw octets to the body
// of a POP3 multi-line reply (RETR, TOP), and the matching size computation for LIST/STAT.
//
// The stored octets may end lines with CRLF or a bare LF; the wire needs CRLF, byte-stuffing and
// a final ".\r\n". DotStuffer repairs as it streams (as Dovecot's fetch_callback does): bare LF
// becomes CRLF, a line starting with '.' gets another '.', a missing final line end is added.
// Any chunking of the input gives the same output.
//
// SECURITY: the message is untrusted (anyone can mail anything). Whatever it holds, the output
//   is a well-formed multi-line body: the only ".\r\n" line is the terminator finish() appends,
//   and the output never ends without CRLF before it. A bare CR is passed on unchanged (it does
//   not end a line on the wire); a CR that is the message's very last octet is completed to CRLF.
// STANDARDS: RFC 1939 §3 (multi-line responses, byte-stuffing), §7 (TOP: header, blank line, n
//   body lines), RFC 5322 §2.1 (header and body separated by an empty line); RFC 6856 §2.1 (LIST
//   size SHOULD match the octets RETR sends, not counting byte-stuffing).
// LIMITS: holds at most one pending CR between feed() calls; output grows by at most one octet
//   per input octet plus the line ends it completes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace buzon::pop3 {

class DotStuffer {
 public:
  // top_body_lines: for TOP n, send the header, the blank line and at most n body lines
  // (n == 0: header and blank line only). nullopt: the whole message (RETR).
  explicit DotStuffer(std::optional<std::uint64_t> top_body_lines = std::nullopt);

  // Appends the wire form of the next raw octets to `out`. Input after done() is ignored.
  void feed(std::string_view raw, std::string& out);
  // Completes the last line if needed and appends ".\r\n". Later calls do nothing.
  void finish(std::string& out);
  // True once the TOP limit is reached (the caller may stop reading the message) or after
  // finish().
  bool done() const { return limit_reached_ || finished_; }

 private:
  void end_line(std::string& out);
  void feed_lines(std::string_view raw, std::string& out);

  std::optional<std::uint64_t> top_;
  std::uint64_t body_lines_ = 0;
  bool line_start_ = true;   // nothing of the current line has been written yet
  bool pending_cr_ = false;  // the last octet fed was a CR whose successor is not known yet
  bool in_body_ = false;     // the header/body separator has been passed
  bool limit_reached_ = false;
  bool finished_ = false;
};

// The octets of `raw` as DotStuffer sends them, without byte-stuffing and without the final
// ".\r\n": each bare LF counts 2, a missing final line end counts 2 (1 after a final CR).
// This is the size LIST and STAT report (RFC 1939 §5, RFC 6856 §2.1).
std::uint64_t wire_size(std::string_view raw);

// True when DotStuffer would send `raw` unchanged before the ".\r\n" terminator: every LF is
// preceded by CR, no line starts with '.', and `raw` is empty or ends in CRLF. Such a message can
// be streamed as is (sendfile), then ".\r\n".
bool is_wire_ready(std::string_view raw);

}  // namespace buzon::pop3
