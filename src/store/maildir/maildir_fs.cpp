// store/maildir/maildir_fs.cpp — POSIX helpers for the Maildir backend (see maildir_fs.hpp).
//
// SECURITY  O_NOFOLLOW for everything opened relative to a Maildir directory fd; temporary files
//           are created O_EXCL with mode 0600.
// STANDARDS POSIX.1-2017.
// LIMITS    read_small_file refuses files above its max_size argument (perm: corrupt).
#include "store/maildir/maildir_fs.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace buzon::store::maildir {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

StoreErrc classify_errno(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
    case EINVAL:
    case EISDIR:
    case EEXIST:
      return StoreErrc::perm;
    case ENOENT:
      return StoreErrc::not_found;
    case EDQUOT:
      return StoreErrc::quota;
    case EFBIG:
      return StoreErrc::too_big;
    default:
      return StoreErrc::temp;
  }
}

std::unexpected<StoreError> sys_fail(std::string_view what, std::string_view path, int err) {
  std::string detail;
  detail.reserve(what.size() + path.size() + 40);
  detail += what;
  detail += ' ';
  detail += path;
  detail += ": ";
  detail += std::strerror(err);
  return fail(classify_errno(err), std::move(detail));
}

Result<void> check_path(std::string_view path) {
  if (path.empty()) return fail(StoreErrc::perm, "empty maildir location");
  if (path.find('\0') != std::string_view::npos) {
    return fail(StoreErrc::perm, "maildir location contains NUL");
  }
  return {};
}

namespace {

Result<void> mkdir_p(const std::string& path) {
  if (::mkdir(path.c_str(), kDirMode) == 0) return {};
  int err = errno;
  if (err == EEXIST) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return sys_fail("stat", path, errno);
    if (S_ISDIR(st.st_mode)) return {};
    return fail(StoreErrc::perm, "not a directory: " + path);
  }
  if (err != ENOENT) return sys_fail("mkdir", path, err);
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return sys_fail("mkdir", path, err);
  if (auto r = mkdir_p(path.substr(0, slash)); !r) return r;
  if (::mkdir(path.c_str(), kDirMode) == 0 || errno == EEXIST) return {};
  return sys_fail("mkdir", path, errno);
}

}  // namespace

Result<void> ensure_maildir(const std::string& path) {
  if (auto r = check_path(path); !r) return r;
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (auto r = mkdir_p(p); !r) return r;
  for (std::string_view sub : {kNewDir, kCurDir, kTmpDir}) {
    const std::string d = p + '/' + std::string(sub);
    if (::mkdir(d.c_str(), kDirMode) == 0) continue;
    const int err = errno;
    if (err != EEXIST) return sys_fail("mkdir", d, err);
    struct stat st{};
    if (::lstat(d.c_str(), &st) != 0) return sys_fail("lstat", d, errno);
    if (!S_ISDIR(st.st_mode)) return fail(StoreErrc::perm, "not a directory: " + d);
  }
  return {};
}

Result<UniqueFd> open_dir(int dirfd, const std::string& name) {
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  if (dirfd >= 0) flags |= O_NOFOLLOW;
  const int fd = dirfd >= 0 ? ::openat(dirfd, name.c_str(), flags) : ::open(name.c_str(), flags);
  if (fd < 0) return sys_fail("open directory", name, errno);
  return UniqueFd(fd);
}

Result<void> fsync_dir(int dirfd, std::string_view what) {
  if (::fsync(dirfd) != 0) {
    const int err = errno;
    // Some file systems refuse fsync on directories; their metadata is then synchronous anyway.
    if (err == EINVAL || err == EROFS) return {};
    return sys_fail("fsync directory", what, err);
  }
  return {};
}

int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

long read_retry(int fd, char* buf, std::size_t len) {
  for (;;) {
    const ssize_t n = ::read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long>(n);
  }
}

Result<void> replace_file(int dirfd, const std::string& name, std::string_view data) {
  static std::atomic<unsigned long> counter{0};
  std::string tmp;
  UniqueFd fd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp = name + ".tmp" + std::to_string(::getpid()) + '.' + std::to_string(counter++);
    fd = UniqueFd(::openat(dirfd, tmp.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kFileMode));
    if (fd || errno != EEXIST) break;
  }
  if (!fd) return sys_fail("create", tmp, errno);
  int err = write_all(fd.get(), data);
  if (err == 0 && ::fsync(fd.get()) != 0) err = errno;
  if (err == 0 && ::close(fd.release()) != 0) err = errno;
  if (err == 0 && ::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) err = errno;
  if (err != 0) {
    fd.reset();
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return sys_fail("write", name, err);
  }
  return {};
}

Result<std::string> read_small_file(int dirfd, const std::string& name, std::size_t max_size) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return sys_fail("open", name, errno);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return sys_fail("fstat", name, errno);
  if (!S_ISREG(st.st_mode)) return fail(StoreErrc::perm, "not a regular file: " + name);
  if (static_cast<std::uint64_t>(st.st_size) > max_size) {
    return fail(StoreErrc::perm, "file too large: " + name);
  }
  std::string out;
  out.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  for (;;) {
    if (got == out.size()) out.resize(out.size() + 4096);  // the file may have grown
    const long n = read_retry(fd.get(), out.data() + got, out.size() - got);
    if (n < 0) return sys_fail("read", name, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (got > max_size) return fail(StoreErrc::perm, "file too large: " + name);
  }
  out.resize(got);
  return out;
}

int rename_noreplace(int from_dir, const std::string& from, int to_dir, const std::string& to) {
  if (::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // The file system lacks RENAME_NOREPLACE: check, then rename (the window is harmless for
  // Maildir, whose names are unique by construction).
  struct stat st{};
  if (::fstatat(to_dir, to.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return EEXIST;
  if (::renameat(from_dir, from.c_str(), to_dir, to.c_str()) == 0) return 0;
  return errno;
}

Result<void> check_under_root(const std::string& root, const std::string& location) {
  namespace fs = std::filesystem;
  const fs::path loc(location);
  for (const auto& part : loc) {
    if (part == "..") return fail(StoreErrc::perm, "maildir location contains '..': " + location);
  }
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  const fs::path rel = loc.lexically_normal().lexically_relative(fs::path(r).lexically_normal());
  if (rel.empty() || *rel.begin() == "..") {
    return fail(StoreErrc::perm, "maildir location outside the mail root: " + location);
  }
  return {};
}

}  // namespace buzon::store::maildir
