// core/config_tls_test.cpp — the [tls], [[tls.sni]], [auth] sections and [pop3] listen_tls/stls:
// defaults, every key read, and errors that name the file, the line and the fix.
#include "core/config.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(ConfigTls, DefaultsAreSafe) {
  auto c = parse_config("", "/etc/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(c->tls.enabled());
  EXPECT_EQ(c->tls.min_version, "TLSv1.2");
  EXPECT_TRUE(c->pop3.listen_tls.empty());
  EXPECT_TRUE(c->pop3.stls);
  EXPECT_EQ(c->auth.mechanisms, (std::vector<std::string>{"PLAIN", "LOGIN"}));
  EXPECT_TRUE(c->auth.plaintext_requires_tls);
  EXPECT_EQ(c->auth.trusted_networks, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(c->auth.failure_delay_ms, 2000u);  // Dovecot's auth penalty: 2 s doubling to 15 s
  EXPECT_EQ(c->auth.failure_delay_max_ms, 15000u);
}

TEST(ConfigTls, ReadsEveryKey) {
  auto c = parse_config(R"(
[pop3]
listen = ["127.0.0.1:1110"]
listen_tls = ["127.0.0.1:1995", "[::1]:1995"]
stls = false

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
chain = "tls/chain.pem"
min_version = "TLSv1.3"
ciphers = "ECDHE-RSA-AES128-GCM-SHA256"
ciphersuites = "TLS_AES_256_GCM_SHA384"
handshake_timeout = 7

[[tls.sni]]
names = ["Mail.Example.org", "*.example.net"]
cert = "/etc/ssl/other.pem"
key = "/etc/ssl/other.key"

[auth]
mechanisms = ["scram-sha-256-plus", "SCRAM-SHA-256", "PLAIN"]
plaintext_requires_tls = false
trusted_networks = ["10.0.0.0/8"]
failure_delay_ms = 100
failure_delay_max_ms = 800
hash_threads = 3

[users]
default_scheme = "SCRAM-SHA-256"
)",
                        "/etc/buzon/buzon.toml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->pop3.listen_tls.size(), 2u);
  EXPECT_EQ(c->pop3.listen_tls[1].str(), "[::1]:1995");
  EXPECT_FALSE(c->pop3.stls);
  EXPECT_TRUE(c->tls.enabled());
  EXPECT_EQ(c->resolve(c->tls.main.cert), "/etc/buzon/tls/cert.pem");
  EXPECT_EQ(c->tls.main.chain, "tls/chain.pem");
  EXPECT_EQ(c->tls.main.line, 8);  // the cert line: where a broken certificate is reported
  EXPECT_EQ(c->tls.min_version, "TLSv1.3");
  EXPECT_EQ(c->tls.ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(c->tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(c->tls.handshake_timeout, 7u);
  ASSERT_EQ(c->tls.sni.size(), 1u);
  EXPECT_EQ(c->tls.sni[0].names, (std::vector<std::string>{"mail.example.org", "*.example.net"}));
  EXPECT_EQ(c->tls.sni[0].line, 16);
  EXPECT_EQ(c->auth.mechanisms, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"}));
  EXPECT_FALSE(c->auth.plaintext_requires_tls);
  EXPECT_EQ(c->auth.trusted_networks, (std::vector<std::string>{"10.0.0.0/8"}));
  EXPECT_EQ(c->auth.failure_delay_ms, 100u);
  EXPECT_EQ(c->auth.failure_delay_max_ms, 800u);
  EXPECT_EQ(c->auth.hash_threads, 3u);
  EXPECT_EQ(c->users.default_scheme, "SCRAM-SHA-256");
}

TEST(ConfigTls, ErrorsNameTheLineAndTheFix) {
  struct Case {
    const char* toml;
    int line;
    const char* message_part;
  };
  const Case cases[] = {
      {"[pop3]\nlisten_tls = [\"127.0.0.1:995\"]\n", 2, "listen_tls needs a certificate"},
      {"[tls]\n\ncert = \"c.pem\"\n", 3, "needs both cert and key"},
      {"[tls]\ncert = \"\"\n", 2, "'cert' is empty"},
      {"[tls]\ncert = \"c\"\nkey = \"k\"\nmin_version = \"TLSv1.1\"\n", 4, "unsupported min_version"},
      {"[tls]\ncert = \"c\"\nkey = \"k\"\nhandshake_timeout = 0\n", 4, "out of range"},
      {"[tls]\ncert = \"c\"\nkey = \"k\"\nfoo = 1\n", 4, "unknown key 'foo' in [tls]"},
      {"[tls]\ncert = \"c\"\nkey = \"k\"\n[[tls.sni]]\nnames = [\"a.org\"]\ncert = \"x\"\n", 4, "needs names, cert and key"},
      {"[tls]\ncert = \"c\"\nkey = \"k\"\n[[tls.sni]]\nnames = [\"a org\"]\n", 5, "is not a host name"},
      {"[[tls.sni]]\nnames = [\"a.org\"]\ncert = \"x\"\nkey = \"y\"\n", 1, "without a default certificate"},
      {"[auth]\nmechanisms = [\"PLAIN\", \"GSSAPI\"]\n", 2, "unknown SASL mechanism 'GSSAPI'"},
      {"[auth]\nmechanisms = [\"PLAIN\", \"plain\"]\n", 2, "listed twice"},
      {"[auth]\ntrusted_networks = [\"10.0.0.1/8\"]\n", 2, "did you mean 10.0.0.0/8"},
      {"[auth]\ntrusted_networks = [\"localhost\"]\n", 2, "bad network"},
      {"[auth]\nfailure_delay_ms = 5000\nfailure_delay_max_ms = 100\n", 1, "below failure_delay_ms"},
      {"[auth]\nplaintext_requires_tls = \"yes\"\n", 2, "must be true or false"},
      {"[users]\ndefault_scheme = \"MD5\"\n", 2, "unknown password scheme"},
  };
  for (const auto& k : cases) {
    auto c = parse_config(k.toml, "/etc/b.toml");
    ASSERT_FALSE(c) << k.toml;
    EXPECT_EQ(c.error().line, k.line) << k.toml << " -> " << c.error().str();
    EXPECT_NE(c.error().message.find(k.message_part), std::string::npos) << c.error().str();
    EXPECT_FALSE(c.error().fix.empty()) << c.error().str();
    EXPECT_EQ(c.error().str().rfind("/etc/b.toml:" + std::to_string(k.line) + ": ", 0), 0u) << c.error().str();
  }
}

}  // namespace
}  // namespace buzon
