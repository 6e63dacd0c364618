// proto/smtp/limits.hpp — the named bounds of the SMTP/LMTP protocol layer, in one place.
//
// SECURITY: every bound here is enforced with a reply (or a closed session), never by trusting the
//   peer to stay within it.
// STANDARDS: RFC 5321 §4.5.3.1 (sizes: local part 64, domain 255, path 256, command line 512,
//   reply line 512, text line 1000, 100 recipients at least), §4.5.3.2 (timeouts: 5 minutes for
//   commands, 3 minutes per data block on the client side, 10 minutes for the final reply);
//   RFC 1870 §3 (SIZE adds 26 octets to MAIL), RFC 3461 §4.2/§4.4 (ORCPT up to 500 octets, ENVID
//   up to 100), RFC 4954 §5 (AUTH= adds 500), RFC 3030 §3 (BODY=BINARYMIME adds 16).
// LIMITS: this file is the list; the configurable ones are defaults for [smtp] in the config.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace buzon::smtp {

// Longest command line we accept, in octets including CRLF. RFC 5321 §4.5.3.1.4 says 512, and
// every extension that adds a MAIL/RCPT parameter raises it (SIZE +26, ORCPT +500, ENVID +100,
// AUTH +500 ...); 2048 holds all of them at once, as Postfix's line_length_limit does.
inline constexpr std::size_t kMaxCommandLine = 2048;

// Longest reply line we send, including the code and CRLF (RFC 5321 §4.5.3.1.5).
inline constexpr std::size_t kMaxReplyLine = 512;

// Longest text line of a message, including CRLF (RFC 5321 §4.5.3.1.6). The default of
// [smtp] max_line_length; a message with a longer line is refused after its end (554 5.6.0).
inline constexpr std::size_t kMaxTextLine = 1000;

// Path sizes (RFC 5321 §4.5.3.1.1-3), in octets (UTF-8 octets with SMTPUTF8).
inline constexpr std::size_t kMaxLocalPart = 64;
inline constexpr std::size_t kMaxDomain = 255;
inline constexpr std::size_t kMaxPath = 256;  // "<" and ">" included
inline constexpr std::size_t kMaxDomainLabel = 63;

// EHLO/HELO/LHLO argument (a domain or an address literal).
inline constexpr std::size_t kMaxHeloName = 255;

// DSN parameters (RFC 3461 §4.2, §4.4): the xtext values, before decoding.
inline constexpr std::size_t kMaxEnvid = 100;
inline constexpr std::size_t kMaxOrcpt = 500;

// AUTH= parameter of MAIL (RFC 4954 §5), the xtext value.
inline constexpr std::size_t kMaxAuthParam = 500;

// Recipients per message: RFC 5321 §4.5.3.1.8 requires at least 100. [smtp] max_recipients.
inline constexpr std::size_t kMaxRecipients = 100;

// Message size ([smtp] max_message_size default; announced in EHLO SIZE, RFC 1870).
inline constexpr std::uint64_t kMaxMessageSize = 10 * 1024 * 1024;

// Errors (syntax, unknown commands, bad sequence, refused recipients) before "421 4.7.0" and
// close ([smtp] max_errors; Postfix's smtpd_hard_error_limit).
inline constexpr unsigned kMaxErrors = 20;

// RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command. We use the same
// bound for each read while receiving message data ([smtp] command_timeout, data_timeout).
inline constexpr std::chrono::seconds kCommandTimeout{300};
inline constexpr std::chrono::seconds kDataTimeout{300};
inline constexpr std::chrono::seconds kMaxSessionTime{3600};

}  // namespace buzon::smtp
