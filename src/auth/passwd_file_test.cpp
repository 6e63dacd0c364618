// auth/passwd_file_test.cpp — Dovecot passwd-file parsing (every field form, comments, errors with
// line numbers and fixes) and PasswdFileDirectory (lookup, reload keeping the old table, readers
// running during reloads).

#include "auth/passwd_file.hpp"

#include "auth/password.hpp"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace buzon::auth {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "buzon-auth-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<User> parse_ok(std::string_view text, const NameRules& rules = {}) {
  auto r = parse_passwd_file(text, rules);
  EXPECT_TRUE(r.has_value()) << (r ? "" : std::to_string(r.error().line) + ": " + r.error().message);
  return r.value_or(std::vector<User>{});
}

ParseErrorAt parse_err(std::string_view text, const NameRules& rules = {}) {
  auto r = parse_passwd_file(text, rules);
  EXPECT_FALSE(r.has_value());
  return r ? ParseErrorAt{} : r.error();
}

TEST(PasswdFile, FieldsAsDovecotDefinesThem) {
  const auto users = parse_ok(
      "# buzon users\n"
      "\n"
      "alice:{PLAIN}secret:1000:1001:Alice A:/home/alice:/bin/false:userdb_mail=maildir:~/Maildir quota_rule=*:storage=1G\n"
      "bob:{SHA512-CRYPT}$6$x$y\n"
      "carol\n"
      "dave:{PLAIN}d:::::: mail=/var/mail/dave\n"
      "   # indented comment\n"
      "eve:{PLAIN}e:2000:2000::/home/eve:::maildir:/srv/eve/Maildir\n"
      "frank:{PLAIN}f:::gecos:/home/frank::userdb_home=/srv/frank userdb_uid=3000 gid=3001 nopassword\n"
      ":nobody:is:here\n"
      "   \t  \n");
  ASSERT_EQ(users.size(), 6u);

  EXPECT_EQ(users[0].name, "alice");
  EXPECT_EQ(users[0].password, "{PLAIN}secret");
  EXPECT_EQ(users[0].uid, 1000u);
  EXPECT_EQ(users[0].gid, 1001u);
  EXPECT_EQ(users[0].home, "/home/alice");
  EXPECT_EQ(users[0].mail, "maildir:~/Maildir");  // extra fields may contain ':'
  EXPECT_EQ(users[0].quota_rules, std::vector<std::string>{"*:storage=1G"});

  EXPECT_EQ(users[1].name, "bob");
  EXPECT_EQ(users[1].password, "{SHA512-CRYPT}$6$x$y");
  EXPECT_FALSE(users[1].uid.has_value());
  EXPECT_EQ(users[1].home, "");
  EXPECT_EQ(users[1].mail, "");

  EXPECT_EQ(users[2].name, "carol");  // only a user name: no password, cannot log in
  EXPECT_EQ(users[2].password, "");

  EXPECT_EQ(users[3].name, "dave");
  EXPECT_EQ(users[3].mail, "/var/mail/dave");

  EXPECT_EQ(users[4].name, "eve");  // Dovecot's old format: empty 8th field, then mail
  EXPECT_EQ(users[4].mail, "maildir:/srv/eve/Maildir");
  EXPECT_EQ(users[4].home, "/home/eve");

  EXPECT_EQ(users[5].name, "frank");
  EXPECT_EQ(users[5].home, "/srv/frank");
  EXPECT_EQ(users[5].uid, 3000u);
  EXPECT_EQ(users[5].gid, 3001u);
}

TEST(PasswdFile, CrlfAndMissingFinalNewline) {
  const auto users = parse_ok("a:{PLAIN}x\r\nb:{PLAIN}y:1000:1000::/home/b\r\nc:{PLAIN}z");
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0].password, "{PLAIN}x");
  EXPECT_EQ(users[1].home, "/home/b");
  EXPECT_EQ(users[2].password, "{PLAIN}z");
}

TEST(PasswdFile, EmptyFileHasNoUsers) {
  EXPECT_TRUE(parse_ok("").empty());
  EXPECT_TRUE(parse_ok("# nothing\n\n").empty());
}

TEST(PasswdFile, NamesAreCanonicalised) {
  NameRules rules{};
  rules.default_domain = "example.com";
  const auto users = parse_ok("Demo:{PLAIN}x\nother@Example.ORG:{PLAIN}y\n", rules);
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].name, "demo@example.com");
  EXPECT_EQ(users[1].name, "other@example.org");
}

TEST(PasswdFile, DuplicateNamesBothLines) {
  NameRules rules{};
  rules.default_domain = "example.com";
  const auto e = parse_err("# c\ndemo:{PLAIN}a\nx:{PLAIN}b\nDEMO@example.com:{PLAIN}c\n", rules);
  EXPECT_EQ(e.line, 4u);
  EXPECT_NE(e.message.find("line 2"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("demo@example.com"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("fix:"), std::string::npos) << e.message;
}

TEST(PasswdFile, ErrorsNameTheLineAndTheFix) {
  struct Case {
    std::string text;
    std::size_t line;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"ok:{PLAIN}x\nbad/name:{PLAIN}x\n", 2, "invalid user name"},
      {"ok:{PLAIN}x\n\n  bad name:{PLAIN}x\n", 3, "invalid user name"},
      {"a..b:{PLAIN}x\n", 1, "invalid user name"},
      {"a:{PLAIN}x:abc\n", 1, "uid \"abc\" is not a number"},
      {"a:{PLAIN}x:-1\n", 1, "not a number"},
      {"a:{PLAIN}x:99999999999\n", 1, "not a number"},
      {"a:{PLAIN}x:0:100\n", 1, "uid 0 (root)"},
      {"a:{PLAIN}x:100:0\n", 1, "gid 0 (root)"},
      {"a:{PLAIN}x:100:wheel\n", 1, "gid \"wheel\" is not a number"},
      {"a:{PLAIN}x:100:100::relative/home\n", 1, "not an absolute path"},
      {"a:{PLAIN}x::::::userdb_home=rel\n", 1, "not an absolute path"},
      {"a:{PLAIN}x::::::userdb_uid=0\n", 1, "uid 0"},
      {"a:{PLAIN}x::::::userdb_quota_rule=storage=1G\n", 1, "is not \"*:storage=SIZE\""},
      {"# c\n" + std::string(kMaxPasswdLineLength + 1, 'a') + "\n", 2, "longer than"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text.substr(0, 80));
    const auto e = parse_err(c.text);
    EXPECT_EQ(e.line, c.line);
    EXPECT_NE(e.message.find(c.what), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("(fix: "), std::string::npos) << e.message;
    // A password never appears in an error.
    EXPECT_EQ(e.message.find("{PLAIN}x"), std::string::npos) << e.message;
  }
  EXPECT_EQ(format_parse_error("/etc/buzon/passwd", ParseErrorAt{7, "boom (fix: x)"}), "/etc/buzon/passwd:7: boom (fix: x)");
  EXPECT_EQ(format_parse_error("p", ParseErrorAt{0, "boom"}), "p: boom");
}

TEST(PasswdFile, ControlCharactersInNamesAreEscapedInErrors) {
  const auto e = parse_err("evil\x1b[2Jname:{PLAIN}x\n");
  EXPECT_EQ(e.message.find('\x1b'), std::string::npos);
  EXPECT_NE(e.message.find("\\x1b"), std::string::npos) << e.message;
}

TEST(PasswdFile, EntryNameOfALine) {
  EXPECT_EQ(passwd_entry_name("alice:{PLAIN}x:1"), "alice");
  EXPECT_EQ(passwd_entry_name("alice"), "alice");
  EXPECT_EQ(passwd_entry_name("alice\r"), "alice");
  EXPECT_EQ(passwd_entry_name("# alice:x"), std::nullopt);
  EXPECT_EQ(passwd_entry_name("  # alice:x"), std::nullopt);
  EXPECT_EQ(passwd_entry_name(""), std::nullopt);
  EXPECT_EQ(passwd_entry_name(" \t"), std::nullopt);
  EXPECT_EQ(passwd_entry_name(":x:y"), std::nullopt);
}

TEST(PasswdFile, Warnings) {
  const auto users = parse_ok("a:{PLAIN}x\nb:{SSHA512}abc\nc\nd:$6$x$y\n");
  const auto w = passwd_warnings(users);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("\"b\""), std::string::npos);
  EXPECT_NE(w[0].find("SSHA512"), std::string::npos);
  EXPECT_NE(w[1].find("\"c\""), std::string::npos);
}

TEST(PasswdFileDirectory, LoadsAndLooksUp) {
  TempDir dir;
  const fs::path p = dir.path() / "passwd";
  const auto hash = hash_password("secret", "SHA512-CRYPT").value();
  write_file(p, "# users\ndemo:" + hash + "::::/home/demo::mail=/srv/demo\nother@example.org:{PLAIN}x\n");
  NameRules rules{};
  rules.default_domain = "Example.COM";
  auto d = PasswdFileDirectory::open(p, rules);
  ASSERT_TRUE(d.has_value()) << d.error();
  EXPECT_EQ((*d)->size(), 2u);
  EXPECT_EQ((*d)->rules().default_domain, "example.com");

  const auto key = canonical_username("DEMO", (*d)->rules()).value();
  const auto u = (*d)->lookup(key);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->name, "demo@example.com");
  EXPECT_EQ(u->home, "/home/demo");
  EXPECT_EQ(u->mail, "/srv/demo");
  EXPECT_TRUE(verify_password(u->password, "secret"));
  EXPECT_TRUE((*d)->lookup("other@example.org").has_value());
  EXPECT_FALSE((*d)->lookup("nobody@example.com").has_value());
  EXPECT_FALSE((*d)->lookup("demo").has_value());  // lookup takes canonical names only
}

TEST(PasswdFileDirectory, OpenErrorsNameTheFileAndTheFix) {
  TempDir dir;
  const fs::path p = dir.path() / "passwd";
  auto missing = PasswdFileDirectory::open(p, {});
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.error().starts_with(p.string() + ": cannot open")) << missing.error();
  EXPECT_NE(missing.error().find("(fix: "), std::string::npos);

  write_file(p, "ok:{PLAIN}x\n\nbad name:{PLAIN}x\n");
  auto bad = PasswdFileDirectory::open(p, {});
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(bad.error().starts_with(p.string() + ":3: invalid user name")) << bad.error();

  auto not_file = PasswdFileDirectory::open(dir.path(), {});
  ASSERT_FALSE(not_file.has_value());
  EXPECT_NE(not_file.error().find("not a regular file"), std::string::npos) << not_file.error();

  NameRules rules{};
  rules.default_domain = "bad/domain";
  write_file(p, "ok:{PLAIN}x\n");
  auto bad_domain = PasswdFileDirectory::open(p, rules);
  ASSERT_FALSE(bad_domain.has_value());
  EXPECT_NE(bad_domain.error().find("default_domain"), std::string::npos) << bad_domain.error();
}

TEST(PasswdFileDirectory, ReloadKeepsTheOldTableOnError) {
  TempDir dir;
  const fs::path p = dir.path() / "passwd";
  write_file(p, "a:{PLAIN}x\n");
  auto d = PasswdFileDirectory::open(p, {}).value();
  EXPECT_TRUE(d->lookup("a").has_value());

  write_file(p, "a:{PLAIN}y\nb:{PLAIN}z\n");
  auto r = d->reload();
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*r, 2u);
  EXPECT_EQ(d->lookup("a")->password, "{PLAIN}y");
  EXPECT_TRUE(d->lookup("b").has_value());

  write_file(p, "a:{PLAIN}new\nb:{PLAIN}z\nb:{PLAIN}dup\n");
  r = d->reload();
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().starts_with(p.string() + ":3: ")) << r.error();
  EXPECT_EQ(d->lookup("a")->password, "{PLAIN}y");  // old table still serves
  EXPECT_EQ(d->size(), 2u);

  fs::remove(p);
  EXPECT_FALSE(d->reload().has_value());
  EXPECT_TRUE(d->lookup("b").has_value());
}

TEST(PasswdFileDirectory, LookupsRunDuringReloads) {
  TempDir dir;
  const fs::path p = dir.path() / "passwd";
  std::string text;
  for (int i = 0; i < 200; ++i) text += "user" + std::to_string(i) + ":{PLAIN}p" + std::to_string(i) + "\n";
  write_file(p, text);
  auto d = PasswdFileDirectory::open(p, {}).value();

  std::atomic<bool> stop = false;
  std::atomic<int> misses = 0;
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      int i = t;
      while (!stop.load()) {
        const int n = i++ % 200;
        const auto u = d->lookup("user" + std::to_string(n));
        if (!u || u->password != "{PLAIN}p" + std::to_string(n)) ++misses;
      }
    });
  }
  for (int k = 0; k < 50; ++k) ASSERT_TRUE(d->reload().has_value());
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(misses.load(), 0);
}

}  // namespace
}  // namespace buzon::auth
