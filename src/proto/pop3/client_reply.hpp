// proto/pop3/client_reply.hpp — the client side's pure POP3 pieces: status-line parsing (+OK,
// -ERR, SASL "+ " continuations, RFC 2449 response codes), the streaming multi-line decoder that
// un-stuffs a RETR body without holding it, CAPA parsing, scan and unique-id listings, and the APOP
// greeting timestamp.
//
// SECURITY  Everything here parses what a server sent: untrusted. Status lines are bounded by the
//           caller (LineBuffer); the multi-line decoder holds at most two octets of state and never
//           buffers content, so a hostile server cannot make the client grow memory; listings are
//           checked against RFC 1939's grammar (numbers fit in 64 bits, UIDs 1..70 of 0x21..0x7E).
// STANDARDS RFC 1939 §3 (status indicators, multi-line responses, byte-stuffing: "if the line
//           starts with '.' and is not '.CRLF', the first '.' is stripped"), §5 (scan listing),
//           §7 (unique-id listing, APOP timestamp "<...>"); RFC 2449 §5-§6 (CAPA tags), §8
//           (response codes: "[" code "]" after "-ERR "); RFC 3206 (SYS/TEMP, SYS/PERM, AUTH);
//           RFC 5034 §4 ("+ " base64 challenges); RFC 2595 §4 (STLS).
// LIMITS    Status and listing lines as the caller's LineBuffer bounds them (kMaxClientLine).
#pragma once

#include "proto/pop3/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace buzon::pop3 {

// Longest status or listing line the client accepts, including CRLF. RFC 2449 §4 says 512; real
// servers send longer CAPA IMPLEMENTATION lines and SASL challenges, so we allow more.
inline constexpr std::size_t kMaxClientLine = 64 * 1024;

enum class Status {
  ok,        // "+OK"
  err,       // "-ERR"
  cont,      // "+ " (or a lone "+"): a SASL challenge, RFC 5034 §4
};

struct StatusLine {
  Status status = Status::err;
  RespCode code = RespCode::none;  // a known RFC 2449/3206/6856 code, else none
  std::string code_text;           // the code as sent ("IN-USE", "SYS/TEMP", "X-FOO"), "" if none
  std::string text;                // the rest, after the code; for cont: the base64 challenge
};

// Parses one status line (without CRLF). nullopt: the line is neither +OK, -ERR nor "+ "
// (a protocol violation). "+OK" and "-ERR" match case-insensitively, as RFC 1939 §3 asks;
// "+OKAY" is not "+OK".
std::optional<StatusLine> parse_status_line(std::string_view line);

// "<1896.697170952@dbc.mtview.ca.us>" from a greeting's text (RFC 1939 §7), or nullopt. The
// timestamp must be '<' printable-ASCII-without-'<'/'>' '>' and hold an '@' (msg-id syntax).
std::optional<std::string> apop_timestamp(std::string_view greeting_text);

// (The digest itself is auth::apop_digest, shared with the server.)

// ---- Multi-line bodies (RFC 1939 §3) --------------------------------------------------------

// Output line ends of MultiLineDecoder.
enum class LineEnds {
  wire,  // as sent: CRLF (a bare LF, which a broken server may send, stays a bare LF)
  lf,    // CRLF becomes LF (how Unix delivery agents — mpop, fetchmail, procmail — store mail)
};

// Streaming decoder of a multi-line body: removes byte-stuffing, finds the terminating ".CRLF"
// and optionally converts CRLF to LF. Any split of the input gives the same output. A line ends
// at LF (a CR before it belongs to the line end); a CR not followed by LF is data. A dot line ended
// by a bare LF (".\n") terminates too, as lenient clients accept it.
class MultiLineDecoder {
 public:
  explicit MultiLineDecoder(LineEnds ends = LineEnds::wire) : ends_(ends) {}

  // Decodes from `in`, appending content to `out`. Returns the octets consumed: all of `in`, or
  // fewer when the terminator was found (done() is then true and the rest belongs to the next
  // reply).
  std::size_t feed(std::string_view in, std::string& out);
  bool done() const { return state_ == St::done; }
  // Octets of content produced so far, and octets consumed from the wire (stuffing, terminator
  // and all).
  std::uint64_t content_octets() const { return content_; }
  std::uint64_t wire_octets() const { return wire_; }
  // Number of content lines seen so far (complete lines only).
  std::uint64_t lines() const { return lines_; }
  void reset() { *this = MultiLineDecoder(ends_); }

 private:
  enum class St { line_start, dot, dot_cr, mid, cr, done };
  void put(std::string& out, char c) {
    out.push_back(c);
    ++content_;
  }
  void line_end(std::string& out, bool had_cr);

  LineEnds ends_;
  St state_ = St::line_start;
  std::uint64_t content_ = 0, wire_ = 0, lines_ = 0;
};

// Un-stuffs one line of a multi-line listing (CAPA, LIST, UIDL): nullopt for the terminator ".",
// else the line without its stuffing dot.
std::optional<std::string_view> unstuff_line(std::string_view line);

// ---- CAPA (RFC 2449 §5-§6) ----------------------------------------------------------------

struct Capabilities {
  bool known = false;          // CAPA answered +OK (else everything below is a guess)
  bool top = false, user = false, uidl = false, pipelining = false, resp_codes = false;
  bool auth_resp_code = false, stls = false, utf8 = false;
  std::vector<std::string> sasl;      // upper-cased mechanism names
  std::optional<long> login_delay;    // seconds
  std::string expire;                 // "NEVER", "0", "30 USER", "" when absent
  std::string implementation;

  bool has_sasl(std::string_view mech) const;
};

// Parses the lines of a CAPA body (already un-stuffed, terminator removed). Tags are matched
// case-insensitively; unknown tags are ignored; a line is at most used once per tag.
Capabilities parse_capa(std::span<const std::string> lines);

// ---- Listings (RFC 1939 §5, §7) -----------------------------------------------------------

// "msg octets" (extra words after the size are allowed, RFC 1939 §5). nullopt when malformed.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_scan_line(std::string_view line);
// "msg uid" where uid is 1..70 octets of 0x21..0x7E. nullopt when malformed.
std::optional<std::pair<std::uint64_t, std::string>> parse_uid_line(std::string_view line);

}  // namespace buzon::pop3
