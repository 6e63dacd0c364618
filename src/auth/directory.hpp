// auth/directory.hpp — who the users are and where their mail lives.
//
// SECURITY  User names come from the network. canonical_username() is the only way a client-typed
//           name becomes a lookup key; it refuses names that could escape the mail root or inject
//           anything ("/", "..", NUL, control characters, whitespace, over-long names).
// THREADS   lookup() may block (file or database); verify_password() is CPU-heavy (crypt, argon2).
//           Both are called only from the worker pool.
// STANDARDS RFC 5321 §4.5.3.1 (lengths), RFC 6531/6856 with RFC 3629 (UTF-8 names), RFC 4343.
// LIMITS    kMaxUsernameLength octets per canonical name.
#pragma once

#include <cstddef>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::auth {

struct NameRules {
  std::string default_domain;   // when set, "user" and "user@default_domain" are the same account
  bool lowercase = true;        // user names are compared case-insensitively (folded to lower case)
};

// The name used as a directory key, or an error text suitable for the log.
// Domains are always case-insensitive (lower-cased); local parts per `rules.lowercase`.
// Refuses: empty, > kMaxUsernameLength octets, NUL and control characters (C0, DEL, C1), space,
// '/', '\\', ':', a leading '#' (passwd-file comment), "." / "..", any "..", a local part or
// domain starting with '.', more than one '@', an empty local part or domain, invalid UTF-8.
// With rules.default_domain set, "user" becomes "user@default_domain", so "demo" and
// "demo@example.com" give the same key. The error text never echoes the typed name.
std::expected<std::string, std::string> canonical_username(std::string_view typed, const NameRules& rules);

// Longest canonical name (RFC 5321 §4.5.3.1.3 caps a whole path at 256 octets).
inline constexpr std::size_t kMaxUsernameLength = 255;

// A domain as canonical_username() stores it (lower-cased), or why it cannot be one. Used to
// check [users] default_domain at start-up; "" is accepted and means "no default domain".
std::expected<std::string, std::string> canonical_domain(std::string_view domain);

struct User {
  std::string name;       // canonical name as in the directory
  std::string password;   // stored secret with its scheme prefix, e.g. "{SHA512-CRYPT}$6$..."
  std::optional<unsigned> uid, gid;
  std::string home;
  std::string mail;       // explicit mail location from the entry (passwd-file extra field), may be empty
  std::vector<std::string> quota_rules;  // Dovecot quota_rule / quota_rule2 values, e.g. "*:storage=1G"
};

class Directory {
 public:
  virtual ~Directory() = default;
  // Looks up a canonical user name. nullopt when unknown.
  virtual std::optional<User> lookup(std::string_view canonical_name) const = 0;
};

}  // namespace buzon::auth
