// store/maildir/dovecot_uidlist.cpp — dovecot-uidlist parser (see dovecot_uidlist.hpp).
//
// SECURITY  Untrusted text: every field is validated; bad records are skipped, never fatal.
// STANDARDS Dovecot maildir-uidlist.c formats, versions 1 and 3.
// LIMITS    UIDs and UIDVALIDITY must fit in 32 bits and be non-zero.
#include "store/maildir/dovecot_uidlist.hpp"

#include <cstdio>
#include <limits>

#include "store/maildir/maildir_name.hpp"

namespace buzon::store::maildir {
namespace {

std::optional<std::uint32_t> parse_u32(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

std::string_view next_token(std::string_view& s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  const auto end = s.find(' ');
  std::string_view tok = s.substr(0, end);
  s.remove_prefix(end == std::string_view::npos ? s.size() : end);
  return tok;
}

void add_record(Uidlist& list, std::string_view filename, UidlistRecord rec) {
  if (filename.empty() || filename.find('/') != std::string_view::npos) return;
  // A later record for the same file replaces the earlier one, as Dovecot does.
  list.by_base[std::string(base_name(filename))] = std::move(rec);
}

}  // namespace

std::optional<Uidlist> parse_dovecot_uidlist(std::string_view text) {
  const auto nl = text.find('\n');
  std::string_view header = text.substr(0, nl);
  std::string_view body = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  if (header.size() < 2 || header[1] != ' ') return std::nullopt;
  const char version = header[0];
  header.remove_prefix(2);

  Uidlist list;
  if (version == '3') {
    for (std::string_view tok = next_token(header); !tok.empty(); tok = next_token(header)) {
      if (tok[0] == 'V') {
        if (auto v = parse_u32(tok.substr(1))) list.uid_validity = *v;
      }
    }
  } else if (version == '1') {
    if (auto v = parse_u32(next_token(header))) list.uid_validity = *v;
  } else {
    return std::nullopt;
  }
  if (list.uid_validity == 0) return std::nullopt;

  while (!body.empty()) {
    const auto end = body.find('\n');
    std::string_view line = body.substr(0, end);
    body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    const auto sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    const auto uid = parse_u32(line.substr(0, sp));
    if (!uid || *uid == 0 || *uid == std::numeric_limits<std::uint32_t>::max()) continue;
    std::string_view rest = line.substr(sp + 1);
    UidlistRecord rec;
    rec.uid = *uid;

    if (version == '1') {
      add_record(list, rest, std::move(rec));
      continue;
    }
    // Version 3: extension fields up to " :", then the file name (which may contain spaces).
    bool ok = false;
    while (!rest.empty()) {
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      if (rest.empty()) break;
      if (rest.front() == ':') {
        rest.remove_prefix(1);
        ok = true;
        break;
      }
      const auto fe = rest.find(' ');
      const std::string_view field = rest.substr(0, fe);
      rest.remove_prefix(fe == std::string_view::npos ? rest.size() : fe);
      const char key = field[0];
      if (key < 'A' || key > 'Z') continue;  // Dovecot drops invalid extension keys too
      const std::string_view value = field.substr(1);
      if (key == 'P') rec.pop3_uidl = std::string(value);
      if (key == 'O') rec.pop3_order = parse_u32(value);
    }
    if (!ok) continue;
    add_record(list, rest, std::move(rec));
  }
  return list;
}

std::string dovecot_default_uidl(std::uint32_t uid, std::uint32_t uid_validity) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", static_cast<unsigned>(uid),
                static_cast<unsigned>(uid_validity));
  return std::string(buf, 16);
}

}  // namespace buzon::store::maildir
