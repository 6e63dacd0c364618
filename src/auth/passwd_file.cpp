// auth/passwd_file.cpp — Dovecot passwd-file parser and the PasswdFileDirectory.
//
// SECURITY  passwd_file.hpp. Messages quote user names with non-printable octets escaped (\xNN)
//           so a hostile or broken file cannot forge log lines; passwords are never quoted.
// STANDARDS Dovecot passwd-file, field order and the "old format" as in Dovecot's
//           src/auth/db-passwd-file.c (passwd_file_add).
// LIMITS    kMaxPasswdFileSize, kMaxPasswdLineLength.

#include "auth/passwd_file.hpp"

#include "auth/password.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <utility>

namespace buzon::auth {
namespace {

std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0x0F];
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const auto pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string join(std::span<const std::string_view> parts, char sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Parses a uid/gid field. nullopt for an empty field.
std::expected<std::optional<unsigned>, std::string> parse_id(std::string_view field, std::string_view what) {
  if (field.empty()) return std::optional<unsigned>();
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || ptr != field.data() + field.size() || field.front() == '+' || field.front() == '-') {
    return std::unexpected(std::string(what) + " " + printable(field) + " is not a number (fix: write a numeric " +
                           std::string(what) + " such as 1000, or leave the field empty)");
  }
  if (value == 0) {
    return std::unexpected(std::string(what) + " 0 (root) is not allowed for a mail user (fix: use an unprivileged " +
                           std::string(what) + ", or leave the field empty)");
  }
  if (value == static_cast<unsigned>(-1)) {
    return std::unexpected(std::string(what) + " " + std::string(field) + " is reserved (fix: use another " +
                           std::string(what) + ")");
  }
  return std::optional<unsigned>(value);
}

std::expected<void, std::string> check_home(std::string_view home) {
  if (!home.empty() && home.front() != '/') {
    return std::unexpected("home " + printable(home) + " is not an absolute path (fix: write it starting with '/')");
  }
  return {};
}

std::expected<void, std::string> apply_extra_fields(std::string_view extra, User& user) {
  for (const auto token : split(extra, ' ')) {
    if (token.empty()) continue;
    const auto eq = token.find('=');
    if (eq == std::string_view::npos) continue;  // a flag such as "nopassword": not ours
    std::string_view key = token.substr(0, eq);
    const std::string_view value = token.substr(eq + 1);
    if (key.starts_with("userdb_")) key.remove_prefix(7);
    if (key == "mail") {
      user.mail = std::string(value);
    } else if (key == "home") {
      if (auto ok = check_home(value); !ok) return std::unexpected(std::move(ok.error()));
      user.home = std::string(value);
    } else if (key == "quota_rule" || key == "quota_rule2") {
      if (!value.starts_with("*:") || value.find('=') == std::string_view::npos)
        return std::unexpected("quota_rule " + printable(value) +
                               " is not \"*:storage=SIZE\" or \"*:messages=N\" (fix: e.g. quota_rule=*:storage=1G)");
      user.quota_rules.emplace_back(value);
    } else if (key == "uid" || key == "gid") {
      auto id = parse_id(value, key);
      if (!id) return std::unexpected(std::move(id.error()));
      (key == "uid" ? user.uid : user.gid) = *id;
    }
  }
  return {};
}

// One entry line (not blank, not a comment) -> User.
std::expected<User, std::string> parse_entry(std::string_view line, const NameRules& rules) {
  const auto fields = split(line, ':');
  User user;
  auto name = canonical_username(fields[0], rules);
  if (!name) {
    return std::unexpected("invalid user name " + printable(fields[0]) + ": " + name.error() +
                           " (fix: rename the user; names are user or user@domain without spaces, control "
                           "characters, '/', '\\', ':' or \"..\")");
  }
  user.name = std::move(*name);
  if (fields.size() > 1) user.password = std::string(fields[1]);
  if (fields.size() > 2) {
    auto uid = parse_id(fields[2], "uid");
    if (!uid) return std::unexpected(std::move(uid.error()));
    user.uid = *uid;
  }
  if (fields.size() > 3) {
    auto gid = parse_id(fields[3], "gid");
    if (!gid) return std::unexpected(std::move(gid.error()));
    user.gid = *gid;
  }
  // fields[4] is gecos, fields[6] the shell: ignored.
  if (fields.size() > 5) {
    if (auto ok = check_home(fields[5]); !ok) return std::unexpected(std::move(ok.error()));
    user.home = std::string(fields[5]);
  }
  if (fields.size() > 7) {
    const std::span<const std::string_view> rest(fields.begin() + 7, fields.end());
    if (rest.front().empty()) {
      // Dovecot's old format: an empty field, then the mail location (which may hold ':').
      user.mail = join(rest.subspan(1), ':');
    } else if (auto ok = apply_extra_fields(join(rest, ':'), user); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
  }
  return user;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::string format_parse_error(std::string_view path, const ParseErrorAt& error) {
  std::string out(path);
  if (error.line != 0) {
    out += ':';
    out += std::to_string(error.line);
  }
  out += ": ";
  out += error.message;
  return out;
}

std::optional<std::string_view> passwd_entry_name(std::string_view line) {
  line = strip_cr(line);
  const auto first = line.find_first_not_of(" \t");
  if (first == std::string_view::npos) return std::nullopt;  // blank
  if (line[first] == '#') return std::nullopt;               // comment
  if (line.front() == ':') return std::nullopt;              // no user name (skipped as Dovecot does)
  return line.substr(0, line.find(':'));
}

std::expected<std::vector<User>, ParseErrorAt> parse_passwd_file(std::string_view text, const NameRules& rules) {
  if (text.size() > kMaxPasswdFileSize) {
    return std::unexpected(ParseErrorAt{0, "file is larger than 64 MiB (fix: split the users or use a database)"});
  }
  std::vector<User> users;
  std::unordered_map<std::string, std::size_t> seen;  // canonical name -> line
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    const auto nl = text.find('\n', pos);
    const std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (raw.size() > kMaxPasswdLineLength) {
      return std::unexpected(ParseErrorAt{line_no, "line is longer than 65536 octets (fix: shorten the entry)"});
    }
    const std::string_view line = strip_cr(raw);
    if (!passwd_entry_name(line)) continue;
    auto user = parse_entry(line, rules);
    if (!user) return std::unexpected(ParseErrorAt{line_no, std::move(user.error())});
    if (const auto [it, inserted] = seen.try_emplace(user->name, line_no); !inserted) {
      return std::unexpected(ParseErrorAt{
          line_no, "user " + printable(user->name) + " is already defined on line " + std::to_string(it->second) +
                       " (fix: remove one of the two entries; with a default_domain, \"name\" and "
                       "\"name@default_domain\" are the same user)"});
    }
    users.push_back(std::move(*user));
  }
  return users;
}

std::vector<std::string> passwd_warnings(std::span<const User> users) {
  std::vector<std::string> out;
  for (const auto& user : users) {
    if (user.password.empty()) {
      out.push_back("user " + printable(user.name) + " has no password and cannot log in");
      continue;
    }
    const std::string scheme = scheme_of(user.password);
    if (!can_verify_scheme(scheme)) {
      out.push_back("user " + printable(user.name) + " has password scheme " + printable(scheme) +
                    ", which buzon does not implement; the user cannot log in (fix: set a new password with "
                    "`buzon user passwd`)");
    }
  }
  return out;
}

std::expected<std::string, std::string> read_passwd_text(const std::filesystem::path& path) {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    std::string fix = err == ENOENT ? "create it with `buzon user add NAME`, or set [users] passwd_file"
                                    : "check the path and the permissions of the file and its directories";
    return std::unexpected(p + ": cannot open: " + errno_text(err) + " (fix: " + fix + ")");
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::unexpected(p + ": cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) {
    return std::unexpected(p + ": not a regular file (fix: point [users] passwd_file at a passwd-file)");
  }
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxPasswdFileSize) {
    return std::unexpected(p + ": file is larger than 64 MiB (fix: split the users or use a database)");
  }
  std::string text;
  text.reserve(static_cast<std::size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(p + ": read failed: " + errno_text(errno));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxPasswdFileSize) {
      return std::unexpected(p + ": file is larger than 64 MiB (fix: split the users or use a database)");
    }
  }
  return text;
}

std::expected<std::vector<User>, std::string> load_passwd_file(const std::filesystem::path& path,
                                                               const NameRules& rules) {
  auto text = read_passwd_text(path);
  if (!text) return std::unexpected(std::move(text.error()));
  auto users = parse_passwd_file(*text, rules);
  if (!users) return std::unexpected(format_parse_error(path.string(), users.error()));
  return std::move(*users);
}

PasswdFileDirectory::PasswdFileDirectory(std::filesystem::path path, NameRules rules)
    : path_(std::move(path)), rules_(std::move(rules)) {}

PasswdFileDirectory::Table PasswdFileDirectory::make_table(std::vector<User> users) {
  Table table;
  table.reserve(users.size());
  for (auto& user : users) {
    std::string key = user.name;
    table.emplace(std::move(key), std::move(user));
  }
  return table;
}

std::expected<std::unique_ptr<PasswdFileDirectory>, std::string> PasswdFileDirectory::open(std::filesystem::path path,
                                                                                           NameRules rules) {
  if (auto domain = canonical_domain(rules.default_domain); !domain) {
    return std::unexpected("[users] default_domain: " + domain.error() +
                           " (fix: set a plain domain such as \"example.com\", or \"\")");
  } else {
    rules.default_domain = std::move(*domain);
  }
  std::unique_ptr<PasswdFileDirectory> dir(new PasswdFileDirectory(std::move(path), std::move(rules)));
  if (auto loaded = dir->reload(); !loaded) return std::unexpected(std::move(loaded.error()));
  return dir;
}

std::optional<User> PasswdFileDirectory::lookup(std::string_view canonical_name) const {
  const std::shared_lock lock(mutex_);
  // unordered_map<std::string> has no heterogeneous find before C++20's is_transparent hashing;
  // build the key once (names are short).
  const auto it = users_.find(std::string(canonical_name));
  if (it == users_.end()) return std::nullopt;
  return it->second;
}

std::expected<std::size_t, std::string> PasswdFileDirectory::reload() {
  auto users = load_passwd_file(path_, rules_);
  if (!users) return std::unexpected(std::move(users.error()));
  Table fresh = make_table(std::move(*users));
  const std::size_t count = fresh.size();
  {
    const std::unique_lock lock(mutex_);
    users_.swap(fresh);
  }
  return count;  // the old table is destroyed here, outside the lock
}

std::size_t PasswdFileDirectory::size() const {
  const std::shared_lock lock(mutex_);
  return users_.size();
}

}  // namespace buzon::auth
