// SCRAM-SHA-256(-PLUS): the RFC 7677 §3 exchange byte for byte from both sides, Dovecot's stored
// keys, malformed messages, channel binding (match, mismatch, downgrade), unknown users.
#include "proto/sasl/scram.hpp"
#include "proto/sasl/sasl_test_util.hpp"

#include "core/base64.hpp"

#include <gtest/gtest.h>

namespace buzon::sasl {
namespace {

// RFC 7677 §3, user "user", password "pencil".
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramCredentials pencil() { return scram_credentials("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096); }

TEST(Scram, Rfc7677ExampleClientSide) {
  ClientContext ctx;
  ctx.nonce = [] { return std::string("rOprNGfwEbeRWgbNEkqO"); };
  ScramClient c({"user", "pencil", ""}, ctx, false);
  EXPECT_EQ(c.initial(), kClientFirst);
  auto final_msg = c.respond(kServerFirst);
  ASSERT_TRUE(final_msg);
  EXPECT_EQ(*final_msg, kClientFinal);
  EXPECT_FALSE(c.complete());
  auto last = c.respond(kServerFinal);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, "");
  EXPECT_TRUE(c.complete());
}

TEST(Scram, Rfc7677ExampleServerSide) {
  ServerContext ctx;
  ctx.nonce = [] { return std::string("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"); };
  ScramServer s(ctx, false);
  auto need = s.start(kClientFirst);
  ASSERT_TRUE(std::holds_alternative<NeedCredentials>(need));
  EXPECT_EQ(std::get<NeedCredentials>(need).authcid, "user");
  auto first = s.credentials(pencil());
  ASSERT_TRUE(std::holds_alternative<Challenge>(first));
  EXPECT_EQ(std::get<Challenge>(first).data, kServerFirst);
  auto done = s.step(kClientFinal);
  ASSERT_TRUE(std::holds_alternative<Success>(done)) << (std::holds_alternative<Failure>(done) ? to_string(std::get<Failure>(done).code) : "");
  EXPECT_EQ(std::get<Success>(done).authcid, "user");
  EXPECT_EQ(std::get<Success>(done).server_final, kServerFinal);
}

TEST(Scram, KeysMatchDovecotsStoredFormat) {
  // `doveadm pw -s SCRAM-SHA-256 -p pencil` (Dovecot 2.3.19) printed:
  // {SCRAM-SHA-256}4096,LHumZYalbUQxPG9IELuL3A==,0eikVICCHztuBOdTn8ZEVPacPXx6ujC1gjIevwC7QZQ=,qaCxTXT8p6MzcYwQabKLyLGFMK6wgFLqqW0YQXdWLNI=
  auto c = scram_credentials("pencil", *base64_decode("LHumZYalbUQxPG9IELuL3A=="), 4096);
  EXPECT_EQ(base64_encode(c.stored_key), "0eikVICCHztuBOdTn8ZEVPacPXx6ujC1gjIevwC7QZQ=");
  EXPECT_EQ(base64_encode(c.server_key), "qaCxTXT8p6MzcYwQabKLyLGFMK6wgFLqqW0YQXdWLNI=");
}

TEST(Scram, ClientRejectsAForgedServerSignature) {
  ClientContext ctx;
  ctx.nonce = [] { return std::string("rOprNGfwEbeRWgbNEkqO"); };
  ScramClient c({"user", "pencil", ""}, ctx, false);
  c.initial();
  ASSERT_TRUE(c.respond(kServerFirst));
  auto r = c.respond("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::server_signature);
  EXPECT_FALSE(c.complete());
}

TEST(Scram, ClientChecksTheServerFirstMessage) {
  struct Case {
    std::string server_first;
    Errc error;
  };
  const Case cases[] = {
      {"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", Errc::nonce},
      {"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", Errc::nonce},  // no server part
      {"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095", Errc::iterations},
      {"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999", Errc::iterations},
      {"r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096", Errc::malformed},
      {"r=rOprNGfwEbeRWgbNEkqOx,i=4096", Errc::malformed},
      {"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", Errc::extension},
      {"e=other-error", Errc::server_error},
  };
  for (const auto& k : cases) {
    ClientContext ctx;
    ctx.nonce = [] { return std::string("rOprNGfwEbeRWgbNEkqO"); };
    ScramClient c({"user", "pencil", ""}, ctx, false);
    c.initial();
    auto r = c.respond(k.server_first);
    ASSERT_FALSE(r) << k.server_first;
    EXPECT_EQ(r.error(), k.error) << k.server_first;
  }
}

TEST(Scram, SaslnameEscaping) {
  EXPECT_EQ(scram_escape("a,b=c"), "a=2Cb=3Dc");
  EXPECT_EQ(scram_unescape("a=2Cb=3Dc"), "a,b=c");
  EXPECT_EQ(scram_unescape("a=2c"), std::nullopt);  // only "=2C" and "=3D"
  EXPECT_EQ(scram_unescape("a="), std::nullopt);
  EXPECT_EQ(scram_unescape("a,b"), std::nullopt);
  ClientContext ctx;
  ScramClient c({"ana,x", "pw", "adm=1"}, ctx, false);
  EXPECT_TRUE(c.initial()->starts_with("n,a=adm=3D1,n=ana=2Cx,r="));
}

TEST(Scram, MalformedClientFirstMessages) {
  struct Case {
    std::string msg;
    Errc error;
  };
  const Case cases[] = {
      {"", Errc::malformed},
      {"n", Errc::malformed},
      {"x,,n=user,r=abc", Errc::malformed},
      {"n,,n=user", Errc::malformed},
      {"n,,r=abc,n=user", Errc::malformed},
      {"n,,n=,r=abc", Errc::empty_identity},
      {"n,,n=us=er,r=abc", Errc::malformed},
      {"n,,n=user,r=", Errc::malformed},
      {"n,,n=user,r=ab,c", Errc::malformed},
      {"n,,m=ext,n=user,r=abc", Errc::extension},  // RFC 5802 §5.1: mandatory extension
      {"n,a=,n=user,r=abc", Errc::malformed},
      {"n,x=y,n=user,r=abc", Errc::malformed},
      {"p=tls-exporter,,n=user,r=abc", Errc::channel_binding},  // p= with the non-PLUS mechanism
  };
  ServerContext ctx;
  for (const auto& c : cases) {
    ScramServer s(ctx, false);
    auto step = s.start(c.msg);
    ASSERT_TRUE(std::holds_alternative<Failure>(step)) << c.msg;
    EXPECT_EQ(std::get<Failure>(step).code, c.error) << c.msg;
  }
  ScramServer ext(ctx, false);  // optional extensions are accepted
  EXPECT_TRUE(std::holds_alternative<NeedCredentials>(ext.start("n,,n=user,r=abc,x=1")));
}

TEST(Scram, MalformedOrTamperedClientFinalMessages) {
  struct Case {
    std::string msg;
    Errc error;
  };
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const Case cases[] = {
      {"c=biws,r=" + nonce, Errc::malformed},                               // no proof
      {"c=biws,r=" + nonce + ",p=AAAA", Errc::malformed},                   // short proof
      {"r=" + nonce + ",c=biws," + proof, Errc::malformed},                 // order
      {"c=eSws,r=" + nonce + "," + proof, Errc::channel_binding},          // "y,," != "n,,"
      {"c=biws,r=" + nonce + "x," + proof, Errc::nonce},
      {"c=biws,r=" + nonce + ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", Errc::bad_proof},
      {"c=biws,r=" + nonce + ",1," + proof, Errc::malformed},
  };
  for (const auto& c : cases) {
    ServerContext ctx;
    ctx.nonce = [] { return std::string("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"); };
    ScramServer s(ctx, false);
    s.start(kClientFirst);
    s.credentials(pencil());
    auto step = s.step(c.msg);
    ASSERT_TRUE(std::holds_alternative<Failure>(step)) << c.msg;
    EXPECT_EQ(std::get<Failure>(step).code, c.error) << c.msg;
  }
}

TEST(Scram, StepsOutOfOrderFail) {
  ServerContext ctx;
  ScramServer s(ctx, false);
  EXPECT_EQ(std::get<Failure>(s.credentials(pencil())).code, Errc::state);
  ScramServer t(ctx, false);
  t.start(kClientFirst);
  EXPECT_EQ(std::get<Failure>(t.step(kClientFinal)).code, Errc::state);  // credentials first
}

TEST(Scram, RoundTripWithoutInitialResponse) {
  ClientContext cctx;
  ServerContext sctx;
  ScramClient c({"ana", "correct horse", ""}, cctx, false);
  ScramServer s(sctx, false);
  auto o = test::drive(c, s, {{"ana", "correct horse"}}, /*use_initial=*/false);
  EXPECT_TRUE(o.ok);
  EXPECT_TRUE(o.client_complete);
  EXPECT_EQ(o.round_trips, 2);  // empty challenge, then server-first
}

TEST(Scram, WrongPasswordAndUnknownUserFailAlike) {
  ServerContext sctx;
  sctx.fake_salt_key = "per-process secret";
  ClientContext cctx;
  ScramClient wrong({"ana", "wrong", ""}, cctx, false);
  ScramServer s1(sctx, false);
  auto a = test::drive(wrong, s1, {{"ana", "right"}});
  ScramClient ghost({"ghost", "whatever", ""}, cctx, false);
  ScramServer s2(sctx, false);
  auto b = test::drive(ghost, s2, {{"ana", "right"}});
  EXPECT_FALSE(a.ok);
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(a.error, Errc::bad_proof);
  EXPECT_EQ(b.error, Errc::bad_proof);
  EXPECT_EQ(a.round_trips, b.round_trips);

  // The stand-in salt of an unknown name is stable (a changing salt would betray it).
  auto salt_of = [&](const std::string& user) {
    ScramServer s(sctx, false);
    s.start("n,,n=" + user + ",r=abc");
    auto c = std::get<Challenge>(s.credentials(std::nullopt)).data;
    return c.substr(c.find(",s="));
  };
  EXPECT_EQ(salt_of("ghost"), salt_of("ghost"));
  EXPECT_NE(salt_of("ghost"), salt_of("phantom"));
}

TEST(Scram, ChannelBindingMatchAndMismatch) {
  const ChannelBinding cb{"tls-exporter", std::string(32, '\x42')};
  ServerContext sctx;
  sctx.channel_bindings = {cb};
  sctx.plus_advertised = true;
  {
    ClientContext cctx;
    cctx.channel_binding = cb;
    cctx.server_offers_plus = true;
    ScramClient c({"ana", "pw", ""}, cctx, true);
    ScramServer s(sctx, true);
    EXPECT_TRUE(c.initial()->starts_with("p=tls-exporter,,"));
    ScramClient c2({"ana", "pw", ""}, cctx, true);
    auto o = test::drive(c2, s, {{"ana", "pw"}});
    EXPECT_TRUE(o.ok);
    EXPECT_TRUE(o.client_complete);
  }
  {
    // A man in the middle terminates TLS: the client's binding differs from the server's.
    ClientContext cctx;
    cctx.channel_binding = ChannelBinding{"tls-exporter", std::string(32, '\x43')};
    ScramClient c({"ana", "pw", ""}, cctx, true);
    ScramServer s(sctx, true);
    auto o = test::drive(c, s, {{"ana", "pw"}});
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.error, Errc::channel_binding);
  }
  {
    // A binding type this connection does not offer.
    ClientContext cctx;
    cctx.channel_binding = ChannelBinding{"tls-unique", std::string(12, '\x01')};
    ScramClient c({"ana", "pw", ""}, cctx, true);
    ScramServer s(sctx, true);
    EXPECT_EQ(test::drive(c, s, {{"ana", "pw"}}).error, Errc::channel_binding);
  }
  {
    // -PLUS without binding ("n") is refused.
    ScramServer s(sctx, true);
    EXPECT_EQ(std::get<Failure>(s.start("n,,n=ana,r=abc")).code, Errc::channel_binding);
  }
}

TEST(Scram, DowngradeFromPlusIsDetected) {
  // RFC 5802 §6: the client can bind but did not see -PLUS ("y"); the server did offer it, so
  // someone stripped it from CAPA.
  ServerContext sctx;
  sctx.channel_bindings = {{"tls-exporter", std::string(32, 'x')}};
  sctx.plus_advertised = true;
  ClientContext cctx;
  cctx.channel_binding = ChannelBinding{"tls-exporter", std::string(32, 'x')};
  cctx.server_offers_plus = false;
  ScramClient c({"ana", "pw", ""}, cctx, false);
  EXPECT_TRUE(c.initial()->starts_with("y,,"));
  ScramServer s(sctx, false);
  EXPECT_EQ(std::get<Failure>(s.start("y,,n=ana,r=abc")).code, Errc::channel_binding);
  // Without -PLUS on offer, "y" is fine.
  ServerContext plain;
  ScramClient c2({"ana", "pw", ""}, cctx, false);
  ScramServer s2(plain, false);
  EXPECT_TRUE(test::drive(c2, s2, {{"ana", "pw"}}).ok);
}

}  // namespace
}  // namespace buzon::sasl
