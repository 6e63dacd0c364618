// proto/smtp/command.hpp — SMTP/LMTP command parser and command table (pure).
//
// parse_command() turns one command line (CRLF already removed, see core/line_buffer.hpp in
// strict_crlf mode) into a Command, or a ParseError that already carries the reply to send
// (code, RFC 3463 status, text). Paths are parsed per RFC 5321 §4.1.2 (dot-string and quoted
// local parts, domains, address literals, source routes that are accepted and ignored), MAIL and
// RCPT parameters per their RFCs. The session checks state and policy; this file only syntax.
//
// SECURITY: the line is untrusted. Keywords are ASCII letters; control characters (NUL, TAB, CR,
//   LF ...) are refused everywhere; octets >= 0x80 are accepted only inside paths and parameter
//   values, only as well-formed UTF-8 (RFC 3629), and only when the transaction is SMTPUTF8
//   (RFC 6531 §3.3: MAIL must carry the SMTPUTF8 parameter, otherwise 550/553 5.6.7). Every
//   length is bounded (limits.hpp); the caller bounds the line to kMaxCommandLine first.
// STANDARDS: RFC 5321 §4.1.1 (commands), §4.1.2 (grammar: Path, Mailbox, Local-part, Domain,
//   address-literal, esmtp-param), §4.1.3 (address literals), §4.1.4 (order), §4.5.3.1 (sizes);
//   RFC 1870 §3 (SIZE), RFC 6152 §2 (BODY=8BITMIME), RFC 3030 §2-§3 (BDAT, BODY=BINARYMIME),
//   RFC 6531 §3.3-§3.4 (SMTPUTF8, UTF-8 in atext/qtext/sub-domain/esmtp-value), RFC 3461 §4
//   (NOTIFY, ORCPT, RET, ENVID; xtext §4), RFC 4954 §5 (AUTH= on MAIL), RFC 2033 §4.1 (LHLO),
//   RFC 3207 §4 (STARTTLS).
// LIMITS: kMaxPath, kMaxLocalPart (not enforced: real VERP addresses exceed it; only the whole
//   path is), kMaxDomain, kMaxDomainLabel, kMaxHeloName, kMaxEnvid, kMaxOrcpt, kMaxAuthParam;
//   SIZE and BDAT counts must fit in 64 bits (at most 20 digits).
#pragma once

#include "proto/smtp/reply.hpp"

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace buzon::smtp {

enum class Verb {
  helo, ehlo, lhlo, mail, rcpt, data, bdat, rset, noop, quit, vrfy, expn, help, starttls, auth,
  unknown
};

// A mailbox of a path (RFC 5321 §4.1.2 Mailbox).
struct Mailbox {
  std::string local;   // the local part, unquoted: "a b" for "\"a b\"@x" (quoted-pairs resolved)
  std::string domain;  // the domain as sent, or an address literal with brackets ("[192.0.2.1]");
                       // empty only for the special RCPT TO:<Postmaster> (§4.1.1.3)
  std::string text;    // the mailbox as sent, without "<>" and without a source route
  bool quoted = false; // the local part was a quoted string
  bool utf8 = false;   // the mailbox holds octets >= 0x80 (needs SMTPUTF8)
  bool literal = false;  // the domain is an address literal
};

// Reverse-path or forward-path. `null` is the reverse-path "<>" (bounces, RFC 5321 §4.5.5).
struct Path {
  bool null = false;
  Mailbox mailbox;
};

// BODY= (RFC 6152, RFC 3030 §3).
enum class Body { unspecified, seven_bit, eight_bit_mime, binary_mime };
// RET= (RFC 3461 §4.3).
enum class Ret { unspecified, full, hdrs };

// NOTIFY= flags (RFC 3461 §4.1); 0 = not given.
inline constexpr std::uint8_t kNotifyNever = 1U << 0;
inline constexpr std::uint8_t kNotifySuccess = 1U << 1;
inline constexpr std::uint8_t kNotifyFailure = 1U << 2;
inline constexpr std::uint8_t kNotifyDelay = 1U << 3;

struct MailParams {
  std::optional<std::uint64_t> size;  // SIZE= (RFC 1870): the client's estimate, in octets
  Body body = Body::unspecified;
  bool smtputf8 = false;              // SMTPUTF8 (RFC 6531 §3.4)
  Ret ret = Ret::unspecified;         // RET= (RFC 3461 §4.3)
  std::string envid;                  // ENVID= as sent (xtext, RFC 3461 §4.4); "" = not given
  std::optional<std::string> auth;    // AUTH= as sent (xtext or "<>", RFC 4954 §5)
};

struct RcptParams {
  std::uint8_t notify = 0;  // kNotify* flags (RFC 3461 §4.1)
  std::string orcpt;        // ORCPT= as sent: "addr-type;xtext" (RFC 3461 §4.2); "" = not given
};

struct Command {
  Verb verb = Verb::unknown;
  std::string domain;     // HELO/EHLO/LHLO: the client's name or address literal
  Path path;              // MAIL: reverse-path; RCPT: forward-path
  MailParams mail;        // MAIL parameters
  RcptParams rcpt;        // RCPT parameters
  std::uint64_t chunk_size = 0;  // BDAT
  bool last = false;             // BDAT ... LAST
  std::string arg;        // VRFY/EXPN/HELP/NOOP/AUTH: everything after the first space
};

struct ParseError {
  Verb verb = Verb::unknown;  // the command, when the keyword was recognized
  Reply reply;                // what to answer (RFC 5321 §4.2.2 codes + RFC 3463 status)
};

struct ParseOptions {
  // The current transaction declared SMTPUTF8 (RCPT may then carry UTF-8, RFC 6531 §3.4).
  bool smtputf8 = false;
};

std::expected<Command, ParseError> parse_command(std::string_view line, const ParseOptions& opts = {});

// Parses a whole path "<...>" (reverse when `reverse`: "<>" allowed; forward: "<Postmaster>"
// allowed). UTF-8 is accepted syntactically and reported in Mailbox::utf8. Exposed for tests.
std::expected<Path, std::string> parse_path(std::string_view text, bool reverse);

// RFC 3461 §4 xtext: 1*( %d33-42 / %d44-60 / %d62-126 / "+" 2HEXCHAR ), HEXCHAR upper case.
// With `utf8`, octets >= 0x80 of valid UTF-8 are also accepted (RFC 6533 utf-8-addr-xtext).
bool is_xtext(std::string_view s, bool utf8 = false);

// Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// ---- The command table ------------------------------------------------------------------------

inline constexpr std::uint8_t kSmtpOnly = 1U << 0;   // HELO, EHLO: not in LMTP (RFC 2033 §4.1)
inline constexpr std::uint8_t kLmtpOnly = 1U << 1;   // LHLO
inline constexpr std::uint8_t kGroupEnd = 1U << 2;   // must end a pipelined group (RFC 2920 §3.1)

struct VerbSpec {
  Verb verb;
  std::string_view name;   // upper case
  std::uint8_t flags;
  std::string_view usage;  // for 501 replies
};

// Indexed by Verb; Verb::unknown is last.
inline constexpr std::array<VerbSpec, 16> kVerbs{{
    {Verb::helo, "HELO", kSmtpOnly | kGroupEnd, "Syntax: HELO hostname"},
    {Verb::ehlo, "EHLO", kSmtpOnly | kGroupEnd, "Syntax: EHLO hostname"},
    {Verb::lhlo, "LHLO", kLmtpOnly | kGroupEnd, "Syntax: LHLO hostname"},
    {Verb::mail, "MAIL", 0, "Syntax: MAIL FROM:<address> [parameters]"},
    {Verb::rcpt, "RCPT", 0, "Syntax: RCPT TO:<address> [parameters]"},
    {Verb::data, "DATA", kGroupEnd, "Syntax: DATA"},
    {Verb::bdat, "BDAT", 0, "Syntax: BDAT count [LAST]"},
    {Verb::rset, "RSET", 0, "Syntax: RSET"},
    {Verb::noop, "NOOP", kGroupEnd, "Syntax: NOOP [text]"},
    {Verb::quit, "QUIT", kGroupEnd, "Syntax: QUIT"},
    {Verb::vrfy, "VRFY", kGroupEnd, "Syntax: VRFY address"},
    {Verb::expn, "EXPN", kGroupEnd, "Syntax: EXPN list"},
    {Verb::help, "HELP", 0, "Syntax: HELP [topic]"},
    {Verb::starttls, "STARTTLS", kGroupEnd, "Syntax: STARTTLS"},
    {Verb::auth, "AUTH", kGroupEnd, "Syntax: AUTH mechanism [initial-response]"},
    {Verb::unknown, "", 0, ""},
}};

constexpr const VerbSpec& spec(Verb v) { return kVerbs[static_cast<std::size_t>(v)]; }

}  // namespace buzon::smtp
