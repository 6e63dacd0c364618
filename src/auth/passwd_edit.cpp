// auth/passwd_edit.cpp — lock, read, edit one line, write tmp, fsync, rename, fsync directory.
//
// SECURITY  passwd_edit.hpp. The temporary file is opened O_NOFOLLOW|O_TRUNC under the lock, so a
//           planted symlink is not followed and a stale file of a dead editor with our pid is
//           simply overwritten. The new file gets the old file's mode and owner before it becomes
//           visible; if the owner cannot be kept (editing as another non-root user), nothing is
//           changed and the error says so.
// STANDARDS POSIX rename(2), fsync(2); flock(2) (Linux: one lock per open file description, so
//           threads of one process exclude each other too when each opens the lock file).
// LIMITS    passwd_file.hpp.

#include "auth/passwd_edit.hpp"

#include "auth/passwd_file.hpp"
#include "auth/password.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

namespace buzon::auth {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the error close(2) gives (NFS may report write errors only here).
  int close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

std::string sys_error(const std::string& path, std::string_view what, int err) {
  return path + ": " + std::string(what) + ": " + std::strerror(err);
}

std::expected<Fd, std::string> lock_exclusive(const std::string& path) {
  const std::string lock_path = path + ".lock";
  Fd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
  if (fd.get() < 0) {
    return std::unexpected(sys_error(lock_path, "cannot open lock file", errno) +
                           " (fix: check that the passwd-file's directory exists and is writable)");
  }
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return std::unexpected(sys_error(lock_path, "cannot lock", errno));
  }
  return fd;
}

struct Current {
  std::optional<struct stat> st;  // nullopt: the file does not exist yet
  std::string text;
};

std::expected<Current, std::string> read_current(const std::string& path, const NameRules& rules) {
  Current cur;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return cur;
    return std::unexpected(sys_error(path, "cannot stat", errno));
  }
  if (S_ISLNK(st.st_mode)) {
    return std::unexpected(path +
                           ": is a symbolic link; editing would replace the link with a file (fix: point "
                           "[users] passwd_file at the real file)");
  }
  cur.st = st;
  auto text = read_passwd_text(path);
  if (!text) return std::unexpected(std::move(text.error()));
  cur.text = std::move(*text);
  if (auto users = parse_passwd_file(cur.text, rules); !users) {
    return std::unexpected("refusing to edit a file that does not parse: " +
                           format_parse_error(path, users.error()));
  }
  return cur;
}

std::expected<void, std::string> write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sys_error(path, "write failed", errno));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::expected<void, std::string> fsync_directory_of(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const std::string d = dir.string();
  Fd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(sys_error(d, "cannot open directory", errno));
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return std::unexpected(sys_error(d, "fsync failed", errno));
  return {};
}

// Writes `text` to "<path>.tmp.<pid>", fsyncs, renames over `path`, fsyncs the directory.
std::expected<void, std::string> replace_file(const std::filesystem::path& path, std::string_view text,
                                              const std::optional<struct stat>& old) {
  const std::string p = path.string();
  const std::string tmp = p + ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
  if (fd.get() < 0) return std::unexpected(sys_error(tmp, "cannot create", errno));
  auto fail = [&](std::string error) -> std::expected<void, std::string> {
    ::unlink(tmp.c_str());
    return std::unexpected(std::move(error));
  };
  const mode_t mode = old ? (old->st_mode & 07777) : 0600;
  if (::fchmod(fd.get(), mode) != 0) return fail(sys_error(tmp, "cannot set mode", errno));
  if (old && (old->st_uid != ::geteuid() || old->st_gid != ::getegid())) {
    if (::fchown(fd.get(), old->st_uid, old->st_gid) != 0) {
      return fail(sys_error(p, "cannot keep the file's owner", errno) +
                  " (fix: run as the file's owner or as root)");
    }
    // chown may clear set-id bits; the passwd-file has none, but restore the mode anyway.
    if (::fchmod(fd.get(), mode) != 0) return fail(sys_error(tmp, "cannot set mode", errno));
  }
  if (auto ok = write_all(fd.get(), text, tmp); !ok) return fail(std::move(ok.error()));
  if (::fsync(fd.get()) != 0) return fail(sys_error(tmp, "fsync failed", errno));
  if (fd.close() != 0) return fail(sys_error(tmp, "close failed", errno));
  if (::rename(tmp.c_str(), p.c_str()) != 0) return fail(sys_error(p, "cannot rename the new file into place", errno));
  return fsync_directory_of(path);
}

// A line of `text` as offsets: [begin, content_end) is the content, [content_end, end) its ending
// ("\n", "\r\n" or "" for a last line without newline).
struct LineSpan {
  std::size_t begin, content_end, end;
};

std::optional<LineSpan> find_entry(std::string_view text, std::string_view canonical, const NameRules& rules) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    std::size_t content_end = nl == std::string_view::npos ? text.size() : nl;
    if (content_end > pos && text[content_end - 1] == '\r') --content_end;
    const std::string_view content = text.substr(pos, content_end - pos);
    if (const auto name = passwd_entry_name(content)) {
      if (auto c = canonical_username(*name, rules); c && *c == canonical) return LineSpan{pos, content_end, end};
    }
    pos = end;
  }
  return std::nullopt;
}

std::expected<std::string, std::string> canonical_or_error(std::string_view name, const NameRules& rules) {
  auto c = canonical_username(name, rules);
  if (!c) return std::unexpected("invalid user name: " + c.error());
  return c;
}

std::expected<void, std::string> check_stored(std::string_view stored) {
  if (stored.empty()) return std::unexpected(std::string("the stored password is empty"));
  for (const char ch : stored) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ':' || c < 0x20 || c == 0x7F) {
      return std::unexpected(std::string(
          "the stored password contains ':' or a control character, which a passwd-file field cannot hold"));
    }
  }
  if (!can_verify_scheme(scheme_of(stored))) {
    return std::unexpected("unknown password scheme " + scheme_of(stored) +
                           " (fix: use SHA512-CRYPT, BLF-CRYPT or ARGON2ID)");
  }
  return {};
}

using Edit = std::function<std::expected<std::string, std::string>(const std::string& text)>;

std::expected<void, std::string> edit_file(const std::filesystem::path& path, const NameRules& rules,
                                           const Edit& edit) {
  const std::string p = path.string();
  auto lock = lock_exclusive(p);
  if (!lock) return std::unexpected(std::move(lock.error()));
  auto cur = read_current(p, rules);
  if (!cur) return std::unexpected(std::move(cur.error()));
  auto next = edit(cur->text);
  if (!next) return std::unexpected(std::move(next.error()));
  // Belt and braces: never write a file the server would refuse.
  if (auto users = parse_passwd_file(*next, rules); !users) {
    return std::unexpected("internal error, edit would break the file: " + format_parse_error(p, users.error()));
  }
  return replace_file(path, *next, cur->st);
  // The lock is released when `lock` goes out of scope, after the rename and the directory fsync.
}

}  // namespace

std::expected<void, std::string> edit_text_file(const std::filesystem::path& path, const TextCheck& check,
                                                const TextEdit& edit) {
  const std::string p = path.string();
  auto lock = lock_exclusive(p);
  if (!lock) return std::unexpected(std::move(lock.error()));
  std::optional<struct stat> old;
  std::string text;
  struct stat st {};
  if (::lstat(p.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) return std::unexpected(p + ": is a symbolic link; editing would replace the link with a file");
    old = st;
    auto t = read_passwd_text(p);
    if (!t) return std::unexpected(std::move(t.error()));
    text = std::move(*t);
  } else if (errno != ENOENT) {
    return std::unexpected(sys_error(p, "cannot stat", errno));
  }
  if (auto ok = check(text); !ok) return std::unexpected("refusing to edit a file that does not parse: " + ok.error());
  auto next = edit(text);
  if (!next) return std::unexpected(std::move(next.error()));
  if (auto ok = check(*next); !ok) return std::unexpected(std::move(ok.error()));
  return replace_file(path, *next, old);
}

std::expected<void, std::string> add_user(const std::filesystem::path& path, std::string_view name,
                                          std::string_view stored, const NameRules& rules) {
  auto canonical = canonical_or_error(name, rules);
  if (!canonical) return std::unexpected(std::move(canonical.error()));
  if (auto ok = check_stored(stored); !ok) return std::unexpected(std::move(ok.error()));
  return edit_file(path, rules, [&](const std::string& text) -> std::expected<std::string, std::string> {
    if (find_entry(text, *canonical, rules)) {
      return std::unexpected("user " + *canonical + " already exists (fix: use `buzon user passwd " + *canonical +
                             "` to change the password)");
    }
    std::string next = text;
    if (!next.empty() && next.back() != '\n') next += '\n';
    next += *canonical;
    next += ':';
    next += stored;
    next += '\n';
    return next;
  });
}

std::expected<void, std::string> set_password(const std::filesystem::path& path, std::string_view name,
                                              std::string_view stored, const NameRules& rules) {
  auto canonical = canonical_or_error(name, rules);
  if (!canonical) return std::unexpected(std::move(canonical.error()));
  if (auto ok = check_stored(stored); !ok) return std::unexpected(std::move(ok.error()));
  return edit_file(path, rules, [&](const std::string& text) -> std::expected<std::string, std::string> {
    const auto span = find_entry(text, *canonical, rules);
    if (!span) {
      return std::unexpected("no such user " + *canonical + " (fix: add it with `buzon user add " + *canonical + "`)");
    }
    const std::string_view content = std::string_view(text).substr(span->begin, span->content_end - span->begin);
    const auto first = content.find(':');
    std::string line(content.substr(0, first));  // the user field exactly as written
    line += ':';
    line += stored;
    if (first != std::string_view::npos) {
      if (const auto second = content.find(':', first + 1); second != std::string_view::npos) {
        line += content.substr(second);  // uid, gid, ..., extra fields unchanged
      }
    }
    std::string next = text;
    next.replace(span->begin, span->content_end - span->begin, line);
    return next;
  });
}

std::expected<void, std::string> delete_user(const std::filesystem::path& path, std::string_view name,
                                             const NameRules& rules) {
  auto canonical = canonical_or_error(name, rules);
  if (!canonical) return std::unexpected(std::move(canonical.error()));
  return edit_file(path, rules, [&](const std::string& text) -> std::expected<std::string, std::string> {
    const auto span = find_entry(text, *canonical, rules);
    if (!span) return std::unexpected("no such user " + *canonical);
    std::string next = text;
    next.erase(span->begin, span->end - span->begin);
    return next;
  });
}

std::expected<std::vector<User>, std::string> list_users(const std::filesystem::path& path, const NameRules& rules) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) return std::vector<User>{};
  return load_passwd_file(path, rules);
}

std::expected<std::optional<User>, std::string> find_user(const std::filesystem::path& path, std::string_view name,
                                                          const NameRules& rules) {
  auto canonical = canonical_or_error(name, rules);
  if (!canonical) return std::unexpected(std::move(canonical.error()));
  auto users = list_users(path, rules);
  if (!users) return std::unexpected(std::move(users.error()));
  for (auto& user : *users) {
    if (user.name == *canonical) return std::optional<User>(std::move(user));
  }
  return std::optional<User>();
}

}  // namespace buzon::auth
