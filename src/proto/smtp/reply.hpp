// proto/smtp/reply.hpp — SMTP/LMTP reply formatting (pure) and the RFC 3463 enhanced status code
// table. No reply text with a status code is written by hand anywhere else: sessions pick a
// named Enhanced value from `esc::` and call format_reply().
//
// SECURITY: reply text may carry values that came from outside (an address, a store error); every
//   function here replaces CR, LF and other control characters with a space, replaces octets
//   >= 0x80 with '?' unless the transaction is SMTPUTF8 (RFC 6531 §3.7.4), and bounds each line to
//   kMaxReplyLine octets without splitting a UTF-8 sequence, so a peer cannot inject reply lines.
// STANDARDS: RFC 5321 §4.2 (reply lines: "code SP text" and "code-text" continuation lines),
//   §4.5.3.1.5 (512 octets per reply line); RFC 2034 §3 (enhanced status codes preface the text
//   of every reply except the greeting and the EHLO/HELO/LHLO reply); RFC 3463 §3.1-§3.8 (the
//   class.subject.detail table) and RFC 5248 (registry); RFC 6531 §3.5 (X.6.7).
// LIMITS: kMaxReplyLine (limits.hpp) per line.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace buzon::smtp {

// RFC 3463 "subject.detail"; the class digit (2, 4 or 5) is the first digit of the reply code.
struct Enhanced {
  std::uint8_t subject = 0;
  std::uint16_t detail = 0;
  friend bool operator==(const Enhanced&, const Enhanced&) = default;
};

namespace esc {
inline constexpr Enhanced kOther{0, 0};               // X.0.0 Other undefined status
inline constexpr Enhanced kAddressOther{1, 0};        // X.1.0 Other address status (sender ok)
inline constexpr Enhanced kBadMailbox{1, 1};          // X.1.1 Bad destination mailbox address
inline constexpr Enhanced kBadRecipientSyntax{1, 3};  // X.1.3 Bad destination mailbox address syntax
inline constexpr Enhanced kDestinationValid{1, 5};    // X.1.5 Destination address valid
inline constexpr Enhanced kBadSenderSyntax{1, 7};     // X.1.7 Bad sender's mailbox address syntax
inline constexpr Enhanced kMailboxFull{2, 2};         // X.2.2 Mailbox full
inline constexpr Enhanced kSystemOther{3, 0};         // X.3.0 Other or undefined mail system status
inline constexpr Enhanced kSystemFull{3, 1};          // X.3.1 Mail system full
inline constexpr Enhanced kNotAccepting{3, 2};        // X.3.2 System not accepting network messages
inline constexpr Enhanced kTooBig{3, 4};              // X.3.4 Message too big for system
inline constexpr Enhanced kNetworkOther{4, 0};        // X.4.0 Other or undefined network or routing status
inline constexpr Enhanced kBadConnection{4, 2};       // X.4.2 Bad connection (timeouts)
inline constexpr Enhanced kProtocolOther{5, 0};       // X.5.0 Other or undefined protocol status
inline constexpr Enhanced kInvalidCommand{5, 1};      // X.5.1 Invalid command (bad sequence too)
inline constexpr Enhanced kSyntaxError{5, 2};         // X.5.2 Syntax error
inline constexpr Enhanced kTooManyRecipients{5, 3};   // X.5.3 Too many recipients
inline constexpr Enhanced kInvalidArguments{5, 4};    // X.5.4 Invalid command arguments
inline constexpr Enhanced kMediaOther{6, 0};          // X.6.0 Other or undefined media error
inline constexpr Enhanced kNonAsciiAddress{6, 7};     // X.6.7 Non-ASCII addresses not permitted (RFC 6531)
inline constexpr Enhanced kSecurityOther{7, 0};       // X.7.0 Other or undefined security status
inline constexpr Enhanced kNotAuthorized{7, 1};       // X.7.1 Delivery not authorized, message refused
}  // namespace esc

// A reply as a value: sessions build these, format_reply() serialises them.
struct Reply {
  int code = 250;
  Enhanced status{};
  std::string text;
};

// "<code> <class>.<subject>.<detail> <text>\r\n". For 3xx codes (354: no enhanced class exists)
// the status is left out. `utf8`: octets >= 0x80 may be sent (SMTPUTF8 transaction).
std::string format_reply(int code, Enhanced status, std::string_view text, bool utf8 = false);
std::string format_reply(const Reply& r, bool utf8 = false);

// "<code> <text>\r\n" without an enhanced status: the greeting and the HELO reply (RFC 2034 §3).
std::string format_plain(int code, std::string_view text, bool utf8 = false);

// A multi-line reply (RFC 5321 §4.2.1): "<code>-<line>\r\n" ... "<code> <last>\r\n". Used for the
// EHLO/LHLO reply, whose lines are keywords and carry no enhanced status. An empty list gives
// "<code>\r\n".
std::string format_multiline(int code, std::span<const std::string> lines);

// The enhanced status "c.s.d" for a reply code, e.g. "5.1.1"; "" for 1xx/3xx codes.
std::string enhanced_string(int code, Enhanced status);

}  // namespace buzon::smtp
