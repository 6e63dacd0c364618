// proto/pop3/command.hpp — POP3 command parser, command table and argument parsers (pure).
//
// parse_command() turns one command line (terminator already removed, see core/line_buffer.hpp)
// into a Command or a ParseError whose message is ready to follow "-ERR ". The constexpr table
// kVerbs says in which states each command is allowed and how many arguments it takes; the
// session consults allowed_in() before dispatching. parse_msgnum() is the ONE parser of message
// numbers for DELE, LIST, RETR, TOP and UIDL.
//
// SECURITY: the line is untrusted. Keywords must be 3-4 ASCII letters or digits; arguments may not
//   hold control characters (NUL included). Octets >= 0x80 are passed on in arguments (RFC 6856
//   §2.2 allows UTF-8 user names and passwords; legacy clients send Latin-1 passwords): the
//   session decides, with is_utf8(), whether to accept them. The caller bounds the line length
//   (kMaxCommandLine) before calling; nothing here allocates more than the line's size.
// STANDARDS: RFC 1939 §3 (grammar, 40-octet arguments), §4-§7 (commands, states, message
//   numbers), §7 note on PASS (a password may contain spaces); RFC 2449 §3-§5 (keyword = 3*4VCHAR,
//   255-octet commands, CAPA); RFC 2595 §4 (STLS); RFC 5034 §4 (AUTH); RFC 6856 §2-§3 (UTF8,
//   LANG).
// LIMITS: kMaxArgLength per argument except user names, PASS and the AUTH initial response
//   (see limits.hpp); message numbers and line counts must fit in 64 bits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::pop3 {

enum class Verb {
  user, pass, apop, stat, list, retr, dele, noop, rset, quit, top, uidl, capa, auth, stls, utf8,
  lang, unknown
};

// RFC 1939 §3. UPDATE is not a state in which commands are read.
enum class State { authorization, transaction };

struct Command {
  Verb verb = Verb::unknown;
  std::string keyword;            // upper-cased as typed, e.g. "RETR"
  std::vector<std::string> args;  // split on spaces; PASS: exactly one, the whole rest
  std::string rest;               // everything after the first space, verbatim (PASS, logging)
};

enum class ParseErrc {
  empty,          // a zero-length line
  bad_keyword,    // not 3-4 ASCII letters/digits (':' or 8-bit or NUL, or a wrong length)
  bad_arguments,  // wrong argument count, an overlong argument, or control characters
};

struct ParseError {
  ParseErrc code;
  Verb verb = Verb::unknown;  // the command, when the keyword was recognized
  std::string message;        // human text for "-ERR <message>", no CR/LF
};

std::expected<Command, ParseError> parse_command(std::string_view line);

// ---- The command table -------------------------------------------------------------------------

inline constexpr std::uint8_t kInAuthorization = 1U << 0;
inline constexpr std::uint8_t kInTransaction = 1U << 1;

struct VerbSpec {
  Verb verb;
  std::string_view name;   // the keyword, upper case
  std::uint8_t states;     // kInAuthorization | kInTransaction
  std::uint8_t min_args;
  std::uint8_t max_args;
  std::string_view usage;  // the -ERR text for a wrong argument count
};

// Indexed by Verb (kVerbs[static_cast<std::size_t>(v)].verb == v); Verb::unknown is last.
inline constexpr std::array<VerbSpec, 18> kVerbs{{
    // RFC 1939 §7 (optional) USER/PASS/APOP, §5 and §6 the rest; RFC 2449 §5 CAPA;
    // RFC 5034 §4 AUTH (no argument: list mechanisms, a common extension); RFC 2595 §4 STLS;
    // RFC 6856 §2.1 UTF8 (AUTHORIZATION only) and §3 LANG (both states).
    {Verb::user, "USER", kInAuthorization, 1, 1, "USER takes one user name"},
    {Verb::pass, "PASS", kInAuthorization, 1, 1, "PASS takes the password"},
    {Verb::apop, "APOP", kInAuthorization, 2, 2, "APOP takes a user name and a digest"},
    {Verb::stat, "STAT", kInTransaction, 0, 0, "STAT takes no arguments"},
    {Verb::list, "LIST", kInTransaction, 0, 1, "LIST takes at most one message number"},
    {Verb::retr, "RETR", kInTransaction, 1, 1, "RETR takes one message number"},
    {Verb::dele, "DELE", kInTransaction, 1, 1, "DELE takes one message number"},
    {Verb::noop, "NOOP", kInTransaction, 0, 0, "NOOP takes no arguments"},
    {Verb::rset, "RSET", kInTransaction, 0, 0, "RSET takes no arguments"},
    {Verb::quit, "QUIT", kInAuthorization | kInTransaction, 0, 0, "QUIT takes no arguments"},
    {Verb::top, "TOP", kInTransaction, 2, 2, "TOP takes a message number and a line count"},
    {Verb::uidl, "UIDL", kInTransaction, 0, 1, "UIDL takes at most one message number"},
    {Verb::capa, "CAPA", kInAuthorization | kInTransaction, 0, 0, "CAPA takes no arguments"},
    {Verb::auth, "AUTH", kInAuthorization, 0, 2,
     "AUTH takes a mechanism and an optional initial response"},
    {Verb::stls, "STLS", kInAuthorization, 0, 0, "STLS takes no arguments"},
    {Verb::utf8, "UTF8", kInAuthorization, 0, 0, "UTF8 takes no arguments"},
    {Verb::lang, "LANG", kInAuthorization | kInTransaction, 0, 1,
     "LANG takes at most one language range"},
    {Verb::unknown, "", 0, 0, 0, "unknown command"},
}};

constexpr const VerbSpec& verb_spec(Verb v) { return kVerbs[static_cast<std::size_t>(v)]; }
constexpr std::string_view verb_name(Verb v) { return verb_spec(v).name; }

constexpr std::uint8_t state_bit(State s) {
  return s == State::authorization ? kInAuthorization : kInTransaction;
}

// True when `v` may be used in state `s` (RFC 1939 §4-§7). False for Verb::unknown.
constexpr bool allowed_in(Verb v, State s) { return (verb_spec(v).states & state_bit(s)) != 0; }

// ---- Argument parsers ----------------------------------------------------------------------

// The one parser for a message-number argument (RFC 1939 §5): decimal digits only (no sign, no
// spaces, no trailing junk), 1..count, and not marked deleted (deleted[i] for the 0-based index i;
// a span shorter than count means "not deleted" past its end). Returns the 0-based index, or the
// reply text without "-ERR ".
std::expected<std::size_t, std::string> parse_msgnum(std::string_view arg, std::size_t count,
                                                     std::span<const bool> deleted);

// TOP's line count (RFC 1939 §7: a non-negative number): digits only, must fit in 64 bits.
std::expected<std::uint64_t, std::string> parse_line_count(std::string_view arg);

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF).
// RFC 6856 §2.2: a server announcing "UTF8 USER" MUST reject user names and passwords that are
// not. ASCII is UTF-8.
bool is_utf8(std::string_view s);

}  // namespace buzon::pop3
