// proto/smtp/received.hpp — the trace header fields a delivery adds (pure): Received: once per
// message (RFC 5321 §4.4), Return-Path: and Delivered-To: once per recipient copy.
//
// SECURITY: every value placed in a header comes from checked syntax (the HELO name passed
//   parse_command's valid_helo, addresses passed parse_path, the peer address comes from the
//   socket) and is additionally stripped of CR, LF and other control characters here, so a client
//   cannot inject header lines.
// STANDARDS: RFC 5321 §4.4 (Received: "from" From-domain "by" By-domain [With] [ID] [For] ";"
//   date-time; Return-Path: added by the final delivery, §4.4 and §4.1.1.2), RFC 5322 §3.3
//   (date-time), §3.6.7 (trace fields), RFC 3848 and RFC 6531 §4.3 (the "with" protocol names
//   SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, LMTP..., UTF8SMTP...), RFC 5321 §4.1.3 (address
//   literals "[192.0.2.1]", "[IPv6:...]"). Delivered-To: is the de-facto header qmail, Postfix and
//   Dovecot add for loop detection.
// LIMITS: header lines are folded so that none exceeds 998 octets for names within limits.hpp.
#pragma once

#include "proto/smtp/command.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace buzon::smtp {

struct ReceivedInfo {
  std::string helo;      // the client's EHLO/HELO/LHLO argument
  std::string peer;      // the stream's peer ("192.0.2.1:25", "[2001:db8::1]:25", "" when unknown)
  std::string by;        // our host name
  std::string protocol;  // protocol_name()
  std::string id;        // our transaction id
  std::string tls;       // e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"; "" without TLS
  std::string for_rcpt;  // the recipient when there is exactly one, else ""
  std::int64_t time = 0; // unix seconds
};

// The complete header field, folded, ending in CRLF.
std::string format_received(const ReceivedInfo& info);

// RFC 5322 §3.3 date-time in UTC: "Tue, 04 Aug 2026 12:34:56 +0000".
std::string format_date(std::int64_t unix_seconds);

// The RFC 3848 / RFC 6531 "with" keyword: [UTF8](SMTP|ESMTP|LMTP)[S][A]. Plain HELO sessions are
// "SMTP" (no S/A suffixes exist for it).
std::string protocol_name(bool esmtp, bool lmtp, bool tls, bool authenticated, bool utf8);

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" for a peer "ip:port" / "[v6]:port"; "" when unknown.
std::string peer_literal(std::string_view peer);

// "Return-Path: <sender>\r\n" ("<>" for the null reverse-path).
std::string format_return_path(const Path& reverse);

// "Delivered-To: <address>\r\n" with the address as the client sent it (no brackets, as qmail and
// Postfix write it).
std::string format_delivered_to(std::string_view address);

}  // namespace buzon::smtp
