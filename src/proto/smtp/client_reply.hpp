// proto/smtp/client_reply.hpp — the client side's pure SMTP pieces: the incremental reply parser
// (single and multi-line replies, RFC 3463 enhanced codes), the EHLO keyword parser, and the DATA
// encoder that turns a message into its wire form (CRLF, dot-stuffing, final ".").
//
// SECURITY  Replies are untrusted: each line must be "ddd" [SP|-] text with the same code on every
//           line of one reply; lines are bounded by the caller (kMaxClientReplyLine), a reply by
//           kMaxReplyLines. The DATA encoder never emits a bare CR or LF (RFC 5321 §2.3.8: a lone
//           CR or LF becomes CRLF), so what we send cannot be read two ways ("SMTP smuggling").
// STANDARDS RFC 5321 §4.2 (reply syntax), §4.1.1.4 and §4.5.2 (DATA, transparency), §2.3.8;
//           RFC 3463 (enhanced status codes), RFC 2034; RFC 1870 (SIZE), RFC 2920 (PIPELINING),
//           RFC 3207 (STARTTLS), RFC 4954 (AUTH keyword), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8).
// LIMITS    kMaxClientReplyLine octets per reply line, kMaxReplyLines lines per reply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::smtp {

inline constexpr std::size_t kMaxClientReplyLine = 4096;
inline constexpr std::size_t kMaxReplyLines = 1000;

struct ClientReply {
  int code = 0;
  std::string enhanced;            // "2.1.5" when the (last) line starts with one, else ""
  std::vector<std::string> lines;  // text of each line, without code, separator and enhanced code
  bool positive() const { return code >= 200 && code < 300; }
  bool intermediate() const { return code >= 300 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  // "550 5.1.1 no such user" (first line, printable) for messages.
  std::string str() const;
};

// Feeds reply lines one at a time (without CRLF).
class ReplyParser {
 public:
  enum class Step { more, done, error };
  Step feed(std::string_view line);
  // The finished reply (after Step::done); resets the parser.
  ClientReply take();
  const std::string& error() const { return error_; }

 private:
  ClientReply cur_;
  std::string error_;
};

struct EhloInfo {
  bool esmtp = false;  // EHLO worked (else HELO)
  bool pipelining = false, starttls = false, eightbitmime = false, smtputf8 = false;
  bool enhanced_codes = false, dsn = false, chunking = false;
  std::optional<std::uint64_t> size;  // SIZE with a limit (0 = no fixed limit)
  std::vector<std::string> auth;      // upper-cased mechanisms
  bool has_auth(std::string_view mech) const;
};
EhloInfo parse_ehlo(const ClientReply& reply);

// Message -> DATA wire form: every line end (CRLF, LF, CR) becomes CRLF, a line starting with
// '.' gets another '.', and finish() completes the last line and appends ".\r\n".
class DataEncoder {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  // Octets of the message as sent, without stuffing and the final "." line (for SIZE=).
  std::uint64_t octets() const { return octets_; }

 private:
  bool line_start_ = true;
  bool pending_cr_ = false;
  std::uint64_t octets_ = 0;
};

// The wire size of a message (DataEncoder::octets() of it), for MAIL FROM SIZE=.
std::uint64_t data_octets(std::string_view message);

}  // namespace buzon::smtp
