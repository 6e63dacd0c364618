#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(Config, DefaultsWhenEmpty) {
  auto c = parse_config("", "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->pop3.listen.size(), 1u);
  EXPECT_EQ(c->pop3.listen[0].str(), "127.0.0.1:1110");
  EXPECT_EQ(c->pop3.autologout, 600u);  // RFC 1939 §3: at least 10 minutes
  EXPECT_FALSE(c->pop3.expire_days.has_value());
  EXPECT_EQ(c->resolve("passwd"), std::filesystem::path("/etc/buzon/passwd"));
  EXPECT_EQ(c->resolve("/abs/x"), std::filesystem::path("/abs/x"));
}

TEST(Config, ReadsEverySection) {
  auto c = parse_config(R"(
[server]
hostname = "mx.example.com"
io_threads = 2
[log]
level = "debug"
[users]
passwd_file = "users"
default_domain = "Example.COM"
lowercase = false
[mail]
location = "/srv/mail/%d/%n"
uidl_format = "dovecot"
[pop3]
listen = ["127.0.0.1:110", "[::1]:110"]
apop = true
autologout = 900
login_delay = 300
expire = 0
)", "/x/b.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->server.hostname, "mx.example.com");
  EXPECT_EQ(c->server.io_threads, 2u);
  EXPECT_EQ(c->users.default_domain, "example.com");
  EXPECT_FALSE(c->users.lowercase);
  EXPECT_EQ(c->mail.uidl_format, "dovecot");
  ASSERT_EQ(c->pop3.listen.size(), 2u);
  EXPECT_EQ(c->pop3.listen[1].host, "::1");
  EXPECT_EQ(c->pop3.listen[1].str(), "[::1]:110");
  EXPECT_TRUE(c->pop3.apop);
  EXPECT_EQ(c->pop3.login_delay, 300u);
  ASSERT_TRUE(c->pop3.expire_days.has_value());
  EXPECT_EQ(*c->pop3.expire_days, 0u);
}

struct BadCase {
  const char* text;
  int line;
  const char* message_part;
};

TEST(Config, ErrorsNameFileLineAndFix) {
  const BadCase cases[] = {
      {"[pop3]\nlisten = [\"127.0.0.1:1110\"]\nautologut = 5\n", 3, "unknown key 'autologut'"},
      {"[pop3]\nautologout = \"ten\"\n", 2, "must be an integer"},
      {"[pop3]\nautologout = 0\n", 2, "out of range"},
      {"[pop3]\nlisten = [\"localhost:1110\"]\n", 2, "numeric"},
      {"[pop3]\nlisten = [\"127.0.0.1:70000\"]\n", 2, "port"},
      {"[mail]\nuidl_format = \"md5\"\n", 2, "unknown uidl_format"},
      {"[mail]\nlocation = \"mail/%x\"\n", 2, "unknown variable"},
      {"[imap]\nx = 1\n", 1, "unknown section"},
      {"[log]\nlevel = \"loud\"\n", 2, "unknown log level"},
      {"[pop3\n", 1, ""},
      {"[pop3]\napop = \"yes\"\n", 2, "true or false"},
      {"[pop3]\nexpire = \"sometimes\"\n", 2, "never"},
  };
  for (const auto& bc : cases) {
    auto c = parse_config(bc.text, "/etc/b.toml");
    ASSERT_FALSE(c) << bc.text;
    EXPECT_EQ(c.error().file, "/etc/b.toml");
    EXPECT_EQ(c.error().line, bc.line) << bc.text << " -> " << c.error().str();
    EXPECT_NE(c.error().message.find(bc.message_part), std::string::npos) << c.error().str();
    EXPECT_FALSE(c.error().fix.empty()) << c.error().str();
    EXPECT_NE(c.error().str().find("/etc/b.toml:" + std::to_string(bc.line) + ": "), std::string::npos);
  }
}

TEST(Config, MissingFileSaysHowToFix) {
  auto c = load_config("/nonexistent/buzon.toml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("/nonexistent/buzon.toml"), std::string::npos);
  EXPECT_NE(c.error().str().find("fix:"), std::string::npos);
}

}  // namespace
}  // namespace buzon
