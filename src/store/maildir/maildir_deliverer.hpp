// store/maildir/maildir_deliverer.hpp — the Maildir backend of the Delivery interface: one message
// to N Maildirs, durable before it returns, with group commit across concurrent deliveries.
//
// How a copy is stored (qmail's protocol, as Postfix, Dovecot and OpenSMTPD do it): create
// tmp/<unique> (O_EXCL), write prefix + message, flush its data, rename it to
// new/<unique>,S=<size>,W=<vsize> (never replacing a file), flush the new/ directory. A crash at any
// point leaves either nothing in new/ or the complete message.
//
// Group commit (default `group`): each caller writes and fdatasyncs its own files — concurrent
// fdatasyncs from the worker threads join one journal commit in the kernel — and renames them into
// new/. Directory flushes are shared: renames into a new/ are numbered, a flush covers every rename
// numbered before it started, and a caller whose rename is covered by a flush already running (or
// just finished) waits for it instead of issuing its own; different directories flush in parallel.
// Measured (see the benchmark test): serialising the flushes in one leader thread is slower on
// ext4 than letting concurrent fsyncs meet in the journal, so flushes stay parallel and only the
// redundant ones are dropped. `group_syncfs`: a leader flushes a whole batch with one syncfs(2) per
// file system. `per_message`: every delivery flushes alone (the baseline).
//
// SECURITY  Locations come from the auth layer; NUL and, with `root`, ".." or paths outside it are
//           refused. Sub-directories are opened with O_NOFOLLOW relative to the Maildir's fd; files
//           are created O_EXCL|O_NOFOLLOW, mode 0600. Nothing of the message is interpreted.
// STANDARDS cr.yp.to/proto/maildir.html (tmp -> new, unique names, stale tmp files removed after
//           36 hours); Dovecot's ",S=" and ",W=" name fields; RFC 5321 §6.1 (responsibility after
//           the 250 reply: this returns only once that is safe).
// LIMITS    A Maildir that does not exist is created (0700) with its parents, and the parents are
//           flushed too. all_or_none: copies are made visible one rename at a time; if a rename or
//           a directory flush fails, the copies already renamed are unlinked again (best effort),
//           so a failed transaction leaves nothing behind, but a POP3 session opening in that
//           window of microseconds could list a copy that then disappears.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "store/delivery.hpp"

namespace buzon::store::maildir {

struct DelivererOptions {
  enum class Commit {
    group,        // batched: per-file fdatasync after a common writeback kick, one fsync per new/
    group_syncfs, // batched: one syncfs(2) per file system, one fsync per new/
    per_message,  // no batching: each delivery flushes its own files and directories (baseline)
  };
  Commit commit = Commit::group;
  // When non-empty, every location must lie under this directory.
  std::string root;
  // A leader waits this long before flushing, so that more deliveries join its batch (PostgreSQL's
  // commit_delay). 0 = flush at once; the batch is whatever queued up during the previous flush.
  std::chrono::microseconds commit_delay{0};
  // Test hook: called before each system call that may fail, with its name ("open", "create",
  // "write", "sync", "rename", "sync_dir") and the Maildir location; a non-zero return is taken as
  // that call's errno (e.g. ENOSPC, EIO) and the call is not made.
  std::function<int(std::string_view op, std::string_view location)> fault;
};

struct DelivererStats {
  std::uint64_t deliveries = 0;  // deliver() calls
  std::uint64_t files = 0;       // copies stored
  std::uint64_t batches = 0;     // flush rounds: per_message one per delivery; group one per shared
                                 // directory flush; group_syncfs one per leader batch
  std::uint64_t file_syncs = 0;  // fdatasync/syncfs calls
  std::uint64_t dir_syncs = 0;   // directory fsync calls
};

class MaildirDeliverer final : public Delivery {
 public:
  explicit MaildirDeliverer(DelivererOptions opts = {});
  ~MaildirDeliverer() override;
  MaildirDeliverer(const MaildirDeliverer&) = delete;
  MaildirDeliverer& operator=(const MaildirDeliverer&) = delete;

  // MailboxRef::location is the Maildir directory.
  std::vector<Result<void>> deliver(std::span<const DeliveryCopy> copies,
                                    std::span<const std::string_view> parts,
                                    DeliveryMode mode) override;

  DelivererStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace buzon::store::maildir
