// queue/queue.hpp — the outbound spool: messages waiting for remote delivery, durable on disk, with
// per-recipient status. Used by the submission/MX sessions (enqueue), the relay (lease, deliver,
// record results) and `buzon queue` (list, show, flush, delete, hold, release) on the live spool.
//
// On disk (docs/QUEUE.md has the full format and crash analysis), under one directory:
//   tmp/          files being written (ignored and removed at open)
//   msg/<id>      the message octets exactly as they will be sent (CRLF), written once, fsync'd
//   env/<id>      the envelope: sender, DSN params, each recipient's state, attempts, next attempt,
//                 hold flag. Text, one record per line. Rewritten atomically (tmp + fsync + rename +
//                 fsync env/) on every change. Its rename is the commit point of an enqueue.
// An env/ file without msg/ is impossible (msg/ is durable first); a msg/ file without env/ is an
// orphan of a crash before the commit and is removed at open.
//
// SECURITY  Ids are generated here ([0-9A-Za-z]{20}); ids given by `buzon queue` are validated
//           before becoming paths. Files are 0600. Envelope fields are written escaped (no CR/LF
//           can enter a record).
// STANDARDS RFC 5321 §4.5.4.1 (retry strategy), §6.1 (reliable delivery: a 250 commits; a crash
//           after the peer's 250 and before the status is recorded re-sends, the duplicate §6.1
//           accepts), RFC 3461 (NOTIFY, ORCPT, RET, ENVID carried to the DSN).
// THREADS   Every call blocks (disk, fsync): worker pool only. Several processes may use one spool:
//           a lease is an exclusive flock on msg/<id> (never replaced while the entry exists; env/<id>
//           is renamed over at every update, so a lock on it would not survive one), so the server's
//           relay and `buzon queue` never change the same entry at once.
// LIMITS    Envelope size bounded by max recipients; ids fixed length.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::queue {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::sys_seconds;

enum class RcptState { pending, delivered, failed };
std::string_view to_string(RcptState s);

// RFC 3461 NOTIFY: which DSNs the sender wants for this recipient. Default (no NOTIFY given):
// failure and delay.
struct Notify {
  bool never = false, success = false, failure = true, delay = true;
};

struct Recipient {
  std::string address;         // the forward-path as given (mailbox, no angle brackets)
  std::string orcpt;           // RFC 3461 ORCPT ("rfc822;bob@b.test"), "" if none
  Notify notify;
  RcptState state = RcptState::pending;
  unsigned attempts = 0;
  std::string last_reply;      // "550 5.1.1 <bob@b.test>: no such user" or a local reason
  std::string remote_mta;      // host that answered last, for the DSN
};

struct Entry {
  std::string id;
  std::string sender;          // "" = null reverse-path (a bounce: never bounced itself)
  std::string envid;           // RFC 3461 ENVID, "" if none
  bool ret_hdrs = false;       // RFC 3461 RET=HDRS (else the full message goes back in a DSN)
  bool smtputf8 = false, eightbit = false;  // the message needs SMTPUTF8 / 8BITMIME downstream
  std::vector<Recipient> recipients;
  TimePoint created{};
  TimePoint next_attempt{};
  unsigned attempts = 0;       // delivery rounds so far
  bool held = false;           // `buzon queue hold`: not tried until released
  bool delay_warned = false;   // the delay DSN was sent
  std::uint64_t size = 0;      // octets of msg/<id>
};

struct NewMessage {
  std::string sender;
  std::vector<Recipient> recipients;
  std::string envid;
  bool ret_hdrs = false, smtputf8 = false, eightbit = false;
};

// Exclusive right to change one entry (flock on msg/<id>); released when destroyed.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  ~Lease();
  const std::string& id() const { return id_; }

 private:
  friend class Spool;
  int fd_ = -1;
  std::string id_;
};

class Spool {
 public:
  // Opens (creating tmp/ msg/ env/ if needed) and removes crash leftovers (tmp/ files, orphan msg/).
  static std::expected<std::unique_ptr<Spool>, std::string> open(const std::filesystem::path& dir);

  // Durable enqueue: returns the id only after msg/ and env/ are fsync'd and renamed (then the
  // caller may answer 250). `parts` concatenated are the message.
  std::expected<std::string, std::string> enqueue(const NewMessage& m, std::span<const std::string_view> parts,
                                                  TimePoint now);

  // Every entry (unlocked snapshot), for the scheduler and `buzon queue list`.
  std::vector<Entry> list() const;
  std::expected<Entry, std::string> load(std::string_view id) const;

  // nullopt when another process or thread holds it.
  std::optional<Lease> try_lease(std::string_view id);
  // Blocks until the lease is free (CLI commands that must not give up).
  std::expected<Lease, std::string> lease(std::string_view id);

  // Re-reads the entry under the lease (what is on disk is the truth).
  std::expected<Entry, std::string> load(const Lease& lease) const;
  // Atomic, durable rewrite of env/<id> (the lease's id must equal e.id).
  std::expected<void, std::string> update(const Lease& lease, const Entry& e);
  // Removes msg/ and env/ (every recipient done, or `buzon queue delete`).
  std::expected<void, std::string> remove(const Lease& lease);

  std::filesystem::path message_path(std::string_view id) const;  // for streaming msg/<id>
  std::expected<std::string, std::string> read_message(std::string_view id) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit Spool(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

bool valid_id(std::string_view id);

// Retry policy (pure). RFC 5321 §4.5.4.1: at least 30 minutes between tries of a destination after
// a failure, give up after 4-5 days. Defaults here; every field is configurable ([queue]).
struct RetryPolicy {
  std::chrono::seconds first{300};        // after the first failed round
  std::chrono::seconds max_interval{14400};
  double factor = 2.0;                    // exponential backoff
  std::chrono::seconds max_age{432000};   // 5 days: then bounce every pending recipient
  std::chrono::seconds delay_warning{14400};  // 4 hours: warning DSN once (if NOTIFY=DELAY)
};
TimePoint next_attempt(const RetryPolicy& p, TimePoint created, unsigned attempts_done, TimePoint now);
bool expired(const RetryPolicy& p, const Entry& e, TimePoint now);
bool delay_warning_due(const RetryPolicy& p, const Entry& e, TimePoint now);

// RFC 3464 delivery status notifications (pure). Returns the complete message (headers + a
// multipart/report body: human text, message/delivery-status, the original message or its headers),
// with CRLF line ends, From: MAILER-DAEMON@<reporting_mta>, To: the original sender, and an
// Auto-Submitted: auto-replied header (RFC 3834). Only recipients with failed state (or pending,
// for kind == delay) whose NOTIFY asks for it are listed; an empty optional when none qualifies or
// the original sender is null (no bounce of a bounce, RFC 5321 §3.6.3 / §6.1).
enum class DsnKind { failure, delay };
// will_retry_until (added by the queue helper, defaulted so existing calls compile): the give-up
// time, e.created + RetryPolicy::max_age, shown as Will-Retry-Until in a delay notice.
std::optional<std::string> make_dsn(DsnKind kind, const Entry& e, std::string_view original_message,
                                    std::string_view reporting_mta, TimePoint now, std::string_view message_id,
                                    std::optional<TimePoint> will_retry_until = std::nullopt);

}  // namespace buzon::queue
