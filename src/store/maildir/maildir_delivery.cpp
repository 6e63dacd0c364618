// store/maildir/maildir_delivery.cpp — Maildir delivery (see maildir_delivery.hpp).
//
// SECURITY  O_EXCL|O_NOFOLLOW creation in tmp/; link(2) into new/ never replaces an existing file.
// STANDARDS cr.yp.to/proto/maildir.html; Dovecot ,S= ,W= fields.
// LIMITS    See maildir_delivery.hpp.
#include "store/maildir/maildir_delivery.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>

#include "store/maildir/maildir_fs.hpp"
#include "store/maildir/maildir_name.hpp"

namespace buzon::store::maildir {
namespace {

const std::string& host_part() {
  static const std::string host = [] {
    char buf[HOST_NAME_MAX + 1] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return std::string("localhost");
    return escape_host(buf);
  }();
  return host;
}

}  // namespace

std::string make_unique_name() {
  static std::atomic<unsigned long long> counter{0};
  struct timeval tv{};
  ::gettimeofday(&tv, nullptr);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld.M%06ldP%ldQ%llu.", static_cast<long long>(tv.tv_sec),
                static_cast<long>(tv.tv_usec), static_cast<long>(::getpid()),
                counter.fetch_add(1) + 1);
  return std::string(buf) + host_part();
}

Result<std::string> deliver(const std::string& maildir, std::string_view message) {
  if (auto r = ensure_maildir(maildir); !r) return std::unexpected(r.error());
  auto root = open_dir(-1, maildir);
  if (!root) return std::unexpected(root.error());
  auto tmp_dir = open_dir(root->get(), std::string(kTmpDir));
  if (!tmp_dir) return std::unexpected(tmp_dir.error());
  auto new_dir = open_dir(root->get(), std::string(kNewDir));
  if (!new_dir) return std::unexpected(new_dir.error());

  WireSizeCounter wire;
  wire.feed(message);

  std::string unique;
  UniqueFd fd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    unique = make_unique_name();
    fd = UniqueFd(::openat(tmp_dir->get(), unique.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kFileMode));
    if (fd || errno != EEXIST) break;
  }
  if (!fd) return sys_fail("create", maildir + "/tmp/" + unique, errno);

  auto cleanup = [&](int err) {
    fd.reset();
    ::unlinkat(tmp_dir->get(), unique.c_str(), 0);
    return sys_fail("deliver", maildir + "/tmp/" + unique, err);
  };
  if (int err = write_all(fd.get(), message); err != 0) return cleanup(err);
  if (::fsync(fd.get()) != 0) return cleanup(errno);
  if (::close(fd.release()) != 0) return cleanup(errno);

  const std::string final_name = unique + ",S=" + std::to_string(message.size()) +
                                 ",W=" + std::to_string(wire.size);
  // link(2) fails rather than replace an existing file; fall back to a no-replace rename on file
  // systems without hard links.
  if (::linkat(tmp_dir->get(), unique.c_str(), new_dir->get(), final_name.c_str(), 0) == 0) {
    ::unlinkat(tmp_dir->get(), unique.c_str(), 0);
  } else {
    const int err = errno;
    if (err != EPERM && err != ENOTSUP && err != EXDEV && err != EMLINK) return cleanup(err);
    if (::renameat2(tmp_dir->get(), unique.c_str(), new_dir->get(), final_name.c_str(),
                    RENAME_NOREPLACE) != 0) {
      return cleanup(errno);
    }
  }
  if (auto r = fsync_dir(new_dir->get(), maildir + "/new"); !r) {
    // The file is in new/ but its entry may not be durable: report a temporary failure so the
    // sender retries (a duplicate is better than a loss). Leave the file; it is a valid message.
    return std::unexpected(r.error());
  }
  return final_name;
}

}  // namespace buzon::store::maildir
