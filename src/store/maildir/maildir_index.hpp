// store/maildir/maildir_index.hpp — buzon's per-Maildir cache "buzon-index": base name -> wire size
// (MessageInfo::size), delivery mtime and, once scanned, the X-UIDL header. It lets a login
// list a Maildir with readdir alone instead of reading every message.
//
// SECURITY  The file lives in a directory the mail owner may write: every line is validated and
//           a bad line is dropped (the message is then scanned again); a bad header drops the file.
// STANDARDS Own format, version 2:
//             "buzon-index 2\n"
//             "<wire size>\t<mtime>\t<x-uidl>\t<base name>\n" ...
//           <x-uidl> is "?" (not scanned), "-" (no valid X-UIDL) or "+<value>".
// LIMITS    Base names containing LF are not cached. Entries are trusted: Maildir files are
//           immutable once delivered, so a file rewritten in place keeps its cached size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace buzon::store::maildir {

// Version 2: sizes include the completion of an unterminated last line (version 1 files, which
// did not, are ignored and rebuilt).
inline constexpr std::string_view kIndexHeader = "buzon-index 2";

struct IndexEntry {
  enum class XUidl : char { unknown, none, present };
  std::uint64_t wire_size = 0;
  std::int64_t mtime = 0;
  XUidl x_uidl_state = XUidl::unknown;
  std::string x_uidl;  // when x_uidl_state == present: a valid UIDL

  bool operator==(const IndexEntry&) const = default;
};

using Index = std::unordered_map<std::string, IndexEntry>;  // base name -> entry

// Parses an index file's text; an unknown header yields an empty index.
Index parse_index(std::string_view text);

// Formats an index (lines sorted by base name, so equal indexes give equal files).
std::string format_index(const Index& index);

}  // namespace buzon::store::maildir
