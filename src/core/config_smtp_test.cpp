// [smtp] and [lmtp] config sections (issue 4): defaults, every key, and the file:line errors.
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(ConfigSmtp, DefaultsAreOffAndRfcSized) {
  auto c = parse_config("", "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_TRUE(c->smtp.listen.empty());  // no SMTP server unless configured
  EXPECT_TRUE(c->smtp.local_domains.empty());
  EXPECT_EQ(c->smtp.max_message_size, 10485760u);
  EXPECT_EQ(c->smtp.max_recipients, 100u);       // RFC 5321 §4.5.3.1.8
  EXPECT_EQ(c->smtp.max_line_length, 1000u);     // §4.5.3.1.6
  EXPECT_EQ(c->smtp.command_timeout, 300u);      // §4.5.3.2.7
  EXPECT_EQ(c->smtp.greet_pause, 0u);
  EXPECT_FALSE(c->smtp.vrfy);
  EXPECT_TRUE(c->smtp.starttls);
  EXPECT_TRUE(c->lmtp.listen.empty());
  EXPECT_TRUE(c->lmtp.socket.empty());
  EXPECT_EQ(c->lmtp.socket_mode, 0660u);
}

TEST(ConfigSmtp, ReadsEveryKey) {
  auto c = parse_config(R"(
[smtp]
listen = ["127.0.0.1:2525", "[::1]:25"]
hostname = "mx.example.org"
local_domains = ["Example.ORG", "example.net"]
max_message_size = 2048
max_recipients = 500
max_errors = 5
max_line_length = 2000
command_timeout = 60
data_timeout = 120
max_session_time = 600
greet_pause = 2
vrfy = true
starttls = false
[lmtp]
listen = ["127.0.0.1:2424"]
socket = "run/lmtp"
socket_mode = "0666"
)", "/x/b.toml");
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_EQ(c->smtp.listen.size(), 2u);
  EXPECT_EQ(c->smtp.listen[1].str(), "[::1]:25");
  EXPECT_EQ(c->smtp.hostname, "mx.example.org");
  EXPECT_EQ(c->smtp.local_domains, (std::vector<std::string>{"example.org", "example.net"}));
  EXPECT_EQ(c->smtp.max_message_size, 2048u);
  EXPECT_EQ(c->smtp.max_recipients, 500u);
  EXPECT_EQ(c->smtp.max_errors, 5u);
  EXPECT_EQ(c->smtp.max_line_length, 2000u);
  EXPECT_EQ(c->smtp.command_timeout, 60u);
  EXPECT_EQ(c->smtp.data_timeout, 120u);
  EXPECT_EQ(c->smtp.max_session_time, 600u);
  EXPECT_EQ(c->smtp.greet_pause, 2u);
  EXPECT_TRUE(c->smtp.vrfy);
  EXPECT_FALSE(c->smtp.starttls);
  ASSERT_EQ(c->lmtp.listen.size(), 1u);
  EXPECT_EQ(c->lmtp.socket, std::filesystem::path("run/lmtp"));
  EXPECT_EQ(c->resolve(c->lmtp.socket), std::filesystem::path("/x/run/lmtp"));
  EXPECT_EQ(c->lmtp.socket_mode, 0666u);
}

TEST(ConfigSmtp, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    int line;
    const char* part;
  };
  const Case cases[] = {
      {"[smtp]\nlisten = \"127.0.0.1:25\"\n", 2, "'listen' must be an array"},
      {"[smtp]\nlisten = [\"localhost:25\"]\n", 2, "bad listen address"},
      {"[smtp]\nlocal_domains = [\"exa mple.org\"]\n", 2, "is not a domain name"},
      {"[smtp]\nlocal_domains = [\".example.org\"]\n", 2, "is not a domain name"},
      {"[smtp]\nlocal_domains = \"example.org\"\n", 2, "'local_domains' must be an array"},
      {"[smtp]\nmax_recipients = 0\n", 2, "out of range"},
      {"[smtp]\nmax_line_length = 80\n", 2, "out of range"},  // RFC 5321 requires 1000
      {"[smtp]\nmax_message_size = \"10M\"\n", 2, "must be an integer"},
      {"[smtp]\n\nopen_relay = true\n", 3, "unknown key 'open_relay' in [smtp]"},
      {"[lmtp]\nsocket_mode = \"0999\"\n", 2, "not an octal mode"},
      {"[lmtp]\nsocket_mode = 438\n", 2, "must be a string"},
  };
  for (const auto& c : cases) {
    auto r = parse_config(c.text, "/x/b.toml");
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().line, c.line) << c.text << " -> " << r.error().str();
    EXPECT_NE(r.error().message.find(c.part), std::string::npos) << c.text << " -> " << r.error().str();
    EXPECT_FALSE(r.error().fix.empty()) << c.text;
  }
}

}  // namespace
}  // namespace buzon
