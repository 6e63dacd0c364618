// CRAM-MD5 (RFC 2195): the RFC's example exchange byte for byte, response parsing, round trip.
#include "proto/sasl/cram_md5.hpp"
#include "proto/sasl/sasl_test_util.hpp"

#include "core/base64.hpp"

#include <gtest/gtest.h>

namespace buzon::sasl {
namespace {

ServerContext rfc2195_context() {
  ServerContext ctx;
  ctx.hostname = "postoffice.reston.mci.net";
  ctx.random = [](std::size_t n) {  // 1896 as 8 big-endian octets
    std::string s(n, '\0');
    s[n - 2] = static_cast<char>(1896 >> 8);
    s[n - 1] = static_cast<char>(1896 & 0xFF);
    return s;
  };
  ctx.unix_time = [] { return std::int64_t{697170952}; };
  return ctx;
}

TEST(CramMd5, Rfc2195ExampleExchange) {
  // RFC 2195 §2: S: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
  //              C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
  auto ctx = rfc2195_context();
  CramMd5Server s(ctx);
  auto c = s.start(std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Challenge>(c));
  EXPECT_EQ(base64_encode(std::get<Challenge>(c).data), "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");

  CramMd5Client client({"tim", "tanstaaftanstaaf", ""});
  auto r = client.respond(std::get<Challenge>(c).data);
  ASSERT_TRUE(r);
  EXPECT_EQ(base64_encode(*r), "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
  EXPECT_EQ(*r, "tim b913a602c7eda7a495b4e6e7334d3890");

  auto d = s.step(*r);
  ASSERT_TRUE(std::holds_alternative<CheckDigest>(d));
  EXPECT_EQ(std::get<CheckDigest>(d).authcid, "tim");
  EXPECT_EQ(std::get<CheckDigest>(d).challenge, "<1896.697170952@postoffice.reston.mci.net>");
  EXPECT_EQ(std::get<CheckDigest>(d).digest, cram_md5_digest("tanstaaftanstaaf", std::get<CheckDigest>(d).challenge));
}

TEST(CramMd5, ChallengesAreFreshEachTime) {
  ServerContext ctx;
  CramMd5Server a(ctx), b(ctx);
  EXPECT_NE(std::get<Challenge>(a.start(std::nullopt)).data, std::get<Challenge>(b.start(std::nullopt)).data);
}

TEST(CramMd5, InitialResponseIsRefused) {
  ServerContext ctx;
  CramMd5Server s(ctx);
  EXPECT_EQ(std::get<Failure>(s.start("tim 0123")).code, Errc::initial_response);  // RFC 5034 §4
}

TEST(CramMd5, ResponseSyntax) {
  ServerContext ctx;
  struct Case {
    std::string response;
    std::optional<Errc> error;
    std::string user;
  };
  const std::string hex = "b913a602c7eda7a495b4e6e7334d3890";
  const Case cases[] = {
      {"tim " + hex, std::nullopt, "tim"},
      {"tim B913A602C7EDA7A495B4E6E7334D3890", std::nullopt, "tim"},  // upper-case hex accepted
      {"Ana Lucia " + hex, std::nullopt, "Ana Lucia"},                 // the name is before the LAST space
      {hex, Errc::malformed, ""},
      {" " + hex, Errc::empty_identity, ""},
      {"tim " + hex.substr(1), Errc::malformed, ""},
      {"tim " + hex + "0", Errc::malformed, ""},
      {"tim g913a602c7eda7a495b4e6e7334d3890", Errc::malformed, ""},
      {"", Errc::malformed, ""},
  };
  for (const auto& c : cases) {
    CramMd5Server s(ctx);
    s.start(std::nullopt);
    auto step = s.step(c.response);
    if (c.error) {
      ASSERT_TRUE(std::holds_alternative<Failure>(step)) << c.response;
      EXPECT_EQ(std::get<Failure>(step).code, *c.error) << c.response;
    } else {
      ASSERT_TRUE(std::holds_alternative<CheckDigest>(step)) << c.response;
      EXPECT_EQ(std::get<CheckDigest>(step).authcid, c.user);
      EXPECT_EQ(std::get<CheckDigest>(step).digest, hex);
    }
  }
}

TEST(CramMd5, RoundTripAndWrongPassword) {
  ServerContext ctx;
  {
    CramMd5Client c({"tim", "tanstaaftanstaaf", ""});
    CramMd5Server s(ctx);
    auto o = test::drive(c, s, {{"tim", "tanstaaftanstaaf"}});
    EXPECT_TRUE(o.ok);
    EXPECT_EQ(o.round_trips, 1);
  }
  CramMd5Client c({"tim", "wrong", ""});
  CramMd5Server s(ctx);
  EXPECT_FALSE(test::drive(c, s, {{"tim", "tanstaaftanstaaf"}}).ok);
}

}  // namespace
}  // namespace buzon::sasl
