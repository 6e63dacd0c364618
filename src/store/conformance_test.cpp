// store/conformance_test.cpp — one behavioural suite for the MailStore/Maildrop interface, run
// against every backend (maildir in a temporary directory, memory). A new backend (postgres) joins
// by adding a factory to kBackends.
//
// SECURITY  Tests only.
// STANDARDS RFC 1939 §3 (exclusive lock), §5/§11 (exact CRLF sizes), §7 (UIDL charset, length,
//           uniqueness, stability), §8 (deletions only on commit; aborted sessions change nothing);
//           Delivery (RFC 5321 §6.1, RFC 2033 §4.2): one copy per recipient with its own prefix,
//           all_or_none leaves nothing when a copy fails, each delivers the others.
// LIMITS    None.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/maildir/maildir_deliverer.hpp"
#include "store/maildir/maildir_delivery.hpp"
#include "store/maildir/maildir_store.hpp"
#include "store/memory/memory_store.hpp"
#include "store/store_test_util.hpp"
#include "store/uidl.hpp"

namespace buzon::store {
namespace {

using testing::read_message;
using testing::uidls_of;

// A backend under test: a store, and a way to put messages into a mailbox (delivery is not part of
// the Maildrop interface yet).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual MailStore& store() = 0;
  virtual MailboxRef box(int n = 0) = 0;
  virtual void add(const MailboxRef& box, std::string_view message) = 0;
  virtual Delivery& delivery() = 0;
  // Makes every later delivery to `box` fail (permanently: a bad location).
  virtual void break_box(const MailboxRef& box) = 0;
};

class MaildirBackend final : public Backend {
 public:
  MailStore& store() override { return store_; }
  MailboxRef box(int n) override {
    return MailboxRef{"user" + std::to_string(n), dir_.path() + "/u" + std::to_string(n) + "/Maildir"};
  }
  void add(const MailboxRef& box, std::string_view message) override {
    auto r = maildir::deliver(box.location, message);
    ASSERT_TRUE(r.has_value()) << r.error().detail;
  }
  Delivery& delivery() override { return deliverer_; }
  void break_box(const MailboxRef& box) override {
    // A regular file where the Maildir's parent directory should be: ENOTDIR.
    const std::string parent = box.location.substr(0, box.location.rfind('/'));
    std::filesystem::create_directories(parent.substr(0, parent.rfind('/')));
    testing::write_file(parent, "not a directory");
  }

 private:
  testing::TempDir dir_;
  maildir::MaildirStore store_;
  maildir::MaildirDeliverer deliverer_;
};

class MemoryBackend final : public Backend {
 public:
  MailStore& store() override { return store_; }
  MailboxRef box(int n) override {
    return MailboxRef{"user" + std::to_string(n), "mem:u" + std::to_string(n)};
  }
  void add(const MailboxRef& box, std::string_view message) override {
    store_.add(box.location, std::string(message));
  }
  Delivery& delivery() override { return store_; }
  void break_box(const MailboxRef& box) override { store_.set_broken(box.location, StoreErrc::perm); }

 private:
  memory::MemoryStore store_;
};

struct BackendParam {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
};

std::ostream& operator<<(std::ostream& os, const BackendParam& p) { return os << p.name; }

const BackendParam kBackends[] = {
    {"maildir", [] { return std::unique_ptr<Backend>(new MaildirBackend); }},
    {"memory", [] { return std::unique_ptr<Backend>(new MemoryBackend); }},
};

class StoreConformance : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override { backend_ = GetParam().make(); }

  Result<std::unique_ptr<Maildrop>> open(int n = 0, MaildropOptions opts = {}) {
    return backend_->store().open_maildrop(backend_->box(n), opts);
  }
  std::unique_ptr<Maildrop> must_open(int n = 0, MaildropOptions opts = {}) {
    auto r = open(n, opts);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().detail);
    return r ? std::move(*r) : nullptr;
  }
  void add(std::string_view m, int n = 0) { backend_->add(backend_->box(n), m); }

  std::unique_ptr<Backend> backend_;
};

// The message shapes whose sizes must be exact: the size is what RETR sends (CRLF line ends, the
// last line completed), before dot-stuffing; proto/pop3/dot_stuffer.hpp wire_size() agrees.
struct Shape {
  std::string content;
  std::uint64_t wire_size;
};
const std::vector<Shape> kShapes = {
    {"Subject: lf\n\nbody\n", 21},                   // 3 bare LFs -> +3
    {"Subject: crlf\r\n\r\nbody\r\n", 23},           // already CRLF
    {"Subject: none\n\nno final newline", 35},        // 2 bare LFs, + the completed last line
    {"no newline at all", 19},                        // RETR completes the line: + CRLF
    {"ends in CR\r", 12},                             // a final CR is completed with LF only
    {"", 0},                                          // empty message
    {"a\r\nb\nc\r\n", 9},                              // mixed
    {"lone\rcr\n", 9},                                // a lone CR is sent as is
    {".starts with dot\n..two\n", 25},                // dot-stuffing is not counted
};

TEST_P(StoreConformance, OpenEmptyMaildrop) {
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_TRUE(drop->messages().empty());
  EXPECT_TRUE(drop->commit_deletes({}).has_value());
  EXPECT_TRUE(drop->mark_seen({}).has_value());
}

TEST_P(StoreConformance, SizesAreExactWireOctets) {
  for (const auto& s : kShapes) add(s.content);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), kShapes.size());
  for (std::size_t i = 0; i < kShapes.size(); ++i) {
    EXPECT_EQ(drop->messages()[i].size, kShapes[i].wire_size) << "message " << i;
    WireSizeCounter c;
    c.feed(kShapes[i].content);
    EXPECT_EQ(c.final_size(), kShapes[i].wire_size) << "table entry " << i;
  }
}

TEST_P(StoreConformance, SizesStayExactOnReopen) {
  for (const auto& s : kShapes) add(s.content);
  { ASSERT_TRUE(must_open()); }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), kShapes.size());
  for (std::size_t i = 0; i < kShapes.size(); ++i) {
    EXPECT_EQ(drop->messages()[i].size, kShapes[i].wire_size) << "message " << i;
  }
}

TEST_P(StoreConformance, ContentsReadBackExactlyWithAnyChunkSize) {
  for (const auto& s : kShapes) add(s.content);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{65536}}) {
    for (std::size_t i = 0; i < kShapes.size(); ++i) {
      auto got = read_message(*drop, i, chunk);
      ASSERT_TRUE(got.has_value()) << got.error().detail;
      EXPECT_EQ(*got, kShapes[i].content) << "message " << i << " chunk " << chunk;
    }
  }
}

TEST_P(StoreConformance, LargeMessageStreams) {
  std::string big;
  for (int i = 0; i < 50000; ++i) big += "line " + std::to_string(i) + "\n";
  add(big);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 1u);
  WireSizeCounter c;
  c.feed(big);
  EXPECT_EQ(drop->messages()[0].size, c.final_size());
  auto got = read_message(*drop, 0, 8192);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, big);
}

TEST_P(StoreConformance, SecondOpenIsInUse) {
  auto first = must_open();
  ASSERT_TRUE(first);
  auto second = open();
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, StoreErrc::in_use);
}

TEST_P(StoreConformance, SecondOpenFromAnotherThreadIsInUse) {
  auto first = must_open();
  ASSERT_TRUE(first);
  std::optional<StoreErrc> code;
  std::thread t([&] {
    auto second = open();
    if (!second) code = second.error().code;
  });
  t.join();
  EXPECT_EQ(code, StoreErrc::in_use);
}

TEST_P(StoreConformance, LockIsReleasedOnDestroy) {
  { ASSERT_TRUE(must_open()); }
  auto again = open();
  EXPECT_TRUE(again.has_value());
}

TEST_P(StoreConformance, DifferentMaildropsDoNotConflict) {
  auto a = must_open(0);
  auto b = must_open(1);
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
}

TEST_P(StoreConformance, CommitDeletesRemovesOnlyChosenAndSurvivesReopen) {
  for (int i = 0; i < 5; ++i) add("Subject: m" + std::to_string(i) + "\n\nbody " + std::to_string(i) + "\n");
  std::vector<std::string> before;
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    ASSERT_EQ(drop->messages().size(), 5u);
    before = uidls_of(*drop);
    const std::size_t doomed[] = {1, 3};
    ASSERT_TRUE(drop->commit_deletes(doomed).has_value());
    auto gone = drop->open_message(1);
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error().code, StoreErrc::not_found);
    EXPECT_TRUE(read_message(*drop, 2).has_value());  // others remain readable
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 3u);
  EXPECT_EQ(uidls_of(*drop), (std::vector<std::string>{before[0], before[2], before[4]}));
  EXPECT_EQ(*read_message(*drop, 0), "Subject: m0\n\nbody 0\n");
  EXPECT_EQ(*read_message(*drop, 1), "Subject: m2\n\nbody 2\n");
  EXPECT_EQ(*read_message(*drop, 2), "Subject: m4\n\nbody 4\n");
}

TEST_P(StoreConformance, CommitDeletesToleratesRepeatsAndRecommits) {
  add("a\n");
  add("b\n");
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    const std::size_t twice[] = {0, 0};
    EXPECT_TRUE(drop->commit_deletes(twice).has_value());
    const std::size_t again[] = {0};
    EXPECT_TRUE(drop->commit_deletes(again).has_value());  // already gone: not an error
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 1u);
  EXPECT_EQ(*read_message(*drop, 0), "b\n");
}

TEST_P(StoreConformance, OutOfRangeIndexIsRefusedAndChangesNothing) {
  add("a\n");
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    const std::size_t bad[] = {0, 5};
    auto r = drop->commit_deletes(bad);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, StoreErrc::perm);
    EXPECT_FALSE(drop->open_message(1).has_value());
    EXPECT_FALSE(drop->mark_seen(bad).has_value());
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->messages().size(), 1u);
}

TEST_P(StoreConformance, AbortedSessionDeletesNothing) {
  add("a\n");
  add("b\n");
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    ASSERT_TRUE(read_message(*drop, 0).has_value());
    // destroyed without commit_deletes: the session ended without QUIT
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->messages().size(), 2u);
}

TEST_P(StoreConformance, SnapshotIgnoresLaterDeliveries) {
  add("first\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  add("second\n");
  EXPECT_EQ(drop->messages().size(), 1u);
  const std::size_t all[] = {0};
  ASSERT_TRUE(drop->commit_deletes(all).has_value());
  drop.reset();
  auto again = must_open();
  ASSERT_TRUE(again);
  ASSERT_EQ(again->messages().size(), 1u);  // the later delivery survived
  EXPECT_EQ(*read_message(*again, 0), "second\n");
}

TEST_P(StoreConformance, UidlsAreValidUniqueAndStable) {
  for (int i = 0; i < 20; ++i) add("Subject: " + std::to_string(i) + "\n\nx\n");
  std::vector<std::string> first;
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    first = uidls_of(*drop);
    ASSERT_EQ(first.size(), 20u);
    std::set<std::string> unique(first.begin(), first.end());
    EXPECT_EQ(unique.size(), first.size());
    for (const auto& u : first) {
      EXPECT_TRUE(is_valid_uidl(u)) << u;
      EXPECT_GE(u.size(), 1u);
      EXPECT_LE(u.size(), 70u);
    }
    const std::size_t some[] = {0, 5, 7};
    ASSERT_TRUE(drop->mark_seen(some).has_value());
    EXPECT_EQ(uidls_of(*drop), first);  // marking seen never changes a UIDL
  }
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    EXPECT_EQ(uidls_of(*drop), first);
    const std::size_t doomed[] = {3};
    ASSERT_TRUE(drop->commit_deletes(doomed).has_value());
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  std::vector<std::string> expected = first;
  expected.erase(expected.begin() + 3);
  EXPECT_EQ(uidls_of(*drop), expected);  // deleting one never renames the others
}

TEST_P(StoreConformance, MarkSeenIsRecordedAndSurvivesReopen) {
  add("a\n");
  add("b\n");
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    EXPECT_FALSE(drop->messages()[0].seen);
    EXPECT_FALSE(drop->messages()[1].seen);
    const std::size_t one[] = {1};
    ASSERT_TRUE(drop->mark_seen(one).has_value());
    ASSERT_TRUE(drop->mark_seen(one).has_value());  // idempotent
    EXPECT_TRUE(drop->messages()[1].seen);
    EXPECT_EQ(*read_message(*drop, 1), "b\n");  // still readable after the move
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 2u);
  EXPECT_FALSE(drop->messages()[0].seen);
  EXPECT_TRUE(drop->messages()[1].seen);
  EXPECT_EQ(*read_message(*drop, 1), "b\n");
}

TEST_P(StoreConformance, MarkSeenThenDeleteInOneSession) {
  add("a\n");
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    const std::size_t one[] = {0};
    ASSERT_TRUE(drop->mark_seen(one).has_value());
    ASSERT_TRUE(drop->commit_deletes(one).has_value());
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_TRUE(drop->messages().empty());
}

TEST_P(StoreConformance, OrderIsDeliveryOrder) {
  for (int i = 0; i < 30; ++i) add("n=" + std::to_string(i) + "\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 30u);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(*read_message(*drop, static_cast<std::size_t>(i)), "n=" + std::to_string(i) + "\n");
  }
}

TEST_P(StoreConformance, LocationWithNulIsRefused) {
  MailboxRef box = backend_->box(0);
  box.location += std::string("\0x", 2);
  auto r = backend_->store().open_maildrop(box, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, StoreErrc::perm);
}

// ---- Delivery ---------------------------------------------------------------------------------

std::vector<Result<void>> deliver(Backend& b, const std::vector<DeliveryCopy>& copies,
                                  std::vector<std::string_view> parts,
                                  DeliveryMode mode = DeliveryMode::all_or_none) {
  return b.delivery().deliver(copies, parts, mode);
}

TEST_P(StoreConformance, DeliveryStoresPrefixAndMessage) {
  const std::string received = "Received: from a by b; Tue, 04 Aug 2026 12:34:56 +0000\r\n";
  const std::string body = "Subject: s\r\n\r\n.leading dot\r\nbody\r\n";
  const std::vector<DeliveryCopy> copies = {{backend_->box(0), "Return-Path: <a@b>\r\nDelivered-To: u0@x\r\n"}};
  auto res = deliver(*backend_, copies, {received, body});
  ASSERT_EQ(res.size(), 1u);
  ASSERT_TRUE(res[0].has_value()) << res[0].error().detail;
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 1u);
  const std::string want = copies[0].prefix + received + body;
  EXPECT_EQ(*read_message(*drop, 0), want);
  EXPECT_EQ(drop->messages()[0].size, want.size());  // CRLF content: wire size = stored size
  EXPECT_TRUE(is_valid_uidl(drop->messages()[0].uidl));
}

TEST_P(StoreConformance, DeliveryGivesEachCopyItsOwnPrefix) {
  std::vector<DeliveryCopy> copies;
  for (int i = 0; i < 3; ++i) copies.push_back({backend_->box(i), "Delivered-To: u" + std::to_string(i) + "@x\r\n"});
  auto res = deliver(*backend_, copies, {"one\r\n", "", "two\r\n"});
  for (const auto& r : res) ASSERT_TRUE(r.has_value()) << r.error().detail;
  for (int i = 0; i < 3; ++i) {
    auto drop = must_open(i);
    ASSERT_TRUE(drop);
    ASSERT_EQ(drop->messages().size(), 1u);
    EXPECT_EQ(*read_message(*drop, 0), "Delivered-To: u" + std::to_string(i) + "@x\r\none\r\ntwo\r\n");
  }
}

TEST_P(StoreConformance, AllOrNoneLeavesNothingWhenACopyFails) {
  backend_->break_box(backend_->box(1));
  const std::vector<DeliveryCopy> copies = {{backend_->box(0), "A: 0\r\n"}, {backend_->box(1), "A: 1\r\n"},
                                            {backend_->box(2), "A: 2\r\n"}};
  auto res = deliver(*backend_, copies, {"m\r\n"});
  ASSERT_EQ(res.size(), 3u);
  for (const auto& r : res) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, StoreErrc::perm) << r.error().detail;
  }
  for (int i : {0, 2}) {
    auto drop = must_open(i);
    ASSERT_TRUE(drop);
    EXPECT_TRUE(drop->messages().empty()) << "box " << i;
  }
}

TEST_P(StoreConformance, EachModeDeliversTheOthers) {
  backend_->break_box(backend_->box(1));
  const std::vector<DeliveryCopy> copies = {{backend_->box(0), ""}, {backend_->box(1), ""}, {backend_->box(2), ""}};
  auto res = deliver(*backend_, copies, {"m\r\n"}, DeliveryMode::each);
  ASSERT_EQ(res.size(), 3u);
  EXPECT_TRUE(res[0].has_value());
  ASSERT_FALSE(res[1].has_value());
  EXPECT_EQ(res[1].error().code, StoreErrc::perm);
  EXPECT_TRUE(res[2].has_value());
  for (int i : {0, 2}) {
    auto drop = must_open(i);
    ASSERT_TRUE(drop);
    ASSERT_EQ(drop->messages().size(), 1u) << "box " << i;
    EXPECT_EQ(*read_message(*drop, 0), "m\r\n");
  }
}

TEST_P(StoreConformance, DeliveryDoesNotWaitForAPop3Lock) {
  add("old\r\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  auto res = deliver(*backend_, {{backend_->box(0), ""}}, {"new\r\n"});
  ASSERT_TRUE(res[0].has_value());
  EXPECT_EQ(drop->messages().size(), 1u);  // the open snapshot is unchanged
  drop.reset();
  auto again = must_open();
  ASSERT_TRUE(again);
  ASSERT_EQ(again->messages().size(), 2u);
  EXPECT_EQ(*read_message(*again, 1), "new\r\n");
}

TEST_P(StoreConformance, ConcurrentDeliveriesAllArrive) {
  constexpr int kThreads = 8, kEach = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string body = "t=" + std::to_string(t) + " i=" + std::to_string(i) + "\r\n";
        const std::vector<DeliveryCopy> copies = {{backend_->box(t % 3), ""}, {backend_->box(3), "X: y\r\n"}};
        for (const auto& r : deliver(*backend_, copies, {body}))
          if (!r) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::size_t total = 0;
  for (int b = 0; b < 3; ++b) {
    auto drop = must_open(b);
    ASSERT_TRUE(drop);
    total += drop->messages().size();
  }
  EXPECT_EQ(total, std::size_t{kThreads * kEach});
  auto shared = must_open(3);
  ASSERT_TRUE(shared);
  std::set<std::string> bodies;
  for (std::size_t i = 0; i < shared->messages().size(); ++i) bodies.insert(*read_message(*shared, i));
  EXPECT_EQ(bodies.size(), std::size_t{kThreads * kEach});  // every copy distinct and complete
}

TEST_P(StoreConformance, DeliveryEdgeCases) {
  EXPECT_TRUE(deliver(*backend_, {}, {"x"}).empty());
  auto empty = deliver(*backend_, {{backend_->box(0), ""}}, {});
  ASSERT_TRUE(empty[0].has_value());  // an empty message (BDAT 0 LAST) is still a message
  MailboxRef nul = backend_->box(1);
  nul.location += std::string("\0x", 2);
  auto bad = deliver(*backend_, {{nul, ""}}, {"x\r\n"});
  ASSERT_FALSE(bad[0].has_value());
  EXPECT_EQ(bad[0].error().code, StoreErrc::perm);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 1u);
  EXPECT_EQ(drop->messages()[0].size, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::ValuesIn(kBackends),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace buzon::store
