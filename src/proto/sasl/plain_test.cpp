// PLAIN (RFC 4616) and LOGIN: message parsing, examples from the RFC, round trips.
#include "proto/sasl/login.hpp"
#include "proto/sasl/plain.hpp"
#include "proto/sasl/sasl_test_util.hpp"

#include <gtest/gtest.h>

using namespace std::string_literals;

namespace buzon::sasl {
namespace {

TEST(Plain, Rfc4616Examples) {
  // RFC 4616 §4: "<NUL>tim<NUL>tanstaaftanstaaf" and, with an authzid, "Ursel<NUL>Kurt<NUL>xipj3plmq".
  auto a = parse_plain("\0tim\0tanstaaftanstaaf"s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->authzid, "");
  EXPECT_EQ(a->authcid, "tim");
  EXPECT_EQ(a->password, "tanstaaftanstaaf");
  auto b = parse_plain("Ursel\0Kurt\0xipj3plmq"s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->authzid, "Ursel");
  EXPECT_EQ(b->authcid, "Kurt");
  EXPECT_EQ(b->password, "xipj3plmq");
}

TEST(Plain, MalformedMessagesFail) {
  struct Case {
    std::string msg;
    Errc code;
  };
  const Case cases[] = {
      {"", Errc::malformed},
      {"tim", Errc::malformed},
      {"\0tim"s, Errc::malformed},
      {"\0tim\0pw\0"s, Errc::malformed},       // a third NUL
      {"\0\0pw"s, Errc::empty_identity},        // empty authcid
      {"\0tim\0"s, Errc::empty_identity},       // empty password
      {"\0"s + std::string(256, 'u') + "\0pw"s, Errc::malformed},  // over 255 octets
  };
  for (const auto& c : cases) {
    auto r = parse_plain(c.msg);
    ASSERT_FALSE(r) << testing::PrintToString(c.msg);
    EXPECT_EQ(r.error(), c.code) << testing::PrintToString(c.msg);
  }
}

TEST(Plain, PasswordsMayHoldSpacesAnd8Bit) {
  auto r = parse_plain("\0ana\0sécret word "s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->password, "sécret word ");
}

TEST(Plain, WithoutInitialResponseTheServerSendsAnEmptyChallenge) {
  PlainServer s;
  auto step = s.start(std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Challenge>(step));
  EXPECT_EQ(std::get<Challenge>(step).data, "");  // RFC 4422 §3.3
  auto done = s.step("\0tim\0tanstaaftanstaaf"s);
  ASSERT_TRUE(std::holds_alternative<CheckPassword>(done));
  EXPECT_EQ(std::get<CheckPassword>(done).password, "tanstaaftanstaaf");
  EXPECT_TRUE(std::holds_alternative<Failure>(s.step("again")));  // nothing after the end
}

TEST(Plain, ClientRoundTripWithAndWithoutInitialResponse) {
  const std::map<std::string, std::string> users{{"tim", "tanstaaftanstaaf"}};
  for (bool initial : {true, false}) {
    PlainClient c({"tim", "tanstaaftanstaaf", ""});
    PlainServer s;
    auto o = test::drive(c, s, users, initial);
    EXPECT_TRUE(o.ok) << initial;
    EXPECT_EQ(o.authcid, "tim");
    EXPECT_EQ(o.round_trips, initial ? 0 : 1);
    EXPECT_EQ(PlainClient({"tim", "x", "adm"}).initial(), "adm\0tim\0x"s);
  }
  PlainClient wrong({"tim", "nope", ""});
  PlainServer s;
  EXPECT_FALSE(test::drive(wrong, s, users).ok);
}

TEST(Login, PromptsForUserThenPassword) {
  LoginServer s;
  auto a = s.start(std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Challenge>(a));
  EXPECT_EQ(std::get<Challenge>(a).data, "Username:");
  auto b = s.step("ana");
  ASSERT_TRUE(std::holds_alternative<Challenge>(b));
  EXPECT_EQ(std::get<Challenge>(b).data, "Password:");
  auto c = s.step("pw with space");
  ASSERT_TRUE(std::holds_alternative<CheckPassword>(c));
  EXPECT_EQ(std::get<CheckPassword>(c).authcid, "ana");
  EXPECT_EQ(std::get<CheckPassword>(c).password, "pw with space");
}

TEST(Login, InitialResponseIsTheUserName) {
  LoginServer s;
  auto a = s.start("ana");
  ASSERT_TRUE(std::holds_alternative<Challenge>(a));
  EXPECT_EQ(std::get<Challenge>(a).data, "Password:");
  LoginServer e;  // "=" (empty initial response): still asks for the name
  EXPECT_EQ(std::get<Challenge>(e.start("")).data, "Username:");
}

TEST(Login, EmptyOrBinaryAnswersFail) {
  LoginServer a;
  a.start(std::nullopt);
  EXPECT_EQ(std::get<Failure>(a.step("")).code, Errc::empty_identity);
  LoginServer b;
  b.start("ana");
  EXPECT_EQ(std::get<Failure>(b.step("")).code, Errc::empty_identity);
  LoginServer c;
  c.start(std::nullopt);
  EXPECT_EQ(std::get<Failure>(c.step("a\0b"s)).code, Errc::malformed);
}

TEST(Login, ClientRoundTrip) {
  LoginClient c({"ana", "pw", ""});
  LoginServer s;
  auto o = test::drive(c, s, {{"ana", "pw"}});
  EXPECT_TRUE(o.ok);
  EXPECT_TRUE(o.client_complete);
  EXPECT_EQ(o.round_trips, 2);
}

}  // namespace
}  // namespace buzon::sasl
