// core/config.hpp — buzon's TOML configuration (docs/CONTRACT.md, README "Configuration").
//
// SECURITY  The config file is trusted (root-owned in production) but still validated strictly:
//           unknown keys and bad values fail start-up with "file:line: what (fix: how)".
// LIMITS    Every number has a range check; durations are whole seconds.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon {

struct ConfigError {
  std::string file;
  int line = 0;  // 0 when not tied to a line
  std::string message;
  std::string fix;
  std::string str() const;  // "file:line: message (fix: ...)"
};

struct ListenAddress {
  std::string host;  // numeric IPv4/IPv6 address
  std::uint16_t port = 0;
  std::string str() const;
};
std::expected<ListenAddress, std::string> parse_listen_address(std::string_view text);

struct ServerConfig {
  std::string hostname = "localhost";
  unsigned io_threads = 0;        // 0 = one per core
  unsigned worker_threads = 4;    // blocking pool
  unsigned max_connections = 1000;
  unsigned max_connections_per_ip = 100;
  unsigned shutdown_grace = 10;   // seconds
};

struct LogConfig {
  std::string level = "info";
  std::string file;  // empty = stderr
};

struct UsersConfig {
  std::filesystem::path passwd_file = "passwd";
  std::string default_domain;
  bool lowercase = true;
  std::string default_scheme = "SHA512-CRYPT";
};

struct MailConfig {
  std::string location = "mail/%d/%n/Maildir";  // relative to the config dir unless absolute
  std::string uidl_format = "buzon";             // buzon | dovecot | x-uidl
};

struct Pop3Config {
  std::vector<ListenAddress> listen{{"127.0.0.1", 1110}};
  bool apop = false;
  unsigned autologout = 600;          // RFC 1939 §3: at least 10 minutes
  unsigned max_session_time = 7200;
  unsigned max_bad_commands = 20;
  unsigned login_delay = 0;           // seconds; 0 = not advertised (RFC 2449 §6.8)
  std::optional<unsigned> expire_days;  // nullopt = NEVER (RFC 2449 §6.7)
};

struct Config {
  std::filesystem::path file;  // the config file itself
  std::filesystem::path dir;   // its directory: base for relative paths
  ServerConfig server;
  LogConfig log;
  UsersConfig users;
  MailConfig mail;
  Pop3Config pop3;

  // A path from the config, made absolute against the config's directory.
  std::filesystem::path resolve(const std::filesystem::path& p) const;
};

// Parses TOML text; `file` is used for error messages and to resolve relative paths.
std::expected<Config, ConfigError> parse_config(std::string_view text, const std::filesystem::path& file);
std::expected<Config, ConfigError> load_config(const std::filesystem::path& file);

}  // namespace buzon
