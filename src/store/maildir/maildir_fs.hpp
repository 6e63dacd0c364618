// store/maildir/maildir_fs.hpp — small POSIX helpers for the Maildir backend: owned fds, errno
// classification, Maildir layout creation, directory fsync, atomic small-file replacement.
//
// SECURITY  Paths are refused when they contain NUL. Sub-directories (new/ cur/ tmp/) and files
//           inside the Maildir are opened relative to directory fds with O_NOFOLLOW, so a symlink
//           planted inside a Maildir is never followed.
// STANDARDS POSIX.1-2017 (openat, renameat, fsync on directories as Linux and BSDs honour it).
// LIMITS    None beyond the kernel's.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "store/maildrop.hpp"

namespace buzon::store::maildir {

inline constexpr std::string_view kNewDir = "new";
inline constexpr std::string_view kCurDir = "cur";
inline constexpr std::string_view kTmpDir = "tmp";
inline constexpr unsigned kDirMode = 0700;
inline constexpr unsigned kFileMode = 0600;

// An owned file descriptor; closes on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1);
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// Maps an errno to a StoreErrc: EACCES/EPERM/EROFS/ENOTDIR/ELOOP/ENAMETOOLONG/EINVAL -> perm,
// ENOENT -> not_found, EDQUOT -> quota, EFBIG -> too_big, anything else (EIO, ENOSPC, EMFILE,
// ENFILE, ENOMEM, EAGAIN, ...) -> temp.
StoreErrc classify_errno(int err);

// A StoreError for a failed system call: "<what> <path>: <strerror>".
std::unexpected<StoreError> sys_fail(std::string_view what, std::string_view path, int err);

// Refuses empty paths and paths containing NUL.
Result<void> check_path(std::string_view path);

// Creates `path` (and missing parents) and its new/ cur/ tmp/ with mode 0700 where missing.
Result<void> ensure_maildir(const std::string& path);

// Opens a directory (O_DIRECTORY|O_CLOEXEC); `dirfd`/`name` relative when dirfd >= 0, and then
// refusing a symlink (O_NOFOLLOW).
Result<UniqueFd> open_dir(int dirfd, const std::string& name);

// fsync(2) on a directory fd: makes creations, renames and unlinks in it durable.
Result<void> fsync_dir(int dirfd, std::string_view what);

// Writes `data` to `<name>` in `dirfd` atomically: a fresh temporary file, write, fsync, rename.
Result<void> replace_file(int dirfd, const std::string& name, std::string_view data);

// Reads a whole (small) file in `dirfd`; nullopt-like not_found error when it does not exist.
Result<std::string> read_small_file(int dirfd, const std::string& name, std::size_t max_size);

// write(2) all of `data`, retrying on EINTR and short writes; returns the errno on failure.
int write_all(int fd, std::string_view data);

// renameat2(RENAME_NOREPLACE), falling back to a check-then-rename where the file system lacks
// the flag. Returns 0 or the errno (EEXIST when `to` exists).
int rename_noreplace(int from_dir, const std::string& from, int to_dir, const std::string& to);

// Refuses a location with a ".." component or lexically outside `root` (perm).
Result<void> check_under_root(const std::string& root, const std::string& location);

// read(2) retrying on EINTR; returns -1 with errno set on failure.
long read_retry(int fd, char* buf, std::size_t len);

}  // namespace buzon::store::maildir
