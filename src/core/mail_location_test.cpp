#include "core/mail_location.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(MailLocation, ExpandsTemplateUnderBase) {
  auto p = mail_location("mail/%d/%n/Maildir", "/var/buzon", "ana@example.com");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(*p, std::filesystem::path("/var/buzon/mail/example.com/ana/Maildir"));
  auto q = mail_location("mail/%d/%n/Maildir", "/var/buzon", "demo");
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, std::filesystem::path("/var/buzon/mail/demo/Maildir"));
  auto u = mail_location("/srv/%u", "/var/buzon", "a@b");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, std::filesystem::path("/srv/a@b"));
}

TEST(MailLocation, EntryOverridesTemplate) {
  auto p = mail_location("mail/%n", "/var/buzon", "ana", "maildir:~/Maildir:INDEX=/x", "/home/ana");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(*p, std::filesystem::path("/home/ana/Maildir"));
  auto q = mail_location("mail/%n", "/var/buzon", "ana", "/srv/ana");
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, std::filesystem::path("/srv/ana"));
}

TEST(MailLocation, RefusesEscapes) {
  // canonical_username refuses these first; this is the second wall.
  EXPECT_FALSE(mail_location("mail/%n", "/var/buzon", "../../etc"));
  EXPECT_FALSE(mail_location("mail/%d/%n", "/var/buzon", "x@../.."));
  EXPECT_FALSE(mail_location("mail/%q", "/var/buzon", "x"));
}

}  // namespace
}  // namespace buzon
