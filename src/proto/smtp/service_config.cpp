// proto/smtp/service_config.cpp — Settings from the config (see service_config.hpp).
//
// SECURITY  See service_config.hpp.
// STANDARDS RFC 5321 §4.5.3, RFC 2033.
// LIMITS    None.
#include "proto/smtp/service_config.hpp"

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
  s.max_message_size = c.max_message_size;
  s.max_recipients = c.max_recipients;
  s.max_line_length = c.max_line_length;
  s.max_errors = c.max_errors;
  s.command_timeout = std::chrono::seconds(c.command_timeout);
  s.data_timeout = std::chrono::seconds(c.data_timeout);
  s.max_session_time = std::chrono::seconds(c.max_session_time);
  s.greet_pause = mode == Mode::lmtp ? std::chrono::seconds(0) : std::chrono::seconds(c.greet_pause);
  s.vrfy = c.vrfy;
  return s;
}

}  // namespace buzon::smtp
