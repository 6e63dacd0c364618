// proto/smtp/data_reader.hpp — the message readers (pure): DataReader frames the DATA content
// (dot-unstuffing, only <CRLF>.<CRLF> ends it) and BdatReader frames BDAT chunks (an exact octet
// count each). Both check the content and enforce the size limit while it streams in.
//
// Contract (after Beast's basic_parser::put): feed() consumes octets and returns how many it
// used; octets past the end of the message (or of the chunk) are NOT consumed — they are the next
// pipelined command. Content is appended to `out` exactly as it will be stored: CRLF line ends,
// stuffed dots removed. After the first error nothing more is appended, but the input is still
// framed to its end, so the session stays in step with the client and the reply comes after the
// end of the data (RFC 5321 §4.1.1.4, RFC 3030 §2: accept and discard, then reply).
//
// SECURITY: this is where "SMTP smuggling" (2023, CVE-2023-51764/51765/51766) is stopped. Only
//   CR LF "." CR LF ends DATA; a bare LF or a bare CR never ends a line, never starts one, and
//   makes the message an error (bare_lf / bare_cr), so every variant of the published research —
//   <LF>.<LF>, <LF>.<CR><LF>, <CR><LF>.<LF>, <CR>.<CR>, <CR><LF>.<CR>, <CR>.<CR><LF>, <LF>.<CR>,
//   <CR>.<LF> — is framed as message content and the whole message is refused; nothing after such
//   a sequence is ever read as a command. The same CRLF discipline applies to BDAT content, where
//   framing is by count (RFC 3030) but a stored message with bare CR/LF could be replayed by a
//   relay as DATA later. Memory: at most max_size octets are appended to `out`.
// STANDARDS: RFC 5321 §2.3.8 (CR and LF only as CRLF), §4.1.1.4 (DATA, end of data), §4.5.2
//   (transparency: a leading dot is removed), §4.5.3.1.6 (text line 1000 octets incl. CRLF);
//   RFC 1870 §6.3 (SIZE enforced while receiving: 552 after the end); RFC 3030 §2 (BDAT).
// LIMITS: Limits::max_line (octets of a text line including CRLF, after unstuffing) and
//   Limits::max_size (octets appended, i.e. the stored message without our trace headers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace buzon::smtp {

enum class ContentError {
  none,
  bare_lf,        // a LF not preceded by CR (RFC 5321 §2.3.8)
  bare_cr,        // a CR not followed by LF
  line_too_long,  // a text line over max_line octets including CRLF (§4.5.3.1.6)
  too_big,        // more than max_size octets (RFC 1870)
};

std::string_view to_string(ContentError e);

struct ContentLimits {
  std::size_t max_line = 1000;
  std::uint64_t max_size = 10 * 1024 * 1024;
};

// What both readers check and count on the content they pass on: the line length (RFC 5321
// §4.5.3.1.6), the size (RFC 1870) and the first error, which sticks. After an error octets are
// still counted (size()) but no longer kept.
class ContentCounter {
 public:
  explicit ContentCounter(ContentLimits limits) : limits_(limits) {}
  // Text of the current line.
  void text(std::string_view s, std::string& out);
  // The CRLF that ends the current line.
  void line_end(std::string& out);
  void fail(ContentError e) {
    if (error_ == ContentError::none) error_ = e;
  }
  // Octets that are counted but never kept (a CR ending a BDAT message).
  void count(std::uint64_t n) { size_ += n; }
  ContentError error() const { return error_; }
  std::uint64_t size() const { return size_; }
  std::size_t line_length() const { return line_len_; }

 private:
  void keep(std::string_view s, std::string& out);

  ContentLimits limits_;
  std::size_t line_len_ = 0;  // content octets of the current line (no CRLF, no stuffed dot)
  std::uint64_t size_ = 0;
  ContentError error_ = ContentError::none;
};

// DATA content reader. Starts at the beginning of a line (the DATA command's CRLF precedes it, so
// "DATA\r\n.\r\n" is an empty message).
class DataReader {
 public:
  explicit DataReader(ContentLimits limits) : content_(limits) {}

  // Consumes octets of `in` up to and including the end-of-data line, appending content to `out`.
  // Returns the number of octets consumed (less than in.size() only when done()).
  std::size_t feed(std::string_view in, std::string& out);

  bool done() const { return done_; }
  ContentError error() const { return content_.error(); }
  // Octets of content seen (after unstuffing, CRLF included), also those discarded after an error.
  std::uint64_t size() const { return content_.size(); }

 private:
  ContentCounter content_;
  bool done_ = false;
  bool line_start_ = true;   // nothing of the current line seen yet
  bool dot_line_ = false;    // the current line began with a '.' that was removed
  bool pending_cr_ = false;  // the previous octet was a CR not yet known to be part of a CRLF
};

// BDAT content reader: one object per message; start_chunk() for each BDAT command.
class BdatReader {
 public:
  explicit BdatReader(ContentLimits limits) : content_(limits) {}

  // A BDAT command announced `size` octets (`last`: BDAT ... LAST).
  void start_chunk(std::uint64_t size, bool last);
  // Consumes up to the rest of the current chunk from `in`, appending content to `out`.
  std::size_t feed(std::string_view in, std::string& out);
  // True when the current chunk has been read completely. After the LAST chunk the message is
  // complete: a CR at its very end is a bare CR.
  bool chunk_done() const { return remaining_ == 0; }
  bool last() const { return last_; }
  std::uint64_t remaining() const { return remaining_; }

  ContentError error() const { return content_.error(); }
  std::uint64_t size() const { return content_.size(); }

 private:
  void finish_if_last();

  ContentCounter content_;
  std::uint64_t remaining_ = 0;
  bool last_ = false;
  bool pending_cr_ = false;
};

}  // namespace buzon::smtp
