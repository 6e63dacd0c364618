// auth/aliases.hpp — virtual aliases read from a file ([aliases] file), and their expansion into
// the final addresses of one RCPT (README "Addresses and aliases").
//
// FORMAT    One alias per line: `alias@domain: target1, target2` — targets are addresses, local
//           or remote, separated by commas (spaces around them ignored). `@domain: target` is the
//           catch-all of that domain: it applies only to addresses that are neither an alias nor
//           a mailbox. Blank lines and everything from '#' to the end of a line are comments; a
//           trailing CR is ignored. An alias appearing twice is an error naming both lines. Keys
//           are compared case-insensitively (folded to ASCII lower case), as are target domains.
// SECURITY  The file is trusted administrator input but parsed defensively: bounded size, line
//           length and targets per alias; addresses must have exactly one '@', a non-empty domain,
//           no whitespace, controls, '<', '>', ',' or ':'. Expansion is bounded by kMaxAliasDepth
//           and kMaxAliasTargets, and a cycle is reported with its chain ("a -> b -> a") instead of
//           looping. AliasFile::reload() parses the new file first, so a bad edit keeps the old one.
// STANDARDS RFC 5321 §3.6.2 (aliases are expanded by the receiving MTA), §4.5.1 (postmaster).
// THREADS   AliasFile: lookups under a shared lock, reload() swaps under the exclusive lock.
// LIMITS    kMaxAliasFileSize, kMaxAliasLineLength, kMaxAliasTargets, kMaxAliasDepth.
#pragma once

#include "auth/passwd_file.hpp"  // ParseErrorAt, format_parse_error

#include <cstddef>
#include <expected>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::auth {

inline constexpr std::size_t kMaxAliasFileSize = 16 * 1024 * 1024;
inline constexpr std::size_t kMaxAliasLineLength = 64 * 1024;
inline constexpr std::size_t kMaxAliasTargets = 1000;  // final addresses of one expansion
inline constexpr unsigned kMaxAliasDepth = 10;         // alias -> alias -> ... nesting

struct AliasEntry {
  std::vector<std::string> targets;  // as written, domains lower-cased
  std::size_t line = 0;
};

// Key: "local@domain" or "@domain" (catch-all), lower-cased.
using AliasTable = std::map<std::string, AliasEntry, std::less<>>;

// "Local@Example.ORG" -> "local@example.org" (domain lower case, local part as given). Empty when
// the text is not a plain address (see SECURITY).
std::string normalize_alias_address(std::string_view address);

// Parses the whole file. Errors carry the line and "<what> (fix: <how>)".
std::expected<AliasTable, ParseErrorAt> parse_aliases(std::string_view text);

// Tells the expansion that an address is final: a mailbox that exists, or an address of a domain
// that is not local. Not final and not an alias: the catch-all of its domain applies, if any.
using IsFinal = std::function<bool(std::string_view address)>;

// The final addresses of `address` (lower-cased key lookups; duplicates removed, first order
// kept). Not an alias: { address } itself (a catch-all applies when !is_final(address)). Errors:
// "alias loop: a -> b -> a", "aliases nested deeper than 10: a -> b -> ...", too many targets.
std::expected<std::vector<std::string>, std::string> expand_alias(const AliasTable& table, std::string_view address,
                                                                  const IsFinal& is_final,
                                                                  unsigned max_depth = kMaxAliasDepth);

// Start-up check of the table alone: every alias expands without a cycle or depth error (catch-alls
// are not followed: they depend on which mailboxes exist). Error: "<file>:<line>: alias loop: ...".
std::expected<void, std::string> check_aliases(const AliasTable& table, std::string_view path,
                                               unsigned max_depth = kMaxAliasDepth);

// The aliases file, reloadable (SIGHUP). A missing path ("" ) is an empty table.
class AliasFile {
 public:
  static std::expected<std::shared_ptr<AliasFile>, std::string> open(std::filesystem::path path);
  static std::shared_ptr<AliasFile> from_table(AliasTable table);  // tests and tools

  // A copy of the current table (cheap: shared, never modified once built).
  std::shared_ptr<const AliasTable> table() const;
  // Re-reads the file; on error the previous table stays and the error says why. Returns the
  // number of aliases now loaded.
  std::expected<std::size_t, std::string> reload();
  // Swaps in a table loaded and checked elsewhere (all-or-nothing reloads).
  void replace(AliasTable table);
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  explicit AliasFile(std::filesystem::path path) : path_(std::move(path)) {}
  const std::filesystem::path path_;
  mutable std::shared_mutex mutex_;
  std::shared_ptr<const AliasTable> table_;  // guarded by mutex_
};

// `buzon alias add|del` (auth/passwd_edit.hpp edit_text_file: locked, atomic, the file must parse
// before and after, so an edit that would create a cycle is refused). add: "alias@domain" or
// "@domain" with one or more targets, an error when it exists; del: an error when it does not.
// Other lines and comments are kept byte for byte.
std::expected<void, std::string> add_alias(const std::filesystem::path& path, std::string_view alias,
                                           const std::vector<std::string>& targets);
std::expected<void, std::string> delete_alias(const std::filesystem::path& path, std::string_view alias);

// read + parse + check_aliases, errors "<path>:<line>: <what> (fix: ...)".
std::expected<AliasTable, std::string> load_aliases(const std::filesystem::path& path);

}  // namespace buzon::auth
