// Address policy config (issue 10): [smtp] recipient_delimiter and max_hops, [aliases] file,
// postmaster and domains; defaults, every key, and the file:line errors.
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(ConfigPolicy, Defaults) {
  auto c = parse_config("", "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->smtp.recipient_delimiter, "+");
  EXPECT_EQ(c->smtp.max_hops, 50u);  // RFC 5321 §6.3 suggests a large limit
  EXPECT_TRUE(c->aliases.file.empty());
  EXPECT_TRUE(c->aliases.postmaster.empty());
  EXPECT_TRUE(c->aliases.domains.empty());
}

TEST(ConfigPolicy, EveryKey) {
  auto c = parse_config(R"([smtp]
local_domains = ["example.com", "Example.NET"]
recipient_delimiter = "+-"
max_hops = 30

[aliases]
file = "aliases"
postmaster = "admin@example.com"
domains = { "EXAMPLE.net" = "example.com" }
)",
                        "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->smtp.recipient_delimiter, "+-");
  EXPECT_EQ(c->smtp.max_hops, 30u);
  EXPECT_EQ(c->resolve(c->aliases.file), "/etc/buzon/aliases");
  EXPECT_EQ(c->aliases.postmaster, "admin@example.com");
  EXPECT_EQ(c->aliases.domains, (std::map<std::string, std::string>{{"example.net", "example.com"}}));
  auto off = parse_config("[smtp]\nrecipient_delimiter = \"\"\n", "/x/b.toml");
  ASSERT_TRUE(off) << off.error().str();
  EXPECT_EQ(off->smtp.recipient_delimiter, "");
}

TEST(ConfigPolicy, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    int line;
    const char* part;
  };
  const Case cases[] = {
      {"[smtp]\nrecipient_delimiter = \"@\"\n", 2, "printable ASCII other than '@'"},
      {"[smtp]\nrecipient_delimiter = \" \"\n", 2, "printable ASCII"},
      {"[smtp]\nmax_hops = 0\n", 2, "out of range"},
      {"[aliases]\npostmaster = \"nobody\"\n", 2, "is not an address"},
      {"[aliases]\n\npostmaster = \"<a@b>\"\n", 3, "is not an address"},
      {"[aliases]\ndomains = \"example.net\"\n", 2, "'domains' must be a table"},
      {"[aliases]\ndomains = { \"example.net\" = \"example.net\" }\n", 2, "not two different domains"},
      {"[aliases]\nmaps = 1\n", 2, "unknown key 'maps' in [aliases]"},
      {"[smtp]\nlocal_domains = [\"example.com\"]\n[aliases]\ndomains = { \"example.net\" = \"example.com\" }\n", 3,
       "'example.net' is not a local domain"},
      {"[smtp]\nlocal_domains = [\"a.org\", \"b.org\", \"c.org\"]\n[aliases]\ndomains = { \"a.org\" = \"b.org\", \"b.org\" = \"c.org\" }\n",
       3, "'b.org' is itself an alias domain"},
  };
  for (const auto& c : cases) {
    auto r = parse_config(c.text, "/x/b.toml");
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().line, c.line) << c.text << " -> " << r.error().str();
    EXPECT_NE(r.error().message.find(c.part), std::string::npos) << c.text << " -> " << r.error().str();
    EXPECT_FALSE(r.error().fix.empty()) << c.text;
  }
}

TEST(ConfigPolicy, Quota) {
  auto d = parse_config("", "/x/b.toml");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->quota.default_bytes, 0u);
  EXPECT_EQ(d->quota.default_messages, 0u);
  auto c = parse_config("[quota]\ndefault_bytes = 1_073_741_824\ndefault_messages = 10000\n", "/x/b.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->quota.default_bytes, 1073741824u);
  EXPECT_EQ(c->quota.default_messages, 10000u);
  auto dom = parse_config("[quota]\ndomains = { \"Example.ORG\" = { bytes = 2048, messages = 5 } }\n", "/x/b.toml");
  ASSERT_TRUE(dom) << dom.error().str();
  EXPECT_EQ(dom->quota.domains.at("example.org").bytes, 2048u);
  EXPECT_EQ(dom->quota.domains.at("example.org").messages, 5u);
  for (const char* bad : {"[quota]\ndefault_bytes = \"1G\"\n", "[quota]\ndefault_bytes = -1\n",
                          "[quota]\ndefault_messages = -1\n", "[quota]\nstorage = 1\n",
                          "[quota]\ndomains = { \"a.org\" = 5 }\n", "[quota]\ndomains = { \"a.org\" = { size = 5 } }\n",
                          "[quota]\ndomains = { \"a.org\" = { bytes = \"1G\" } }\n"}) {
    auto r = parse_config(bad, "/x/b.toml");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().line, 2) << bad;
    EXPECT_FALSE(r.error().fix.empty()) << bad;
  }
}

}  // namespace
}  // namespace buzon

namespace buzon {
namespace {

TEST(ConfigPolicy, OverQuota) {
  auto d = parse_config("", "/x/b.toml");
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_FALSE(d->quota.over_quota_permanent);  // 452 4.2.2 by default
  auto p = parse_config("[quota]\nover_quota = \"permanent\"\n", "/x/b.toml");
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_TRUE(p->quota.over_quota_permanent);
  auto t = parse_config("[quota]\nover_quota = \"temporary\"\n", "/x/b.toml");
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_FALSE(t->quota.over_quota_permanent);
  auto bad = parse_config("[quota]\n\nover_quota = \"bounce\"\n", "/x/b.toml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().line, 3);
  EXPECT_NE(bad.error().str().find("unknown over_quota 'bounce'"), std::string::npos) << bad.error().str();
}

}  // namespace
}  // namespace buzon
