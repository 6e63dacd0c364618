#include "server/privileges.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>

namespace buzon::server {
namespace {

using A = PrivilegePlan::Action;

ServerConfig with_user(std::string user, std::string group = "") {
  ServerConfig c;
  c.user = std::move(user);
  c.group = std::move(group);
  return c;
}

TEST(Privileges, NotRootNeverChangesAnything) {
  auto p = decide_privileges(1000, with_user("buzon"), std::nullopt, std::nullopt, "f.toml");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->action, A::none);
  p = decide_privileges(1000, with_user("root"), std::nullopt, std::nullopt, "f.toml");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->action, A::none);
}

TEST(Privileges, RootDropsToTheConfiguredUser) {
  auto p = decide_privileges(0, with_user("buzon"), Account{"buzon", 120, 130}, std::nullopt, "f.toml");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->action, A::drop);
  EXPECT_EQ(p->uid, 120u);
  EXPECT_EQ(p->gid, 130u);
  p = decide_privileges(0, with_user("buzon", "mail"), Account{"buzon", 120, 130}, gid_t{8}, "f.toml");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->gid, 8u);
}

TEST(Privileges, RootWithoutAnAccountToDropToRefuses) {
  auto p = decide_privileges(0, with_user("buzon"), std::nullopt, std::nullopt, "/etc/buzon/buzon.toml");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().find("refusing to run as root"), std::string::npos);
  EXPECT_NE(p.error().find("/etc/buzon/buzon.toml"), std::string::npos);
  EXPECT_NE(p.error().find("adduser --system"), std::string::npos);
  EXPECT_FALSE(decide_privileges(0, with_user(""), std::nullopt, std::nullopt, "f"));
  EXPECT_FALSE(decide_privileges(0, with_user("toor"), Account{"toor", 0, 0}, std::nullopt, "f"));  // uid 0 alias
  EXPECT_FALSE(decide_privileges(0, with_user("buzon"), Account{"buzon", 120, 0}, std::nullopt, "f"));  // gid 0
  EXPECT_FALSE(decide_privileges(0, with_user("buzon", "nogroup-x"), Account{"buzon", 120, 130}, std::nullopt, "f"));
  EXPECT_FALSE(decide_privileges(0, with_user("buzon", "root"), Account{"buzon", 120, 130}, gid_t{0}, "f"));
}

TEST(Privileges, RootStaysRootOnlyWhenAskedExplicitly) {
  auto p = decide_privileges(0, with_user("root"), std::nullopt, std::nullopt, "f.toml");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->action, A::stay_root);
  EXPECT_NE(p->note.find("root"), std::string::npos);
}

TEST(Privileges, DescribeCredentials) {
  auto d = describe_credentials();
  EXPECT_NE(d.find("uid="), std::string::npos);
  EXPECT_NE(d.find("caps="), std::string::npos);
}

}  // namespace
}  // namespace buzon::server

namespace buzon::server {
namespace {

TEST(FdLimit, SoftLimitIsRaisedToTheHardLimit) {
  struct rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  struct rlimit lowered = before;
  lowered.rlim_cur = std::min<rlim_t>(before.rlim_max, 256);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  const auto now = raise_fd_limit();
  struct rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
  EXPECT_EQ(now, after.rlim_cur == RLIM_INFINITY ? UINT64_MAX : after.rlim_cur);
  ::setrlimit(RLIMIT_NOFILE, &before);
}

}  // namespace
}  // namespace buzon::server
