// proto/smtp/service_config.cpp — Settings from the config (see service_config.hpp). Submission
// takes [smtp]'s limits and local domains, [auth]'s login policy and [submission]'s rules.
//
// SECURITY  See service_config.hpp.
// STANDARDS RFC 5321 §4.5.3, RFC 2033.
// LIMITS    None.
#include "proto/smtp/service_config.hpp"

#include "core/ip_network.hpp"

namespace buzon::smtp {

Settings settings_from_config(const Config& cfg, Mode mode) {
  const auto& c = cfg.smtp;
  Settings s;
  s.mode = mode;
  s.hostname = c.hostname.empty() ? cfg.server.hostname : c.hostname;
  s.recipients.local_domains = c.local_domains;
  s.recipients.require_local_domain = mode != Mode::lmtp;
  s.recipients.names = auth::NameRules{cfg.users.default_domain, cfg.users.lowercase};
  s.recipients.mail_template = cfg.mail.location;
  s.recipients.base_dir = cfg.dir;
  s.recipients.delimiter = c.recipient_delimiter;     // [smtp] and [aliases] (issue 10); the aliases
  s.recipients.domain_aliases = cfg.aliases.domains;  // file itself is loaded by the server
  s.recipients.postmaster = cfg.aliases.postmaster;
  s.recipients.default_quota = {cfg.quota.default_bytes, cfg.quota.default_messages};
  s.recipients.max_hops = c.max_hops;
  s.over_quota_permanent = cfg.quota.over_quota_permanent;
  for (const auto& [domain, l] : cfg.quota.domains) s.recipients.domain_quota[domain] = {l.bytes, l.messages};
  s.max_message_size = c.max_message_size;
  s.max_recipients = c.max_recipients;
  s.max_line_length = c.max_line_length;
  s.max_errors = c.max_errors;
  s.command_timeout = std::chrono::seconds(c.command_timeout);
  s.data_timeout = std::chrono::seconds(c.data_timeout);
  s.max_session_time = std::chrono::seconds(c.max_session_time);
  s.greet_pause = mode == Mode::lmtp ? std::chrono::seconds(0) : std::chrono::seconds(c.greet_pause);
  s.vrfy = c.vrfy;
  if (mode == Mode::submission) {
    // [auth] (shared with POP3) and [submission]; the limits and local domains are [smtp]'s.
    s.sasl_mechanisms = cfg.auth.mechanisms;
    s.plaintext_requires_tls = cfg.auth.plaintext_requires_tls;
    s.trusted_networks.clear();
    for (const auto& t : cfg.auth.trusted_networks)
      if (auto net = parse_ip_network(t)) s.trusted_networks.push_back(*net);  // validated by the config
    s.greet_pause = std::chrono::seconds(0);  // clients of ours, not spammers: no pause
    s.submission.require_tls = cfg.submission.require_tls;
    s.submission.hide_client = cfg.submission.hide_client;
    for (const auto& [address, users] : cfg.submission.sender_aliases) s.submission.sender_aliases[address] = users;
  }
  return s;
}

}  // namespace buzon::smtp
