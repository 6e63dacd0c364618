// store/memory/memory_store_test.cpp — what only the memory backend offers: explicit UIDLs and
// fault injection (the conformance suite covers the shared behaviour).
//
// SECURITY  Tests only.
// STANDARDS RFC 1939.
// LIMITS    None.
#include <gtest/gtest.h>

#include <stdexcept>

#include "store/memory/memory_store.hpp"
#include "store/store_test_util.hpp"

namespace buzon::store::memory {
namespace {

using testing::read_message;

const MailboxRef kBox{"alice", "alice"};

TEST(MemoryStore, ExplicitAndGeneratedUidls) {
  MemoryStore s;
  EXPECT_EQ(s.add("alice", "a\n", "given-1"), "given-1");
  EXPECT_EQ(s.add("alice", "b\n"), "m2");
  EXPECT_THROW(s.add("alice", "c\n", "bad uidl"), std::invalid_argument);
  EXPECT_THROW(s.add("alice", "c\n", "given-1"), std::invalid_argument);
  EXPECT_EQ(s.add("alice", "c\n", "m4"), "m4");
  EXPECT_NE(s.add("alice", "d\n"), "m4");  // generated ids skip explicit ones
  auto drop = s.open_maildrop(kBox, {});
  ASSERT_TRUE(drop.has_value());
  EXPECT_EQ((*drop)->messages().size(), 4u);
  EXPECT_EQ((*drop)->messages()[0].uidl, "given-1");
}

TEST(MemoryStore, ReceivedTimeIsKept) {
  MemoryStore s;
  s.add("alice", "a\n", std::nullopt, 1234);
  auto drop = s.open_maildrop(kBox, {});
  ASSERT_TRUE(drop.has_value());
  EXPECT_EQ((*drop)->messages()[0].received, 1234);
}

TEST(MemoryStore, FailNextHitsTheNextMatchingOperationOnce) {
  MemoryStore s;
  s.add("alice", "hello\n");
  s.fail_next(StoreErrc::temp, MemoryStore::Op::open_maildrop);
  auto r = s.open_maildrop(kBox, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, StoreErrc::temp);
  EXPECT_FALSE(s.is_locked("alice"));  // a failed open holds no lock

  auto drop = s.open_maildrop(kBox, {});
  ASSERT_TRUE(drop.has_value());
  EXPECT_TRUE(s.is_locked("alice"));

  s.fail_next(StoreErrc::perm, MemoryStore::Op::read);
  auto reader = (*drop)->open_message(0);
  ASSERT_TRUE(reader.has_value());
  char buf[4];
  auto n = (*reader)->read(buf);
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().code, StoreErrc::perm);
  EXPECT_EQ(*read_message(**drop, 0), "hello\n");

  s.fail_next(StoreErrc::temp, MemoryStore::Op::commit_deletes);
  const std::size_t all[] = {0};
  auto c = (*drop)->commit_deletes(all);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, StoreErrc::temp);
  EXPECT_EQ(s.contents("alice").size(), 1u);  // a failed commit deletes nothing

  s.fail_next(StoreErrc::in_use);  // Op::any: the very next operation
  auto m = (*drop)->mark_seen(all);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, StoreErrc::in_use);
  EXPECT_TRUE((*drop)->mark_seen(all).has_value());
  EXPECT_TRUE(s.contents("alice")[0].seen);

  drop->reset();
  EXPECT_FALSE(s.is_locked("alice"));
}

TEST(MemoryStore, MaildropMayOutliveTheStore) {
  std::unique_ptr<Maildrop> drop;
  {
    MemoryStore s;
    s.add("alice", "x\n");
    auto r = s.open_maildrop(kBox, {});
    ASSERT_TRUE(r.has_value());
    drop = std::move(*r);
  }
  EXPECT_EQ(*read_message(*drop, 0), "x\n");
}

}  // namespace
}  // namespace buzon::store::memory
