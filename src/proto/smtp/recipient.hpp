// proto/smtp/recipient.hpp — who a RCPT TO address is: a local user (and where the mailbox lives),
// an unknown user of a local domain, or somebody else's domain (relaying, which buzon never does
// for an unauthenticated client).
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
// THREADS   resolve_recipient() calls Directory::lookup, which may block: run it on the pool.
// LIMITS    None beyond canonical_username's.
#pragma once

#include "auth/directory.hpp"
#include "proto/smtp/command.hpp"
#include "store/maildrop.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace buzon::smtp {

struct RecipientPolicy {
  std::vector<std::string> local_domains;  // lower case
  bool require_local_domain = true;        // false in LMTP mode
  auth::NameRules names;
  std::string mail_template = "mail/%d/%n/Maildir";
  std::filesystem::path base_dir = ".";
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

// True when `domain` is one of the local domains (ASCII case-insensitive).
bool is_local_domain(std::string_view domain, const std::vector<std::string>& local_domains);

ResolvedRecipient resolve_recipient(const Mailbox& m, const RecipientPolicy& policy,
                                    const auth::Directory& directory);

}  // namespace buzon::smtp
