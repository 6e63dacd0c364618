// [submission] and [[dkim.key]] config sections (issue 8): defaults, every key, file:line errors.
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

constexpr const char* kTls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

TEST(ConfigSubmission, DefaultsAreOffAndRequireTls) {
  auto c = parse_config("", "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_TRUE(c->submission.listen.empty());
  EXPECT_TRUE(c->submission.listen_tls.empty());
  EXPECT_TRUE(c->submission.require_tls);
  EXPECT_FALSE(c->submission.hide_client);
  EXPECT_TRUE(c->submission.sender_aliases.empty());
  EXPECT_TRUE(c->dkim_keys.empty());
}

TEST(ConfigSubmission, ReadsEveryKey) {
  auto c = parse_config(std::string(kTls) + R"(
[submission]
listen = ["127.0.0.1:1587"]
listen_tls = ["127.0.0.1:1465", "[::1]:465"]
require_tls = false
hide_client = true
sender_aliases = { "Sales@Example.org" = ["ana", "bob@example.org"], "@example.net" = ["ana"] }

[[dkim.key]]
domain = "Example.ORG"
selector = "s2026"
key = "dkim/example.org.pem"

[[dkim.key]]
domain = "example.net"
selector = "ed"
key = "/etc/buzon/ed.pem"
)",
                        "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_EQ(c->submission.listen.size(), 1u);
  EXPECT_EQ(c->submission.listen[0].port, 1587);
  ASSERT_EQ(c->submission.listen_tls.size(), 2u);
  EXPECT_EQ(c->submission.listen_tls[1].host, "::1");
  EXPECT_FALSE(c->submission.require_tls);
  EXPECT_TRUE(c->submission.hide_client);
  ASSERT_EQ(c->submission.sender_aliases.size(), 2u);
  EXPECT_EQ(c->submission.sender_aliases.at("sales@example.org"), (std::vector<std::string>{"ana", "bob@example.org"}));
  EXPECT_EQ(c->submission.sender_aliases.at("@example.net"), (std::vector<std::string>{"ana"}));
  ASSERT_EQ(c->dkim_keys.size(), 2u);
  EXPECT_EQ(c->dkim_keys[0].domain, "example.org");
  EXPECT_EQ(c->dkim_keys[0].selector, "s2026");
  EXPECT_EQ(c->resolve(c->dkim_keys[0].key), "/etc/buzon/dkim/example.org.pem");
  EXPECT_EQ(c->dkim_keys[0].line, 12);  // the [[dkim.key]] header
  EXPECT_EQ(c->dkim_keys[1].key, "/etc/buzon/ed.pem");
}

TEST(ConfigSubmission, ListenTlsNeedsACertificate) {
  auto c = parse_config("[submission]\nlisten = [\"127.0.0.1:1587\"]\nlisten_tls = [\"127.0.0.1:1465\"]\n", "/x/b.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().line, 3);
  EXPECT_NE(c.error().str().find("listen_tls needs a certificate"), std::string::npos) << c.error().str();
}

TEST(ConfigSubmission, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    int line;
    const char* what;
  } cases[] = {
      {"[submission]\nbogus = 1\n", 2, "unknown key 'bogus' in [submission]"},
      {"[submission]\nhide_client = \"yes\"\n", 2, "'hide_client' must be true or false"},
      {"[submission]\nsender_aliases = [\"a\"]\n", 2, "'sender_aliases' must be a table"},
      {"[submission]\nsender_aliases = { \"nobody\" = [\"ana\"] }\n", 2, "is not an address"},
      {"[submission]\nsender_aliases = { \"a@b.c\" = \"ana\" }\n", 2, "must be a list of user names"},
      {"[submission]\nsender_aliases = { \"a@b.c\" = [\"\"] }\n", 2, "empty user name"},
      {"[[dkim.key]]\ndomain = \"x.org\"\nselector = \"s\"\n", 1, "needs domain, selector and key"},
      {"[[dkim.key]]\ndomain = \"x.org\"\nalgo = \"rsa\"\n", 3, "unknown key 'algo' in [dkim.key]"},
      {"[dkim]\nkey = \"k.pem\"\n", 2, "'key' must be a list of tables"},
  };
  for (const auto& t : cases) {
    auto c = parse_config(t.text, "/x/b.toml");
    ASSERT_FALSE(c) << t.text;
    EXPECT_EQ(c.error().line, t.line) << t.text;
    EXPECT_NE(c.error().str().find(t.what), std::string::npos) << c.error().str();
  }
}

}  // namespace
}  // namespace buzon
