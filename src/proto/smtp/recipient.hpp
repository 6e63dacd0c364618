// proto/smtp/recipient.hpp — who a RCPT TO address is: a local user (and where the mailbox lives),
// an unknown user of a local domain, or somebody else's domain (relaying, which buzon never does
// for an unauthenticated client).
//
// Address policy, in this order (README "Addresses and aliases"):
//   1. the domain is compared case-insensitively; a domain alias (example.net -> example.com)
//      replaces it;
//   2. plus-addressing: "ana+tag@d" is "ana@d" unless "ana+tag@d" itself is an alias or a user
//      (the delimiter is configurable, "" disables it); Delivered-To keeps the address as sent;
//   3. postmaster@ and abuse@ (any case) of every local domain that are neither an alias nor a
//      user go to the configured postmaster address (RFC 5321 §4.5.1);
//   4. virtual aliases (auth/aliases.hpp): nested, several targets, catch-all per domain;
//   5. each final address of a local domain is a user (below); others are remote (forwarding).
//
// Resolution: the domain must be one of `local_domains` (SMTP mode; case-insensitive, address
// literals never match unless listed literally). The full address "local@domain" is looked up in
// the directory first, then the local part alone, so a passwd-file may hold "ana@example.org" for
// one domain or "ana" for every local domain ([users] default_domain applies to the bare name as
// it does at POP3 login). <Postmaster> without a domain (RFC 5321 §4.1.1.3) is
// postmaster@<first local domain>. In LMTP mode the domain need not be local (the MTA in front
// decided): the full address is looked up, the local part alone only for local domains.
//
// SECURITY  The address is untrusted; it becomes a directory key only through
//           auth::canonical_username (no '/', "..", NUL, controls), and the mailbox location
//           through mail_location (stays under the base directory). A name canonical_username
//           refuses is an unknown user: the reply does not say why.
// STANDARDS RFC 5321 §3.6.2 and §7.1 (no open relay), §4.1.1.3 (Postmaster), §4.5.1; RFC 2033
//           §4.2 (LMTP recipients).
// THREADS   resolve_recipient() calls Directory::lookup, which may block, and with a [quota]
//           default writes a missing maildirsize: run it on the pool.
// LIMITS    None beyond canonical_username's.
#pragma once

#include "auth/aliases.hpp"
#include "auth/directory.hpp"
#include "proto/smtp/command.hpp"
#include "store/maildir/maildirsize.hpp"
#include "store/maildrop.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace buzon::smtp {

struct RecipientPolicy {
  std::vector<std::string> local_domains;  // lower case
  bool require_local_domain = true;        // false in LMTP mode
  auth::NameRules names;
  std::string mail_template = "mail/%d/%n/Maildir";
  std::filesystem::path base_dir = ".";
  std::string delimiter = "+";                        // plus-addressing; "" = off
  std::map<std::string, std::string> domain_aliases;  // lower case: alias domain -> real domain
  std::string postmaster;                             // postmaster@/abuse@ target; "" = postmaster@<first local domain>
  std::shared_ptr<const auth::AliasFile> aliases;     // nullptr = no aliases
  store::maildir::QuotaLimits default_quota;           // [quota]: for Maildirs without maildirsize
  std::map<std::string, store::maildir::QuotaLimits> domain_quota;  // [quota] domains, instead of it
  unsigned max_hops = 50;  // [smtp] max_hops: Received: fields that mean a loop (smtp/loop_check.hpp)
};

enum class RcptVerdict {
  local,         // deliverable: `user` and `box` are set
  unknown_user,  // 550 5.1.1
  relay_denied,  // 550 5.7.1
  temp_failure,  // 451 4.3.0 (the mailbox location could not be resolved)
};

struct ResolvedRecipient {
  RcptVerdict verdict = RcptVerdict::unknown_user;
  std::string user;        // canonical user name
  store::MailboxRef box;   // where the copy goes
  std::string address;     // the address for Delivered-To: (Postmaster gets its domain)
  std::string detail;      // for the log only
};

// ASCII lower case (domains, and addresses compared case-insensitively).
std::string ascii_lower(std::string_view s);

// True when `domain` is one of the local domains (ASCII case-insensitive).
bool is_local_domain(std::string_view domain, const std::vector<std::string>& local_domains);

// Every final target of one RCPT. verdict is `local` when the RCPT is accepted: `local` holds the
// mailboxes (one per distinct target; Delivered-To is the address as sent for a plain address,
// the target address for an alias) and `remote` the addresses to forward to. Otherwise the
// verdict says why (an alias with a target that is not a mailbox is unknown_user, with `detail`
// naming it; an alias loop or depth error, possible only through a reload race, is temp_failure).
struct RecipientTargets {
  RcptVerdict verdict = RcptVerdict::unknown_user;
  std::vector<ResolvedRecipient> local;
  std::vector<std::string> remote;
  std::string detail;  // for the log only
};

RecipientTargets resolve_targets(const Mailbox& m, const RecipientPolicy& policy, const auth::Directory& directory);

// One mailbox: resolve_targets() when it gives exactly one local target. An alias with several
// or remote targets is temp_failure here (callers that deliver to one mailbox only); start-up
// refuses such aliases until every caller handles them (alias_config_error).
ResolvedRecipient resolve_recipient(const Mailbox& m, const RecipientPolicy& policy,
                                    const auth::Directory& directory);

// RFC 1870 SIZE= at RCPT time: false when the mailbox's Maildir++ quota (maildirsize) cannot take
// `size` more octets (452 4.2.2 then, before the data is sent). No maildirsize: true. Blocking I/O.
bool fits_quota(const ResolvedRecipient& r, std::uint64_t size);

// "user+tag" -> "user" (the first delimiter character found after position 0); unchanged when the
// delimiter is "" or absent. Any character of `delimiter` is a delimiter (Postfix's rule).
std::string strip_extension(std::string_view local, std::string_view delimiter);

// A start-up check of the aliases against what the receiving side can deliver today: remote
// targets ("forwarding to remote addresses is not supported yet") and several targets. Empty when
// fine; else "<file>:<line>: <what> (fix: ...)".
std::string alias_config_error(const auth::AliasTable& table, const RecipientPolicy& policy,
                               std::string_view path, bool several_targets_ok, bool remote_ok);

// The server's aliases file: load_aliases() (syntax, cycles, depth) then alias_config_error() with
// what the SMTP receiving side delivers today (one local target per alias). "" path = no aliases.
std::expected<auth::AliasTable, std::string> load_server_aliases(const std::filesystem::path& path,
                                                                 const RecipientPolicy& policy);

}  // namespace buzon::smtp
