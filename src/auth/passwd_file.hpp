// auth/passwd_file.hpp — the user directory read from a Dovecot passwd-file.
//
// FORMAT    One user per line: user:password:uid:gid:(gecos):home:(shell):extra_fields
//           Every field after `user` may be absent; blank lines and lines whose first non-blank
//           character is '#' are comments; a line starting with ':' has no user and is skipped (as
//           Dovecot does); a trailing CR is ignored. extra_fields is the rest of the line (it may
//           contain ':'), a space-separated list of key=value: mail / userdb_mail give User::mail,
//           home / userdb_home, uid / userdb_uid, gid / userdb_gid override the fixed fields;
//           quota_rule / quota_rule2 ("*:storage=1G", "*:messages=1000") give User::quota_rules;
//           other keys (nopassword, ...) are ignored. Dovecot's old format — an empty
//           8th field followed by the mail location — is read too. A password without a
//           {SCHEME} prefix is CRYPT (Dovecot's passwd-file default_pass_scheme).
// SECURITY  The file is trusted administrator input but is still parsed defensively: bounded
//           size and line length, names through canonical_username() (so the file cannot hold a
//           name a client could never type, nor one that escapes the mail root), numeric uid/gid
//           only and never 0 (root), home must be absolute. Start-up errors name file:line and
//           the fix, and never echo a password. Lookups copy the entry out under a shared lock;
//           reload() builds the new table first and swaps it in, so a bad edit never empties
//           the directory.
// STANDARDS Dovecot passwd-file (doc.dovecot.org "Passwd-file"; src/auth/db-passwd-file.c).
// LIMITS    kMaxPasswdFileSize octets per file, kMaxPasswdLineLength octets per line.
#pragma once

#include "auth/directory.hpp"

#include <cstddef>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace buzon::auth {

inline constexpr std::size_t kMaxPasswdFileSize = 64 * 1024 * 1024;
inline constexpr std::size_t kMaxPasswdLineLength = 64 * 1024;

// A parse error: 1-based line (0 = the file as a whole) and "<what> (fix: <how>)".
struct ParseErrorAt {
  std::size_t line = 0;
  std::string message;
};

// "<path>:<line>: <message>" (or "<path>: <message>" for line 0).
std::string format_parse_error(std::string_view path, const ParseErrorAt& error);

// Parses a whole passwd-file. Users come back in file order with canonical names. A duplicate
// (after canonicalisation: "demo" and "demo@example.com" with default_domain example.com are the
// same user) is an error naming both lines.
std::expected<std::vector<User>, ParseErrorAt> parse_passwd_file(std::string_view text, const NameRules& rules);

// The raw (not canonicalised) user field of one line without its line ending, or nullopt when the
// line holds no entry (blank, comment, starts with ':'). For editors that keep other lines as is.
std::optional<std::string_view> passwd_entry_name(std::string_view line);

// Non-fatal findings worth a warning at start-up and in `buzon doctor`, one text per affected user:
// a password scheme buzon does not implement, or no password at all. Such users load (a file
// migrated from Dovecot keeps working for everyone else) but can never log in.
std::vector<std::string> passwd_warnings(std::span<const User> users);

// Reads a regular file of at most kMaxPasswdFileSize octets. Error: "<path>: <what> (fix: ...)".
std::expected<std::string, std::string> read_passwd_text(const std::filesystem::path& path);

// read_passwd_text() + parse_passwd_file(), errors formatted as "<path>:<line>: <what> (fix: ...)".
std::expected<std::vector<User>, std::string> load_passwd_file(const std::filesystem::path& path,
                                                               const NameRules& rules);

// The passwd-file as a Directory. lookup() is thread-safe and may run concurrently with reload().
class PasswdFileDirectory final : public Directory {
 public:
  // Loads `path` (a missing or invalid file is an error: "<path>:<line>: <what> (fix: ...)").
  static std::expected<std::unique_ptr<PasswdFileDirectory>, std::string> open(std::filesystem::path path,
                                                                               NameRules rules);

  std::optional<User> lookup(std::string_view canonical_name) const override;

  // Re-reads the file (SIGHUP). On error the previous table stays in use and the error says why.
  // Returns the number of users now loaded.
  std::expected<std::size_t, std::string> reload();

  std::size_t size() const;
  const std::filesystem::path& path() const noexcept { return path_; }
  const NameRules& rules() const noexcept { return rules_; }

 private:
  using Table = std::unordered_map<std::string, User>;
  PasswdFileDirectory(std::filesystem::path path, NameRules rules);
  static Table make_table(std::vector<User> users);

  const std::filesystem::path path_;
  const NameRules rules_;
  mutable std::shared_mutex mutex_;
  Table users_;  // guarded by mutex_
};

}  // namespace buzon::auth
