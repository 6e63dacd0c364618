// store/maildir/maildir_store.hpp — the Maildir backend of the POP3 store: MaildirStore opens a
// Maildir (the location is its directory path) as an exclusively locked Maildrop.
//
// SECURITY  The location comes from the auth layer; it is refused when it contains NUL or, with a
//           configured root, when it leaves that root. Names from directory listings are never
//           followed when they contain '/' and symlinks inside the Maildir are not followed.
//           Message contents are untrusted and only streamed (the header is scanned for X-UIDL).
// STANDARDS RFC 1939 §3 (exclusive-access lock), §7 (UIDL), §8 (UPDATE: deletions after QUIT);
//           cr.yp.to/proto/maildir.html; Dovecot's ",S=" ",W=" name fields and dovecot-uidlist.
// LIMITS    The lock is flock(2) on "buzon-pop3.lock" inside the Maildir plus an in-process table,
//           so two sessions conflict within one process and across processes on one host; across
//           hosts it is only as good as the file system's flock (NFS: emulated by fcntl locks).
//           It does not exclude other Maildir agents (Dovecot IMAP, MUAs); renames by them are
//           followed by base name, deletions by them surface as not_found.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "store/maildrop.hpp"

namespace buzon::store::maildir {

inline constexpr std::string_view kLockFileName = "buzon-pop3.lock";
inline constexpr std::string_view kIndexFileName = "buzon-index";
inline constexpr std::string_view kDovecotUidlistName = "dovecot-uidlist";
inline constexpr std::size_t kMaxUidlistSize = 64 * 1024 * 1024;
inline constexpr std::size_t kMaxIndexSize = 256 * 1024 * 1024;

struct MaildirStoreOptions {
  // When non-empty, every location must lie under this directory (compared lexically after
  // normalisation; ".." components are refused).
  std::string root;
};

// What an open cost; for tests and the session summary log line.
struct MaildirOpenStats {
  std::size_t listed = 0;        // messages in the snapshot
  std::size_t from_index = 0;    // wire sizes taken from buzon-index
  std::size_t from_name = 0;     // wire sizes taken from a ",W=" name field
  std::size_t scanned = 0;       // messages read in full to count their wire size
  std::size_t header_scans = 0;  // messages whose header alone was read (X-UIDL)
  bool index_written = false;    // buzon-index was rewritten
  bool uidlist_used = false;     // dovecot-uidlist was read and valid
};

class MaildirMaildrop;

class MaildirStore final : public MailStore {
 public:
  MaildirStore() = default;
  explicit MaildirStore(MaildirStoreOptions opts) : opts_(std::move(opts)) {}

  // box.location is the Maildir directory; it and new/ cur/ tmp/ are created (0700) if missing.
  // Errors: in_use (locked by another session), perm (bad location, EACCES, not a directory),
  // temp (EIO, ENOSPC, EMFILE ...).
  Result<std::unique_ptr<Maildrop>> open_maildrop(const MailboxRef& box,
                                                  const MaildropOptions& opts) override;

  // Same, with the concrete type (for stats()).
  Result<std::unique_ptr<MaildirMaildrop>> open(const std::string& location,
                                                const MaildropOptions& opts = {});

 private:
  MaildirStoreOptions opts_;
};

class MaildirMaildrop final : public Maildrop {
 public:
  ~MaildirMaildrop() override;
  MaildirMaildrop(const MaildirMaildrop&) = delete;
  MaildirMaildrop& operator=(const MaildirMaildrop&) = delete;

  const std::vector<MessageInfo>& messages() const override;
  Result<std::unique_ptr<MessageReader>> open_message(std::size_t index) override;
  bool read_if_cached(std::size_t index, std::string& out, std::size_t max) override;
  // Closing the lock file's and directories' fds and dropping the flock: no disk I/O on a local
  // filesystem. (On NFS, flock is emulated by a network lock whose release can wait: a known limit.)
  bool release_is_instant() const override { return true; }
  Result<void> commit_deletes(std::span<const std::size_t> indexes) override;
  Result<void> mark_seen(std::span<const std::size_t> indexes) override;

  const MaildirOpenStats& stats() const;

  struct Impl;

 private:
  friend class MaildirStore;
  explicit MaildirMaildrop(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace buzon::store::maildir
