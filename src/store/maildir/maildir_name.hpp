// store/maildir/maildir_name.hpp — parsing Maildir file names as Dovecot, Postfix, procmail, mutt and
// qmail write them: "<time>.<unique>.<host>[,S=<size>][,W=<vsize>][:2,<flags>]".
//
// SECURITY  Names come from directory listings written by other agents: they are parsed, never
//           trusted as paths (callers reject names containing '/').
// STANDARDS cr.yp.to/proto/maildir.html (unique names, ":2," info, flags in ASCII order);
//           Dovecot maildir extensions (",S=" physical size, ",W=" virtual = CRLF size).
// LIMITS    Numbers larger than 2^64-1 are not size hints; only the ':' info separator is known
//           (Dovecot's optional ';' separator for Windows file systems is not).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace buzon::store::maildir {

inline constexpr char kInfoSeparator = ':';
inline constexpr std::string_view kInfoVersion2 = ":2,";

// The unique part of a name: everything before the info separator ':'. It does not change when a
// message moves new/ -> cur/ or its flags change, so UIDLs and the index are keyed by it.
std::string_view base_name(std::string_view name);

// The value of a ",<key>=<digits>" field of the base name (key 'S' or 'W'), if present and valid.
std::optional<std::uint64_t> size_hint(std::string_view name, char key);

// The flags after ":2,", or nullopt when the name has no version-2 info.
std::optional<std::string_view> info_flags(std::string_view name);

// True when the name carries the given flag in its ":2," info.
bool has_flag(std::string_view name, char flag);

// The name with `flag` added to its ":2," info (flags kept unique and in ASCII order, as the
// Maildir spec asks). A name without info gets ":2,<flag>". nullopt for a name whose info is of
// another version (":1,..."), which must be left alone.
std::optional<std::string> with_flag(std::string_view name, char flag);

// Delivery time encoded in the name: "<seconds>." prefix and, when the unique part has one, the
// "M<microseconds>" field (Dovecot, Postfix and buzon write it). nullopt when the name does not
// start with digits followed by '.'.
struct NameTime {
  std::int64_t seconds = 0;
  std::int64_t micros = 0;
  auto operator<=>(const NameTime&) const = default;
};
std::optional<NameTime> name_time(std::string_view name);

// Compares names with digit runs compared as numbers ("Q9" < "Q10"), then byte-wise; a total
// order consistent with equality.
std::strong_ordering natural_compare(std::string_view a, std::string_view b);

// A host name made safe for a Maildir name: '/' -> "\057", ':' -> "\072", ',' -> "\054"
// (the escapes qmail and Dovecot use), other octets outside 0x21..0x7E -> "\ooo" too.
std::string escape_host(std::string_view host);

}  // namespace buzon::store::maildir
