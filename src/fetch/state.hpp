// fetch/state.hpp — what `buzon fetch` remembers per account: the UIDs of messages already
// delivered (the state file, replaced atomically), the journal that makes a run crash-safe, and
// the per-account lock.
//
// The journal is appended while a run delivers: a destination writes an entry for each message
// BEFORE that message becomes visible (Maildir: link into new/; mbox: a batch-start offset before
// appending), and fsyncs it. A run killed at any point is repaired by the next one
// (Destination::recover): entries of messages that did become visible are merged into the state,
// half-done work is rolled forward (Maildir) or back (mbox), so nothing is delivered twice and,
// since DELE is sent only after the commit, nothing is lost.
//
// SECURITY  State files are created 0600 in a 0700 directory. UIDs are RFC 1939 unique-ids
//           (printable ASCII, no spaces), so one per line needs no escaping; lines that are not
//           valid UIDs are refused on load (a damaged file is reported, never half-used).
// STANDARDS RFC 1939 §7 (UIDL: unique and persistent across sessions).
// LIMITS    The state holds one line per message still on the server (pruned after each run).
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::fetch {

// Writes `data` to `file` atomically: temporary file in the same directory, fsync, rename,
// fsync of the directory. Creates the directory (0700) if missing.
std::expected<void, std::string> write_file_atomic(const std::filesystem::path& file, std::string_view data);

// fsync(2) of a directory.
std::expected<void, std::string> fsync_dir(const std::filesystem::path& dir);

class UidState {
 public:
  explicit UidState(std::filesystem::path file) : file_(std::move(file)) {}
  // Reads the file; a missing file is an empty state.
  static std::expected<UidState, std::string> load(const std::filesystem::path& file);
  // The file's text: a header line, then the UIDs sorted, one per line.
  std::string serialize() const;
  std::expected<void, std::string> save() const;

  bool contains(const std::string& uid) const { return uids_.contains(uid); }
  void add(const std::string& uid) { uids_.insert(uid); }
  // Forgets every UID not in `present` (messages no longer on the server).
  void retain(const std::set<std::string>& present);
  std::size_t size() const { return uids_.size(); }
  const std::set<std::string>& uids() const { return uids_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  std::set<std::string> uids_;
};

class Journal {
 public:
  Journal() = default;
  ~Journal();
  Journal(Journal&& o) noexcept;
  Journal& operator=(Journal&& o) noexcept;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Opens (creating) the journal for appending.
  static std::expected<Journal, std::string> open(const std::filesystem::path& file);
  // Every complete line of an existing journal (a torn last line is ignored); empty when absent.
  static std::expected<std::vector<std::string>, std::string> read(const std::filesystem::path& file);
  // Removes the journal (after its content is in the state file).
  static std::expected<void, std::string> remove(const std::filesystem::path& file);

  // Appends one line (a newline is added); not durable until sync().
  std::expected<void, std::string> append(std::string_view line);
  std::expected<void, std::string> sync();
  bool is_open() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::filesystem::path file_;
  std::string pending_;
};

// An exclusive, non-blocking lock on `<state_dir>/<id>.lock` (flock): two runs for one account
// never interleave. Released when destroyed (or when the process dies).
class AccountLock {
 public:
  AccountLock() = default;
  ~AccountLock();
  AccountLock(AccountLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  AccountLock& operator=(AccountLock&&) = delete;
  // busy = true in the error when another process holds it.
  struct Error {
    bool busy = false;
    std::string message;
  };
  static std::expected<AccountLock, Error> acquire(const std::filesystem::path& file);

 private:
  int fd_ = -1;
};

}  // namespace buzon::fetch
