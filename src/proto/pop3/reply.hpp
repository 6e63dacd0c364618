// proto/pop3/reply.hpp — POP3 reply formatting (pure): status lines, response codes, multi-line
// listings, SASL challenges and the CAPA reply.
//
// SECURITY: reply text may carry values that came from outside (a user name, a store error); every
//   function here replaces CR, LF and other control characters with a space, truncates status
//   lines to kMaxReplyLine octets (without splitting a UTF-8 sequence) and never lets free text
//   start with '[' unless it is a real response code, so a peer cannot inject reply lines or fake
//   response codes.
// STANDARDS: RFC 1939 §3 (status indicators, multi-line, byte-stuffing, 512 octets), §5 (scan
//   listing), §7 (unique-id listing); RFC 2449 §5-§6 (CAPA and its tags), §8 (response codes
//   IN-USE, LOGIN-DELAY; RESP-CODES: text starting with '[' is a response code); RFC 3206 (SYS/TEMP,
//   SYS/PERM, AUTH; AUTH-RESP-CODE); RFC 5034 §4 (challenges "+ base64"); RFC 6856 §2, §5 (UTF8
//   capability, [UTF8] code).
// LIMITS: kMaxReplyLine (limits.hpp) for status lines and CAPA lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::pop3 {

enum class RespCode {
  none,
  in_use,       // [IN-USE]       RFC 2449 §8.1.2: the maildrop is locked by another session
  login_delay,  // [LOGIN-DELAY]  RFC 2449 §8.1.1: logged in too recently
  sys_temp,     // [SYS/TEMP]     RFC 3206 §4: temporary system failure
  sys_perm,     // [SYS/PERM]     RFC 3206 §4: permanent system failure
  auth,         // [AUTH]         RFC 3206 §5: the credentials are wrong
  utf8,         // [UTF8]         RFC 6856 §5: the message needs UTF-8 mode
};

// "IN-USE", "SYS/TEMP", ...; "" for RespCode::none.
std::string_view resp_code_name(RespCode code);

// "+OK text\r\n", or "+OK\r\n" for empty text.
std::string ok(std::string_view text = {});
// "-ERR text\r\n", or "-ERR\r\n" for empty text.
std::string err(std::string_view text);
// "-ERR [CODE] text\r\n" (RFC 2449 §8); RespCode::none gives err(text).
std::string err(RespCode code, std::string_view text);

// SASL server challenge (RFC 5034 §4): "+ " base64 CRLF; an empty challenge is "+ \r\n".
std::string challenge(std::string_view base64);

// ---- Multi-line replies (RFC 1939 §3) -------------------------------------------------------

inline constexpr std::string_view kMultiLineEnd = ".\r\n";

// Appends one line of a multi-line reply: sanitized like a status line, byte-stuffed when it
// starts with '.', then CRLF. (Message content goes through DotStuffer instead.)
void append_line(std::string& out, std::string_view line);
// Appends the terminating ".\r\n".
void append_end(std::string& out);
// "+OK first\r\n" + each line (append_line) + ".\r\n".
std::string multiline(std::string_view first, std::span<const std::string> lines);

// Scan listing "n octets" (RFC 1939 §5, LIST) and unique-id listing "n uid" (§7, UIDL), without
// CRLF: use with ok() for one message or append_line() for all of them.
std::string scan_listing(std::size_t number, std::uint64_t octets);
std::string uid_listing(std::size_t number, std::string_view uid);
// STAT reply text "count octets" (RFC 1939 §5 drop listing).
std::string drop_listing(std::size_t count, std::uint64_t octets);

// True when `uid` is a valid unique-id: 1..70 octets in 0x21..0x7E (RFC 1939 §7).
bool valid_uid(std::string_view uid);

// ---- CAPA (RFC 2449 §5-§6) ----------------------------------------------------------------

struct CapaOptions {
  bool user = true;                 // USER/PASS offered (omit before TLS when plaintext is off)
  bool apop_ok = false;             // informational: APOP is announced by the greeting's
                                    // timestamp, never by CAPA (RFC 2449 §6); not printed
  std::vector<std::string> sasl;    // mechanisms for "SASL ..."; empty: no SASL line
  bool stls = false;                // "STLS" (RFC 2595 §4), only before TLS
  bool utf8 = false;                // "UTF8 USER" (RFC 6856 §2, §2.2)
  bool lang = false;                // "LANG" (RFC 6856 §3)
  std::optional<int> expire_days;   // nullopt or any negative value: "EXPIRE NEVER"
  bool expire_per_user = false;     // append "USER" to a numeric EXPIRE (AUTHORIZATION state)
  int login_delay = 0;              // seconds; <= 0 omits LOGIN-DELAY
  std::string implementation;       // "" omits IMPLEMENTATION
  bool pipelining = true;           // "PIPELINING" (RFC 2449 §6.6)
};

// The whole reply: "+OK Capability list follows\r\n", one line per capability, ".\r\n". Order:
// TOP, USER, UIDL, RESP-CODES, PIPELINING, AUTH-RESP-CODE, EXPIRE, LOGIN-DELAY, SASL, STLS,
// UTF8 USER, IMPLEMENTATION. SASL names are upper-cased; names that are not 1..20 of [A-Z0-9-_]
// (RFC 4422 §3.1) are dropped.
std::string format_capa(const CapaOptions& options);

}  // namespace buzon::pop3
