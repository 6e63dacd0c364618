// store/delivery.hpp — the backend-neutral Delivery interface: store one message for N recipient
// mailboxes, returning only once every stored copy is durable (DESIGN.md principle 3).
//
// SECURITY  Callers pass mailbox references the auth layer resolved (canonical user, location
//           from the mail template); backends still refuse locations with NUL or outside their
//           root. Message octets are stored as given and never interpreted.
// STANDARDS RFC 5321 §4.1.1.4 and §6.1 (a 250 after the end of data means the server has accepted
//           responsibility: the message must survive a crash), RFC 2033 §4.2 (LMTP: one result
//           per recipient).
// THREADS   deliver() blocks (disk or database, fsync) and is called only from the worker pool
//           (net/worker_pool.hpp). Concurrent calls are expected and are what group commit feeds
//           on: backends share flushes between them.
// LIMITS    The message is passed in memory (bounded by the protocol's max message size).
//
// No file paths, fds or Maildir names cross this interface: a PostgreSQL backend drops in.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/maildrop.hpp"

namespace buzon::store {

// One recipient's copy: where it goes and the octets written before the shared message (the
// per-recipient trace fields, e.g. "Return-Path: <a@b>\r\nDelivered-To: c@d\r\n").
struct DeliveryCopy {
  MailboxRef box;
  std::string prefix;
};

enum class DeliveryMode {
  // One transaction: every copy becomes visible, or none does (SMTP: one reply for the message).
  all_or_none,
  // Each copy on its own (LMTP: one reply per recipient; a full mailbox does not fail the others).
  each,
};

class Delivery {
 public:
  virtual ~Delivery() = default;

  // Stores prefix(i) + message for every copy i; `message` is the concatenation of `parts`
  // (e.g. the Received: field and the received octets, so neither is copied to join them).
  // Returns one result per copy, in order, and only after every successful copy is durable (data
  // and directory entry flushed). A failed copy leaves nothing visible. With all_or_none, either
  // every result is success or every result is an error (copies that could have succeeded report
  // temp "aborted with the transaction"). Errors: temp (I/O), no_space (disk full), quota,
  // too_big, perm (bad location, permission).
  virtual std::vector<Result<void>> deliver(std::span<const DeliveryCopy> copies,
                                            std::span<const std::string_view> parts,
                                            DeliveryMode mode) = 0;
};

}  // namespace buzon::store
