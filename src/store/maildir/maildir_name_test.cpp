// store/maildir/maildir_name_test.cpp — pure parsers of the Maildir backend: file names,
// dovecot-uidlist, X-UIDL header scanning.
//
// SECURITY  Tests only.
// STANDARDS cr.yp.to/proto/maildir.html; Dovecot maildir-uidlist.c; RFC 5322 §2.2.
// LIMITS    None.
#include <gtest/gtest.h>

#include "store/maildir/dovecot_uidlist.hpp"
#include "store/maildir/maildir_name.hpp"
#include "store/maildir/message_scan.hpp"

namespace buzon::store::maildir {
namespace {

TEST(MaildirName, BaseNameStopsAtInfo) {
  EXPECT_EQ(base_name("1.M1P1.h,S=5:2,S"), "1.M1P1.h,S=5");
  EXPECT_EQ(base_name("1.M1P1.h"), "1.M1P1.h");
  EXPECT_EQ(base_name(":2,S"), "");
}

TEST(MaildirName, SizeHints) {
  EXPECT_EQ(size_hint("1.M1P1.h,S=5,W=7:2,S", 'S'), 5u);
  EXPECT_EQ(size_hint("1.M1P1.h,S=5,W=7:2,S", 'W'), 7u);
  EXPECT_EQ(size_hint("1.M1P1.h,W=7", 'S'), std::nullopt);
  EXPECT_EQ(size_hint("1.M1P1.h,S=", 'S'), std::nullopt);
  EXPECT_EQ(size_hint("1.M1P1.h,S=12x", 'S'), std::nullopt);
  EXPECT_EQ(size_hint("1.M1P1.h,S=99999999999999999999999", 'S'), std::nullopt);
  EXPECT_EQ(size_hint("1.M1P1.h:2,S,W=7", 'W'), std::nullopt);  // in the info, not the base
  EXPECT_EQ(size_hint("1.M1P1.h,S=x,S=4", 'S'), 4u);
}

TEST(MaildirName, Flags) {
  EXPECT_EQ(info_flags("a:2,FRS"), "FRS");
  EXPECT_EQ(info_flags("a:2,"), "");
  EXPECT_EQ(info_flags("a"), std::nullopt);
  EXPECT_EQ(info_flags("a:1,x"), std::nullopt);
  EXPECT_TRUE(has_flag("a:2,RS", 'S'));
  EXPECT_FALSE(has_flag("a:2,R", 'S'));
  EXPECT_FALSE(has_flag("aS", 'S'));
  EXPECT_EQ(with_flag("a", 'S'), "a:2,S");
  EXPECT_EQ(with_flag("a:2,", 'S'), "a:2,S");
  EXPECT_EQ(with_flag("a:2,TRF", 'S'), "a:2,FRST");
  EXPECT_EQ(with_flag("a:2,S", 'S'), "a:2,S");
  EXPECT_EQ(with_flag("a:2,abc", 'S'), "a:2,Sabc");  // keywords (lower case) sort after
  EXPECT_EQ(with_flag("a:1,x", 'S'), std::nullopt);
}

TEST(MaildirName, NameTime) {
  EXPECT_EQ(name_time("1700000000.M123456P99.host"), (NameTime{1700000000, 123456}));
  EXPECT_EQ(name_time("1700000000.V801I12M345.host"), (NameTime{1700000000, 345}));
  EXPECT_EQ(name_time("1700000000.12345_0.host"), (NameTime{1700000000, 0}));
  EXPECT_EQ(name_time("1700000000.P1.hostM5"), (NameTime{1700000000, 0}));  // M in host: no
  EXPECT_EQ(name_time("abc.def"), std::nullopt);
  EXPECT_EQ(name_time(".1700000000"), std::nullopt);
  EXPECT_EQ(name_time("1700000000"), std::nullopt);
}

TEST(MaildirName, NaturalCompare) {
  EXPECT_TRUE(natural_compare("Q9", "Q10") < 0);
  EXPECT_TRUE(natural_compare("Q10", "Q9") > 0);
  EXPECT_TRUE(natural_compare("a1b", "a1b") == 0);
  EXPECT_TRUE(natural_compare("a", "ab") < 0);
  EXPECT_TRUE(natural_compare("1.M9P1", "1.M10P1") < 0);
  EXPECT_TRUE(natural_compare("a01", "a1") != 0);  // total: equal numbers, different text
  EXPECT_TRUE(natural_compare("a" + std::string(40, '9'), "a1" + std::string(40, '0')) < 0);
}

TEST(MaildirName, EscapeHost) {
  EXPECT_EQ(escape_host("mx.example.org"), "mx.example.org");
  EXPECT_EQ(escape_host("a/b:c,d"), "a\\057b\\072c\\054d");
  EXPECT_EQ(escape_host(""), "localhost");
}

TEST(DovecotUidlist, ParsesVersion3) {
  auto l = parse_dovecot_uidlist(
      "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n"
      "25020 :1275660000.M1P1.host,S=3734\n"
      "25021 W100 S98 :1275660001.M2P2.host:2,S\n"
      "25022 P O7 :name with spaces\n"
      "25023 Pabc :dir/evil\n"
      "0 :zero\n"
      "25024 W1\n");
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->uid_validity, 1275660208u);
  EXPECT_EQ(l->by_base.size(), 3u);
  EXPECT_EQ(l->by_base.at("1275660000.M1P1.host,S=3734").uid, 25020u);
  EXPECT_EQ(l->by_base.at("1275660001.M2P2.host").uid, 25021u);
  EXPECT_FALSE(l->by_base.at("1275660001.M2P2.host").pop3_uidl.has_value());
  EXPECT_EQ(l->by_base.at("name with spaces").pop3_uidl, "");
  EXPECT_EQ(l->by_base.at("name with spaces").pop3_order, 7u);
}

TEST(DovecotUidlist, RejectsBadHeaders) {
  EXPECT_FALSE(parse_dovecot_uidlist("").has_value());
  EXPECT_FALSE(parse_dovecot_uidlist("3 N5\n").has_value());         // no UIDVALIDITY
  EXPECT_FALSE(parse_dovecot_uidlist("3 V0 N5\n").has_value());      // zero
  EXPECT_FALSE(parse_dovecot_uidlist("2 V1 N5\n").has_value());      // unsupported version
  EXPECT_FALSE(parse_dovecot_uidlist("3 V99999999999 N5\n").has_value());
  EXPECT_TRUE(parse_dovecot_uidlist("3 V1 N5").has_value());         // header only, no newline
}

TEST(DovecotUidlist, DefaultUidlFormat) {
  EXPECT_EQ(dovecot_default_uidl(25020, 1275660208), "000061bc4c0907b0");
  EXPECT_EQ(dovecot_default_uidl(1, 1655390361), "0000000162ab4099");
  EXPECT_EQ(dovecot_default_uidl(0xFFFFFFFE, 0xFFFFFFFF), "fffffffeffffffff");
}

TEST(XUidl, FindsFirstValidHeaderOnly) {
  EXPECT_EQ(find_x_uidl("X-UIDL: a1\n\n", false), "a1");
  EXPECT_EQ(find_x_uidl("x-uidl:a1\r\n\r\n", false), "a1");
  EXPECT_EQ(find_x_uidl("X-UIDL:\n\tfolded\n\n", false), "folded");
  EXPECT_EQ(find_x_uidl("X-UIDL: a1\nX-UIDL: a2\n\n", false), "a1");
  EXPECT_EQ(find_x_uidl("Subject: x\n\nX-UIDL: body\n", true), std::nullopt);
  EXPECT_EQ(find_x_uidl("X-UIDL: two words\n\n", false), std::nullopt);
  EXPECT_EQ(find_x_uidl("X-UIDL:\n\n", false), std::nullopt);
  EXPECT_EQ(find_x_uidl("X-UIDL: partial", false), std::nullopt);  // line not complete yet
  EXPECT_EQ(find_x_uidl("X-UIDL: whole", true), "whole");
  EXPECT_EQ(find_x_uidl("X-UIDLX: no\n\n", false), std::nullopt);
  EXPECT_EQ(find_x_uidl("\nX-UIDL: after-empty-line\n", true), std::nullopt);
}

}  // namespace
}  // namespace buzon::store::maildir
