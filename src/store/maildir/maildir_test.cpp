// store/maildir/maildir_test.cpp — Maildir-specific behaviour beyond the conformance suite: names
// written by other agents, the lock across processes, the size index, Dovecot and X-UIDL UIDLs,
// hashing of unusable names, renames by other agents, delivery.
//
// SECURITY  Tests only (they create symlinks and FIFOs inside temporary Maildirs on purpose).
// STANDARDS cr.yp.to/proto/maildir.html; Dovecot maildir extensions and dovecot-uidlist; RFC 1939.
// LIMITS    Permission-denied cases drop root to uid 65534 in a forked child.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "store/maildir/maildir_delivery.hpp"
#include "store/maildir/maildir_fs.hpp"
#include "store/maildir/maildir_index.hpp"
#include "store/maildir/maildir_store.hpp"
#include "store/store_test_util.hpp"
#include "store/uidl.hpp"

namespace buzon::store::maildir {
namespace {

namespace fs = std::filesystem;
using testing::list_names;
using testing::read_file;
using testing::read_message;
using testing::uidls_of;
using testing::write_file;

class MaildirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    md_ = tmp_.path() + "/Maildir";
    ASSERT_TRUE(ensure_maildir(md_).has_value());
  }

  // Writes a message file the way another agent would, with the given mtime.
  void put(std::string_view dir, const std::string& name, std::string_view content,
           std::int64_t mtime = 0) {
    const std::string p = md_ + "/" + std::string(dir) + "/" + name;
    write_file(p, content);
    if (mtime != 0) set_mtime(p, mtime);
  }
  static void set_mtime(const std::string& p, std::int64_t mtime) {
    struct timespec ts[2] = {{static_cast<time_t>(mtime), 0}, {static_cast<time_t>(mtime), 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, 0), 0);
  }

  std::unique_ptr<MaildirMaildrop> must_open(UidlFormat f = UidlFormat::buzon) {
    auto r = store_.open(md_, MaildropOptions{f});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().detail);
    return r ? std::move(*r) : nullptr;
  }

  std::string path(std::string_view dir, std::string_view name) const {
    return md_ + "/" + std::string(dir) + "/" + std::string(name);
  }

  testing::TempDir tmp_;
  std::string md_;
  MaildirStore store_;
};

// ---- layout and listing -----------------------------------------------------------------------

TEST_F(MaildirTest, CreatesMissingLayoutWithMode0700) {
  const std::string fresh = tmp_.path() + "/a/b/Maildir";
  auto r = store_.open(fresh);
  ASSERT_TRUE(r.has_value()) << r.error().detail;
  for (const char* sub : {"new", "cur", "tmp"}) {
    struct stat st{};
    ASSERT_EQ(::stat((fresh + "/" + sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u) << sub;
  }
  EXPECT_TRUE(fs::exists(fresh + "/buzon-pop3.lock"));
}

TEST_F(MaildirTest, ListsNamesOfOtherWriters) {
  // Dovecot: ,S= and ,W= (W is the CRLF size, trusted without reading the file).
  put("new", "1700000000.M100238P743770V0000000000000030I00000000081274AE_0.mx,S=5,W=999", "hello",
      1700000000);
  // Dovecot, retrieved: ,S= alone is NOT the wire size when the file has bare LFs.
  put("cur", "1700000001.M2P3.mx,S=10:2,S", "a\nb\nc\nd\ne\n", 1700000001);
  // Postfix: time.VdevIinoMusec.host
  put("new", "1700000002.V801I12M345.mx.example.org", "Subject: x\n\ny\n", 1700000002);
  // procmail: time.pid_n.host
  put("new", "1700000003.12345_0.host", "p\r\n", 1700000003);
  // mutt: time.Rrandom.host:2, in cur/ with empty flags
  put("cur", "1700000004.R8431.host:2,", "m\n", 1700000004);
  // Not messages: dotfiles, tmp/, sub-directories, symlinks, FIFOs.
  put("new", ".hidden", "nope");
  put("cur", ".1700000005.dotfile:2,S", "nope");
  put("tmp", "1700000006.M1P1.host", "in flight");
  fs::create_directory(md_ + "/cur/subdir");
  ASSERT_EQ(::symlink("/etc/passwd", path("new", "1700000007.M1P1.link").c_str()), 0);
  ASSERT_EQ(::mkfifo(path("new", "1700000008.M1P1.fifo").c_str(), 0600), 0);

  auto drop = must_open();
  ASSERT_TRUE(drop);
  const auto& m = drop->messages();
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].size, 1001u);  // W=999, + the CRLF completing "hello"
  EXPECT_FALSE(m[0].seen);
  EXPECT_EQ(m[0].received, 1700000000);
  EXPECT_EQ(m[1].size, 15u);
  EXPECT_TRUE(m[1].seen);
  EXPECT_EQ(m[2].size, 17u);
  EXPECT_EQ(m[3].size, 3u);
  EXPECT_EQ(m[4].size, 3u);
  EXPECT_TRUE(m[4].seen);  // in cur/
  EXPECT_EQ(drop->stats().from_name, 1u);
  EXPECT_EQ(drop->stats().scanned, 4u);
  EXPECT_EQ(*read_message(*drop, 1), "a\nb\nc\nd\ne\n");
}

TEST_F(MaildirTest, VirtualSizeFromNameIsCompletedForUnterminatedLastLine) {
  put("new", "1700000000.M1P1.h,S=3,W=3", "a\r\n");  // terminated: W as is
  put("new", "1700000001.M1P1.h,S=2,W=2", "ab");      // RETR adds CRLF
  put("new", "1700000002.M1P1.h,S=2,W=2", "a\r");     // RETR adds LF
  put("new", "1700000003.M1P1.h,S=0,W=0", "");        // empty stays 0
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    ASSERT_EQ(drop->messages().size(), 4u);
    EXPECT_EQ(drop->messages()[0].size, 3u);
    EXPECT_EQ(drop->messages()[1].size, 4u);
    EXPECT_EQ(drop->messages()[2].size, 3u);
    EXPECT_EQ(drop->messages()[3].size, 0u);
    EXPECT_EQ(drop->stats().from_name, 4u);
    EXPECT_EQ(drop->stats().scanned, 0u);
  }
  auto drop = must_open();  // cached: no file is opened again
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->stats().from_index, 4u);
  EXPECT_EQ(drop->messages()[1].size, 4u);
}

TEST_F(MaildirTest, OrdersByNameTimeThenNumericNameThenMtime) {
  put("new", "1700000000.M10P1Q10.h", "c\n");
  put("new", "1700000000.M10P1Q9.h", "b\n");
  put("cur", "1700000000.M9P1Q100.h:2,S", "a\n");
  put("new", "1700000001.M0P1Q1.h", "d\n");
  put("new", "no-timestamp-name", "e\n", 1700000005);  // mtime orders it
  put("new", "1800000000.M0P1Q1.h", "f\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  std::string order;
  for (std::size_t i = 0; i < drop->messages().size(); ++i) order += read_message(*drop, i)->at(0);
  EXPECT_EQ(order, "abcdef");
}

TEST_F(MaildirTest, SameBaseInNewAndCurGetsDistinctUidls) {
  put("new", "1700000000.M1P1.h", "one\n");
  put("cur", "1700000000.M1P1.h:2,S", "three\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 2u);
  EXPECT_NE(drop->messages()[0].uidl, drop->messages()[1].uidl);
  EXPECT_TRUE(is_valid_uidl(drop->messages()[1].uidl));
  // Deterministic: the same on reopen, and each keeps its own size (the index, keyed by base
  // name, is bypassed for such pairs).
  const auto first = uidls_of(*drop);
  drop.reset();
  auto again = must_open();
  ASSERT_TRUE(again);
  EXPECT_EQ(uidls_of(*again), first);
  EXPECT_EQ(again->messages()[0].size, 5u);
  EXPECT_EQ(again->messages()[1].size, 7u);
  EXPECT_EQ(*read_message(*again, 0), "one\n");
  EXPECT_EQ(*read_message(*again, 1), "three\n");
}

// ---- location safety ---------------------------------------------------------------------------

TEST_F(MaildirTest, LocationThatIsAFileIsPerm) {
  write_file(tmp_.path() + "/file", "x");
  auto r = store_.open(tmp_.path() + "/file");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, StoreErrc::perm);
  auto under = store_.open(tmp_.path() + "/file/Maildir");
  ASSERT_FALSE(under.has_value());
  EXPECT_EQ(under.error().code, StoreErrc::perm);
}

TEST_F(MaildirTest, RootOptionConfinesLocations) {
  MaildirStore confined(MaildirStoreOptions{tmp_.path() + "/mail/"});
  EXPECT_TRUE(confined.open(tmp_.path() + "/mail/u/Maildir").has_value());
  auto dots = confined.open(tmp_.path() + "/mail/../etc/Maildir");
  ASSERT_FALSE(dots.has_value());
  EXPECT_EQ(dots.error().code, StoreErrc::perm);
  auto outside = confined.open(tmp_.path() + "/other/Maildir");
  ASSERT_FALSE(outside.has_value());
  EXPECT_EQ(outside.error().code, StoreErrc::perm);
  EXPECT_FALSE(fs::exists(tmp_.path() + "/other"));  // refused before anything was created
}

// Runs `fn` in a forked child and returns its exit status.
template <class Fn>
int in_child(Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

// Opens `md` as an unprivileged user (dropping root in a child when needed); 0 when the open
// failed with perm, 1 when it succeeded, 2 for another error, 3 when privileges could not drop.
int open_unprivileged(const std::string& md) {
  return in_child([&md] {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 3;
    MaildirStore s;
    auto r = s.open(md);
    if (r) return 1;
    return r.error().code == StoreErrc::perm ? 0 : 2;
  });
}

TEST_F(MaildirTest, PermissionDeniedIsPerm) {
  // The Maildir's parent is private (mkdtemp makes it 0700): not even reachable.
  if (::geteuid() == 0) {
    EXPECT_EQ(open_unprivileged(md_), 0);
  } else {
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0), 0);
    EXPECT_EQ(open_unprivileged(md_), 0);
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0700), 0);
  }
  // Reachable and listable, but one message is unreadable.
  for (const std::string& d : {tmp_.path(), md_, md_ + "/new", md_ + "/cur", md_ + "/tmp"}) {
    ASSERT_EQ(::chmod(d.c_str(), 0777), 0);
  }
  put("new", "1700000000.M1P1.h", "x\n");
  ASSERT_EQ(::chmod(path("new", "1700000000.M1P1.h").c_str(), 0), 0);
  EXPECT_EQ(open_unprivileged(md_), 0);
}

TEST(MaildirErrno, Classification) {
  EXPECT_EQ(classify_errno(EACCES), StoreErrc::perm);
  EXPECT_EQ(classify_errno(EPERM), StoreErrc::perm);
  EXPECT_EQ(classify_errno(ENOTDIR), StoreErrc::perm);
  EXPECT_EQ(classify_errno(EIO), StoreErrc::temp);
  EXPECT_EQ(classify_errno(ENOSPC), StoreErrc::temp);
  EXPECT_EQ(classify_errno(EMFILE), StoreErrc::temp);
  EXPECT_EQ(classify_errno(ENFILE), StoreErrc::temp);
  EXPECT_EQ(classify_errno(ENOENT), StoreErrc::not_found);
  EXPECT_EQ(classify_errno(EDQUOT), StoreErrc::quota);
  EXPECT_EQ(classify_errno(EFBIG), StoreErrc::too_big);
}

// ---- lock --------------------------------------------------------------------------------------

TEST_F(MaildirTest, LockHoldsAgainstAnotherProcess) {
  auto drop = must_open();
  ASSERT_TRUE(drop);
  const std::string md = md_;
  // The child has its own open file description, so flock must refuse it.
  const int child = in_child([&md] {
    MaildirStore s;
    auto r = s.open(md);
    if (r) return 1;
    return r.error().code == StoreErrc::in_use ? 0 : 2;
  });
  EXPECT_EQ(child, 0);
  drop.reset();
  const int after = in_child([&md] {
    MaildirStore s;
    return s.open(md) ? 0 : 1;
  });
  EXPECT_EQ(after, 0);
}

TEST_F(MaildirTest, LockHeldByAnotherProcessIsInUseHere) {
  int to_parent[2];
  int to_child[2];
  ASSERT_EQ(::pipe(to_parent), 0);
  ASSERT_EQ(::pipe(to_child), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    MaildirStore s;
    auto r = s.open(md_);
    const char ok = r ? 'y' : 'n';
    (void)!::write(to_parent[1], &ok, 1);
    char c;
    (void)!::read(to_child[0], &c, 1);  // hold the lock until the parent has checked
    ::_exit(0);
  }
  char ok = 0;
  ASSERT_EQ(::read(to_parent[0], &ok, 1), 1);
  ASSERT_EQ(ok, 'y');
  auto r = store_.open(md_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, StoreErrc::in_use);
  (void)!::write(to_child[1], "x", 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(store_.open(md_).has_value());  // released when the holder exited
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
}

// ---- index -------------------------------------------------------------------------------------

TEST_F(MaildirTest, IndexAvoidsRereadingMessages) {
  put("new", "1700000000.M1P1.h", "a\nb\n", 1700000000);         // 6 on the wire
  put("cur", "1700000001.M1P1.h,S=4:2,S", "c\nd\n", 1700000001);  // 6 on the wire
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    EXPECT_EQ(drop->stats().scanned, 2u);
    EXPECT_TRUE(drop->stats().index_written);
  }
  const std::string index = read_file(md_ + "/buzon-index");
  EXPECT_TRUE(index.starts_with("buzon-index 2\n"));
  EXPECT_NE(index.find("6\t1700000000\t?\t1700000000.M1P1.h\n"), std::string::npos) << index;

  // Rewrite the files behind the index's back: the cached sizes are used, nothing is read.
  write_file(path("new", "1700000000.M1P1.h"), "completely different and longer\n");
  write_file(path("cur", "1700000001.M1P1.h,S=4:2,S"), "x");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->stats().scanned, 0u);
  EXPECT_EQ(drop->stats().from_index, 2u);
  EXPECT_FALSE(drop->stats().index_written);  // unchanged, not rewritten
  EXPECT_EQ(drop->messages()[0].size, 6u);
  EXPECT_EQ(drop->messages()[1].size, 6u);
  EXPECT_EQ(drop->messages()[0].received, 1700000000);
}

TEST_F(MaildirTest, IndexFollowsRenamesAndDropsDeletedFiles) {
  put("new", "1700000000.M1P1.h", "a\n");
  put("new", "1700000001.M1P1.h", "b\n");
  { ASSERT_TRUE(must_open()); }
  // Another agent retrieves one and deletes the other.
  fs::rename(path("new", "1700000000.M1P1.h"), path("cur", "1700000000.M1P1.h:2,RS"));
  fs::remove(path("new", "1700000001.M1P1.h"));
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 1u);
  EXPECT_EQ(drop->stats().from_index, 1u);
  EXPECT_EQ(drop->stats().scanned, 0u);
  EXPECT_TRUE(drop->stats().index_written);
  const std::string index = read_file(md_ + "/buzon-index");
  EXPECT_NE(index.find("1700000000.M1P1.h\n"), std::string::npos);
  EXPECT_EQ(index.find("1700000001.M1P1.h"), std::string::npos);
}

TEST_F(MaildirTest, CommitDeletesUpdatesIndex) {
  put("new", "1700000000.M1P1.h", "a\n");
  put("new", "1700000001.M1P1.h", "b\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  const std::size_t first[] = {0};
  ASSERT_TRUE(drop->commit_deletes(first).has_value());
  const std::string index = read_file(md_ + "/buzon-index");
  EXPECT_EQ(index.find("1700000000.M1P1.h"), std::string::npos);
  EXPECT_NE(index.find("1700000001.M1P1.h"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("new", "1700000000.M1P1.h")));
}

TEST_F(MaildirTest, CorruptIndexIsIgnoredAndRebuilt) {
  put("new", "1700000000.M1P1.h", "a\nb\n");
  put("new", "1700000001.M1P1.h", "c\n");
  write_file(md_ + "/buzon-index", "garbage\x01\x02\nmore\n");
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    EXPECT_EQ(drop->messages()[0].size, 6u);
    EXPECT_EQ(drop->stats().scanned, 2u);
  }
  // Right header, bad lines: each bad line only costs a scan of its message.
  write_file(md_ + "/buzon-index",
             "buzon-index 2\n"
             "x\t1\t?\t1700000000.M1P1.h\n"  // bad size
             "3\t1\t?\t1700000001.M1P1.h\n"
             "5\t1\t+bad uidl\tother\n"       // bad X-UIDL
             "7\t1\t?\ttrunc");               // truncated line
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->stats().scanned, 1u);
  EXPECT_EQ(drop->stats().from_index, 1u);
  EXPECT_EQ(drop->messages()[0].size, 6u);
  EXPECT_EQ(drop->messages()[1].size, 3u);
}

// ---- read_if_cached: the event-loop fast path of RETR (issue 6) ---------------------------------

std::string read_through_reader(Maildrop& drop, std::size_t i) {
  auto r = drop.open_message(i);
  EXPECT_TRUE(r.has_value());
  if (!r) return {};
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = (*r)->read(std::span<char>(buf, sizeof buf));
    EXPECT_TRUE(n.has_value());
    if (!n || *n == 0) break;
    out.append(buf, *n);
  }
  return out;
}

TEST_F(MaildirTest, ReadIfCachedGivesTheSameOctetsAsTheReaderAndNeverGuesses) {
  const std::string big(100000, 'x');
  put("new", "1700000000.M1P1.h", "a\nb\n.dot\n", 1700000000);
  put("cur", "1700000001.M1P1.h:2,S", big, 1700000001);
  put("cur", "1700000002.M1P1.h:2,S", "gone soon\n", 1700000002);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  std::string out;
  // Straight after the open the directories are closed (an idle session holds only its lock's fd):
  // no answer, the pool path opens them.
  EXPECT_FALSE(drop->read_if_cached(0, out, 1 << 20));
  EXPECT_EQ(read_through_reader(*drop, 0), "a\nb\n.dot\n");
  // Now the files are in the page cache (just written and read): the same octets, at once.
  ASSERT_TRUE(drop->read_if_cached(0, out, 1 << 20));
  EXPECT_EQ(out, "a\nb\n.dot\n");
  ASSERT_TRUE(drop->read_if_cached(1, out, 1 << 20));
  EXPECT_EQ(out, big);
  // Bigger than the caller's bound, out of range, deleted, vanished: no answer (the pool reports).
  EXPECT_FALSE(drop->read_if_cached(1, out, big.size() - 1));
  EXPECT_FALSE(drop->read_if_cached(3, out, 1 << 20));
  ASSERT_EQ(::unlink(path("cur", "1700000002.M1P1.h:2,S").c_str()), 0);
  EXPECT_FALSE(drop->read_if_cached(2, out, 1 << 20));
  const std::size_t first = 0;
  ASSERT_TRUE(drop->commit_deletes(std::span(&first, 1)).has_value());
  EXPECT_FALSE(drop->read_if_cached(0, out, 1 << 20));
}

TEST_F(MaildirTest, ReaderReadIfCachedContinuesWhereReadLeftOff) {
  std::string big;
  for (int i = 0; i < 5000; ++i) big += "line " + std::to_string(i) + "\n";
  put("cur", "1700000000.M1P1.h:2,S", big, 1700000000);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(read_through_reader(*drop, 0), big);  // warms the page cache
  auto r = drop->open_message(0);
  ASSERT_TRUE(r.has_value());
  // Pieces alternate between the loop's cached reads and ordinary reads: one file position.
  std::string got;
  char buf[1000];
  for (int k = 0;; ++k) {
    std::size_t n = 0;
    if (k % 2 == 0) {
      auto now = (*r)->read_if_cached(std::span<char>(buf, sizeof buf));
      ASSERT_TRUE(now.has_value()) << "piece " << k << " was not served from the page cache";
      n = *now;
    } else {
      auto rd = (*r)->read(std::span<char>(buf, sizeof buf));
      ASSERT_TRUE(rd.has_value());
      n = *rd;
    }
    if (n == 0) break;
    got.append(buf, n);
  }
  EXPECT_EQ(got, big);
}

TEST_F(MaildirTest, ReadIfCachedRefusesASymlinkedMessage) {
  put("cur", "1700000000.M1P1.h:2,S", "real\n", 1700000000);
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(read_through_reader(*drop, 0), "real\n");
  const std::string target = tmp_.path() + "/outside";
  write_file(target, "secret\n");
  const std::string p = path("cur", "1700000000.M1P1.h:2,S");
  ASSERT_EQ(::unlink(p.c_str()), 0);
  ASSERT_EQ(::symlink(target.c_str(), p.c_str()), 0);
  std::string out;
  EXPECT_FALSE(drop->read_if_cached(0, out, 1 << 20));
}

// tmpfs refuses RWF_NOWAIT; its pages are memory, so the fast path reads them plainly.
TEST(MaildirTmpfs, ReadIfCachedWorksOnTmpfs) {
  if (::access("/dev/shm", W_OK) != 0) GTEST_SKIP() << "no writable /dev/shm here";
  ::setenv("TMPDIR", "/dev/shm", 1);
  testing::TempDir tmp;
  ::unsetenv("TMPDIR");
  const std::string md = tmp.path() + "/Maildir";
  ASSERT_TRUE(ensure_maildir(md).has_value());
  write_file(md + "/cur/1700000000.M1P1.h:2,S", "on tmpfs\n");
  write_file(md + "/cur/1700000001.M1P1.h:2,S", "second\n");
  MaildirStore store;
  auto drop = store.open(md, MaildropOptions{});
  ASSERT_TRUE(drop.has_value());
  EXPECT_EQ(read_through_reader(**drop, 0), "on tmpfs\n");
  std::string out;
  ASSERT_TRUE((*drop)->read_if_cached(1, out, 1 << 20));
  EXPECT_EQ(out, "second\n");
}

TEST(MaildirIndex, FormatRoundTrips) {
  Index idx;
  idx["b"] = IndexEntry{10, 20, IndexEntry::XUidl::present, "xu"};
  idx["a name with spaces\tand tab"] = IndexEntry{0, -5, IndexEntry::XUidl::none, ""};
  idx["c"] = IndexEntry{1, 2, IndexEntry::XUidl::unknown, ""};
  idx["bad\nname"] = IndexEntry{1, 2, IndexEntry::XUidl::unknown, ""};  // not cacheable
  const std::string text = format_index(idx);
  Index back = parse_index(text);
  idx.erase("bad\nname");
  EXPECT_EQ(back, idx);
  EXPECT_EQ(format_index(back), text);
  EXPECT_TRUE(parse_index("buzon-index 1\n1\t1\t?\tx\n").empty());  // older sizes: rebuilt
}

// ---- UIDLs -------------------------------------------------------------------------------------

TEST_F(MaildirTest, BuzonUidlIsBaseNameStableAcrossMovesAndFlags) {
  const std::string base = "1700000000.M1P1.host,S=2,W=3";
  put("new", base, "a\n");
  std::string uidl;
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    uidl = drop->messages()[0].uidl;
    EXPECT_EQ(uidl, base);
    const std::size_t all[] = {0};
    ASSERT_TRUE(drop->mark_seen(all).has_value());
  }
  EXPECT_TRUE(fs::exists(path("cur", base + ":2,S")));
  fs::rename(path("cur", base + ":2,S"), path("cur", base + ":2,FRS"));  // another agent flags it
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->messages()[0].uidl, uidl);
}

TEST_F(MaildirTest, UnusableBaseNamesAreHashedStably) {
  const std::string long_name = "1700000000.M1P1." + std::string(100, 'h');
  const std::string utf8_name = "1700000001.M1P1.h\xC3\xA9st";
  const std::string space_name = "1700000002.M1P1.h st";
  put("new", long_name, "a\n");
  put("new", utf8_name, "b\n");
  put("new", space_name, "c\n");
  std::vector<std::string> first;
  {
    auto drop = must_open();
    ASSERT_TRUE(drop);
    first = uidls_of(*drop);
    ASSERT_EQ(first.size(), 3u);
    EXPECT_EQ(first[0], hashed_uidl(long_name));
    EXPECT_EQ(first[1], hashed_uidl(utf8_name));
    EXPECT_EQ(first[2], hashed_uidl(space_name));
    for (const auto& u : first) {
      EXPECT_TRUE(is_valid_uidl(u)) << u;
      EXPECT_EQ(u.size(), kHashedUidlLength);
    }
    const std::size_t all[] = {0, 1, 2};
    ASSERT_TRUE(drop->mark_seen(all).has_value());
  }
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(uidls_of(*drop), first);
}

TEST_F(MaildirTest, SeventyCharacterBaseIsVerbatimSeventyOneIsHashed) {
  const std::string seventy = "1700000000." + std::string(59, 'a');
  const std::string seventy_one = "1700000001." + std::string(60, 'a');
  ASSERT_EQ(seventy.size(), 70u);
  put("new", seventy, "a\n");
  put("new", seventy_one, "b\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->messages()[0].uidl, seventy);
  EXPECT_EQ(drop->messages()[1].uidl, hashed_uidl(seventy_one));
}

class DovecotUidlTest : public MaildirTest {
 protected:
  void SetUp() override {
    MaildirTest::SetUp();
    // Times in the names disagree with the UIDs on purpose: Dovecot lists by UID.
    put("new", "1275660003.M1P1.host,S=2", "a\n");
    put("cur", "1275660002.M2P2.host,S=2,W=3:2,RS", "b\n");  // flags changed since the sync
    put("cur", "1275660001.M3P3.host:2,S", "c\n");
    put("new", "1275660000.M4P4.host", "d\n");
    put("new", "1275669999.M5P5.host", "e\n");  // delivered after Dovecot's last sync
    write_file(md_ + "/dovecot-uidlist",
               "3 V1275660208 N25024 G3085f01b7f11094c501100008c4a11c1\n"
               "25020 :1275660003.M1P1.host,S=2\n"
               "25021 W3 :1275660002.M2P2.host,S=2,W=3:2,S\n"
               "25022 P :1275660001.M3P3.host:2,S\n"
               "25023 Pmigrated-42 :1275660000.M4P4.host\n"
               "25030 :1275660099.M9P9.host\n"  // expunged since: no file
               "bogus line\n"
               "25031 :../etc/passwd\n");
  }
};

TEST_F(DovecotUidlTest, UsesDovecotDefaultFormatAndOrder) {
  auto drop = must_open(UidlFormat::dovecot);
  ASSERT_TRUE(drop);
  EXPECT_TRUE(drop->stats().uidlist_used);
  EXPECT_EQ(uidls_of(*drop), (std::vector<std::string>{
                                 "000061bc4c0907b0",      // 25020, uidvalidity 1275660208
                                 "000061bd4c0907b0",      // 25021, matched by base name
                                 "1275660001.M3P3.host",  // empty P: the base name
                                 "migrated-42",           // P<uidl>
                                 "1275669999.M5P5.host",  // not in the list: buzon format
                             }));
  EXPECT_EQ(*read_message(*drop, 0), "a\n");
  EXPECT_EQ(*read_message(*drop, 4), "e\n");
  EXPECT_EQ(drop->messages()[1].size, 3u);  // ,W= from the name
}

TEST_F(DovecotUidlTest, Pop3OrderExtensionComesFirst) {
  write_file(md_ + "/dovecot-uidlist",
             "3 V1275660208 N25024\n"
             "25020 :1275660003.M1P1.host,S=2\n"
             "25021 O2 :1275660002.M2P2.host,S=2,W=3\n"
             "25022 O1 :1275660001.M3P3.host\n");
  auto drop = must_open(UidlFormat::dovecot);
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 5u);
  EXPECT_EQ(drop->messages()[0].uidl, "000061be4c0907b0");
  EXPECT_EQ(drop->messages()[1].uidl, "000061bd4c0907b0");
  EXPECT_EQ(drop->messages()[2].uidl, "000061bc4c0907b0");
}

TEST_F(DovecotUidlTest, MissingOrBrokenUidlistFallsBackToBuzonFormat) {
  fs::remove(md_ + "/dovecot-uidlist");
  {
    auto drop = must_open(UidlFormat::dovecot);
    ASSERT_TRUE(drop);
    EXPECT_FALSE(drop->stats().uidlist_used);
    EXPECT_EQ(drop->messages()[0].uidl, "1275660000.M4P4.host");  // time order
  }
  write_file(md_ + "/dovecot-uidlist", "9 V1 N2\n1 :1275660000.M4P4.host\n");
  auto drop = must_open(UidlFormat::dovecot);
  ASSERT_TRUE(drop);
  EXPECT_FALSE(drop->stats().uidlist_used);
  EXPECT_EQ(drop->messages()[0].uidl, "1275660000.M4P4.host");
}

TEST_F(DovecotUidlTest, Version1UidlistIsRead) {
  write_file(md_ + "/dovecot-uidlist",
             "1 1275660208 25024\n"
             "25020 1275660003.M1P1.host,S=2\n");
  auto drop = must_open(UidlFormat::dovecot);
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->messages()[0].uidl, "000061bc4c0907b0");
}

TEST_F(DovecotUidlTest, DuplicateDovecotUidlsAreMadeUnique) {
  write_file(md_ + "/dovecot-uidlist",
             "3 V1275660208 N25024\n"
             "25020 Psame :1275660003.M1P1.host,S=2\n"
             "25021 Psame :1275660002.M2P2.host,S=2,W=3\n");
  auto drop = must_open(UidlFormat::dovecot);
  ASSERT_TRUE(drop);
  const auto u = uidls_of(*drop);
  EXPECT_EQ(u[0], "same");
  EXPECT_NE(u[1], "same");
  EXPECT_EQ(std::set<std::string>(u.begin(), u.end()).size(), u.size());
}

TEST_F(MaildirTest, XUidlHeaderIsUsedWhenValidAndUnique) {
  put("new", "1700000000.M1P1.h", "X-UIDL: abc123\nSubject: s\n\nbody\n");
  put("new", "1700000001.M1P1.h", "Subject: s\r\nx-uidl:\r\n   folded-42  \r\n\r\nbody\r\n");
  put("new", "1700000002.M1P1.h", "Subject: s\n\nX-UIDL: in-the-body\n");
  put("new", "1700000003.M1P1.h", "X-UIDL: has space\n\n");
  put("new", "1700000004.M1P1.h", "X-UIDL: " + std::string(71, 'z') + "\n\n");
  put("new", "1700000005.M1P1.h", "X-UIDL: abc123\n\nduplicate of the first\n");
  put("new", "1700000006.M1P1.h,S=20,W=21", "X-UIDL: from-header\n");  // no body, no blank line
  auto drop = must_open(UidlFormat::x_uidl);
  ASSERT_TRUE(drop);
  EXPECT_EQ(uidls_of(*drop), (std::vector<std::string>{
                                 "abc123",
                                 "folded-42",
                                 "1700000002.M1P1.h",
                                 "1700000003.M1P1.h",
                                 "1700000004.M1P1.h",
                                 "1700000005.M1P1.h",
                                 "from-header",
                             }));
  EXPECT_EQ(drop->stats().scanned, 6u);
  EXPECT_EQ(drop->stats().header_scans, 1u);  // the ,W= one needed its header only
  drop.reset();

  // Cached in the index: the next open reads nothing.
  auto again = must_open(UidlFormat::x_uidl);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->stats().scanned + again->stats().header_scans, 0u);
  EXPECT_EQ(again->messages()[0].uidl, "abc123");
  EXPECT_EQ(again->messages()[6].uidl, "from-header");
}

TEST_F(MaildirTest, SwitchingToXUidlScansHeadersOnce) {
  put("new", "1700000000.M1P1.h", "X-UIDL: one\n\n" + std::string(200000, 'b') + "\n");
  { ASSERT_TRUE(must_open(UidlFormat::buzon)); }
  auto drop = must_open(UidlFormat::x_uidl);
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->stats().scanned, 0u);
  EXPECT_EQ(drop->stats().header_scans, 1u);
  EXPECT_EQ(drop->messages()[0].uidl, "one");
  EXPECT_EQ(drop->messages()[0].size, 200017u);
}

// ---- other agents renaming and deleting ---------------------------------------------------------

TEST_F(MaildirTest, OpenMessageFollowsAMoveByAnotherReader) {
  put("new", "1700000000.M1P1.h", "moved\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  fs::rename(path("new", "1700000000.M1P1.h"), path("cur", "1700000000.M1P1.h:2,S"));
  auto got = read_message(*drop, 0);
  ASSERT_TRUE(got.has_value()) << got.error().detail;
  EXPECT_EQ(*got, "moved\n");
  // And the deletion follows it too.
  const std::size_t all[] = {0};
  ASSERT_TRUE(drop->commit_deletes(all).has_value());
  EXPECT_TRUE(list_names(md_ + "/cur").empty());
}

TEST_F(MaildirTest, MessageDeletedByAnotherAgentIsNotFound) {
  put("new", "1700000000.M1P1.h", "x\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  fs::remove(path("new", "1700000000.M1P1.h"));
  auto r = drop->open_message(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, StoreErrc::not_found);
  const std::size_t all[] = {0};
  EXPECT_TRUE(drop->commit_deletes(all).has_value());  // already gone is fine
  EXPECT_TRUE(drop->mark_seen(all).has_value());
}

TEST_F(MaildirTest, MessageReplacedBySymlinkIsRefused) {
  put("new", "1700000000.M1P1.h", "x\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  fs::remove(path("new", "1700000000.M1P1.h"));
  ASSERT_EQ(::symlink("/etc/passwd", path("new", "1700000000.M1P1.h").c_str()), 0);
  auto r = drop->open_message(0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, StoreErrc::perm);
}

TEST_F(MaildirTest, MarkSeenRenamesAsTheMaildirSpecSays) {
  put("new", "1700000000.M1P1.h", "a\n");
  put("cur", "1700000001.M1P1.h:2,RF", "b\n");
  put("cur", "1700000002.M1P1.h", "c\n");
  put("cur", "1700000003.M1P1.h:1,experimental", "d\n");
  put("cur", "1700000004.M1P1.h:2,S", "e\n");
  auto drop = must_open();
  ASSERT_TRUE(drop);
  const std::size_t all[] = {0, 1, 2, 3, 4};
  ASSERT_TRUE(drop->mark_seen(all).has_value());
  EXPECT_TRUE(list_names(md_ + "/new").empty());
  EXPECT_EQ(list_names(md_ + "/cur"), (std::vector<std::string>{
                                          "1700000000.M1P1.h:2,S",
                                          "1700000001.M1P1.h:2,FRS",
                                          "1700000002.M1P1.h:2,S",
                                          "1700000003.M1P1.h:1,experimental",
                                          "1700000004.M1P1.h:2,S",
                                      }));
  for (std::size_t i = 0; i < 5; ++i) EXPECT_TRUE(read_message(*drop, i).has_value()) << i;
}

// ---- delivery ----------------------------------------------------------------------------------

TEST_F(MaildirTest, DeliverWritesNewWithSizesAndCleansTmp) {
  const std::string msg = "Subject: hi\n\nline\r\nbare\n";
  auto name = deliver(md_, msg);
  ASSERT_TRUE(name.has_value()) << name.error().detail;
  EXPECT_TRUE(list_names(md_ + "/tmp").empty());
  EXPECT_EQ(list_names(md_ + "/new"), std::vector<std::string>{*name});
  EXPECT_EQ(read_file(path("new", *name)), msg);
  WireSizeCounter w;
  w.feed(msg);
  EXPECT_TRUE(name->ends_with(",S=" + std::to_string(msg.size()) + ",W=" + std::to_string(w.size)))
      << *name;
  EXPECT_EQ(name->find('/'), std::string::npos);
  EXPECT_EQ(name->find(':'), std::string::npos);
  struct stat st{};
  ASSERT_EQ(::stat(path("new", *name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(drop->messages()[0].size, w.final_size());
  EXPECT_EQ(drop->stats().from_name, 1u);
  EXPECT_EQ(drop->stats().scanned, 0u);
}

TEST_F(MaildirTest, DeliverNamesAreUniqueAndInOrder) {
  std::vector<std::string> names;
  for (int i = 0; i < 200; ++i) {
    auto n = deliver(md_, "m" + std::to_string(i) + "\n");
    ASSERT_TRUE(n.has_value());
    names.push_back(*n);
  }
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  auto drop = must_open();
  ASSERT_TRUE(drop);
  ASSERT_EQ(drop->messages().size(), 200u);
  for (int i = 0; i < 200; i += 37) {
    EXPECT_EQ(*read_message(*drop, static_cast<std::size_t>(i)), "m" + std::to_string(i) + "\n");
  }
}

TEST_F(MaildirTest, DeliverCreatesMissingMaildirAndRefusesBadPaths) {
  const std::string fresh = tmp_.path() + "/x/y/Maildir";
  ASSERT_TRUE(deliver(fresh, "hello\n").has_value());
  EXPECT_EQ(list_names(fresh + "/new").size(), 1u);

  auto nul = deliver(std::string("bad\0path", 8), "x");
  ASSERT_FALSE(nul.has_value());
  EXPECT_EQ(nul.error().code, StoreErrc::perm);

  write_file(tmp_.path() + "/plainfile", "");
  auto notdir = deliver(tmp_.path() + "/plainfile/Maildir", "x");
  ASSERT_FALSE(notdir.has_value());
  EXPECT_EQ(notdir.error().code, StoreErrc::perm);
}

TEST_F(MaildirTest, DeliverWhileMaildropIsOpenIsAllowed) {
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_TRUE(deliver(md_, "x\n").has_value());  // POP3's lock never blocks delivery
}

}  // namespace
}  // namespace buzon::store::maildir

namespace buzon::store::maildir {
namespace {

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Issue 6 (workload 4): an opened, idle maildrop holds one fd (its lock); the directories are
// opened again when a message is read or the session commits.
TEST_F(MaildirTest, IdleMaildropHoldsOnlyItsLock) {
  put("new", "1700000000.M1P1.h", "a\n");
  put("cur", "1700000001.M1P1.h:2,S", "b\n");
  const std::size_t before = open_fds();
  auto drop = must_open();
  ASSERT_TRUE(drop);
  EXPECT_EQ(open_fds(), before + 1) << "idle: only the lock";
  auto reader = drop->open_message(1);
  ASSERT_TRUE(reader.has_value());
  char buf[16];
  auto n = (*reader)->read(buf);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string_view(buf, *n), "b\n");
  reader->reset();
  const std::size_t seen[] = {0};
  ASSERT_TRUE(drop->mark_seen(seen).has_value());
  ASSERT_TRUE(drop->commit_deletes(seen).has_value());
  EXPECT_FALSE(fs::exists(path("new", "1700000000.M1P1.h")));
  drop.reset();
  EXPECT_EQ(open_fds(), before) << "everything closed with the maildrop";
}

}  // namespace
}  // namespace buzon::store::maildir
