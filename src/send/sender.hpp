// send/sender.hpp — `buzon send`: msmtp-style submission of one RFC 5322 message, usable as
// sendmail (-t -f -i -oi -F ...), configured by the [send] section of the TOML config or flags.
//
// SECURITY  The password comes from password_file or password_command, never an argument. TLS is
//           the default (STARTTLS on 587); tls = "none" must be written out, and PLAIN/LOGIN then
//           need allow_plaintext (or a loopback server). Bcc fields never leave the machine.
// STANDARDS RFC 6409 (submission, port 587), RFC 8314 (implicit TLS, port 465), RFC 5322 §3.6.3
//           (Bcc), sendmail(8) flags as Postfix documents them; sysexits.h exit codes.
// LIMITS    kMaxMessage octets read from the input.
#pragma once

#include "core/config.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace buzon::send {

inline constexpr std::uint64_t kMaxMessage = 256ull << 20;

// sysexits.h, as sendmail and msmtp use them.
inline constexpr int kExOk = 0;
inline constexpr int kExUsage = 64;        // bad arguments
inline constexpr int kExDataErr = 65;      // no recipients, unreadable message
inline constexpr int kExNoUser = 67;       // a recipient was refused (5xx)
inline constexpr int kExUnavailable = 69;  // the server refused the message (5xx)
inline constexpr int kExSoftware = 70;     // internal error
inline constexpr int kExIoErr = 74;        // cannot read the message file
inline constexpr int kExTempFail = 75;     // 4xx, network trouble, timeout: try again later
inline constexpr int kExProtocol = 76;     // the server broke the protocol
inline constexpr int kExNoPerm = 77;       // authentication failed
inline constexpr int kExConfig = 78;       // config error, TLS unavailable, plaintext refused

enum class TlsMode { starttls, implicit, none };

struct SendConfig {
  std::string host;
  std::uint16_t port = 0;  // 0: 465 for implicit, 587 otherwise
  TlsMode tls = TlsMode::starttls;
  std::string user;        // "" = no AUTH
  std::filesystem::path password_file;
  std::string password_command;
  std::vector<std::string> auth{"SCRAM-SHA-256", "PLAIN", "LOGIN"};
  bool allow_plaintext = false;
  std::string from;        // envelope sender when -f is not given
  std::string helo;        // EHLO name ("" = this host's name)
  std::filesystem::path ca_file;
  std::string fingerprint;
  std::chrono::seconds timeout{300};
  std::uint16_t effective_port() const { return port ? port : (tls == TlsMode::implicit ? 465 : 587); }
};

// The [send] section; a config without it gives a default SendConfig.
std::expected<SendConfig, ConfigError> parse_send_config(std::string_view text, const std::filesystem::path& file);

struct SendArgs {
  bool read_recipients = false;   // -t
  bool ignore_dots = false;       // -i, -oi
  std::string from;               // -f, -r, --from
  std::string full_name;          // -F (accepted, unused)
  std::string file;               // --file: the message; "" = standard input
  std::vector<std::string> recipients;
  bool verbose = false;           // -v
  // Overrides of the [send] section.
  std::optional<std::string> host, user, password_file, password_command, helo, ca_file, fingerprint;
  std::optional<std::uint16_t> port;
  std::optional<TlsMode> tls;
  std::optional<std::vector<std::string>> auth;
  bool allow_plaintext = false;
  std::optional<unsigned> timeout;
};

// sendmail-compatible argument parsing (everything after `buzon send`).
std::expected<SendArgs, std::string> parse_send_args(const std::vector<std::string>& args);

// The whole command: reads the message, submits it, prints a line on failure. `config_file` may
// be "" (flags only). Returns a sysexits code.
int run_send(const std::filesystem::path& config_file, const std::vector<std::string>& args);

}  // namespace buzon::send
