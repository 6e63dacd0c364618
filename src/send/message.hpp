// send/message.hpp — what `buzon send` needs to know about an RFC 5322 message: its header
// fields, the addresses in To/Cc/Bcc/From, and the message with Bcc removed. Pure.
//
// SECURITY  The message comes from the local user (trusted to send, not to be well-formed):
//           parsing is tolerant and bounded by the input; nothing here rewrites the body.
// STANDARDS RFC 5322 §2.2 (header fields, folding), §3.4 (address-list, group, angle-addr,
//           comments, quoted strings), §3.6.3 (Bcc: "removed ... before the message is sent" —
//           the first of the three methods), RFC 5321 §4.1.2 (source routes are ignored).
// LIMITS    None beyond the message size (the caller bounds it).
#pragma once

#include "proto/smtp/submission.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace buzon::send {

struct HeaderField {
  std::string name;   // as written
  std::string value;  // unfolded (CRLF/LF + WSP -> the WSP), without the leading space
};

// The header fields (up to the first empty line; the whole text when there is none).
std::vector<HeaderField> parse_header(std::string_view message);

// The addr-specs of an address-list field value: "A <a@x>, (c) b@y, G: c@z, d@w;" -> a@x b@y c@z d@w
// (shared with the submission server's From:/Sender: checks).
using smtp::parse_address_list;

// Recipients for `sendmail -t`: every address in To, Cc and Bcc (and Resent-To/-Cc/-Bcc when the
// message has Resent- fields, RFC 5322 §3.6.6), without duplicates, in order.
std::vector<std::string> header_recipients(std::string_view message);

// The address of the first From field, or "".
std::string header_from(std::string_view message);

// The message without Bcc (and Resent-Bcc) fields, continuation lines included.
std::string strip_bcc(std::string_view message);

// sendmail without -i: a line holding a single "." ends the message read from standard input.
// Returns the message up to (not including) that line.
std::string cut_at_dot_line(std::string_view input);

}  // namespace buzon::send
