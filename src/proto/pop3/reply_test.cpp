// proto/pop3/reply_test.cpp — exact bytes of status lines, response codes, multi-line replies,
// SASL challenges and CAPA; sanitizing of untrusted text.
#include "proto/pop3/reply.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/pop3/limits.hpp"

namespace buzon::pop3 {
namespace {

using namespace std::string_literals;

TEST(Reply, StatusLines) {
  EXPECT_EQ(ok(), "+OK\r\n");
  EXPECT_EQ(ok(""), "+OK\r\n");
  EXPECT_EQ(ok("maildrop has 2 messages (320 octets)"),
            "+OK maildrop has 2 messages (320 octets)\r\n");
  EXPECT_EQ(err("no such message"), "-ERR no such message\r\n");
  EXPECT_EQ(err(""), "-ERR\r\n");
}

TEST(Reply, ResponseCodes) {
  EXPECT_EQ(err(RespCode::in_use, "maildrop already locked"),
            "-ERR [IN-USE] maildrop already locked\r\n");
  EXPECT_EQ(err(RespCode::login_delay, "wait 5 minutes"), "-ERR [LOGIN-DELAY] wait 5 minutes\r\n");
  EXPECT_EQ(err(RespCode::sys_temp, "try later"), "-ERR [SYS/TEMP] try later\r\n");
  EXPECT_EQ(err(RespCode::sys_perm, "broken"), "-ERR [SYS/PERM] broken\r\n");
  EXPECT_EQ(err(RespCode::auth, "invalid credentials"), "-ERR [AUTH] invalid credentials\r\n");
  EXPECT_EQ(err(RespCode::utf8, "message needs UTF8"), "-ERR [UTF8] message needs UTF8\r\n");
  EXPECT_EQ(err(RespCode::auth, ""), "-ERR [AUTH]\r\n");
  EXPECT_EQ(err(RespCode::none, "plain"), "-ERR plain\r\n");
  EXPECT_EQ(resp_code_name(RespCode::none), "");
  EXPECT_EQ(resp_code_name(RespCode::sys_temp), "SYS/TEMP");
}

TEST(Reply, CrLfAndControlsInTextAreNeutralized) {
  // A user name echoed back must not start a new reply line.
  EXPECT_EQ(err("user bob\r\n+OK fake"), "-ERR user bob  +OK fake\r\n");
  EXPECT_EQ(ok("a\rb\nc\0d\te\x7f"s), "+OK a b c d e \r\n");
  EXPECT_EQ(err(RespCode::sys_temp, "store: x\r\ny"), "-ERR [SYS/TEMP] store: x  y\r\n");
}

TEST(Reply, TextCannotFakeAResponseCode) {
  // RFC 2449 §6.4: with RESP-CODES, text that starts with '[' is a response code.
  EXPECT_EQ(err("[IN-USE] fake"), "-ERR (IN-USE] fake\r\n");
  EXPECT_EQ(ok("[x"), "+OK (x\r\n");
  EXPECT_EQ(err(RespCode::auth, "[kept]"), "-ERR [AUTH] [kept]\r\n") << "after a real code";
  EXPECT_EQ(err("a [b]"), "-ERR a [b]\r\n");
}

TEST(Reply, StatusLinesAreAtMost512Octets) {
  const std::string long_text(2000, 'x');
  const std::string r = err(long_text);
  EXPECT_EQ(r.size(), kMaxReplyLine);
  EXPECT_EQ(r.substr(0, 6), "-ERR x");
  EXPECT_EQ(r.substr(r.size() - 2), "\r\n");
  EXPECT_EQ(ok(long_text).size(), kMaxReplyLine);
  EXPECT_EQ(err(RespCode::login_delay, long_text).size(), kMaxReplyLine);
  // Exactly at the limit: untouched.
  const std::string fits(kMaxReplyLine - 7, 'y');  // "-ERR " + text + CRLF
  EXPECT_EQ(err(fits), "-ERR " + fits + "\r\n");
}

TEST(Reply, TruncationDoesNotSplitUtf8) {
  // 506 octets of room after "+OK "; "a" then 2-octet characters puts the cut inside one.
  std::string text = "a";
  for (int i = 0; i < 300; ++i) text += "\xc3\xa9";
  const std::string r = ok(text);
  ASSERT_EQ(r.size(), kMaxReplyLine - 1);
  const std::string body = r.substr(4, r.size() - 6);
  ASSERT_EQ(body.size(), 505u);
  EXPECT_EQ(body[0], 'a');
  for (std::size_t i = 1; i < body.size(); i += 2) EXPECT_EQ(body.substr(i, 2), "\xc3\xa9");
  EXPECT_EQ(r.substr(r.size() - 2), "\r\n");
}

TEST(Reply, Challenge) {
  EXPECT_EQ(challenge(""), "+ \r\n");  // RFC 5034 §4 empty challenge
  EXPECT_EQ(challenge("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+"),
            "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+\r\n");
  EXPECT_EQ(challenge("abc\r\n+OK"), "+ abc\r\n");
  EXPECT_EQ(challenge("abc def"), "+ abc\r\n");
}

TEST(Reply, MultiLineListing) {
  const std::vector<std::string> lines = {scan_listing(1, 120), scan_listing(2, 200)};
  EXPECT_EQ(multiline("2 messages (320 octets)", lines),
            "+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n");  // RFC 1939 §5 LIST
  EXPECT_EQ(multiline("", {}), "+OK\r\n.\r\n");
}

TEST(Reply, AppendLineStuffsAndSanitizes) {
  std::string out;
  append_line(out, ".hidden");
  append_line(out, ".");
  append_line(out, "a\r\n.\r\nb");
  append_line(out, "");
  append_end(out);
  EXPECT_EQ(out, "..hidden\r\n..\r\na  .  b\r\n\r\n.\r\n");
  std::string big;
  append_line(big, "." + std::string(1000, 'z'));
  EXPECT_EQ(big.size(), kMaxReplyLine);
  EXPECT_EQ(big.substr(0, 3), "..z");
}

TEST(Reply, Listings) {
  EXPECT_EQ(scan_listing(2, 200), "2 200");
  EXPECT_EQ(ok(scan_listing(2, 200)), "+OK 2 200\r\n");
  EXPECT_EQ(uid_listing(2, "QhdPYR:00WBw1Ph7x7"), "2 QhdPYR:00WBw1Ph7x7");  // RFC 1939 §7
  EXPECT_EQ(drop_listing(2, 320), "2 320");
  EXPECT_EQ(ok(drop_listing(0, 0)), "+OK 0 0\r\n");
  EXPECT_EQ(scan_listing(1, 18446744073709551615u), "1 18446744073709551615");
}

TEST(Reply, ValidUid) {
  EXPECT_TRUE(valid_uid("QhdPYR:00WBw1Ph7x7"));
  EXPECT_TRUE(valid_uid("!"));
  EXPECT_TRUE(valid_uid("~"));
  EXPECT_TRUE(valid_uid(std::string(70, 'u')));
  EXPECT_FALSE(valid_uid(""));
  EXPECT_FALSE(valid_uid(std::string(71, 'u')));
  EXPECT_FALSE(valid_uid("a b"));
  EXPECT_FALSE(valid_uid("a\x7f"));
  EXPECT_FALSE(valid_uid("a\r\n"));
  EXPECT_FALSE(valid_uid("\xc3\xa9"));
}

// ---- CAPA ----------------------------------------------------------------------------------

CapaOptions minimal() {
  CapaOptions o;
  o.user = false;
  o.apop_ok = false;
  o.sasl = {};
  o.stls = false;
  o.utf8 = false;
  o.expire_days = std::nullopt;
  o.expire_per_user = false;
  o.login_delay = 0;
  o.implementation = "";
  o.pipelining = false;
  return o;
}

TEST(Capa, Minimal) {
  EXPECT_EQ(format_capa(minimal()),
            "+OK Capability list follows\r\n"
            "TOP\r\n"
            "UIDL\r\n"
            "RESP-CODES\r\n"
            "AUTH-RESP-CODE\r\n"
            "EXPIRE NEVER\r\n"
            ".\r\n");
}

TEST(Capa, Everything) {
  CapaOptions o = minimal();
  o.user = true;
  o.apop_ok = true;
  o.sasl = {"PLAIN", "LOGIN", "SCRAM-SHA-256"};
  o.stls = true;
  o.utf8 = true;
  o.expire_days = 30;
  o.expire_per_user = true;
  o.login_delay = 900;
  o.implementation = "buzon-0.1.0";
  o.pipelining = true;
  EXPECT_EQ(format_capa(o),
            "+OK Capability list follows\r\n"
            "TOP\r\n"
            "USER\r\n"
            "UIDL\r\n"
            "RESP-CODES\r\n"
            "PIPELINING\r\n"
            "AUTH-RESP-CODE\r\n"
            "EXPIRE 30 USER\r\n"
            "LOGIN-DELAY 900\r\n"
            "SASL PLAIN LOGIN SCRAM-SHA-256\r\n"
            "STLS\r\n"
            "UTF8 USER\r\n"
            "IMPLEMENTATION buzon-0.1.0\r\n"
            ".\r\n");
}

TEST(Capa, ApopIsNeverACapability) {
  // RFC 2449 §6: APOP is announced by the greeting's timestamp only.
  CapaOptions o = minimal();
  o.apop_ok = true;
  EXPECT_EQ(format_capa(o), format_capa(minimal()));
}

TEST(Capa, Expire) {
  auto expire_line = [](std::optional<int> days, bool per_user) {
    CapaOptions o = minimal();
    o.expire_days = days;
    o.expire_per_user = per_user;
    const std::string capa = format_capa(o);
    const auto at = capa.find("EXPIRE");
    return capa.substr(at, capa.find("\r\n", at) - at);
  };
  EXPECT_EQ(expire_line(std::nullopt, false), "EXPIRE NEVER");
  EXPECT_EQ(expire_line(-1, false), "EXPIRE NEVER");
  EXPECT_EQ(expire_line(-7, false), "EXPIRE NEVER");
  EXPECT_EQ(expire_line(std::nullopt, true), "EXPIRE NEVER");
  EXPECT_EQ(expire_line(0, false), "EXPIRE 0");  // RFC 2449 §6.7: no leaving mail on server
  EXPECT_EQ(expire_line(60, false), "EXPIRE 60");
  EXPECT_EQ(expire_line(5, true), "EXPIRE 5 USER");
}

TEST(Capa, LoginDelayOmittedWhenNotPositive) {
  CapaOptions o = minimal();
  o.login_delay = -5;
  EXPECT_EQ(format_capa(o).find("LOGIN-DELAY"), std::string::npos);
  o.login_delay = 1;
  EXPECT_NE(format_capa(o).find("\r\nLOGIN-DELAY 1\r\n"), std::string::npos);
}

TEST(Capa, SaslNamesAreValidated) {
  CapaOptions o = minimal();
  o.sasl = {"plain", "BAD NAME", "", "X\r\nSTLS", std::string(21, 'A'), "CRAM-MD5", "X_Y"};
  const std::string capa = format_capa(o);
  EXPECT_NE(capa.find("\r\nSASL PLAIN CRAM-MD5 X_Y\r\n"), std::string::npos) << capa;
  EXPECT_EQ(capa.find("STLS"), std::string::npos);
  o.sasl = {"no good"};
  EXPECT_EQ(format_capa(o).find("SASL"), std::string::npos) << "no valid name: no SASL line";
}

TEST(Capa, ImplementationIsSanitized) {
  CapaOptions o = minimal();
  o.implementation = "buzon\r\nSTLS";
  const std::string capa = format_capa(o);
  EXPECT_NE(capa.find("\r\nIMPLEMENTATION buzon  STLS\r\n.\r\n"), std::string::npos) << capa;
  o.implementation = std::string(1000, 'i');
  const std::string big = format_capa(o);
  const auto at = big.find("IMPLEMENTATION");
  EXPECT_EQ(big.find("\r\n", at) + 2 - at, kMaxReplyLine);
}

TEST(Capa, EveryLineIsACapaTag) {
  // RFC 2449 §3: capa-tag = 1*cchar (printable, not '.'), lines of at most 512 octets.
  CapaOptions o = minimal();
  o.user = o.stls = o.utf8 = o.pipelining = true;
  o.sasl = {"PLAIN"};
  o.login_delay = 10;
  o.implementation = "x";
  const std::string capa = format_capa(o);
  std::size_t pos = capa.find("\r\n") + 2;
  int lines = 0;
  while (true) {
    const auto end = capa.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos);
    const std::string line = capa.substr(pos, end - pos);
    pos = end + 2;
    if (line == ".") break;
    ++lines;
    ASSERT_FALSE(line.empty());
    EXPECT_NE(line[0], '.');
    EXPECT_LE(line.size() + 2, kMaxReplyLine);
    for (char c : line) EXPECT_TRUE(c >= 0x20 && c < 0x7F) << line;
  }
  EXPECT_EQ(pos, capa.size());
  EXPECT_EQ(lines, 12);
}

}  // namespace
}  // namespace buzon::pop3
