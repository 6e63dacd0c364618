// store/maildir/dovecot_uidlist.hpp — reader for Dovecot's "dovecot-uidlist" (UID <-> file name map),
// so that buzon can present the UIDLs Dovecot's POP3 server presented (pop3_uidl_format
// "%08Xu%08Xv", Dovecot's default) when a site migrates from Dovecot.
//
// SECURITY  The file is written by another program and may be corrupt: malformed lines are
//           skipped, file names containing '/' are refused, numbers are range-checked.
// STANDARDS Dovecot src/lib-storage/index/maildir/maildir-uidlist.c: version 3 header
//           "3 V<uidvalidity> N<nextuid> G<guid> [<key><value>...]", records
//           "<uid> [<key><value> ...] :<filename>" (record keys: S psize, W vsize, P pop3 uidl,
//           O pop3 order, G guid); version 1 header "1 <uidvalidity> <nextuid>", records
//           "<uid> <filename>". Records are matched by base name (before ':').
// LIMITS    Read-only: buzon never writes dovecot-uidlist (messages Dovecot has not seen yet get
//           buzon's own UIDL). A CONTROL= directory elsewhere than the Maildir is not looked at.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace buzon::store::maildir {

struct UidlistRecord {
  std::uint32_t uid = 0;
  // The 'P' extension: an explicit POP3 UIDL (migrated from another server). An empty value means
  // "the base file name" (Dovecot's optimisation); nullopt means Dovecot's pop3_uidl_format applies.
  std::optional<std::string> pop3_uidl;
  // The 'O' extension: POP3 listing order; lower first, records without it after, by UID.
  std::optional<std::uint32_t> pop3_order;
};

struct Uidlist {
  std::uint32_t uid_validity = 0;
  std::unordered_map<std::string, UidlistRecord> by_base;  // base name -> record
};

// Parses the file's text; nullopt when the header is missing, of an unknown version, or lacks a
// valid UIDVALIDITY.
std::optional<Uidlist> parse_dovecot_uidlist(std::string_view text);

// Dovecot's default POP3 UIDL, "%08Xu%08Xv": UID then UIDVALIDITY, 8 hex digits each. Dovecot's
// var_expand %X prints LOWER-case hex (checked against dovecot 2.3.19: "000000016b08d5fd").
std::string dovecot_default_uidl(std::uint32_t uid, std::uint32_t uid_validity);

}  // namespace buzon::store::maildir
