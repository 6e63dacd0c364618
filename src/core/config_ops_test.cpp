// Config keys of issue 7: [server] user/group, [log] format, [metrics], [proxy].
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

std::expected<Config, ConfigError> parse(std::string_view text) { return parse_config(text, "/etc/buzon/buzon.toml"); }

TEST(ConfigOps, Defaults) {
  auto c = parse("");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->server.user, "buzon");
  EXPECT_EQ(c->server.group, "");
  EXPECT_EQ(c->log.format, "text");
  EXPECT_TRUE(c->metrics.enabled);
  EXPECT_EQ(c->metrics.listen.str(), "127.0.0.1:9110");
  EXPECT_TRUE(c->proxy.listeners.empty());
  EXPECT_EQ(c->proxy.timeout, 5u);
}

TEST(ConfigOps, AllKeys) {
  auto c = parse(R"(
[server]
user = "vmail"
group = "mail"
[log]
format = "json"
[metrics]
enabled = false
listen = "[::1]:9999"
[proxy]
listeners = ["127.0.0.1:10110", "[::1]:10110"]
trusted = ["10.0.0.0/8", "::1"]
timeout = 2
)");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->server.user, "vmail");
  EXPECT_EQ(c->server.group, "mail");
  EXPECT_EQ(c->log.format, "json");
  EXPECT_FALSE(c->metrics.enabled);
  EXPECT_EQ(c->metrics.listen.str(), "[::1]:9999");
  ASSERT_EQ(c->proxy.listeners.size(), 2u);
  EXPECT_EQ(c->proxy.listeners[1].str(), "[::1]:10110");
  EXPECT_EQ(c->proxy.trusted.size(), 2u);
  EXPECT_EQ(c->proxy.timeout, 2u);
}

TEST(ConfigOps, ErrorsNameTheLineAndTheFix) {
  struct Case {
    const char* text;
    int line;
    const char* what;
  } cases[] = {
      {"[log]\nformat = \"xml\"\n", 2, "unknown log format"},
      {"[metrics]\nlisten = \"localhost:9110\"\n", 2, "bad listen address"},
      {"[metrics]\nlisten = [\"127.0.0.1:9110\"]\n", 2, "must be a string"},
      {"[proxy]\nlisteners = [\"127.0.0.1:1\"]\ntrusted = [\"10.0.0.1/8\"]\n", 3, "bad network"},
      {"[proxy]\ntimeout = 0\n", 2, "out of range"},
      {"[proxy]\nbogus = 1\n", 2, "unknown key 'bogus' in [proxy]"},
      {"[server]\nuser = 7\n", 2, "must be a string"},
  };
  for (auto& k : cases) {
    auto c = parse(k.text);
    ASSERT_FALSE(c) << k.text;
    EXPECT_EQ(c.error().line, k.line) << k.text;
    EXPECT_NE(c.error().message.find(k.what), std::string::npos) << c.error().str();
    EXPECT_FALSE(c.error().fix.empty()) << k.text;
  }
  auto c = parse("[proxy]\nlisteners = [\"127.0.0.1:10110\"]\n");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("trusted is empty"), std::string::npos);
}

}  // namespace
}  // namespace buzon
