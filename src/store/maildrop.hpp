// store/maildrop.hpp — the POP3 view of a mailbox and the backend-neutral store interface.
//
// SECURITY  Callers pass canonical user names and mailbox locations that the auth layer produced;
//           backends still refuse locations that try to escape their root.
// STANDARDS RFC 1939 §8 (UPDATE state: deletions are committed only after QUIT),
//           RFC 1939 §7 (UIDL: 1-70 characters in 0x21..0x7E, unique and stable per maildrop).
// THREADS   Every call may block (disk or database). Protocol code calls these only through the
//           worker pool (net/worker_pool.hpp), never on an event loop thread. One Maildrop object is
//           used by one session at a time; different Maildrop objects may be used concurrently.
//
// No file paths, fds or Maildir names cross this interface: a PostgreSQL backend drops in behind it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::store {

// Classified errors (Dovecot's mail_error): protocol code maps them once to
// -ERR [SYS/TEMP], -ERR [SYS/PERM], -ERR [IN-USE], SMTP 4xx/5xx.
enum class StoreErrc {
  temp,       // transient: I/O error, disk full, database unreachable — retry later
  perm,       // permanent: corrupt mailbox, permission denied, bad location
  in_use,     // the maildrop is locked by another session (this or another process/node)
  not_found,  // the message vanished (e.g. deleted by another agent)
  too_big,    // a size limit was exceeded
  quota,      // over quota
  no_space,   // the storage is full (disk full: SMTP 452 4.3.1); only Delivery reports it
};

struct StoreError {
  StoreErrc code;
  std::string detail;  // for the log only; never sent to the client
};

template <class T>
using Result = std::expected<T, StoreError>;

inline std::unexpected<StoreError> fail(StoreErrc c, std::string detail) {
  return std::unexpected(StoreError{c, std::move(detail)});
}

std::string_view to_string(StoreErrc c);

// One message as POP3 sees it.
struct MessageInfo {
  std::string uidl;         // unique-id listing (RFC 1939 §7): 1..70 octets, each 0x21..0x7E
  std::uint64_t size = 0;   // exact octets as sent with CRLF line ends, before dot-stuffing
                            // (a missing final line end counts: WireSizeCounter::final_size())
  std::int64_t received = 0;  // delivery time, unix seconds (Maildir: the file's mtime); for EXPIRE
  bool seen = false;          // retrieved before (Maildir: in cur/ or 'S' flag)
};

// Sequential reader of one stored message's raw octets (as stored: LF or CRLF line ends).
// The protocol layer converts to the wire form (CRLF, dot-stuffing, final CRLF).
class MessageReader {
 public:
  virtual ~MessageReader() = default;
  // Reads up to buf.size() octets; returns 0 at end of message.
  virtual Result<std::size_t> read(std::span<char> buf) = 0;
  // The same, but only when it needs no wait for I/O (the octets are in the page cache), so an
  // event loop may call it: nullopt means "not now" (use read() on a pool thread), never an error.
  // The default never answers.
  virtual std::optional<std::size_t> read_if_cached(std::span<char> buf) {
    (void)buf;
    return std::nullopt;
  }
};

// An opened, exclusively locked maildrop (RFC 1939 §3: "exclusive-access lock").
// The message list is a snapshot taken at open time; message indexes are 0-based into it.
// Destroying the object releases the lock and deletes nothing.
class Maildrop {
 public:
  virtual ~Maildrop() = default;
  virtual const std::vector<MessageInfo>& messages() const = 0;
  virtual Result<std::unique_ptr<MessageReader>> open_message(std::size_t index) = 0;
  // Reads message `index` whole (raw octets, as open_message would) into `out`, but only if that
  // needs no wait for I/O: everything is already in memory (Maildir: the kernel's dentry and page
  // caches, asked with openat2(RESOLVE_CACHED) and preadv2(RWF_NOWAIT)). It is called ON AN EVENT
  // LOOP, so it must never block: it answers false whenever it cannot finish at once (not cached,
  // more than `max` octets, any error) and the caller takes the worker-pool path, which reports
  // errors. `out` is unspecified after false. The default never answers (a database backend).
  virtual bool read_if_cached(std::size_t index, std::string& out, std::size_t max) {
    (void)index, (void)out, (void)max;
    return false;
  }
  // UPDATE state (RFC 1939 §6): remove these messages. Each removal is atomic (a crash leaves a
  // message either present and intact or gone); the call returns after the removals are durable.
  // Messages already gone are not an error.
  virtual Result<void> commit_deletes(std::span<const std::size_t> indexes) = 0;
  // True when destroying this maildrop (releasing its lock) never waits for I/O, so an event loop
  // may do it (Maildir: closing fds and dropping a flock). The default says no (a database).
  virtual bool release_is_instant() const { return false; }
  // Records that these messages were retrieved (Maildir: new/ -> cur/ with the 'S' flag), so other
  // readers see them as read. Best effort, also after an aborted session; never deletes anything
  // and never changes a message's UIDL.
  virtual Result<void> mark_seen(std::span<const std::size_t> indexes) = 0;
};

// Where a user's mail lives, as resolved by the auth layer (passwd-file, mail template).
struct MailboxRef {
  std::string user;      // canonical user name (for logs and database backends)
  std::string location;  // backend-specific location (Maildir: a directory path)
};

// Which UIDL to present (DESIGN.md: migration from other servers keeps clients' state).
enum class UidlFormat {
  buzon,    // buzon's own stable id, derived from the message's unique base name
  dovecot,  // Dovecot's default pop3_uidl_format %08Xu%08Xv from dovecot-uidlist; falls back to buzon
  x_uidl,   // the message's X-UIDL header when valid and unique; falls back to buzon
};

struct MaildropOptions {
  UidlFormat uidl_format = UidlFormat::buzon;
};

class MailStore {
 public:
  virtual ~MailStore() = default;
  // Opens and locks the maildrop (creating an empty one if absent). StoreErrc::in_use when another
  // session holds the lock, in this process or any other.
  virtual Result<std::unique_ptr<Maildrop>> open_maildrop(const MailboxRef& box,
                                                          const MaildropOptions& opts) = 0;
};

// Octets of a message once every bare LF becomes CRLF (the POP3 size, RFC 1939 §5/§11).
// Streaming: feed chunks in order; `prev_cr` carries whether the previous chunk ended in CR.
// `size` is Dovecot's "virtual size" (the ",W=" Maildir field); final_size() adds the line end the
// POP3 layer completes on an unterminated last line (proto/pop3/dot_stuffer.hpp wire_size()), and
// is what MessageInfo::size reports.
struct WireSizeCounter {
  std::uint64_t size = 0;
  bool prev_cr = false;
  bool prev_lf = false;  // the last octet fed was LF
  void feed(std::string_view chunk) {
    for (char c : chunk) {
      if (c == '\n' && !prev_cr) ++size;  // a bare LF is sent as CRLF
      ++size;
      prev_cr = (c == '\r');
      prev_lf = (c == '\n');
    }
  }
  // The octets RETR sends before the terminating ".CRLF", without byte-stuffing: `size`, plus 2
  // for a missing final CRLF (1 when the message ends in a bare CR); an empty message stays 0.
  std::uint64_t final_size() const {
    if (size == 0 || prev_lf) return size;
    return size + (prev_cr ? 1 : 2);
  }
};

}  // namespace buzon::store
