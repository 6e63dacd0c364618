// store/maildir/maildir_deliverer.cpp — Maildir delivery with group commit (see
// maildir_deliverer.hpp).
//
// SECURITY  O_EXCL|O_NOFOLLOW creation in tmp/; renames never replace an existing file; every
//           error path unlinks the tmp/ files it created, so a failed delivery leaves no litter.
// STANDARDS cr.yp.to/proto/maildir.html; Dovecot ,S= ,W= fields; RFC 5321 §6.1.
// LIMITS    See maildir_deliverer.hpp.
#include "store/maildir/maildir_deliverer.hpp"
#include "store/maildir/maildirsize.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <array>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "store/maildir/maildir_delivery.hpp"
#include "store/maildir/maildir_fs.hpp"

namespace buzon::store::maildir {

namespace {

constexpr std::int64_t kStaleTmpSeconds = 36 * 3600;  // maildir.html: "not accessed for 36 hours"
constexpr std::size_t kMaxCleanedRemembered = 100000;

StoreErrc delivery_errc(int err) {
  if (err == ENOSPC) return StoreErrc::no_space;
  return classify_errno(err);  // EDQUOT quota, EFBIG too_big, EACCES... perm, else temp
}

std::unexpected<StoreError> dfail(std::string_view what, std::string_view where, int err) {
  std::string detail(what);
  detail += ' ';
  detail += where;
  detail += ": ";
  detail += std::strerror(err);
  return std::unexpected(StoreError{delivery_errc(err), std::move(detail)});
}

// The open directories of one Maildir.
struct Dirs {
  UniqueFd root, tmp, fresh;  // the Maildir, tmp/, new/
  dev_t dev = 0;
  ino_t new_ino = 0;
};

using DirKey = std::pair<dev_t, ino_t>;  // a new/ directory

// One copy being stored.
struct Staged {
  std::size_t copy = 0;  // index into the caller's copies
  std::string location;
  std::shared_ptr<Dirs> dirs;
  std::string tmp_name;
  std::string final_name;
  UniqueFd fd;
  bool ok = true;        // still on its way
  bool renamed = false;  // visible in new/
  bool rolled_back = false;  // was visible, then unlinked again: its new/ needs a flush
};

// One deliver() call waiting for its flush.
struct Pending {
  DeliveryMode mode = DeliveryMode::all_or_none;
  std::vector<Staged> files;
  std::vector<Result<void>> results;
  bool done = false;
};

// Writes all of iov[] (retrying EINTR and short writes); returns 0 or the errno.
int write_iov(int fd, std::vector<iovec> iov) {
  std::size_t first = 0;
  while (first < iov.size()) {
    const int cnt = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = ::writev(fd, iov.data() + first, cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    auto left = static_cast<std::size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return 0;
}

std::string parent_of(const std::string& p) {
  const auto slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

}  // namespace

struct MaildirDeliverer::Impl {
  DelivererOptions opts;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Pending*> queue;
  bool committing = false;

  std::atomic<std::uint64_t> deliveries{0}, files{0}, batches{0}, file_syncs{0}, dir_syncs{0};

  std::mutex cleaned_mu;
  std::unordered_set<std::string> cleaned;

  int fault(std::string_view op, std::string_view location) const {
    return opts.fault ? opts.fault(op, location) : 0;
  }

  Result<void> create_maildir(const std::string& location);
  Result<std::shared_ptr<Dirs>> open_maildir(const std::string& location);
  void clean_stale_tmp(const std::string& location, int tmp_fd);
  Result<void> stage(Staged& f, std::string_view prefix, std::span<const std::string_view> parts,
                     std::uint64_t msg_size, std::uint64_t msg_wire);
  void unlink_tmp(Staged& f);

  enum class Phase { all, files, shared_dirs };
  void submit(Pending& p);
  void join_batch(Pending& p, Phase phase);
  // The phases, each for a batch of deliveries; safe_commit() runs some of them and never throws
  // (on an exception, an allocation failure, the batch fails as a whole and leaves nothing).
  void safe_commit(std::span<Pending* const> batch, Phase phase) noexcept;
  void sync_files(std::span<Pending* const> batch);
  void publish(std::span<Pending* const> batch);
  void sync_dirs(std::span<Pending* const> batch, bool shared);
  int flush_dir_shared(DirKey key, int fd, const std::string& what);

  // Shared directory flushes (Commit::group): per new/ directory, renames are numbered; a flush
  // covers every rename numbered before it started; a caller waits for the first flush that
  // covers its rename, starting one itself when none is running.
  struct DirFlush {
    std::uint64_t seq = 0;      // renames announced
    std::uint64_t done = 0;     // renames covered by a completed flush
    bool in_flight = false;
    unsigned users = 0;
    // The last failed flushes (no allocation: a failure can always be recorded): renames numbered
    // in (after, upto] were not made durable.
    struct Failure {
      std::uint64_t after = 0, upto = 0;
      int err = 0;
    };
    std::array<Failure, 16> failures{};
    std::size_t failed = 0;
    std::condition_variable cv;
  };
  std::mutex flush_mu;
  std::map<DirKey, DirFlush> flushes;  // entries exist only while somebody waits
  void abort_all(Pending& p, std::vector<Staged*>* unlinked);
  int sync_dir(int fd, const std::string& location);
};

// Creates the Maildir and any missing parents, and flushes every directory that gained an entry,
// so that a message delivered into a brand-new Maildir survives a crash together with it.
Result<void> MaildirDeliverer::Impl::create_maildir(const std::string& location) {
  std::string path = location;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::vector<std::string> created;  // directories that did not exist, deepest first
  for (std::string cur = path; !cur.empty() && cur != "/" && cur != ".";) {
    struct stat st{};
    if (::stat(cur.c_str(), &st) == 0) break;
    if (errno != ENOENT) return dfail("stat", cur, errno);
    created.push_back(cur);
    cur = parent_of(cur);
  }
  if (auto r = ensure_maildir(path); !r) return r;
  std::vector<std::string> to_sync{path};
  for (const auto& d : created) to_sync.push_back(parent_of(d));
  for (const auto& d : to_sync) {
    auto fd = open_dir(-1, d);
    if (!fd) return std::unexpected(fd.error());
    if (int e = sync_dir(fd->get(), d); e != 0) return dfail("fsync directory", d, e);
  }
  return {};
}

Result<std::shared_ptr<Dirs>> MaildirDeliverer::Impl::open_maildir(const std::string& location) {
  if (auto r = check_path(location); !r) return std::unexpected(r.error());
  if (!opts.root.empty()) {
    if (auto r = check_under_root(opts.root, location); !r) return std::unexpected(r.error());
  }
  if (int e = fault("open", location); e != 0) return dfail("open", location, e);
  auto d = std::make_shared<Dirs>();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto root = open_dir(-1, location);
    if (root) {
      auto tmp = open_dir(root->get(), std::string(kTmpDir));
      auto fresh = open_dir(root->get(), std::string(kNewDir));
      if (tmp && fresh) {
        d->root = std::move(*root);
        d->tmp = std::move(*tmp);
        d->fresh = std::move(*fresh);
        struct stat st{};
        if (::fstat(d->fresh.get(), &st) != 0) return dfail("fstat", location + "/new", errno);
        d->dev = st.st_dev;
        d->new_ino = st.st_ino;
        clean_stale_tmp(location, d->tmp.get());
        return d;
      }
      const auto& err = tmp ? fresh.error() : tmp.error();
      if (err.code != StoreErrc::not_found || attempt > 0) return std::unexpected(err);
    } else if (root.error().code != StoreErrc::not_found || attempt > 0) {
      return std::unexpected(root.error());
    }
    if (auto r = create_maildir(location); !r) return std::unexpected(r.error());
  }
  return fail(StoreErrc::temp, "cannot open maildir " + location);
}

// maildir.html: a tmp/ file untouched for 36 hours is litter from a crashed delivery. Done once
// per Maildir per process, on its first delivery.
void MaildirDeliverer::Impl::clean_stale_tmp(const std::string& location, int tmp_fd) {
  {
    std::lock_guard g(cleaned_mu);
    if (cleaned.contains(location)) return;
    if (cleaned.size() >= kMaxCleanedRemembered) cleaned.clear();
    cleaned.insert(location);
  }
  const int fd = ::dup(tmp_fd);
  if (fd < 0) return;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return;
  }
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  while (const dirent* de = ::readdir(dir)) {
    const std::string_view name = de->d_name;
    if (name == "." || name == "..") continue;
    struct stat st{};
    if (::fstatat(tmp_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    const std::int64_t newest = std::max<std::int64_t>(st.st_mtime, st.st_atime);
    if (now - newest > kStaleTmpSeconds) ::unlinkat(tmp_fd, de->d_name, 0);
  }
  ::closedir(dir);
}

Result<void> MaildirDeliverer::Impl::stage(Staged& f, std::string_view prefix,
                                           std::span<const std::string_view> parts,
                                           std::uint64_t msg_size, std::uint64_t msg_wire) {
  if (int e = fault("create", f.location); e != 0) return dfail("create", f.location + "/tmp", e);
  for (int attempt = 0; attempt < 100; ++attempt) {
    f.tmp_name = make_unique_name();
    f.fd = UniqueFd(::openat(f.dirs->tmp.get(), f.tmp_name.c_str(),
                             O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kFileMode));
    if (f.fd || errno != EEXIST) break;
  }
  if (!f.fd) {
    const int err = errno;
    f.tmp_name.clear();
    return dfail("create", f.location + "/tmp", err);
  }
  std::vector<iovec> iov;
  iov.reserve(parts.size() + 1);
  auto add = [&](std::string_view s) {
    if (!s.empty()) iov.push_back(iovec{const_cast<char*>(s.data()), s.size()});
  };
  add(prefix);
  for (auto p : parts) add(p);
  int err = fault("write", f.location);
  if (err == 0) err = write_iov(f.fd.get(), std::move(iov));
  if (err != 0) {
    unlink_tmp(f);
    return dfail("write", f.location + "/tmp/" + f.tmp_name, err);
  }
  // The wire size of prefix + message: prefixes end in LF, so the two parts count independently.
  WireSizeCounter w;
  w.feed(prefix);
  std::uint64_t wire = w.size + msg_wire;
  if (!prefix.empty() && prefix.back() == '\r') {
    WireSizeCounter all;
    all.feed(prefix);
    for (auto p : parts) all.feed(p);
    wire = all.size;
  }
  f.final_name = f.tmp_name + ",S=" + std::to_string(prefix.size() + msg_size) + ",W=" + std::to_string(wire);
  return {};
}

void MaildirDeliverer::Impl::unlink_tmp(Staged& f) {
  f.fd.reset();
  if (!f.tmp_name.empty() && f.dirs) ::unlinkat(f.dirs->tmp.get(), f.tmp_name.c_str(), 0);
  f.tmp_name.clear();
}

void MaildirDeliverer::Impl::safe_commit(std::span<Pending* const> batch, Phase phase) noexcept {
  try {
    if (phase == Phase::all || phase == Phase::files) {
      sync_files(batch);
      publish(batch);
    }
    if (phase == Phase::all) sync_dirs(batch, false);
    if (phase == Phase::shared_dirs) sync_dirs(batch, true);
  } catch (...) {
    for (Pending* p : batch) {
      for (Staged& f : p->files) {
        if (f.renamed) ::unlinkat(f.dirs->fresh.get(), f.final_name.c_str(), 0);
        f.renamed = false;
        unlink_tmp(f);
      }
      for (auto& r : p->results) r = std::unexpected(StoreError{StoreErrc::temp, "delivery failed: internal error"});
    }
  }
}

int MaildirDeliverer::Impl::sync_dir(int fd, const std::string& location) {
  dir_syncs.fetch_add(1, std::memory_order_relaxed);
  if (int e = fault("sync_dir", location); e != 0) return e;
  if (::fsync(fd) == 0) return 0;
  const int err = errno;
  // Some file systems refuse fsync on directories; their metadata is then synchronous anyway.
  return (err == EINVAL || err == EROFS) ? 0 : err;
}

// Who flushes what:
//   per_message   the caller flushes its files and its directories itself;
//   group         the caller flushes its own files (in parallel with other callers: the kernel
//                 joins concurrent fsyncs into one journal commit) and renames them; then it waits
//                 for a flush of each of its new/ directories that started after its rename,
//                 starting one itself only when none is running (flush_dir_shared);
//   group_syncfs  the leader does everything for the batch with one syncfs(2) per file system.
void MaildirDeliverer::Impl::submit(Pending& p) {
  Pending* one[] = {&p};
  switch (opts.commit) {
    case DelivererOptions::Commit::per_message:
      batches.fetch_add(1, std::memory_order_relaxed);
      safe_commit(one, Phase::all);
      return;
    case DelivererOptions::Commit::group:
      safe_commit(one, Phase::files);
      safe_commit(one, Phase::shared_dirs);
      return;
    case DelivererOptions::Commit::group_syncfs:
      join_batch(p, Phase::all);
      return;
  }
}

// Leader/follower group commit: the first caller to find no flush running flushes everything
// queued; callers arriving meanwhile wait and form the next batch.
void MaildirDeliverer::Impl::join_batch(Pending& p, Phase phase) {
  std::unique_lock lk(mu);
  queue.push_back(&p);
  while (!p.done) {
    if (committing) {
      cv.wait(lk);
      continue;
    }
    committing = true;
    if (opts.commit_delay.count() > 0) {
      lk.unlock();
      std::this_thread::sleep_for(opts.commit_delay);
      lk.lock();
    }
    std::vector<Pending*> batch;
    batch.swap(queue);
    lk.unlock();
    batches.fetch_add(1, std::memory_order_relaxed);
    safe_commit(batch, phase);
    lk.lock();
    for (Pending* q : batch) q->done = true;
    committing = false;
    cv.notify_all();
  }
}

namespace {

void set_error(Pending& p, Staged& f, StoreError e) {
  f.ok = false;
  p.results[f.copy] = std::unexpected(std::move(e));
}

const StoreError* first_error(const Pending& p) {
  for (const auto& r : p.results)
    if (!r) return &r.error();
  return nullptr;
}

}  // namespace

// all_or_none: takes back every copy of `p` (renamed ones are unlinked from new/; the caller
// flushes those directories) and gives every copy the cause's error class.
void MaildirDeliverer::Impl::abort_all(Pending& p, std::vector<Staged*>* unlinked) {
  const StoreError cause = *first_error(p);
  for (Staged& f : p.files) {
    if (f.renamed) {
      ::unlinkat(f.dirs->fresh.get(), f.final_name.c_str(), 0);
      f.renamed = false;
      if (unlinked) unlinked->push_back(&f);
    }
    unlink_tmp(f);
    if (p.results[f.copy]) p.results[f.copy] = std::unexpected(StoreError{cause.code, "aborted: " + cause.detail});
    f.ok = false;
  }
}

// 1. Flush the data of every file: writeback started for all first, then fdatasync each (or one
//    syncfs per file system).
void MaildirDeliverer::Impl::sync_files(std::span<Pending* const> batch) {
  std::vector<std::pair<Pending*, Staged*>> live;
  for (Pending* p : batch)
    for (Staged& f : p->files)
      if (f.ok) live.emplace_back(p, &f);
  if (opts.commit == DelivererOptions::Commit::group_syncfs) {
    std::map<dev_t, int> result_by_dev;
    for (auto [p, f] : live) {
      auto [it, fresh] = result_by_dev.try_emplace(f->dirs->dev, 0);
      if (!fresh) continue;
      file_syncs.fetch_add(1, std::memory_order_relaxed);
      int e = fault("sync", f->location);
      if (e == 0 && ::syncfs(f->fd.get()) != 0) e = errno;
      it->second = e;
    }
    for (auto [p, f] : live)
      if (int e = result_by_dev[f->dirs->dev]; e != 0) set_error(*p, *f, dfail("syncfs", f->location, e).error());
  } else {
    if (live.size() > 1)
      for (auto [p, f] : live) ::sync_file_range(f->fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
    for (auto [p, f] : live) {
      file_syncs.fetch_add(1, std::memory_order_relaxed);
      int e = fault("sync", f->location);
      if (e == 0 && ::fdatasync(f->fd.get()) != 0) e = errno;
      if (e != 0) set_error(*p, *f, dfail("fdatasync", f->location + "/tmp/" + f->tmp_name, e).error());
    }
  }
  for (auto [p, f] : live) {
    if (::close(f->fd.release()) != 0 && f->ok)
      set_error(*p, *f, dfail("close", f->location + "/tmp/" + f->tmp_name, errno).error());
  }
}

// 2. Make the flushed files visible. all_or_none: a failure anywhere aborts the whole delivery.
void MaildirDeliverer::Impl::publish(std::span<Pending* const> batch) {
  for (Pending* p : batch) {
    if (p->mode == DeliveryMode::all_or_none && first_error(*p)) {
      abort_all(*p, nullptr);
      continue;
    }
    for (Staged& f : p->files) {
      if (!f.ok) {
        unlink_tmp(f);
        continue;
      }
      int e = fault("rename", f.location);
      if (e == 0) e = rename_noreplace(f.dirs->tmp.get(), f.tmp_name, f.dirs->fresh.get(), f.final_name);
      if (e != 0) {
        set_error(*p, f, dfail("rename", f.location + "/tmp/" + f.tmp_name, e).error());
        unlink_tmp(f);
        if (p->mode == DeliveryMode::all_or_none) {
          // The copies renamed so far are unlinked again; their new/ is flushed in sync_dirs,
          // which sees them as not renamed and flushes the directories of the whole batch.
          std::vector<Staged*> taken_back;
          abort_all(*p, &taken_back);
          for (Staged* g : taken_back) g->rolled_back = true;
          break;
        }
        continue;
      }
      f.renamed = true;
      f.tmp_name.clear();
    }
  }
}

int MaildirDeliverer::Impl::flush_dir_shared(DirKey key, int fd, const std::string& what) {
  std::unique_lock lk(flush_mu);
  DirFlush& d = flushes[key];
  ++d.users;
  const std::uint64_t mine = ++d.seq;
  while (d.done < mine) {
    if (d.in_flight) {
      d.cv.wait(lk);
      continue;
    }
    d.in_flight = true;
    if (opts.commit_delay.count() > 0) {
      lk.unlock();
      std::this_thread::sleep_for(opts.commit_delay);
      lk.lock();
    }
    const std::uint64_t after = d.done, upto = d.seq;
    lk.unlock();
    batches.fetch_add(1, std::memory_order_relaxed);
    const int e = sync_dir(fd, what);
    lk.lock();
    d.in_flight = false;
    d.done = upto;
    d.cv.notify_all();
    if (e != 0) d.failures[d.failed++ % d.failures.size()] = DirFlush::Failure{after, upto, e};
  }
  int result = 0;
  for (std::size_t i = 0; i < std::min(d.failed, d.failures.size()); ++i)
    if (mine > d.failures[i].after && mine <= d.failures[i].upto) result = d.failures[i].err;
  if (--d.users == 0 && !d.in_flight) flushes.erase(key);
  return result;
}

// 3. One flush per distinct new/ directory; 4. a copy whose directory entry may not be durable is
//    a failure: take it back (best effort) so that the sender's retry does not produce a duplicate,
//    and with it the whole all_or_none delivery.
void MaildirDeliverer::Impl::sync_dirs(std::span<Pending* const> batch, bool shared) {
  std::map<DirKey, int> dir_result;
  for (Pending* p : batch)
    for (Staged& f : p->files) {
      if (!f.renamed && !f.rolled_back) continue;
      const DirKey key{f.dirs->dev, f.dirs->new_ino};
      auto [it, fresh] = dir_result.try_emplace(key, 0);
      if (fresh)
        it->second = shared ? flush_dir_shared(key, f.dirs->fresh.get(), f.location + "/new")
                            : sync_dir(f.dirs->fresh.get(), f.location + "/new");
    }
  std::vector<Staged*> rolled_back;
  for (Pending* p : batch) {
    bool failed = false;
    for (Staged& f : p->files) {
      if (!f.renamed) continue;
      if (int e = dir_result[DirKey{f.dirs->dev, f.dirs->new_ino}]; e != 0) {
        set_error(*p, f, dfail("fsync directory", f.location + "/new", e).error());
        ::unlinkat(f.dirs->fresh.get(), f.final_name.c_str(), 0);
        f.renamed = false;
        rolled_back.push_back(&f);
        failed = true;
      }
    }
    if (failed && p->mode == DeliveryMode::all_or_none) abort_all(*p, &rolled_back);
  }
  std::map<DirKey, bool> resynced;
  for (Staged* f : rolled_back)
    if (resynced.try_emplace(DirKey{f->dirs->dev, f->dirs->new_ino}, true).second)
      (void)sync_dir(f->dirs->fresh.get(), f->location + "/new");
  for (Pending* p : batch)
    for (const Staged& f : p->files)
      if (f.renamed) files.fetch_add(1, std::memory_order_relaxed);
}

MaildirDeliverer::MaildirDeliverer(DelivererOptions opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
}

MaildirDeliverer::~MaildirDeliverer() = default;

DelivererStats MaildirDeliverer::stats() const {
  DelivererStats s;
  s.deliveries = impl_->deliveries.load();
  s.files = impl_->files.load();
  s.batches = impl_->batches.load();
  s.file_syncs = impl_->file_syncs.load();
  s.dir_syncs = impl_->dir_syncs.load();
  return s;
}

std::vector<Result<void>> MaildirDeliverer::deliver(std::span<const DeliveryCopy> copies,
                                                    std::span<const std::string_view> parts,
                                                    DeliveryMode mode) {
  impl_->deliveries.fetch_add(1, std::memory_order_relaxed);
  Pending p;
  p.mode = mode;
  p.results.resize(copies.size());
  if (copies.empty()) return p.results;

  std::uint64_t msg_size = 0;
  WireSizeCounter wire;
  for (auto part : parts) {
    msg_size += part.size();
    wire.feed(part);
  }

  std::map<std::string, std::shared_ptr<Dirs>> opened;  // a Maildir named twice is opened once
  bool staged_all = true;
  p.files.reserve(copies.size());
  for (std::size_t i = 0; i < copies.size(); ++i) {
    Staged f;
    f.copy = i;
    f.location = copies[i].box.location;
    auto& dirs = opened[f.location];
    if (!dirs) {
      auto d = impl_->open_maildir(f.location);
      if (!d) {
        p.results[i] = std::unexpected(d.error());
        staged_all = false;
        if (mode == DeliveryMode::all_or_none) break;
        continue;
      }
      dirs = *d;
    }
    f.dirs = dirs;
    // Maildir++ quota (a maildirsize file in the Maildir): refused before anything is written.
    if (auto q = read_maildirsize(f.location, std::chrono::system_clock::now());
        q && !quota_allows(q->limits, q->usage, copies[i].prefix.size() + msg_size)) {
      p.results[i] = fail(StoreErrc::quota, f.location + ": over quota (maildirsize)");
      staged_all = false;
      if (mode == DeliveryMode::all_or_none) break;
      continue;
    }
    if (auto r = impl_->stage(f, copies[i].prefix, parts, msg_size, wire.size); !r) {
      p.results[i] = std::unexpected(r.error());
      staged_all = false;
      if (mode == DeliveryMode::all_or_none) break;
      continue;
    }
    p.files.push_back(std::move(f));
  }
  if (!staged_all && mode == DeliveryMode::all_or_none) {
    StoreError cause;
    for (const auto& r : p.results)
      if (!r) {
        cause = r.error();
        break;
      }
    for (Staged& f : p.files) impl_->unlink_tmp(f);
    for (auto& r : p.results)
      if (r) r = std::unexpected(StoreError{cause.code, "aborted: " + cause.detail});
    return p.results;
  }
  if (p.files.empty()) return p.results;

  impl_->submit(p);
  for (const Staged& f : p.files)  // keep maildirsize current (only where it exists)
    if (p.results[f.copy])
      append_maildirsize(f.location, static_cast<std::int64_t>(copies[f.copy].prefix.size() + msg_size), 1);
  return p.results;
}

}  // namespace buzon::store::maildir
