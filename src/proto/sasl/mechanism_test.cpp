// The mechanism table and factories.
#include "proto/sasl/mechanism.hpp"
#include "proto/sasl/sasl_test_util.hpp"

#include <gtest/gtest.h>

namespace buzon::sasl {
namespace {

TEST(Mechanisms, TableAndPolicyFlags) {
  for (auto m : kAllMechanisms) EXPECT_TRUE(is_known(m)) << m;
  EXPECT_FALSE(is_known("plain"));  // exact, upper case: the caller upper-cases
  EXPECT_FALSE(is_known("GSSAPI"));
  EXPECT_TRUE(is_plaintext("PLAIN"));
  EXPECT_TRUE(is_plaintext("LOGIN"));
  EXPECT_FALSE(is_plaintext("CRAM-MD5"));
  EXPECT_FALSE(is_plaintext("SCRAM-SHA-256"));
  EXPECT_TRUE(needs_channel_binding("SCRAM-SHA-256-PLUS"));
  EXPECT_FALSE(needs_channel_binding("SCRAM-SHA-256"));
}

TEST(Mechanisms, EveryMechanismRoundTripsThroughTheFactories) {
  const ChannelBinding cb{"tls-exporter", std::string(32, '\x07')};
  ServerContext sctx;
  sctx.channel_bindings = {cb};
  sctx.plus_advertised = true;
  ClientContext cctx;
  cctx.channel_binding = cb;
  cctx.server_offers_plus = true;
  for (auto name : kAllMechanisms) {
    auto c = make_client(name, {"ana", "pa ss", ""}, cctx);
    auto s = make_server(name, sctx);
    ASSERT_TRUE(c && s) << name;
    EXPECT_EQ(c->name(), name);
    EXPECT_EQ(s->name(), name);
    auto o = test::drive(*c, *s, {{"ana", "pa ss"}});
    EXPECT_TRUE(o.ok) << name;
    EXPECT_TRUE(o.client_complete) << name;
    EXPECT_EQ(o.authcid, "ana") << name;
  }
  EXPECT_EQ(make_server("NTLM", sctx), nullptr);
  EXPECT_EQ(make_client("SCRAM-SHA-256-PLUS", {"a", "b", ""}, ClientContext{}), nullptr);  // nothing to bind
}

}  // namespace
}  // namespace buzon::sasl
