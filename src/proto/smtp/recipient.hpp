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
// THREADS   resolve_targets()/resolve_recipient() call Directory::lookup, which may block, and
//           with a [quota] default write a missing maildirsize: run them on the pool. A policy's
//           LiveRules is shared by every thread (snapshot under a mutex, swapped on SIGHUP).
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
#include <mutex>
#include <string>
#include <vector>

namespace buzon {
struct Config;
}

namespace buzon::smtp {

// The parts of the address policy that SIGHUP changes ([smtp] recipient_delimiter and max_hops,
// [aliases] postmaster and domains, [quota] defaults and over_quota). The aliases file has its own
// reload (auth::AliasFile); local_domains, the mail location and the user name rules need a restart.
struct AddressRules {
  std::string delimiter = "+";
  std::map<std::string, std::string> domain_aliases;
  std::string postmaster;
  store::maildir::QuotaLimits default_quota;
  std::map<std::string, store::maildir::QuotaLimits> domain_quota;
  bool over_quota_permanent = false;
  unsigned max_hops = 50;
};

// The running AddressRules, swapped whole on SIGHUP; readers take a snapshot (THREADS: any).
class LiveRules {
 public:
  explicit LiveRules(AddressRules r) : rules_(std::make_shared<const AddressRules>(std::move(r))) {}
  std::shared_ptr<const AddressRules> get() const {
    std::lock_guard lock(mutex_);
    return rules_;
  }
  void set(AddressRules r) {
    auto next = std::make_shared<const AddressRules>(std::move(r));
    std::lock_guard lock(mutex_);
    rules_.swap(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const AddressRules> rules_;
};

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
  // Set by the server: the reloadable fields above (delimiter ... domain_quota) are read from here
  // at every resolution instead, so that a SIGHUP reaches every session and the relay.
  std::shared_ptr<const LiveRules> live;
};

// The reloadable fields of a policy, and the policy with `rules` in place of them.
AddressRules rules_of(const RecipientPolicy& p, bool over_quota_permanent);
RecipientPolicy with_rules(RecipientPolicy p, const AddressRules& rules);

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
  std::string alias;   // the address that was expanded as an alias (tag removed, domain mapped); "" if none
  std::string detail;  // for the log only
};

RecipientTargets resolve_targets(const Mailbox& m, const RecipientPolicy& policy, const auth::Directory& directory);

// One mailbox: resolve_targets() when it gives exactly one local target. An alias with several
// or remote targets is temp_failure here: for callers that deliver to one mailbox only (the
// relay's local deliveries and DSNs, whose addresses are already final; the sessions use
// resolve_targets).
ResolvedRecipient resolve_recipient(const Mailbox& m, const RecipientPolicy& policy,
                                    const auth::Directory& directory);

// RFC 1870 SIZE= at RCPT time: false when the mailbox's Maildir++ quota (maildirsize) cannot take
// `size` more octets (452 4.2.2 then, before the data is sent). No maildirsize: true. Blocking I/O.
bool fits_quota(const ResolvedRecipient& r, std::uint64_t size);

// "user+tag" -> "user" (the first delimiter character found after position 0); unchanged when the
// delimiter is "" or absent. Any character of `delimiter` is a delimiter (Postfix's rule).
std::string strip_extension(std::string_view local, std::string_view delimiter);

// Forwarding (an alias with a remote target) needs the outbound queue: a [queue] section, or a
// submission listener (which opens the queue too). The relay delivers what is forwarded.
bool forwarding_configured(const Config& cfg);

// A start-up check of the aliases against what the receiving side can deliver: every alias must
// be in a local domain, and remote targets need the outbound queue (`remote_ok`; `config_file`
// names the config for the fix). Empty when fine; else "<file>:<line>: <what> (fix: ...)".
std::string alias_config_error(const auth::AliasTable& table, const RecipientPolicy& policy,
                               std::string_view path, bool remote_ok, std::string_view config_file = {});

// The server's aliases file: load_aliases() (syntax, cycles, depth) then alias_config_error().
// "" path = no aliases.
std::expected<auth::AliasTable, std::string> load_server_aliases(const std::filesystem::path& path,
                                                                 const RecipientPolicy& policy, bool remote_ok,
                                                                 std::string_view config_file = {});

}  // namespace buzon::smtp
