// proto/pop3/limits.hpp — the named bounds of the POP3 protocol layer, in one place.
//
// SECURITY: every bound here is enforced with an -ERR reply (or a closed session), never by
//   trusting the peer to stay within it.
// STANDARDS: RFC 1939 §3 (40-octet arguments, 512-octet responses, 10-minute autologout),
//   RFC 1939 §7 (unique-id of 1..70 characters 0x21..0x7E), RFC 2449 §4 (255-octet commands,
//   512-octet response lines incl. CRLF), RFC 5034 §4 (SASL responses), RFC 4422 §3.1 (mechanism
//   names of at most 20 characters).
// LIMITS: this file is the list.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace buzon::pop3 {

// Longest command line we accept, in octets including CRLF (RFC 2449 §4: servers that implement
// CAPA MUST accept 255). Feed this to LineBuffer for command input.
inline constexpr std::size_t kMaxCommandLine = 255;

// Longest argument of most commands (RFC 1939 §3). Message numbers, TOP line counts, SASL
// mechanism names and LANG ranges are held to it. User names (USER, APOP) are bounded by the
// command line only: RFC 2449 §4 lifted the RFC 1939 limits and real user names (full e-mail
// addresses) can exceed 40 octets. PASS and the AUTH initial response are bounded by the line.
inline constexpr std::size_t kMaxArgLength = 40;

// Longest SASL client response line, in octets including CRLF (RFC 5034 §4 only requires 255 for
// the AUTH command itself; continuation lines carry base64 of e.g. SCRAM or GSSAPI tokens).
inline constexpr std::size_t kMaxAuthLine = 16384;

// Longest response line we send, including CRLF (RFC 1939 §3, RFC 2449 §4). reply.cpp truncates
// free text so that a status line never exceeds it; also the bound for each CAPA line.
inline constexpr std::size_t kMaxReplyLine = 512;

// Unique-id listing (RFC 1939 §7): 1..70 octets in 0x21..0x7E.
inline constexpr std::size_t kMinUidLength = 1;
inline constexpr std::size_t kMaxUidLength = 70;

// SASL mechanism names (RFC 4422 §3.1): 1..20 of [A-Z0-9-_].
inline constexpr std::size_t kMaxSaslMechanismName = 20;

// Commands that fail to parse or are unknown before the session disconnects (config
// pop3.max_bad_commands default).
inline constexpr int kMaxBadCommands = 20;

// Idle time before the autologout timer closes a session (RFC 1939 §3: at least 10 minutes).
inline constexpr std::chrono::seconds kAutologout{600};

}  // namespace buzon::pop3
