// proto/smtp/recipient.cpp — recipient resolution (see recipient.hpp).
//
// SECURITY  Only canonical_username() turns the address into a lookup key; mail_location() keeps
//           the mailbox under the base directory.
// STANDARDS RFC 5321 §3.6.2, §4.1.1.3, §7.1; RFC 2033 §4.2.
// LIMITS    None.
#include "proto/smtp/recipient.hpp"

#include "core/mail_location.hpp"

namespace buzon::smtp {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

bool is_local_domain(std::string_view domain, const std::vector<std::string>& local_domains) {
  if (domain.empty()) return false;
  const std::string d = lower(domain);
  for (const auto& l : local_domains)
    if (l == d) return true;
  return false;
}

ResolvedRecipient resolve_recipient(const Mailbox& m, const RecipientPolicy& policy,
                                    const auth::Directory& directory) {
  ResolvedRecipient r;
  std::string local = m.local;
  std::string domain = m.domain;
  if (domain.empty()) {
    // <Postmaster> (RFC 5321 §4.1.1.3): the postmaster of our first local domain.
    if (policy.local_domains.empty()) {
      r.detail = "postmaster without a local domain";
      return r;
    }
    local = "postmaster";
    domain = policy.local_domains.front();
  }
  r.address = m.domain.empty() ? local + "@" + domain : m.text;
  const bool local_domain = is_local_domain(domain, policy.local_domains);
  if (policy.require_local_domain && !local_domain) {
    r.verdict = RcptVerdict::relay_denied;
    r.detail = "domain is not local";
    return r;
  }

  std::optional<auth::User> user;
  std::string canonical;
  if (!m.literal) {
    if (auto full = auth::canonical_username(local + "@" + domain, policy.names)) {
      canonical = *full;
      user = directory.lookup(canonical);
    }
  }
  if (!user && local_domain) {
    if (auto bare = auth::canonical_username(local, policy.names)) {
      canonical = *bare;
      user = directory.lookup(canonical);
    }
  }
  if (!user) {
    r.verdict = RcptVerdict::unknown_user;
    r.detail = "no such user";
    return r;
  }
  auto where = mail_location(policy.mail_template, policy.base_dir, user->name, user->mail, user->home);
  if (!where) {
    r.verdict = RcptVerdict::temp_failure;
    r.detail = where.error();
    return r;
  }
  r.verdict = RcptVerdict::local;
  r.user = user->name;
  r.box = store::MailboxRef{user->name, where->string()};
  return r;
}

}  // namespace buzon::smtp
