// store/memory/memory_store.hpp — an in-memory MailStore for tests and benchmarks (as OpenSMTPD's
// queue_ram and Dovecot's fail-mail-storage): same lock, snapshot and UPDATE semantics as the
// Maildir backend, plus fault injection.
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

#include "store/maildrop.hpp"

namespace buzon::store::memory {

class MemoryStore final : public MailStore {
 public:
  // Operations that fail_next can target.
  enum class Op { any, open_maildrop, open_message, read, commit_deletes, mark_seen };

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

  Result<std::unique_ptr<Maildrop>> open_maildrop(const MailboxRef& box,
                                                  const MaildropOptions& opts) override;

  struct State;

 private:
  std::shared_ptr<State> state_;  // shared with open maildrops, which may outlive the store
};

}  // namespace buzon::store::memory
