// proto/smtp/recipient.cpp — recipient resolution (see recipient.hpp).
//
// SECURITY  Only canonical_username() turns the address into a lookup key; mail_location() keeps
//           the mailbox under the base directory.
// STANDARDS RFC 5321 §3.6.2, §4.1.1.3, §7.1; RFC 2033 §4.2.
// LIMITS    None.
#include "proto/smtp/recipient.hpp"

#include "core/config.hpp"
#include "core/mail_location.hpp"

#include <algorithm>
#include <optional>

namespace buzon::smtp {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_local_domain(std::string_view domain, const std::vector<std::string>& local_domains) {
  if (domain.empty()) return false;
  const std::string d = ascii_lower(domain);
  for (const auto& l : local_domains)
    if (l == d) return true;
  return false;
}

std::string strip_extension(std::string_view local, std::string_view delimiter) {
  if (delimiter.empty() || local.size() < 2) return std::string(local);
  const auto pos = local.find_first_of(delimiter, 1);
  return std::string(local.substr(0, pos));
}

namespace {

std::string_view local_of(std::string_view address) { return address.substr(0, address.rfind('@')); }
std::string_view domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

std::string map_domain(std::string_view domain, const RecipientPolicy& policy) {
  std::string d = ascii_lower(domain);
  if (auto it = policy.domain_aliases.find(d); it != policy.domain_aliases.end()) return it->second;
  return d;
}

// The user of "local@domain": the full address first, then the local part alone (local domains).
std::optional<auth::User> find_user(std::string_view local, std::string_view domain, bool literal, bool local_domain,
                                    const RecipientPolicy& policy, const auth::Directory& directory) {
  std::optional<auth::User> user;
  if (!literal) {
    if (auto full = auth::canonical_username(std::string(local) + "@" + std::string(domain), policy.names))
      user = directory.lookup(*full);
  }
  if (!user && local_domain) {
    if (auto bare = auth::canonical_username(local, policy.names)) user = directory.lookup(*bare);
  }
  return user;
}

bool is_alias(const auth::AliasTable* table, std::string_view address) {
  return table && table->find(ascii_lower(address)) != table->end();
}

bool role_local_part(std::string_view local) {
  const std::string l = ascii_lower(local);
  return l == "postmaster" || l == "abuse";
}

// A user's mailbox as a ResolvedRecipient (temp_failure when the location cannot be made).
ResolvedRecipient mailbox_of(const auth::User& user, std::string address, const RecipientPolicy& policy) {
  ResolvedRecipient r;
  r.address = std::move(address);
  auto where = mail_location(policy.mail_template, policy.base_dir, user.name, user.mail, user.home);
  if (!where) {
    r.verdict = RcptVerdict::temp_failure;
    r.detail = where.error();
    return r;
  }
  r.verdict = RcptVerdict::local;
  r.user = user.name;
  r.box = store::MailboxRef{user.name, where->string()};
  // The user's quota_rule (passwd-file, authoritative) or the [quota] default (only where none is).
  if (auto own = store::maildir::parse_quota_rules(user.quota_rules)) {
    store::maildir::ensure_maildir_quota(*where, *own, true);
  } else {
    const auto at = user.name.rfind('@');
    const std::string domain =
        at != std::string::npos ? user.name.substr(at + 1) : map_domain(domain_of(r.address), policy);
    const auto d = policy.domain_quota.find(domain);
    store::maildir::ensure_maildir_quota(*where, d != policy.domain_quota.end() ? d->second : policy.default_quota);
  }
  return r;
}

}  // namespace

AddressRules rules_of(const RecipientPolicy& p, bool over_quota_permanent) {
  return AddressRules{p.delimiter,    p.domain_aliases,      p.postmaster, p.default_quota,
                      p.domain_quota, over_quota_permanent, p.max_hops};
}

RecipientPolicy with_rules(RecipientPolicy p, const AddressRules& rules) {
  p.delimiter = rules.delimiter;
  p.domain_aliases = rules.domain_aliases;
  p.postmaster = rules.postmaster;
  p.default_quota = rules.default_quota;
  p.domain_quota = rules.domain_quota;
  p.max_hops = rules.max_hops;
  p.live = nullptr;
  return p;
}

RecipientTargets resolve_targets(const Mailbox& m, const RecipientPolicy& live_policy, const auth::Directory& directory) {
  // The running rules (SIGHUP) in place of the fields they replace: one snapshot per resolution.
  std::optional<RecipientPolicy> current;
  if (live_policy.live) current = with_rules(live_policy, *live_policy.live->get());
  const RecipientPolicy& policy = current ? *current : live_policy;
  RecipientTargets out;
  std::string local = m.local;
  std::string domain = m.domain;
  if (domain.empty()) {
    // <Postmaster> (RFC 5321 §4.1.1.3): the postmaster of our first local domain.
    if (policy.local_domains.empty()) {
      out.detail = "postmaster without a local domain";
      return out;
    }
    local = "postmaster";
    domain = policy.local_domains.front();
  }
  const std::string sent = m.domain.empty() ? local + "@" + domain : m.text;  // for Delivered-To:
  const bool is_local = is_local_domain(domain, policy.local_domains);
  if (policy.require_local_domain && !is_local) {
    out.verdict = RcptVerdict::relay_denied;
    out.detail = "domain is not local";
    return out;
  }
  if (is_local) domain = map_domain(domain, policy);

  const auto table = policy.aliases ? policy.aliases->table() : nullptr;
  const auth::AliasTable* aliases = table.get();

  // Plus-addressing: the full local part wins when it is an alias or a user itself.
  if (is_local && !m.literal) {
    const std::string base = strip_extension(local, policy.delimiter);
    if (base != local && !is_alias(aliases, local + "@" + domain) &&
        !find_user(local, domain, false, true, policy, directory))
      local = base;
  }
  std::string address = local + "@" + domain;

  // postmaster@ and abuse@ of every local domain (RFC 5321 §4.5.1).
  bool routed = false;
  if (is_local && !m.literal && role_local_part(local) && !is_alias(aliases, address) &&
      !find_user(local, domain, false, true, policy, directory)) {
    const std::string target =
        policy.postmaster.empty() ? "postmaster@" + (policy.local_domains.empty() ? domain : policy.local_domains.front())
                                  : policy.postmaster;
    if (ascii_lower(target) != ascii_lower(address)) {
      address = target;
      routed = true;
    }
  }

  // Plain address, not an alias: the user as before (LMTP: any domain).
  const std::string tl(local_of(address)), td(domain_of(address));
  const bool t_local = routed ? is_local_domain(td, policy.local_domains) : is_local;
  const bool t_literal = m.literal && !routed;
  auto user = find_user(tl, td, t_literal, t_local, policy, directory);
  if (!is_alias(aliases, address) && (user || !aliases || !t_local || t_literal || !aliases->contains("@" + ascii_lower(td)))) {
    if (!user) {
      out.detail = routed ? "postmaster target is not a mailbox: " + address : "no such user";
      return out;
    }
    auto r = mailbox_of(*user, sent, policy);
    out.verdict = r.verdict;
    out.detail = r.detail;
    if (r.verdict == RcptVerdict::local) out.local.push_back(std::move(r));
    return out;
  }

  // Alias expansion: final addresses are mailboxes of local domains (a target "ana+tag@d" is ana's,
  // with the tag in Delivered-To), or remote addresses.
  auto target_user = [&](std::string_view a) {
    const std::string tdomain = map_domain(domain_of(a), policy);
    auto u = find_user(local_of(a), tdomain, false, true, policy, directory);
    if (const std::string base = strip_extension(local_of(a), policy.delimiter); !u && base != local_of(a))
      u = find_user(base, tdomain, false, true, policy, directory);
    return u;
  };
  const auth::IsFinal is_final = [&](std::string_view a) {
    if (!is_local_domain(domain_of(a), policy.local_domains)) return true;
    return target_user(a).has_value();
  };
  out.alias = address;
  auto finals = auth::expand_alias(*aliases, address, is_final);
  if (!finals) {
    out.verdict = RcptVerdict::temp_failure;
    out.detail = finals.error();
    return out;
  }
  std::vector<std::string> seen_boxes;
  for (const auto& a : *finals) {
    const std::string_view d = domain_of(a);
    if (!is_local_domain(d, policy.local_domains)) {
      out.remote.push_back(a);
      continue;
    }
    auto user = target_user(a);
    if (!user) {
      out.local.clear();
      out.remote.clear();
      out.verdict = RcptVerdict::unknown_user;
      out.detail = "alias target is not a mailbox: " + a;
      return out;
    }
    auto r = mailbox_of(*user, a, policy);
    if (r.verdict != RcptVerdict::local) {
      out.local.clear();
      out.remote.clear();
      out.verdict = r.verdict;
      out.detail = r.detail;
      return out;
    }
    if (std::find(seen_boxes.begin(), seen_boxes.end(), r.box.location) != seen_boxes.end()) continue;
    seen_boxes.push_back(r.box.location);
    out.local.push_back(std::move(r));
  }
  out.verdict = RcptVerdict::local;
  return out;
}

ResolvedRecipient resolve_recipient(const Mailbox& m, const RecipientPolicy& policy,
                                    const auth::Directory& directory) {
  auto t = resolve_targets(m, policy, directory);
  ResolvedRecipient r;
  r.verdict = t.verdict;
  r.detail = t.detail;
  if (t.verdict != RcptVerdict::local) return r;
  if (t.local.size() != 1 || !t.remote.empty()) {
    r.verdict = RcptVerdict::temp_failure;
    r.detail = "alias with several or remote targets: not delivered by this path";
    return r;
  }
  return std::move(t.local.front());
}

bool fits_quota(const ResolvedRecipient& r, std::uint64_t size) {
  if (r.verdict != RcptVerdict::local || r.box.location.empty()) return true;
  auto q = store::maildir::read_maildirsize(r.box.location, std::chrono::system_clock::now());
  return !q || store::maildir::quota_allows(q->limits, q->usage, size);
}

bool forwarding_configured(const Config& cfg) {
  return cfg.queue.line > 0 || !cfg.submission.listen.empty() || !cfg.submission.listen_tls.empty();
}

std::string alias_config_error(const auth::AliasTable& table, const RecipientPolicy& policy, std::string_view path,
                               bool remote_ok, std::string_view config_file) {
  for (const auto& [key, entry] : table) {
    const std::string where = std::string(path) + ":" + std::to_string(entry.line) + ": ";
    if (!is_local_domain(domain_of(key), policy.local_domains))
      return where + "'" + key + "' is not in a local domain (fix: add its domain to [smtp] local_domains, or remove the line)";
    if (remote_ok) continue;
    for (const auto& t : entry.targets)
      if (!is_local_domain(domain_of(t), policy.local_domains))
        return where + "'" + key + "' forwards to the remote address " + t +
               ", but this server has no outbound queue to send it from (fix: add a [queue] section to " +
               (config_file.empty() ? std::string("the config file") : std::string(config_file)) +
               " so that the relay delivers forwarded mail, or use a local mailbox as the target)";
  }
  return {};
}

std::expected<auth::AliasTable, std::string> load_server_aliases(const std::filesystem::path& path,
                                                                 const RecipientPolicy& policy, bool remote_ok,
                                                                 std::string_view config_file) {
  if (path.empty()) return auth::AliasTable{};
  auto table = auth::load_aliases(path);
  if (!table) return table;
  if (auto e = alias_config_error(*table, policy, path.string(), remote_ok, config_file); !e.empty())
    return std::unexpected(e);
  return table;
}

}  // namespace buzon::smtp
