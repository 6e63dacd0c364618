// [relay] and [dns] config sections (issue 8): defaults, every key, and the file:line errors.
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(ConfigRelay, Defaults) {
  auto c = parse_config("", "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->relay.port, 25);
  EXPECT_EQ(c->relay.tls, "may");
  EXPECT_TRUE(c->relay.smarthost.empty());
  EXPECT_TRUE(c->relay.transports.empty());
  EXPECT_EQ(c->relay.max_connections, 20u);
  EXPECT_EQ(c->relay.max_per_domain, 4u);
  EXPECT_TRUE(c->dns.servers.empty());
  EXPECT_EQ(c->dns.timeout, 5u);
  EXPECT_EQ(c->dns.tries, 2u);
}

TEST(ConfigRelay, ReadsEveryKey) {
  auto c = parse_config(R"(
[relay]
helo_name = "out.a.test"
port = 2525
tls = "verify"
smarthost = "smart.example.org:587"
user = "relayuser"
password_file = "relay.pw"
max_connections = 7
max_per_domain = 2
connect_timeout = 9
command_timeout = 60
source_address = "127.0.0.2"

[[relay.transport]]
domain = "B.Test"
host = "127.0.0.3:2526"

[[relay.transport]]
domain = "v6.test"
host = "[::1]"

[dns]
servers = ["127.0.0.1:5353", "10.0.0.1", "[::1]:53"]
timeout = 1
tries = 3
)",
                        "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->relay.helo_name, "out.a.test");
  EXPECT_EQ(c->relay.port, 2525);
  EXPECT_EQ(c->relay.tls, "verify");
  EXPECT_EQ(c->relay.smarthost, "smart.example.org");
  EXPECT_EQ(c->relay.smarthost_port, 587);
  EXPECT_EQ(c->relay.user, "relayuser");
  EXPECT_EQ(c->relay.password_file, "relay.pw");
  EXPECT_EQ(c->relay.max_connections, 7u);
  EXPECT_EQ(c->relay.max_per_domain, 2u);
  EXPECT_EQ(c->relay.connect_timeout, 9u);
  EXPECT_EQ(c->relay.command_timeout, 60u);
  EXPECT_EQ(c->relay.source_address, "127.0.0.2");
  ASSERT_EQ(c->relay.transports.size(), 2u);
  EXPECT_EQ(c->relay.transports[0].domain, "b.test");
  EXPECT_EQ(c->relay.transports[0].host, "127.0.0.3");
  EXPECT_EQ(c->relay.transports[0].port, 2526);
  EXPECT_EQ(c->relay.transports[1].host, "::1");
  EXPECT_EQ(c->relay.transports[1].port, 25);
  ASSERT_EQ(c->dns.servers.size(), 3u);
  EXPECT_EQ(c->dns.servers[0], "127.0.0.1:5353");
  EXPECT_EQ(c->dns.timeout, 1u);
  EXPECT_EQ(c->dns.tries, 3u);
}

TEST(ConfigRelay, ErrorsNameTheLine) {
  auto bad = [](const char* text) {
    auto c = parse_config(text, "/x/buzon.toml");
    EXPECT_FALSE(c);
    return c ? std::string() : c.error().str();
  };
  EXPECT_NE(bad("[relay]\ntls = \"always\"\n").find("buzon.toml:2"), std::string::npos);
  EXPECT_NE(bad("[relay]\nbogus = 1\n").find("unknown key 'bogus' in [relay]"), std::string::npos);
  EXPECT_NE(bad("[relay]\nsmarthost = \"h:99999\"\n").find("bad port"), std::string::npos);
  EXPECT_NE(bad("[[relay.transport]]\ndomain = \"x\"\n").find("needs domain and host"), std::string::npos);
  EXPECT_NE(bad("[[relay.transport]]\ndomain = \"x\"\nhost = \"h\"\nport = 2\n").find("unknown key 'port'"),
            std::string::npos);
  EXPECT_NE(bad("[dns]\nservers = [\"ns.example.org\"]\n").find("bad DNS server"), std::string::npos);
  EXPECT_NE(bad("[relay]\nsource_address = \"mx.example.org\"\n").find("bad source_address"), std::string::npos);
  EXPECT_NE(bad("[dns]\ntries = 0\n").find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace buzon
