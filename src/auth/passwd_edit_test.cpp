// auth/passwd_edit_test.cpp — `buzon user add|passwd|del|list|show` editing: comments and other
// lines kept byte for byte, refusals, file mode, and no lost update under concurrent editors
// (threads of one process and forked processes).

#include "auth/passwd_edit.hpp"

#include "auth/passwd_file.hpp"
#include "auth/password.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace buzon::auth {
namespace {

namespace fs = std::filesystem;

class PasswdEdit : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "buzon-edit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ / "passwd";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string read() const {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void write(std::string_view text) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << text;
  }

  fs::path dir_;
  fs::path path_;
  NameRules rules_{};
};

TEST_F(PasswdEdit, AddCreatesTheFileWithMode0600) {
  const auto hash = hash_password("secret", "SHA512-CRYPT").value();
  ASSERT_TRUE(add_user(path_, "Demo", hash, rules_).has_value());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(read(), "demo:" + hash + "\n");
  const auto u = find_user(path_, "DEMO", rules_).value();
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(verify_password(u->password, "secret"));
  // No temporary file is left behind; the lock file stays.
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_TRUE(e.path() == path_ || e.path() == fs::path(path_.string() + ".lock")) << e.path();
  }
}

TEST_F(PasswdEdit, EditsKeepEverythingElseVerbatim) {
  const std::string before =
      "# buzon users — edited by hand\n"
      "\n"
      "alice:{PLAIN}a:1000:1000:Alice:/home/alice::userdb_mail=maildir:~/Maildir\r\n"
      "   # indented comment\n"
      "bob:{PLAIN}b:1001:1001::/home/bob\n"
      "carol:{PLAIN}c";  // no final newline
  write(before);
  ::chmod(path_.c_str(), 0640);

  ASSERT_TRUE(set_password(path_, "bob", "{PLAIN}B2", rules_).has_value());
  std::string want =
      "# buzon users — edited by hand\n"
      "\n"
      "alice:{PLAIN}a:1000:1000:Alice:/home/alice::userdb_mail=maildir:~/Maildir\r\n"
      "   # indented comment\n"
      "bob:{PLAIN}B2:1001:1001::/home/bob\n"
      "carol:{PLAIN}c";
  EXPECT_EQ(read(), want);

  ASSERT_TRUE(set_password(path_, "ALICE", "{PLAIN}A2", rules_).has_value());
  want =
      "# buzon users — edited by hand\n"
      "\n"
      "alice:{PLAIN}A2:1000:1000:Alice:/home/alice::userdb_mail=maildir:~/Maildir\r\n"
      "   # indented comment\n"
      "bob:{PLAIN}B2:1001:1001::/home/bob\n"
      "carol:{PLAIN}c";
  EXPECT_EQ(read(), want);

  ASSERT_TRUE(set_password(path_, "carol", "{PLAIN}C2", rules_).has_value());
  ASSERT_TRUE(add_user(path_, "dave", "{PLAIN}d", rules_).has_value());
  want =
      "# buzon users — edited by hand\n"
      "\n"
      "alice:{PLAIN}A2:1000:1000:Alice:/home/alice::userdb_mail=maildir:~/Maildir\r\n"
      "   # indented comment\n"
      "bob:{PLAIN}B2:1001:1001::/home/bob\n"
      "carol:{PLAIN}C2\n"
      "dave:{PLAIN}d\n";
  EXPECT_EQ(read(), want);

  ASSERT_TRUE(delete_user(path_, "bob", rules_).has_value());
  want =
      "# buzon users — edited by hand\n"
      "\n"
      "alice:{PLAIN}A2:1000:1000:Alice:/home/alice::userdb_mail=maildir:~/Maildir\r\n"
      "   # indented comment\n"
      "carol:{PLAIN}C2\n"
      "dave:{PLAIN}d\n";
  EXPECT_EQ(read(), want);

  // The mode chosen by the administrator survives the rename.
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  const auto users = list_users(path_, rules_).value();
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0].name, "alice");
  EXPECT_EQ(users[0].mail, "maildir:~/Maildir");
  EXPECT_EQ(users[1].name, "carol");
  EXPECT_EQ(users[2].name, "dave");
}

TEST_F(PasswdEdit, UserWithOnlyANameGetsAPassword) {
  write("solo\n");
  ASSERT_TRUE(set_password(path_, "solo", "{PLAIN}x", rules_).has_value());
  EXPECT_EQ(read(), "solo:{PLAIN}x\n");
}

TEST_F(PasswdEdit, DefaultDomainMatchesBothForms) {
  rules_.default_domain = "example.com";
  ASSERT_TRUE(add_user(path_, "demo", "{PLAIN}x", rules_).has_value());
  EXPECT_EQ(read(), "demo@example.com:{PLAIN}x\n");
  EXPECT_FALSE(add_user(path_, "demo@EXAMPLE.com", "{PLAIN}y", rules_).has_value());
  // A hand-written short form is found by its long form, and kept as written.
  write("# c\nshort:{PLAIN}x\n");
  ASSERT_TRUE(set_password(path_, "short@example.com", "{PLAIN}z", rules_).has_value());
  EXPECT_EQ(read(), "# c\nshort:{PLAIN}z\n");
  ASSERT_TRUE(delete_user(path_, "SHORT", rules_).has_value());
  EXPECT_EQ(read(), "# c\n");
}

TEST_F(PasswdEdit, Refusals) {
  ASSERT_TRUE(add_user(path_, "demo", "{PLAIN}x", rules_).has_value());
  const std::string before = read();

  auto dup = add_user(path_, "DEMO", "{PLAIN}y", rules_);
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().find("already exists"), std::string::npos) << dup.error();
  EXPECT_NE(dup.error().find("buzon user passwd"), std::string::npos) << dup.error();

  auto unknown = set_password(path_, "nobody", "{PLAIN}y", rules_);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().find("no such user"), std::string::npos) << unknown.error();
  EXPECT_FALSE(delete_user(path_, "nobody", rules_).has_value());

  for (const char* bad : {"", "a/b", "..", "a b", "a:b", "#x", "x@y@z", "a\nb:{PLAIN}x"}) {
    SCOPED_TRACE(bad);
    auto r = add_user(path_, bad, "{PLAIN}x", rules_);
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().starts_with("invalid user name")) << r.error();
    EXPECT_FALSE(set_password(path_, bad, "{PLAIN}x", rules_).has_value());
    EXPECT_FALSE(delete_user(path_, bad, rules_).has_value());
  }
  // A stored secret must be one field of a known scheme.
  EXPECT_FALSE(add_user(path_, "eve", "{PLAIN}a:b", rules_).has_value());
  EXPECT_FALSE(add_user(path_, "eve", "{PLAIN}a\nmallory:{PLAIN}m", rules_).has_value());
  EXPECT_FALSE(add_user(path_, "eve", "", rules_).has_value());
  EXPECT_FALSE(add_user(path_, "eve", "{SSHA512}abc", rules_).has_value());
  EXPECT_FALSE(set_password(path_, "demo", "{PLAIN}a:b", rules_).has_value());
  EXPECT_EQ(read(), before);
}

TEST_F(PasswdEdit, RefusesToEditABrokenFile) {
  write("ok:{PLAIN}x\nbad name:{PLAIN}y\n");
  auto r = add_user(path_, "new", "{PLAIN}z", rules_);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find(path_.string() + ":2: invalid user name"), std::string::npos) << r.error();
  EXPECT_EQ(read(), "ok:{PLAIN}x\nbad name:{PLAIN}y\n");
  EXPECT_FALSE(list_users(path_, rules_).has_value());
}

TEST_F(PasswdEdit, RefusesASymlinkedFile) {
  const fs::path real = dir_ / "real";
  {
    std::ofstream out(real);
    out << "a:{PLAIN}x\n";
  }
  fs::create_symlink(real, path_);
  auto r = add_user(path_, "b", "{PLAIN}y", rules_);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("symbolic link"), std::string::npos) << r.error();
  EXPECT_TRUE(fs::is_symlink(path_));
}

TEST_F(PasswdEdit, ListAndFindOnAMissingFile) {
  EXPECT_TRUE(list_users(path_, rules_).value().empty());
  EXPECT_FALSE(find_user(path_, "demo", rules_).value().has_value());
  EXPECT_FALSE(find_user(path_, "a/b", rules_).has_value());
}

TEST_F(PasswdEdit, ConcurrentAddsFromThreadsAreAllKept) {
  write("# header comment\n");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 12;
  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string name = "t" + std::to_string(t) + "u" + std::to_string(i);
        if (!add_user(path_, name, "{PLAIN}" + name, rules_)) ++failures;
        if (i % 4 == 3 && !set_password(path_, name, "{PLAIN}changed-" + name, rules_)) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const auto users = list_users(path_, rules_).value();
  EXPECT_EQ(users.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::set<std::string> names;
  for (const auto& u : users) {
    names.insert(u.name);
    const std::string want = u.name.ends_with("u3") || u.name.ends_with("u7") || u.name.ends_with("u11")
                                 ? "{PLAIN}changed-" + u.name
                                 : "{PLAIN}" + u.name;
    EXPECT_EQ(u.password, want);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_TRUE(read().starts_with("# header comment\n"));
}

TEST_F(PasswdEdit, ConcurrentAddsFromProcessesAreAllKept) {
  write("# header comment\n");
  constexpr int kProcs = 6;
  constexpr int kPerProc = 10;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int bad = 0;
      for (int i = 0; i < kPerProc; ++i) {
        const std::string name = "p" + std::to_string(p) + "u" + std::to_string(i);
        if (!add_user(path_, name, "{PLAIN}" + name, rules_)) ++bad;
      }
      ::_exit(bad == 0 ? 0 : 1);
    }
    pids.push_back(pid);
  }
  // Meanwhile this process deletes and re-adds a user of its own.
  for (int i = 0; i < kPerProc; ++i) {
    ASSERT_TRUE(add_user(path_, "parent", "{PLAIN}x", rules_).has_value());
    ASSERT_TRUE(delete_user(path_, "parent", rules_).has_value());
  }
  for (const pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const auto users = list_users(path_, rules_).value();
  EXPECT_EQ(users.size(), static_cast<std::size_t>(kProcs * kPerProc));
  for (int p = 0; p < kProcs; ++p) {
    for (int i = 0; i < kPerProc; ++i) {
      const std::string name = "p" + std::to_string(p) + "u" + std::to_string(i);
      const auto u = find_user(path_, name, rules_).value();
      ASSERT_TRUE(u.has_value()) << name;
      EXPECT_EQ(u->password, "{PLAIN}" + name);
    }
  }
  EXPECT_TRUE(read().starts_with("# header comment\n"));
}

}  // namespace
}  // namespace buzon::auth
