// store/memory/memory_store.hpp — an in-memory MailStore and Delivery for tests and benchmarks (as
// OpenSMTPD's queue_ram and Dovecot's fail-mail-storage): same lock, snapshot and UPDATE semantics
// as the Maildir backend, the same all-or-none / per-copy delivery results, plus fault injection.
//
// SECURITY  Test backend: holds everything in memory; not for production use.
// STANDARDS RFC 1939 §3 (exclusive lock -> in_use), §7 (UIDL), §8 (deletions only via
//           commit_deletes).
// LIMITS    MaildropOptions::uidl_format is ignored: UIDLs are the ones given to add(), else
//           "m<n>" with n counting up per location (never reused).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/delivery.hpp"
#include "store/maildrop.hpp"

namespace buzon::store::memory {

class MemoryStore final : public MailStore, public Delivery {
 public:
  // Operations that fail_next can target.
  // deliver: a whole deliver() call fails; deliver_copy: the next copy of a delivery fails.
  enum class Op { any, open_maildrop, open_message, read, commit_deletes, mark_seen, deliver, deliver_copy };

  MemoryStore();
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Appends a message to `location` (created if absent) and returns its UIDL. A given `uidl` must
  // be a valid RFC 1939 UIDL not yet used in that location (else std::invalid_argument: a bug in
  // the test). `received` defaults to the current time.
  std::string add(const std::string& location, std::string message,
                  std::optional<std::string> uidl = std::nullopt,
                  std::optional<std::int64_t> received = std::nullopt);

  // Makes the next matching operation fail with `code` (once). Several calls queue up in order.
  void fail_next(StoreErrc code, Op op = Op::any, std::string detail = "injected failure");

  // Inspection for tests: the stored messages of a location, in order.
  struct Stored {
    std::string uidl;
    std::string content;
    std::int64_t received = 0;
    bool seen = false;
  };
  std::vector<Stored> contents(const std::string& location) const;
  bool is_locked(const std::string& location) const;

  // Every delivery to `location` fails with `code` (a full or broken mailbox) until a call with
  // broken = false.
  void set_broken(const std::string& location, StoreErrc code, bool broken = true);

  Result<std::unique_ptr<Maildrop>> open_maildrop(const MailboxRef& box,
                                                  const MaildropOptions& opts) override;

  // Delivery: each copy becomes a message "prefix + parts..." of its location; all_or_none stores
  // all copies under one lock or none. Op::any faults do not apply (only deliver/deliver_copy).
  std::vector<Result<void>> deliver(std::span<const DeliveryCopy> copies,
                                    std::span<const std::string_view> parts,
                                    DeliveryMode mode) override;

  struct State;

 private:
  std::shared_ptr<State> state_;  // shared with open maildrops, which may outlive the store
};

}  // namespace buzon::store::memory
