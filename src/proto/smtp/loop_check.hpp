// proto/smtp/loop_check.hpp — mail loop detection on a received message's header (RFC 5321 §6.3):
// too many Received: fields, or a Delivered-To: field naming the address being delivered to again
// (the qmail/Postfix convention: each local delivery prepends Delivered-To:, so a message coming
// back to the same mailbox through a forward or an alias carries it already).
//
// SECURITY  The header is untrusted: parsing is linear, bounded by the message, and stops at the
//           first empty line; folded fields are unfolded; field names compare case-insensitively.
// STANDARDS RFC 5321 §6.3 (loop detection by counting Received:, a large limit), §4.4; RFC 5322
//           §2.2.3 (folding).
// THREADS   Pure.
// LIMITS    None beyond the message size.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace buzon::smtp {

// [smtp] max_hops default: RFC 5321 §6.3 asks for a large limit (Postfix and Exim use 50 or more).
inline constexpr unsigned kDefaultMaxHops = 50;

enum class LoopVerdict {
  ok,
  delivered_to,   // a Delivered-To: equals one of the addresses (ASCII case-insensitive)
  too_many_hops,  // at least max_hops Received: fields
};

struct LoopCheck {
  LoopVerdict verdict = LoopVerdict::ok;
  std::string detail;  // for the log: the address, or "N Received: fields"
};

// `message` is the data as received (CRLF or LF line ends); `addresses` the addresses this copy
// is delivered to (as they will appear in its own Delivered-To:). Refuse with 554 5.4.6 (RFC 3463
// X.4.6 "Routing loop detected") when the verdict is not ok.
LoopCheck check_loop(std::string_view message, std::span<const std::string> addresses, unsigned max_hops);

}  // namespace buzon::smtp
