// store/memory/memory_store.cpp — in-memory MailStore (see memory_store.hpp).
//
// SECURITY  Test backend; thread-safe (one mutex) so protocol tests may use a worker pool.
// STANDARDS RFC 1939 §3, §7, §8.
// LIMITS    See memory_store.hpp.
#include "store/memory/memory_store.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include "store/uidl.hpp"

namespace buzon::store::memory {

namespace {

struct Message {
  std::uint64_t id = 0;  // never reused within a location
  std::string uidl;
  std::shared_ptr<const std::string> content;
  std::int64_t received = 0;
  bool seen = false;
};

struct Box {
  std::vector<Message> messages;
  std::uint64_t next_id = 1;
  bool locked = false;
};

struct Fault {
  StoreErrc code;
  MemoryStore::Op op;
  std::string detail;
};

}  // namespace

struct MemoryStore::State {
  mutable std::mutex mutex;
  std::map<std::string, Box> boxes;
  std::deque<Fault> faults;
  std::map<std::string, StoreErrc> broken;  // locations every delivery to fails

  // Under `mutex`: pops the first fault for exactly `op` (Op::any faults are left alone).
  std::optional<StoreError> take_exact_fault(Op op) {
    for (auto it = faults.begin(); it != faults.end(); ++it) {
      if (it->op == op) {
        StoreError e{it->code, it->detail};
        faults.erase(it);
        return e;
      }
    }
    return std::nullopt;
  }

  // Under `mutex`: pops the first fault matching `op`, if any.
  std::optional<StoreError> take_fault(Op op) {
    for (auto it = faults.begin(); it != faults.end(); ++it) {
      if (it->op == Op::any || it->op == op) {
        StoreError e{it->code, it->detail};
        faults.erase(it);
        return e;
      }
    }
    return std::nullopt;
  }
};

namespace {

using State = MemoryStore::State;
using Op = MemoryStore::Op;

class MemoryReader final : public MessageReader {
 public:
  MemoryReader(std::shared_ptr<State> state, std::shared_ptr<const std::string> content)
      : state_(std::move(state)), content_(std::move(content)) {}

  Result<std::size_t> read(std::span<char> buf) override {
    {
      std::lock_guard g(state_->mutex);
      if (auto f = state_->take_fault(Op::read)) return std::unexpected(std::move(*f));
    }
    const std::size_t n = std::min(buf.size(), content_->size() - pos_);
    if (n > 0) std::memcpy(buf.data(), content_->data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<const std::string> content_;
  std::size_t pos_ = 0;
};

class MemoryMaildrop final : public Maildrop {
 public:
  MemoryMaildrop(std::shared_ptr<State> state, std::string location,
                 std::vector<std::uint64_t> ids, std::vector<MessageInfo> infos,
                 std::vector<std::shared_ptr<const std::string>> contents)
      : state_(std::move(state)),
        location_(std::move(location)),
        ids_(std::move(ids)),
        infos_(std::move(infos)),
        contents_(std::move(contents)),
        deleted_(infos_.size(), false) {}

  ~MemoryMaildrop() override {
    std::lock_guard g(state_->mutex);
    state_->boxes[location_].locked = false;
  }

  const std::vector<MessageInfo>& messages() const override { return infos_; }

  Result<std::unique_ptr<MessageReader>> open_message(std::size_t index) override {
    std::lock_guard g(state_->mutex);
    if (auto f = state_->take_fault(Op::open_message)) return std::unexpected(std::move(*f));
    if (index >= infos_.size()) return fail(StoreErrc::perm, "message index out of range");
    if (deleted_[index] || find(ids_[index]) == nullptr) {
      return fail(StoreErrc::not_found, "message deleted");
    }
    return std::make_unique<MemoryReader>(state_, contents_[index]);
  }

  Result<void> commit_deletes(std::span<const std::size_t> indexes) override {
    std::lock_guard g(state_->mutex);
    if (auto f = state_->take_fault(Op::commit_deletes)) return std::unexpected(std::move(*f));
    if (auto r = check(indexes); !r) return r;
    std::set<std::uint64_t> doomed;
    for (std::size_t i : indexes) {
      doomed.insert(ids_[i]);
      deleted_[i] = true;
    }
    auto& msgs = state_->boxes[location_].messages;
    std::erase_if(msgs, [&](const Message& m) { return doomed.contains(m.id); });
    return {};
  }

  Result<void> mark_seen(std::span<const std::size_t> indexes) override {
    std::lock_guard g(state_->mutex);
    if (auto f = state_->take_fault(Op::mark_seen)) return std::unexpected(std::move(*f));
    if (auto r = check(indexes); !r) return r;
    for (std::size_t i : indexes) {
      if (Message* m = find(ids_[i])) m->seen = true;
      infos_[i].seen = true;
    }
    return {};
  }

 private:
  Result<void> check(std::span<const std::size_t> indexes) const {
    for (std::size_t i : indexes) {
      if (i >= infos_.size()) return fail(StoreErrc::perm, "message index out of range");
    }
    return {};
  }

  // Under the mutex.
  Message* find(std::uint64_t id) {
    auto& msgs = state_->boxes[location_].messages;
    auto it = std::find_if(msgs.begin(), msgs.end(), [&](const Message& m) { return m.id == id; });
    return it == msgs.end() ? nullptr : &*it;
  }

  std::shared_ptr<State> state_;
  std::string location_;
  std::vector<std::uint64_t> ids_;
  std::vector<MessageInfo> infos_;
  std::vector<std::shared_ptr<const std::string>> contents_;
  std::vector<bool> deleted_;
};

}  // namespace

MemoryStore::MemoryStore() : state_(std::make_shared<State>()) {}
MemoryStore::~MemoryStore() = default;

std::string MemoryStore::add(const std::string& location, std::string message,
                             std::optional<std::string> uidl, std::optional<std::int64_t> received) {
  std::lock_guard g(state_->mutex);
  Box& box = state_->boxes[location];
  Message m;
  m.id = box.next_id++;
  if (uidl) {
    if (!is_valid_uidl(*uidl)) throw std::invalid_argument("MemoryStore::add: invalid UIDL");
    const bool dup = std::any_of(box.messages.begin(), box.messages.end(),
                                 [&](const Message& o) { return o.uidl == *uidl; });
    if (dup) throw std::invalid_argument("MemoryStore::add: duplicate UIDL");
    m.uidl = std::move(*uidl);
  } else {
    // "m<id>", skipping values a caller already chose explicitly.
    for (;;) {
      m.uidl = "m" + std::to_string(m.id);
      const bool dup = std::any_of(box.messages.begin(), box.messages.end(),
                                   [&](const Message& o) { return o.uidl == m.uidl; });
      if (!dup) break;
      m.id = box.next_id++;
    }
  }
  m.content = std::make_shared<const std::string>(std::move(message));
  m.received = received.value_or(static_cast<std::int64_t>(std::time(nullptr)));
  std::string out = m.uidl;
  box.messages.push_back(std::move(m));
  return out;
}

void MemoryStore::fail_next(StoreErrc code, Op op, std::string detail) {
  std::lock_guard g(state_->mutex);
  state_->faults.push_back(Fault{code, op, std::move(detail)});
}

std::vector<MemoryStore::Stored> MemoryStore::contents(const std::string& location) const {
  std::lock_guard g(state_->mutex);
  std::vector<Stored> out;
  auto it = state_->boxes.find(location);
  if (it == state_->boxes.end()) return out;
  for (const Message& m : it->second.messages) {
    out.push_back(Stored{m.uidl, *m.content, m.received, m.seen});
  }
  return out;
}

void MemoryStore::set_broken(const std::string& location, StoreErrc code, bool broken) {
  std::lock_guard g(state_->mutex);
  if (broken)
    state_->broken[location] = code;
  else
    state_->broken.erase(location);
}

std::vector<Result<void>> MemoryStore::deliver(std::span<const DeliveryCopy> copies,
                                               std::span<const std::string_view> parts, DeliveryMode mode) {
  std::lock_guard g(state_->mutex);
  std::vector<Result<void>> results(copies.size());
  if (copies.empty()) return results;
  if (auto f = state_->take_exact_fault(Op::deliver)) {
    for (auto& r : results) r = std::unexpected(*f);
    return results;
  }
  std::string message;
  for (auto p : parts) message.append(p);
  std::optional<StoreError> cause;
  for (std::size_t i = 0; i < copies.size(); ++i) {
    const std::string& loc = copies[i].box.location;
    std::optional<StoreError> e;
    if (loc.empty() || loc.find('\0') != std::string::npos) {
      e = StoreError{StoreErrc::perm, "bad location"};
    } else if (auto it = state_->broken.find(loc); it != state_->broken.end()) {
      e = StoreError{it->second, "location is broken: " + loc};
    } else {
      e = state_->take_exact_fault(Op::deliver_copy);
    }
    if (e) {
      results[i] = std::unexpected(*e);
      if (!cause) cause = e;
    }
  }
  if (cause && mode == DeliveryMode::all_or_none) {
    for (auto& r : results)
      if (r) r = std::unexpected(StoreError{cause->code, "aborted: " + cause->detail});
    return results;
  }
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (std::size_t i = 0; i < copies.size(); ++i) {
    if (!results[i]) continue;
    Box& box = state_->boxes[copies[i].box.location];
    Message m;
    m.id = box.next_id++;
    for (;;) {
      m.uidl = "m" + std::to_string(m.id);
      const bool dup = std::any_of(box.messages.begin(), box.messages.end(),
                                   [&](const Message& o) { return o.uidl == m.uidl; });
      if (!dup) break;
      m.id = box.next_id++;
    }
    m.content = std::make_shared<const std::string>(copies[i].prefix + message);
    m.received = now;
    box.messages.push_back(std::move(m));
  }
  return results;
}

bool MemoryStore::is_locked(const std::string& location) const {
  std::lock_guard g(state_->mutex);
  auto it = state_->boxes.find(location);
  return it != state_->boxes.end() && it->second.locked;
}

Result<std::unique_ptr<Maildrop>> MemoryStore::open_maildrop(const MailboxRef& box,
                                                             const MaildropOptions& /*opts*/) {
  std::lock_guard g(state_->mutex);
  if (auto f = state_->take_fault(Op::open_maildrop)) return std::unexpected(std::move(*f));
  if (box.location.find('\0') != std::string::npos) {
    return fail(StoreErrc::perm, "location contains NUL");
  }
  Box& b = state_->boxes[box.location];
  if (b.locked) return fail(StoreErrc::in_use, "maildrop locked: " + box.location);
  std::vector<std::uint64_t> ids;
  std::vector<MessageInfo> infos;
  std::vector<std::shared_ptr<const std::string>> contents;
  for (const Message& m : b.messages) {
    WireSizeCounter size;
    size.feed(*m.content);
    ids.push_back(m.id);
    infos.push_back(MessageInfo{m.uidl, size.final_size(), m.received, m.seen});
    contents.push_back(m.content);
  }
  b.locked = true;
  return std::make_unique<MemoryMaildrop>(state_, box.location, std::move(ids), std::move(infos),
                                          std::move(contents));
}

}  // namespace buzon::store::memory
