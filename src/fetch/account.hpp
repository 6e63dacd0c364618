// fetch/account.hpp — what `buzon fetch` polls: accounts from the [fetch] section of the TOML
// config ([[fetch.account]] tables) or one account from the command line.
//
// SECURITY  Passwords are never stored in the config itself: password_file (first line) or
//           password_command (first line of its output, exit status 0). tls = "none" must be
//           written out; the default is implicit TLS (RFC 8314). Certificate checks stay on;
//           ca_file or fingerprint only add trust, they never switch verification off.
// STANDARDS RFC 8314 (implicit TLS, port 995), RFC 2595 (STLS, port 110).
// LIMITS    Numbers are range-checked; unknown keys fail with "file:line: what (fix: how)".
#pragma once

#include "core/config.hpp"
#include "proto/pop3/client_session.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::fetch {

enum class TlsMode { implicit, stls, none };
std::string_view to_string(TlsMode m);
std::optional<TlsMode> parse_tls_mode(std::string_view s);

enum class DestKind { maildir, mbox, mda };
std::string_view to_string(DestKind d);

struct Account {
  std::string name;  // label for messages and the state file; default "user@host:port"
  std::string host;
  std::uint16_t port = 0;  // 0: 995 for implicit TLS, 110 otherwise
  TlsMode tls = TlsMode::implicit;
  std::string user;
  std::filesystem::path password_file;
  std::string password_command;
  std::vector<pop3::AuthMethod> auth{pop3::AuthMethod::scram_sha256, pop3::AuthMethod::plain,
                                     pop3::AuthMethod::login, pop3::AuthMethod::apop, pop3::AuthMethod::user};
  bool allow_plaintext = false;
  std::filesystem::path ca_file;
  std::string fingerprint;  // "sha256:AB:CD:..." of the server certificate (pinning)
  bool keep = false;
  std::uint64_t limit = 0;  // octets; 0 = no limit
  DestKind dest = DestKind::maildir;
  std::string dest_path;    // Maildir directory, mbox file, or the MDA command line
  bool pipelining = true;   // use PIPELINING when the server offers it
  std::chrono::seconds timeout{60};
  std::string origin;       // "buzon.toml:12" or "command line", for messages

  std::uint16_t effective_port() const { return port ? port : (tls == TlsMode::implicit ? 995 : 110); }
  std::string label() const;
  // File-name-safe id for the state files: the name, else user@host:port, with unsafe bytes escaped.
  std::string state_id() const;
};

struct FetchConfig {
  std::filesystem::path state_dir;  // "" = default (see default_state_dir)
  std::vector<Account> accounts;
};

// $XDG_STATE_HOME/buzon/fetch, else $HOME/.local/state/buzon/fetch, else ./.buzon-fetch.
std::filesystem::path default_state_dir();

// Reads the [fetch] section of a TOML config (relative paths against the file's directory).
std::expected<FetchConfig, ConfigError> parse_fetch_config(std::string_view text, const std::filesystem::path& file);
std::expected<FetchConfig, ConfigError> load_fetch_config(const std::filesystem::path& file);

// Checks an account built elsewhere (command line): required fields, one destination.
std::expected<void, std::string> validate(const Account& a);

// "sha256:" + 64 hex digits, colons optional, any case -> canonical "sha256:AB:CD:..."; error text.
std::expected<std::string, std::string> normalize_fingerprint(std::string_view fp);

// The password: first line of password_file, or of password_command's output (run with /bin/sh).
std::expected<std::string, std::string> read_secret(const std::filesystem::path& file, const std::string& command);

}  // namespace buzon::fetch
