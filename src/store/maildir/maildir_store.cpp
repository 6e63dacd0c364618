// store/maildir/maildir_store.cpp — Maildir backend: lock, list, size, UIDL, read, delete, mark seen.
//
// SECURITY  Everything inside the Maildir is reached through directory fds (openat/unlinkat/
//           renameat) with O_NOFOLLOW; listed names starting with '.' or containing '/' are
//           ignored; only regular files are messages (a FIFO or device would block or leak).
//           The message contents are untrusted; only the header is parsed (X-UIDL).
// STANDARDS RFC 1939 §3 (lock), §5/§11 (sizes are the CRLF octets), §7 (UIDL), §8 (UPDATE);
//           cr.yp.to/proto/maildir.html; Dovecot maildir name fields and dovecot-uidlist.
// LIMITS    The snapshot is taken at open; messages delivered later appear at the next open.
//           See maildir_store.hpp for the lock's reach.
#include "store/maildir/maildir_store.hpp"
#include "store/maildir/maildirsize.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "store/maildir/dovecot_uidlist.hpp"
#include "store/maildir/maildir_fs.hpp"
#include "store/maildir/maildir_index.hpp"
#include "store/maildir/maildir_name.hpp"
#include "store/maildir/message_scan.hpp"
#include "store/uidl.hpp"

namespace buzon::store::maildir {
namespace {

enum class Dir : std::uint8_t { new_dir, cur_dir };

std::string_view dir_name(Dir d) { return d == Dir::new_dir ? kNewDir : kCurDir; }

// One message file as listed: where it is now (it may move) and its stable base name.
struct Entry {
  Dir dir = Dir::new_dir;
  std::string name;
  std::string base;
  bool deleted = false;
};

// Maildrop locks held by this process, by the lock file's identity. flock(2) already conflicts
// between separate open() calls in one process on local file systems; this table makes the
// in-process rule hold where flock is emulated with per-process fcntl locks (NFS).
struct LockTable {
  std::mutex mutex;
  std::set<std::pair<dev_t, ino_t>> held;
};
LockTable& lock_table() {
  static LockTable table;
  return table;
}

// Regular-file names in a directory, skipping dotfiles and anything with '/'.
Result<std::vector<std::string>> list_dir(int dirfd, std::string_view what) {
  const int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_fail("open directory", what, errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    const int err = errno;
    ::close(fd);
    return sys_fail("fdopendir", what, err);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* de = ::readdir(d);
    if (de == nullptr) {
      const int err = errno;
      ::closedir(d);
      if (err != 0) return sys_fail("readdir", what, err);
      break;
    }
    const std::string_view name(de->d_name);
    if (name.empty() || name.front() == '.' || name.find('/') != std::string_view::npos) continue;
    if (de->d_type == DT_UNKNOWN) {
      struct stat st{};
      if (::fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISREG(st.st_mode)) continue;
    } else if (de->d_type != DT_REG) {
      continue;
    }
    names.emplace_back(name);
  }
  return names;
}

// Octets the POP3 layer adds to complete the last line of a file: 0 when it is empty or ends in
// LF, 1 after a final CR, else 2 (see WireSizeCounter::final_size()).
Result<std::uint64_t> final_line_end_octets(int fd, const struct stat& st, std::string_view what) {
  if (st.st_size == 0) return 0;
  char last = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, &last, 1, st.st_size - 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_fail("read", what, errno);
    return 0;  // truncated meanwhile: nothing to complete
  }
  return last == '\n' ? 0 : (last == '\r' ? 1 : 2);
}

// How a file's octets can be read without waiting for the device (read_if_cached).
enum class CachedReads { unknown, nowait, memory, never };

// Asks the kernel once: RWF_NOWAIT works (ext4, xfs, btrfs...), or the file lives on tmpfs (which
// refuses the flag, but whose pages are memory: reading them waits for no device, like touching our
// own heap), or neither (always the pool). `unknown` again when the probe itself would have waited.
CachedReads probe_cached_reads(int fd) {
  char one = 0;  // (a zero-length read succeeds even where the flag is refused)
  struct iovec probe{&one, 1};
  if (::preadv2(fd, &probe, 1, 0, RWF_NOWAIT) >= 0) return CachedReads::nowait;
  if (errno != EOPNOTSUPP) return CachedReads::unknown;
  struct statfs sf{};
  return ::fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC ? CachedReads::memory : CachedReads::never;
}

// One read that never waits for the device, in `mode` (nowait or memory); offset -1 reads at, and
// advances, the file position. nullopt: not now (EAGAIN: not cached) or an error read() reports.
std::optional<std::size_t> read_cached(int fd, std::span<char> buf, off_t offset, CachedReads mode) {
  struct iovec iov{buf.data(), buf.size()};
  for (;;) {
    const ssize_t n = ::preadv2(fd, &iov, 1, offset, mode == CachedReads::nowait ? RWF_NOWAIT : 0);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return std::nullopt;
  }
}

class MaildirReader final : public MessageReader {
 public:
  MaildirReader(UniqueFd fd, std::string what) : fd_(std::move(fd)), what_(std::move(what)) {}
  Result<std::size_t> read(std::span<char> buf) override {
    const long n = read_retry(fd_.get(), buf.data(), buf.size());
    if (n < 0) return sys_fail("read", what_, errno);
    return static_cast<std::size_t>(n);
  }
  // Big messages stream through here on the event loop while their pages are cached (issue 6,
  // workload 3): offset -1 reads at, and advances, the file position, as read() does.
  std::optional<std::size_t> read_if_cached(std::span<char> buf) override {
    if (mode_ == CachedReads::unknown) mode_ = probe_cached_reads(fd_.get());
    if (mode_ == CachedReads::unknown || mode_ == CachedReads::never) return std::nullopt;
    return read_cached(fd_.get(), buf, -1, mode_);
  }

 private:
  UniqueFd fd_;
  std::string what_;
  CachedReads mode_ = CachedReads::unknown;
};

}  // namespace

struct MaildirMaildrop::Impl {
  std::string path;
  UniqueFd root;
  UniqueFd new_dir;
  UniqueFd cur_dir;
  UniqueFd lock_fd;
  std::optional<std::pair<dev_t, ino_t>> lock_key;
  CachedReads cached_reads = CachedReads::unknown;  // how read_if_cached reads here: learnt on first use
  std::vector<MessageInfo> infos;
  std::vector<Entry> entries;
  Index index;  // entries for the messages of this snapshot
  MaildirOpenStats stats;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { unlock(); }

  int dirfd(Dir d) const { return d == Dir::new_dir ? new_dir.get() : cur_dir.get(); }

  // The directory fds serve the initial scan and are closed after it, then opened again on first
  // use (RETR, QUIT): an idle session holds only the lock's fd and its socket, 2 fds instead of 5,
  // which is what bounds the number of idle sessions under RLIMIT_NOFILE (issue 6, workload 4).
  Result<void> open_dirs() {
    if (!root) {
      auto r = open_dir(-1, path);
      if (!r) return std::unexpected(r.error());
      root = std::move(*r);
    }
    if (!new_dir) {
      auto r = open_dir(root.get(), std::string(kNewDir));
      if (!r) return std::unexpected(r.error());
      new_dir = std::move(*r);
    }
    if (!cur_dir) {
      auto r = open_dir(root.get(), std::string(kCurDir));
      if (!r) return std::unexpected(r.error());
      cur_dir = std::move(*r);
    }
    return {};
  }
  void close_dirs() {
    new_dir.reset();
    cur_dir.reset();
    root.reset();
  }

  std::string describe(Dir d, std::string_view name) const {
    std::string s = path;
    s += '/';
    s += dir_name(d);
    s += '/';
    s += name;
    return s;
  }

  Result<void> lock() {
    const std::string what = path + '/' + std::string(kLockFileName);
    const std::string name(kLockFileName);
    lock_fd = UniqueFd(::openat(root.get(), name.c_str(),
                                O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, kFileMode));
    if (!lock_fd && (errno == EACCES || errno == EROFS)) {
      lock_fd = UniqueFd(::openat(root.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    }
    if (!lock_fd) return sys_fail("open lock file", what, errno);
    struct stat st{};
    if (::fstat(lock_fd.get(), &st) != 0) return sys_fail("fstat", what, errno);
    if (!S_ISREG(st.st_mode)) return fail(StoreErrc::perm, "lock file is not a regular file: " + what);
    const std::pair<dev_t, ino_t> key{st.st_dev, st.st_ino};

    LockTable& table = lock_table();
    std::lock_guard guard(table.mutex);
    if (table.held.contains(key)) return fail(StoreErrc::in_use, "maildrop locked: " + path);
    while (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return fail(StoreErrc::in_use, "maildrop locked: " + path);
      return sys_fail("flock", what, errno);
    }
    table.held.insert(key);
    lock_key = key;
    return {};
  }

  void unlock() {
    if (!lock_key) return;
    LockTable& table = lock_table();
    std::lock_guard guard(table.mutex);
    lock_fd.reset();  // closing the only fd of this open file description drops the flock
    table.held.erase(*lock_key);
    lock_key.reset();
  }

  // Finds a message whose file was renamed by another agent (new/ -> cur/, flags changed) by its
  // base name. Updates `e` and returns true when found under a name no other entry holds.
  bool relocate(Entry& e) {
    for (Dir d : {Dir::cur_dir, Dir::new_dir}) {
      auto names = list_dir(dirfd(d), describe(d, ""));
      if (!names) continue;
      for (auto& n : *names) {
        if (base_name(n) != e.base || (d == e.dir && n == e.name)) continue;
        const bool taken = std::any_of(entries.begin(), entries.end(), [&](const Entry& o) {
          return &o != &e && !o.deleted && o.dir == d && o.name == n;
        });
        if (taken) continue;
        e.dir = d;
        e.name = std::move(n);
        return true;
      }
    }
    return false;
  }

  void save_index() {
    stats.index_written = static_cast<bool>(
        replace_file(root.get(), std::string(kIndexFileName), format_index(index)));
  }

  Result<void> check_indexes(std::span<const std::size_t> indexes) const {
    for (std::size_t i : indexes) {
      if (i >= entries.size()) return fail(StoreErrc::perm, "message index out of range");
    }
    return {};
  }

  Result<void> load(const MaildropOptions& opts);
};

namespace {

// A listed message while the snapshot is being built.
struct Candidate {
  Entry entry;
  MessageInfo info;
  NameTime time;
  std::optional<std::string> x_uidl;
  const UidlistRecord* record = nullptr;
};

}  // namespace

Result<void> MaildirMaildrop::Impl::load(const MaildropOptions& opts) {
  const bool want_x_uidl = opts.uidl_format == UidlFormat::x_uidl;

  std::vector<Candidate> cands;
  std::set<std::pair<Dir, std::string>> accepted;
  for (Dir d : {Dir::new_dir, Dir::cur_dir}) {
    auto names = list_dir(dirfd(d), describe(d, ""));
    if (!names) return std::unexpected(names.error());
    for (auto& n : *names) {
      Candidate c;
      c.entry.dir = d;
      c.entry.base = std::string(base_name(n));
      c.entry.name = std::move(n);
      cands.push_back(std::move(c));
    }
  }
  // A file moved new/ -> cur/ by another reader between the two listings shows up in both; keep
  // the new/ entry only if it still exists (indexed entries are otherwise never stat'ed). Files
  // that really share a base name in new/ and cur/ bypass the index, which is keyed by base name.
  std::unordered_set<std::string> shared_bases;
  {
    std::unordered_set<std::string> cur_bases;
    for (const Candidate& c : cands) {
      if (c.entry.dir == Dir::cur_dir) cur_bases.insert(c.entry.base);
    }
    std::erase_if(cands, [&](const Candidate& c) {
      if (c.entry.dir != Dir::new_dir || !cur_bases.contains(c.entry.base)) return false;
      struct stat st{};
      if (::fstatat(new_dir.get(), c.entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 &&
          errno == ENOENT) {
        return true;
      }
      shared_bases.insert(c.entry.base);
      return false;
    });
  }

  // The cache: a missing or unreadable index only costs scans.
  Index old_index;
  if (auto text = read_small_file(root.get(), std::string(kIndexFileName), kMaxIndexSize)) {
    old_index = parse_index(*text);
  }

  std::optional<Uidlist> uidlist;
  if (opts.uidl_format == UidlFormat::dovecot) {
    if (auto text = read_small_file(root.get(), std::string(kDovecotUidlistName), kMaxUidlistSize)) {
      uidlist = parse_dovecot_uidlist(*text);
    }
    stats.uidlist_used = uidlist.has_value();
  }

  std::vector<Candidate> kept;
  kept.reserve(cands.size());
  for (Candidate& c : cands) {
    const bool shared = shared_bases.contains(c.entry.base);
    const auto it = shared ? old_index.end() : old_index.find(c.entry.base);
    const bool indexed = it != old_index.end();
    IndexEntry ie = indexed ? it->second : IndexEntry{};
    const auto w = size_hint(c.entry.name, 'W');
    const bool need_size = !indexed && !w;
    const bool need_x = want_x_uidl && ie.x_uidl_state == IndexEntry::XUidl::unknown;

    if (!indexed || need_x) {
      // Open (or stat) the file; it may have been moved by another agent since the listing.
      UniqueFd fd;
      struct stat st{};
      bool vanished = false;
      for (int attempt = 0;; ++attempt) {
        const int dfd = dirfd(c.entry.dir);
        fd = UniqueFd(::openat(dfd, c.entry.name.c_str(),
                               O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        if (fd && ::fstat(fd.get(), &st) == 0) break;
        const int err = errno;
        if (err == ELOOP) {  // a symlink planted after the listing: not a message
          vanished = true;
          break;
        }
        if (err != ENOENT) {
          return sys_fail("open", describe(c.entry.dir, c.entry.name), err);
        }
        // Moved (new/ -> cur/, or new flags): follow it unless its new name is listed anyway.
        if (attempt > 0 || !relocate(c.entry)) {
          vanished = true;
          break;
        }
        const bool listed = std::any_of(cands.begin(), cands.end(), [&](const Candidate& o) {
          return &o != &c && o.entry.dir == c.entry.dir && o.entry.name == c.entry.name;
        });
        if (listed) {
          vanished = true;
          break;
        }
      }
      if (vanished || !S_ISREG(st.st_mode)) continue;
      if (!indexed) {
        ie.mtime = static_cast<std::int64_t>(st.st_mtime);
        if (w) {
          // ,W= is Dovecot's virtual size; the POP3 size also counts the line end completed on
          // an unterminated last line, so the last octet is needed (one pread, then cached).
          auto tail = final_line_end_octets(fd.get(), st, describe(c.entry.dir, c.entry.name));
          if (!tail) return std::unexpected(tail.error());
          ie.wire_size = *w + *tail;
          ++stats.from_name;
        }
      }
      if (need_size || need_x) {
        auto scan = scan_message(fd.get(), need_size, need_x, describe(c.entry.dir, c.entry.name));
        if (!scan) return std::unexpected(scan.error());
        if (need_size) {
          ie.wire_size = scan->wire_size;
          ++stats.scanned;
        } else {
          ++stats.header_scans;
        }
        if (need_x) {
          ie.x_uidl_state = scan->x_uidl ? IndexEntry::XUidl::present : IndexEntry::XUidl::none;
          ie.x_uidl = scan->x_uidl.value_or("");
        }
      }
    }
    if (indexed) ++stats.from_index;
    if (!accepted.emplace(c.entry.dir, c.entry.name).second) continue;

    c.info.size = ie.wire_size;
    c.info.received = ie.mtime;
    c.info.seen = c.entry.dir == Dir::cur_dir || has_flag(c.entry.name, 'S');
    c.time = name_time(c.entry.name).value_or(NameTime{ie.mtime, 0});
    if (ie.x_uidl_state == IndexEntry::XUidl::present) c.x_uidl = ie.x_uidl;
    if (uidlist) {
      if (auto r = uidlist->by_base.find(c.entry.base); r != uidlist->by_base.end()) {
        c.record = &r->second;
      }
    }
    if (!shared) index.insert_or_assign(c.entry.base, std::move(ie));
    kept.push_back(std::move(c));
  }

  // Order: Dovecot's POP3 order when its uidlist is used (pop3 order, then UID), then delivery
  // time, then name (digit runs compared as numbers), stably.
  auto key = [](const Candidate& c) {
    const int group = c.record == nullptr ? 2 : (c.record->pop3_order ? 0 : 1);
    const std::uint32_t order = c.record && c.record->pop3_order ? *c.record->pop3_order : 0;
    const std::uint32_t uid = c.record ? c.record->uid : 0;
    return std::make_tuple(group, order, uid, c.time);
  };
  std::stable_sort(kept.begin(), kept.end(), [&](const Candidate& a, const Candidate& b) {
    const auto ka = key(a);
    const auto kb = key(b);
    if (ka != kb) return ka < kb;
    if (auto c = natural_compare(a.entry.base, b.entry.base); c != 0) return c < 0;
    if (a.entry.dir != b.entry.dir) return a.entry.dir < b.entry.dir;
    return a.entry.name < b.entry.name;
  });

  std::vector<std::string> uidls;
  std::vector<std::string> salts;
  uidls.reserve(kept.size());
  salts.reserve(kept.size());
  std::unordered_set<std::string> x_used;
  for (const Candidate& c : kept) {
    std::string u;
    switch (opts.uidl_format) {
      case UidlFormat::buzon:
        break;
      case UidlFormat::dovecot:
        if (c.record != nullptr) {
          if (!c.record->pop3_uidl) {
            u = dovecot_default_uidl(c.record->uid, uidlist->uid_validity);
          } else if (c.record->pop3_uidl->empty()) {
            u = uidl_from_name(c.entry.base);
          } else {
            u = uidl_from_name(*c.record->pop3_uidl);
          }
        }
        break;
      case UidlFormat::x_uidl:
        if (c.x_uidl && x_used.insert(*c.x_uidl).second) u = *c.x_uidl;
        break;
    }
    if (u.empty()) u = uidl_from_name(c.entry.base);
    uidls.push_back(std::move(u));
    salts.push_back(std::string(dir_name(c.entry.dir)) + '/' + c.entry.name);
  }
  dedupe_uidls(uidls, salts);

  infos.reserve(kept.size());
  entries.reserve(kept.size());
  for (std::size_t i = 0; i < kept.size(); ++i) {
    kept[i].info.uidl = std::move(uidls[i]);
    infos.push_back(std::move(kept[i].info));
    entries.push_back(std::move(kept[i].entry));
  }
  stats.listed = infos.size();

  if (index != old_index) save_index();
  return {};
}

MaildirMaildrop::MaildirMaildrop(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MaildirMaildrop::~MaildirMaildrop() = default;

const std::vector<MessageInfo>& MaildirMaildrop::messages() const { return impl_->infos; }

const MaildirOpenStats& MaildirMaildrop::stats() const { return impl_->stats; }

Result<std::unique_ptr<MessageReader>> MaildirMaildrop::open_message(std::size_t index) {
  Impl& m = *impl_;
  if (index >= m.entries.size()) return fail(StoreErrc::perm, "message index out of range");
  Entry& e = m.entries[index];
  if (e.deleted) return fail(StoreErrc::not_found, "message deleted: " + e.base);
  if (auto r = m.open_dirs(); !r) return std::unexpected(r.error());
  for (int attempt = 0;; ++attempt) {
    UniqueFd fd(::openat(m.dirfd(e.dir), e.name.c_str(),
                         O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    const std::string what = m.describe(e.dir, e.name);
    if (fd) {
      struct stat st{};
      if (::fstat(fd.get(), &st) != 0) return sys_fail("fstat", what, errno);
      if (!S_ISREG(st.st_mode)) return fail(StoreErrc::perm, "not a regular file: " + what);
      return std::make_unique<MaildirReader>(std::move(fd), what);
    }
    const int err = errno;
    if (err == ENOENT && attempt == 0 && m.relocate(e)) continue;
    if (err == ENOENT) return fail(StoreErrc::not_found, "message vanished: " + what);
    if (err == ELOOP) return fail(StoreErrc::perm, "message is a symlink: " + what);
    return sys_fail("open", what, err);
  }
}

namespace {

// Kernels before 5.12 know no RESOLVE_CACHED: after the first such answer every later call goes
// straight to the worker pool (the behaviour is only faster, never different).
std::atomic<bool> g_cached_reads{true};

bool unsupported(int err) { return err == ENOSYS || err == EINVAL || err == E2BIG; }

}  // namespace

// The event-loop fast path of RETR (issue 6, workload 1): a small message whose directory entry,
// inode and pages are in memory is read with no thread hand-off. Both calls are the kernel's own
// non-blocking forms: openat2(RESOLVE_CACHED) fails with EAGAIN instead of doing lookup I/O
// (Linux 5.12), preadv2(RWF_NOWAIT) returns EAGAIN instead of waiting for the disk (Linux 4.14).
// Anything unusual (a moved file, not cached, a different size, an error) answers false and the
// pool path does the full, reported read.
bool MaildirMaildrop::read_if_cached(std::size_t index, std::string& out, std::size_t max) {
  Impl& m = *impl_;
  if (!g_cached_reads.load(std::memory_order_relaxed)) return false;
  if (index >= m.entries.size()) return false;
  const Entry& e = m.entries[index];
  if (e.deleted || !m.root || !m.new_dir || !m.cur_dir) return false;
  struct open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  how.resolve = RESOLVE_CACHED | RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const long rc = ::syscall(SYS_openat2, m.dirfd(e.dir), e.name.c_str(), &how, sizeof how);
  if (rc < 0) {
    if (unsupported(errno)) g_cached_reads.store(false, std::memory_order_relaxed);
    return false;
  }
  UniqueFd fd(static_cast<int>(rc));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > max) return false;
  if (m.cached_reads == CachedReads::unknown) m.cached_reads = probe_cached_reads(fd.get());
  if (m.cached_reads == CachedReads::unknown || m.cached_reads == CachedReads::never) return false;
  // One octet more than the size, so a file that grew since fstat is seen (and left to the pool).
  out.resize_and_overwrite(size + 1, [](char*, std::size_t n) { return n; });
  std::size_t got = 0;
  while (got < out.size()) {
    const auto n = read_cached(fd.get(), std::span<char>(out).subspan(got), static_cast<off_t>(got), m.cached_reads);
    if (!n) return false;
    if (*n == 0) break;
    got += *n;
  }
  if (got != size) return false;
  out.resize(got);
  return true;
}

Result<void> MaildirMaildrop::commit_deletes(std::span<const std::size_t> indexes) {
  Impl& m = *impl_;
  if (auto r = m.check_indexes(indexes); !r) return r;
  if (indexes.empty()) return {};
  if (auto r = m.open_dirs(); !r) return r;
  std::optional<StoreError> first_error;
  bool touched[2] = {false, false};
  bool index_changed = false;
  std::int64_t freed_bytes = 0, freed_count = 0;  // for maildirsize (Maildir++ quota)
  for (std::size_t i : indexes) {
    Entry& e = m.entries[i];
    if (e.deleted) continue;
    for (int attempt = 0;; ++attempt) {
      std::uint64_t size = size_hint(e.name, 'S').value_or(0);
      struct stat st {};
      if (size == 0 && ::fstatat(m.dirfd(e.dir), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        size = static_cast<std::uint64_t>(st.st_size);
      if (::unlinkat(m.dirfd(e.dir), e.name.c_str(), 0) == 0) {
        touched[static_cast<int>(e.dir)] = true;
        e.deleted = true;
        freed_bytes += static_cast<std::int64_t>(size);
        ++freed_count;
        break;
      }
      const int err = errno;
      if (err == ENOENT && attempt == 0 && m.relocate(e)) continue;
      if (err == ENOENT) {  // already gone: the goal is reached
        e.deleted = true;
        break;
      }
      if (!first_error) first_error = sys_fail("unlink", m.describe(e.dir, e.name), err).error();
      break;
    }
    if (e.deleted) index_changed |= m.index.erase(e.base) > 0;
  }
  // The unlinks are durable once their directories are synced.
  for (Dir d : {Dir::new_dir, Dir::cur_dir}) {
    if (!touched[static_cast<int>(d)]) continue;
    if (auto r = fsync_dir(m.dirfd(d), m.describe(d, "")); !r && !first_error) {
      first_error = r.error();
    }
  }
  if (index_changed) m.save_index();
  if (freed_count > 0) append_maildirsize(m.path, -freed_bytes, -freed_count);  // POP3 deletions free quota
  if (first_error) return std::unexpected(std::move(*first_error));
  return {};
}

Result<void> MaildirMaildrop::mark_seen(std::span<const std::size_t> indexes) {
  Impl& m = *impl_;
  if (auto r = m.check_indexes(indexes); !r) return r;
  if (indexes.empty()) return {};
  if (auto r = m.open_dirs(); !r) return r;
  std::optional<StoreError> first_error;
  bool touched[2] = {false, false};
  for (std::size_t i : indexes) {
    Entry& e = m.entries[i];
    if (e.deleted) continue;
    for (int attempt = 0;; ++attempt) {
      if (e.dir == Dir::cur_dir && has_flag(e.name, 'S')) break;
      const auto target = with_flag(e.name, 'S');
      if (!target) break;  // info of another version: leave the name alone
      const int err = rename_noreplace(m.dirfd(e.dir), e.name, m.cur_dir.get(), *target);
      if (err == 0) {
        touched[static_cast<int>(e.dir)] = true;
        touched[static_cast<int>(Dir::cur_dir)] = true;
        e.dir = Dir::cur_dir;
        e.name = *target;
        break;
      }
      if (err == ENOENT && attempt == 0 && m.relocate(e)) continue;
      if (err == ENOENT || err == EEXIST) break;  // gone, or another agent got there first
      if (!first_error) first_error = sys_fail("rename", m.describe(e.dir, e.name), err).error();
      break;
    }
    m.infos[i].seen = true;
  }
  for (Dir d : {Dir::new_dir, Dir::cur_dir}) {
    if (!touched[static_cast<int>(d)]) continue;
    if (auto r = fsync_dir(m.dirfd(d), m.describe(d, "")); !r && !first_error) {
      first_error = r.error();
    }
  }
  if (first_error) return std::unexpected(std::move(*first_error));
  return {};
}

Result<std::unique_ptr<MaildirMaildrop>> MaildirStore::open(const std::string& location,
                                                            const MaildropOptions& opts) {
  if (auto r = check_path(location); !r) return std::unexpected(r.error());
  if (!opts_.root.empty()) {
    if (auto r = check_under_root(opts_.root, location); !r) return std::unexpected(r.error());
  }
  auto impl = std::make_unique<MaildirMaildrop::Impl>();
  impl->path = location;
  while (impl->path.size() > 1 && impl->path.back() == '/') impl->path.pop_back();
  // The common case is a Maildir that exists: its layout is created only when a directory is
  // missing (a mkdir-then-stat of four directories at every open was a tenth of a PASS's CPU,
  // issue 6 workload 2).
  bool ensured = false;
  auto root = open_dir(-1, impl->path);
  if (!root && root.error().code == StoreErrc::not_found) {
    if (auto r = ensure_maildir(location); !r) return std::unexpected(r.error());
    ensured = true;
    root = open_dir(-1, impl->path);
  }
  if (!root) return std::unexpected(root.error());
  impl->root = std::move(*root);
  if (auto r = impl->lock(); !r) return std::unexpected(r.error());
  if (auto r = impl->open_dirs(); !r) {
    if (ensured || r.error().code != StoreErrc::not_found) return std::unexpected(r.error());
    if (auto e = ensure_maildir(location); !e) return std::unexpected(e.error());
    if (auto again = impl->open_dirs(); !again) return std::unexpected(again.error());
  }
  if (auto r = impl->load(opts); !r) return std::unexpected(r.error());
  impl->close_dirs();
  return std::unique_ptr<MaildirMaildrop>(new MaildirMaildrop(std::move(impl)));
}

Result<std::unique_ptr<Maildrop>> MaildirStore::open_maildrop(const MailboxRef& box,
                                                              const MaildropOptions& opts) {
  auto r = open(box.location, opts);
  if (!r) return std::unexpected(std::move(r.error()));
  return std::unique_ptr<Maildrop>(std::move(*r));
}

}  // namespace buzon::store::maildir
