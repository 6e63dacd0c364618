// fetch: mbox quoting at every split point, the state file and journal, the destinations'
// commit/recover protocol (what makes kill -9 safe), config parsing, the progress line.
#include "fetch/account.hpp"
#include "fetch/destination.hpp"
#include "fetch/progress.hpp"
#include "fetch/state.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace buzon::fetch {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/buzon-fetch-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> files_in(const fs::path& d) {
  std::vector<fs::path> out;
  if (fs::exists(d))
    for (auto& e : fs::directory_iterator(d)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// ---- FromQuoter --------------------------------------------------------------------------

std::string quote(std::string_view in, std::vector<std::size_t> cuts) {
  FromQuoter q;
  std::string out;
  std::size_t pos = 0;
  cuts.push_back(in.size());
  for (auto c : cuts) {
    q.feed(in.substr(pos, c - pos), out);
    pos = c;
  }
  q.finish(out);
  return out;
}

TEST(FromQuoter, MboxrdAtEverySplit) {
  const std::string in = "From: a\nSubject: x\n\nFrom here\n>From there\n>>From far\nFrom\nFromage\n F\n>F\nFro";
  const std::string want = "From: a\nSubject: x\n\n>From here\n>>From there\n>>>From far\nFrom\nFromage\n F\n>F\nFro\n\n";
  EXPECT_EQ(quote(in, {}), want);
  for (std::size_t i = 0; i <= in.size(); ++i) EXPECT_EQ(quote(in, {i}), want) << "split at " << i;
  std::vector<std::size_t> all;
  for (std::size_t i = 1; i < in.size(); ++i) all.push_back(i);
  EXPECT_EQ(quote(in, all), want);
}

TEST(FromQuoter, FirstLineAndEmptyMessage) {
  EXPECT_EQ(quote("From x\n", {}), ">From x\n\n");
  EXPECT_EQ(quote("", {}), "\n");
  EXPECT_EQ(quote("a\n", {}), "a\n\n");
  EXPECT_EQ(mbox_from_line(0), "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
}

// ---- state and journal -------------------------------------------------------------------

TEST(UidState, SaveLoadPruneAtomically) {
  TempDir t;
  auto file = t.path / "st" / "acct.uidl";
  auto s = UidState::load(file);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size(), 0u);
  s->add("b-uid");
  s->add("a-uid");
  ASSERT_TRUE(s->save());
  EXPECT_EQ(slurp(file).substr(slurp(file).find('\n') + 1), "a-uid\nb-uid\n");
  // Only the state file is left: the temporary file was renamed over it.
  EXPECT_EQ(files_in(t.path / "st"), std::vector<fs::path>{file});
  struct stat st{};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = UidState::load(file);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->contains("a-uid") && again->contains("b-uid"));
  again->retain({"b-uid", "c-uid"});
  EXPECT_EQ(again->uids(), (std::set<std::string>{"b-uid"}));
}

TEST(UidState, DamagedFileIsRefusedNotHalfUsed) {
  TempDir t;
  auto file = t.path / "x.uidl";
  std::ofstream(file) << "# header\ngood\nbad uid with spaces\n";
  auto s = UidState::load(file);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find(":3:"), std::string::npos) << s.error();
}

TEST(UidState, CrashBeforeRenameKeepsTheOldFile) {
  // A crash between writing the temporary file and rename(2) leaves the old state intact: the
  // stray temporary file is never read.
  TempDir t;
  auto file = t.path / "a.uidl";
  UidState s(file);
  s.add("one");
  ASSERT_TRUE(s.save());
  std::ofstream(fs::path(file.string() + ".tmp.99999")) << "garbage half-written";
  auto again = UidState::load(file);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->uids(), (std::set<std::string>{"one"}));
}

TEST(Journal, TornLastLineIsIgnored) {
  TempDir t;
  auto file = t.path / "j";
  {
    auto j = Journal::open(file);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->append("D u1 P"));
    ASSERT_TRUE(j->sync());
  }
  std::ofstream(file, std::ios::app) << "D u2 P";  // no newline: a write cut by a crash
  auto lines = Journal::read(file);
  ASSERT_TRUE(lines);
  EXPECT_EQ(*lines, std::vector<std::string>{"D u1 P"});
  ASSERT_TRUE(Journal::remove(file));
  EXPECT_FALSE(fs::exists(file));
}

TEST(AccountLock, SecondHolderIsBusy) {
  TempDir t;
  auto a = AccountLock::acquire(t.path / "x.lock");
  ASSERT_TRUE(a);
  auto b = AccountLock::acquire(t.path / "x.lock");
  ASSERT_FALSE(b);
  EXPECT_TRUE(b.error().busy);
}

// ---- destinations: commit and recover ----------------------------------------------------

void deliver(Destination& d, Journal& j, const std::string& uid, const std::string& text) {
  ASSERT_TRUE(d.begin(uid, j));
  ASSERT_TRUE(d.write(text));
  ASSERT_TRUE(d.end());
}

TEST(MaildirDestination, CommitJournalsThenMakesVisible) {
  TempDir t;
  auto md = t.path / "Maildir";
  auto d = make_destination(DestKind::maildir, md.string());
  ASSERT_TRUE(d->open());
  auto j = Journal::open(t.path / "j");
  ASSERT_TRUE(j);
  deliver(*d, *j, "u1", "Subject: 1\n\none\n");
  deliver(*d, *j, "u2", "Subject: 2\n\ntwo\n");
  EXPECT_TRUE(files_in(md / "new").empty()) << "nothing is visible before the commit";
  EXPECT_EQ(files_in(md / "tmp").size(), 2u);
  auto uids = d->commit(*j);
  ASSERT_TRUE(uids);
  EXPECT_EQ(*uids, (std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(files_in(md / "new").size(), 2u);
  EXPECT_TRUE(files_in(md / "tmp").empty());
  auto lines = Journal::read(t.path / "j");
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_TRUE((*lines)[0].starts_with("D u1 M "));
  // Aborted message: its tmp file goes away.
  ASSERT_TRUE(d->begin("u3", *j));
  ASSERT_TRUE(d->write("partial"));
  d->abort();
  EXPECT_TRUE(files_in(md / "tmp").empty());
}

TEST(MaildirDestination, RecoverRollsForwardAJournaledButUnmovedMessage) {
  TempDir t;
  auto md = t.path / "Maildir";
  auto d = make_destination(DestKind::maildir, md.string());
  ASSERT_TRUE(d->open());
  // The state a kill -9 leaves between the journal fdatasync and the rename.
  std::ofstream(md / "tmp" / "123.M1P1Q1.host") << "Subject: staged\n\nbody\n";
  std::vector<std::string> journal{"D u-staged M 123.M1P1Q1.host 123.M1P1Q1.host,S=22",
                                   "D u-done M 9.M1P1Q1.host 9.M1P1Q1.host,S=3", "D u-torn M"};
  std::ofstream(md / "new" / "9.M1P1Q1.host,S=3") << "abc";
  auto rec = d->recover(journal);
  ASSERT_TRUE(rec);
  EXPECT_EQ(*rec, (std::vector<std::string>{"u-staged", "u-done"}));
  EXPECT_EQ(slurp(md / "new" / "123.M1P1Q1.host,S=22"), "Subject: staged\n\nbody\n");
  EXPECT_TRUE(files_in(md / "tmp").empty());
}

TEST(MboxDestination, CommitAndRecoverTruncatesUnconfirmedAppends) {
  TempDir t;
  auto mb = t.path / "box";
  std::ofstream(mb) << "From old Thu Jan  1 00:00:00 2026\nSubject: old\n\nold\n\n";
  const auto old_size = fs::file_size(mb);
  {
    auto d = make_destination(DestKind::mbox, mb.string());
    ASSERT_TRUE(d->open());
    EXPECT_TRUE(fs::exists(mb.string() + ".lock")) << "dotlock held while open";
    auto j = Journal::open(t.path / "j");
    deliver(*d, *j, "u1", "Subject: 1\n\nFrom me\n");
    auto uids = d->commit(*j);
    ASSERT_TRUE(uids);
    EXPECT_EQ(*uids, std::vector<std::string>{"u1"});
    // A second batch is appended but never committed (the process "dies" here).
    deliver(*d, *j, "u2", "Subject: 2\n\ntwo\n");
    d->close();
  }
  EXPECT_FALSE(fs::exists(mb.string() + ".lock"));
  auto with_unconfirmed = slurp(mb);
  EXPECT_NE(with_unconfirmed.find("Subject: 2"), std::string::npos);
  auto d = make_destination(DestKind::mbox, mb.string());
  ASSERT_TRUE(d->open());
  auto journal = Journal::read(t.path / "j");
  auto rec = d->recover(*journal);
  ASSERT_TRUE(rec);
  EXPECT_EQ(*rec, std::vector<std::string>{"u1"});
  auto after = slurp(mb);
  EXPECT_EQ(after.find("Subject: 2"), std::string::npos) << "the unconfirmed message must be cut off";
  EXPECT_NE(after.find(">From me\n\n"), std::string::npos);
  EXPECT_GT(after.size(), old_size);
  EXPECT_EQ(after.substr(0, old_size), with_unconfirmed.substr(0, old_size));
}

TEST(MdaDestination, ExitStatusDecides) {
  TempDir t;
  auto j = Journal::open(t.path / "j");
  auto ok = make_destination(DestKind::mda, "cat > " + (t.path / "out").string());
  deliver(*ok, *j, "u1", "Subject: x\n\nbody\n");
  EXPECT_EQ(slurp(t.path / "out"), "Subject: x\n\nbody\n");
  auto uids = ok->commit(*j);
  ASSERT_TRUE(uids);
  EXPECT_EQ(*uids, std::vector<std::string>{"u1"});
  auto bad = make_destination(DestKind::mda, "cat >/dev/null; exit 75");
  ASSERT_TRUE(bad->begin("u2", *j));
  ASSERT_TRUE(bad->write("x\n"));
  auto r = bad->end();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("status 75"), std::string::npos);
  EXPECT_TRUE(bad->commit(*j)->empty());
}

// ---- config ------------------------------------------------------------------------------

TEST(FetchConfig, ParsesAccountsStrictly) {
  auto c = parse_fetch_config(R"(
[server]
hostname = "ignored here"

[fetch]
state_dir = "st"

[[fetch.account]]
name = "work"
host = "pop.example.org"
user = "ana"
password_file = "pw"
maildir = "Mail/work"
auth = ["scram-sha-256", "apop"]
limit = 1000000
fingerprint = "sha256:aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"

[[fetch.account]]
host = "pop2.example.org"
tls = "stls"
user = "bob"
password_command = "pass show pop"
mda = "procmail -d bob"
keep = true
)",
                              "/etc/buzon/client.toml");
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_EQ(c->accounts.size(), 2u);
  auto& a = c->accounts[0];
  EXPECT_EQ(a.label(), "work");
  EXPECT_EQ(a.effective_port(), 995);
  EXPECT_EQ(a.password_file, "/etc/buzon/pw");
  EXPECT_EQ(a.dest_path, "/etc/buzon/Mail/work");
  EXPECT_EQ(a.auth, (std::vector<pop3::AuthMethod>{pop3::AuthMethod::scram_sha256, pop3::AuthMethod::apop}));
  EXPECT_EQ(a.fingerprint.substr(0, 13), "sha256:AA:BB:");
  EXPECT_EQ(c->state_dir, "/etc/buzon/st");
  auto& b = c->accounts[1];
  EXPECT_EQ(b.effective_port(), 110);
  EXPECT_EQ(b.dest, DestKind::mda);
  EXPECT_TRUE(b.keep);
  EXPECT_EQ(b.state_id(), "bob@pop2.example.org:110");
}

TEST(FetchConfig, ErrorsNameLineAndFix) {
  auto bad = [](std::string text) {
    auto c = parse_fetch_config(text, "c.toml");
    EXPECT_FALSE(c) << text;
    return c ? std::string() : c.error().str();
  };
  EXPECT_NE(bad("[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nmaildir = \"m\"\nsmtp = 1\n")
                .find("c.toml:6: unknown key 'smtp'"),
            std::string::npos);
  EXPECT_NE(bad("[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nmaildir = \"m\"\ntls = \"ssl\"\n")
                .find("unknown tls mode 'ssl'"),
            std::string::npos);
  EXPECT_NE(bad("[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\nmaildir = \"m\"\n").find("password"), std::string::npos);
  EXPECT_NE(bad("[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nmaildir = \"m\"\nmbox = \"b\"\n")
                .find("more than one destination"),
            std::string::npos);
  EXPECT_NE(bad("[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nmaildir = \"m\"\nfingerprint = \"ab\"\n")
                .find("64 hex digits"),
            std::string::npos);
  EXPECT_NE(bad("[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nmaildir = \"m\"\n"
                "[[fetch.account]]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\nmaildir = \"m2\"\n")
                .find("both called"),
            std::string::npos);
}

TEST(Secret, FileAndCommand) {
  TempDir t;
  std::ofstream(t.path / "pw") << "s3cret\nsecond line\n";
  EXPECT_EQ(read_secret(t.path / "pw", ""), "s3cret");
  EXPECT_EQ(read_secret("", "printf 'from-cmd\\n'"), "from-cmd");
  EXPECT_FALSE(read_secret("", "exit 3"));
  EXPECT_FALSE(read_secret(t.path / "missing", ""));
}

TEST(Progress, RendersCountsBytesRateEta) {
  auto line = render_progress("acct", 3, 10, 3 << 20, 10 << 20, 1.5, 10);
  EXPECT_EQ(line, "acct [===>      ] 3/10 msgs  3.0 MiB/10.0 MiB  2.0 MiB/s  ETA 0:04");
  EXPECT_EQ(human_duration(3725), "1:02:05");
}

}  // namespace
}  // namespace buzon::fetch
