// auth/passwd_edit.hpp — safe edits of a Dovecot passwd-file for `buzon user add|passwd|del|list|show`.
//
// SECURITY  Every edit is a transaction: an exclusive flock(2) on "<path>.lock" serializes editors
//           (threads and processes; none is lost), the current file is read and must parse (an
//           edit never builds on, or hides, a broken file), the new text goes to
//           "<path>.tmp.<pid>" (O_NOFOLLOW, mode 0600 or the old file's mode, the old owner kept),
//           is fsync'd, renamed over the file, and the directory is fsync'd. A reader (the server's
//           reload) therefore sees the old file or the new one, never a torn one. Lines other than
//           the edited one — comments, blank lines, other users' fields — are kept byte for byte.
//           Names go through canonical_username(); a stored secret must be a single field (no ':',
//           no control characters) of a scheme buzon can verify. A symlinked passwd-file is refused
//           (the rename would replace the link). The lock file stays in place (removing it would
//           let two editors lock different files).
// STANDARDS Dovecot passwd-file (passwd_file.hpp); POSIX rename(2) atomicity; flock(2).
// LIMITS    as passwd_file.hpp; a new entry is written as "name:{SCHEME}secret".
#pragma once

#include "auth/directory.hpp"

#include <expected>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::auth {

// Adds `name` with `stored` ("{SCHEME}..." from hash_password()). Creates the file (mode 0600)
// when absent. Error when the user exists (fix: `buzon user passwd`).
std::expected<void, std::string> add_user(const std::filesystem::path& path, std::string_view name,
                                          std::string_view stored, const NameRules& rules);

// Replaces the password field of an existing user, keeping the entry's other fields as they are.
std::expected<void, std::string> set_password(const std::filesystem::path& path, std::string_view name,
                                              std::string_view stored, const NameRules& rules);

// Removes an existing user's line.
std::expected<void, std::string> delete_user(const std::filesystem::path& path, std::string_view name,
                                             const NameRules& rules);

// Every user, in file order. A missing file is an empty list (nothing was added yet).
std::expected<std::vector<User>, std::string> list_users(const std::filesystem::path& path, const NameRules& rules);

// One user by typed name (canonicalised with `rules`), nullopt when unknown.
std::expected<std::optional<User>, std::string> find_user(const std::filesystem::path& path, std::string_view name,
                                                          const NameRules& rules);

// The same transaction for another administrator file (the aliases file): lock "<path>.lock", read
// the file ("" when absent; a symlink is refused), `check` the current text (an edit never builds on
// a broken file), `edit` it, `check` the result, then write tmp + fsync + rename + fsync dir.
using TextCheck = std::function<std::expected<void, std::string>(std::string_view text)>;
using TextEdit = std::function<std::expected<std::string, std::string>(const std::string& text)>;
std::expected<void, std::string> edit_text_file(const std::filesystem::path& path, const TextCheck& check,
                                                const TextEdit& edit);

}  // namespace buzon::auth
