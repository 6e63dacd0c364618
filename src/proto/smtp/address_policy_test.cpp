// proto/smtp/address_policy_test.cpp — recipient resolution with the address policy: plus-addressing
// (configurable delimiter, Delivered-To keeps the tag), case-insensitive domains, local-part case
// per [users] lowercase, domain aliases, postmaster@/abuse@ of every local domain, virtual aliases
// (several targets, nested, remote, catch-all), and the start-up check of the aliases.
#include "proto/smtp/recipient.hpp"
#include "support/table_directory.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <map>

namespace buzon::smtp {
namespace {

using Users = test::TableDirectory;

Mailbox mb(std::string_view text) {
  auto p = parse_path("<" + std::string(text) + ">", false);
  EXPECT_TRUE(p) << text;
  return p ? p->mailbox : Mailbox{};
}

class AddressPolicy : public ::testing::Test {
 protected:
  AddressPolicy() {
    users_.add("ana@example.com");
    users_.add("bob@example.com");
    users_.add("postmaster@example.com");
    users_.add("a+b@example.com");  // a real user with the delimiter in its name
    policy_.local_domains = {"example.com", "example.net", "example.org"};
    policy_.domain_aliases = {{"example.net", "example.com"}};
    policy_.mail_template = "mail/%d/%n";
    policy_.base_dir = "/m";
  }
  void aliases(std::string_view text) {
    auto t = auth::parse_aliases(text);
    ASSERT_TRUE(t) << t.error().message;
    policy_.aliases = auth::AliasFile::from_table(*t);
  }
  RecipientTargets targets(std::string_view address) { return resolve_targets(mb(address), policy_, users_); }
  // "user address" of each local target, then "remote:x" for each remote one.
  std::vector<std::string> summary(std::string_view address) {
    auto t = targets(address);
    std::vector<std::string> out;
    if (t.verdict != RcptVerdict::local) return {"verdict " + std::to_string(static_cast<int>(t.verdict)) + " " + t.detail};
    for (const auto& l : t.local) out.push_back(l.user + " " + l.address);
    for (const auto& r : t.remote) out.push_back("remote:" + r);
    return out;
  }

  Users users_;
  RecipientPolicy policy_;
};

using V = std::vector<std::string>;

TEST(StripExtension, DelimiterRules) {
  EXPECT_EQ(strip_extension("ana+tag", "+"), "ana");
  EXPECT_EQ(strip_extension("ana+a+b", "+"), "ana");
  EXPECT_EQ(strip_extension("ana-tag", "+-"), "ana");
  EXPECT_EQ(strip_extension("+tag", "+"), "+tag");  // nothing before it: not an extension
  EXPECT_EQ(strip_extension("ana+tag", ""), "ana+tag");
  EXPECT_EQ(strip_extension("ana", "+"), "ana");
}

TEST_F(AddressPolicy, PlainUserAndCaseInsensitiveDomain) {
  EXPECT_EQ(summary("ana@EXAMPLE.Com"), V{"ana@example.com ana@EXAMPLE.Com"});
  auto r = resolve_recipient(mb("ana@example.com"), policy_, users_);
  EXPECT_EQ(r.verdict, RcptVerdict::local);
  EXPECT_EQ(r.box.location, "/m/mail/example.com/ana");
  EXPECT_EQ(targets("nobody@example.com").verdict, RcptVerdict::unknown_user);
  EXPECT_EQ(targets("ana@elsewhere.org").verdict, RcptVerdict::relay_denied);
}

TEST_F(AddressPolicy, LocalPartCasePerConfig) {
  EXPECT_EQ(summary("ANA@example.com"), V{"ana@example.com ANA@example.com"});
  policy_.names.lowercase = false;
  EXPECT_EQ(targets("ANA@example.com").verdict, RcptVerdict::unknown_user);
  EXPECT_EQ(targets("ana@example.com").verdict, RcptVerdict::local);
}

TEST_F(AddressPolicy, PlusAddressingKeepsTheTagInDeliveredTo) {
  EXPECT_EQ(summary("ana+lists@example.com"), V{"ana@example.com ana+lists@example.com"});
  EXPECT_EQ(summary("Ana+x+y@Example.com"), V{"ana@example.com Ana+x+y@Example.com"});
  // A user whose name holds the delimiter is that user, not "a".
  EXPECT_EQ(summary("a+b@example.com"), V{"a+b@example.com a+b@example.com"});
  policy_.delimiter = "";
  EXPECT_EQ(targets("ana+lists@example.com").verdict, RcptVerdict::unknown_user);
  policy_.delimiter = "-";
  EXPECT_EQ(summary("ana-x@example.com"), V{"ana@example.com ana-x@example.com"});
}

TEST_F(AddressPolicy, DomainAlias) {
  EXPECT_EQ(summary("ana@example.net"), V{"ana@example.com ana@example.net"});
  EXPECT_EQ(summary("bob+t@EXAMPLE.NET"), V{"bob@example.com bob+t@EXAMPLE.NET"});
}

TEST_F(AddressPolicy, PostmasterAndAbuseOfEveryLocalDomain) {
  EXPECT_EQ(summary("postmaster@example.org"), V{"postmaster@example.com postmaster@example.org"});
  EXPECT_EQ(summary("ABUSE@example.org"), V{"postmaster@example.com ABUSE@example.org"});
  EXPECT_EQ(summary("Postmaster"), V{"postmaster@example.com postmaster@example.com"});  // RCPT TO:<Postmaster>
  policy_.postmaster = "bob@example.com";
  EXPECT_EQ(summary("abuse@example.com"), V{"bob@example.com abuse@example.com"});
  // The postmaster user itself still gets its own mail.
  EXPECT_EQ(summary("postmaster@example.com"), V{"postmaster@example.com postmaster@example.com"});
  policy_.postmaster = "nobody@example.com";
  auto t = targets("abuse@example.org");
  EXPECT_EQ(t.verdict, RcptVerdict::unknown_user);
  EXPECT_EQ(t.detail, "postmaster target is not a mailbox: nobody@example.com");
}

TEST_F(AddressPolicy, AliasesSeveralTargetsNestedAndRemote) {
  aliases(
      "team@example.com: ana@example.com, ops@example.com\n"
      "ops@example.com: bob@example.com, ana@example.net, far@remote.test\n"
      "info@example.org: ana@example.com\n"
      "abuse@example.com: bob@example.com\n");
  EXPECT_EQ(summary("team@example.com"), (V{"ana@example.com ana@example.com", "bob@example.com bob@example.com",
                                           "remote:far@remote.test"}));
  EXPECT_EQ(summary("info@example.org"), V{"ana@example.com ana@example.com"});
  EXPECT_EQ(summary("info+tag@example.org"), V{"ana@example.com ana@example.com"});
  EXPECT_EQ(summary("abuse@example.com"), V{"bob@example.com bob@example.com"});  // an alias beats the default
  auto one = resolve_recipient(mb("info@example.org"), policy_, users_);
  EXPECT_EQ(one.verdict, RcptVerdict::local);
  EXPECT_EQ(one.user, "ana@example.com");
  // Callers that deliver to one mailbox only refuse the rest, they do not drop it.
  EXPECT_EQ(resolve_recipient(mb("team@example.com"), policy_, users_).verdict, RcptVerdict::temp_failure);
}

TEST_F(AddressPolicy, ForwardingOnlyAndDuplicatesCollapsed) {
  aliases(
      "fwd@example.com: far@remote.test\n"
      "both@example.com: far@remote.test, fwd@example.com, ana@example.com, ana+x@example.com, ANA@example.net\n"
      "@example.org: far@remote.test\n");
  EXPECT_EQ(summary("fwd@example.com"), V{"remote:far@remote.test"});
  EXPECT_EQ(summary("fwd+tag@example.com"), V{"remote:far@remote.test"});
  // One mailbox however many targets reach it; one forward per remote address.
  EXPECT_EQ(summary("both@example.com"), (V{"ana@example.com ana@example.com", "remote:far@remote.test"}));
  EXPECT_EQ(summary("anyone@example.org"), V{"remote:far@remote.test"});  // a catch-all that forwards
}

TEST_F(AddressPolicy, NestedCycleThroughARemoteLookingTargetIsRefused) {
  aliases("a@example.com: b@example.com, far@remote.test\nb@example.com: c@example.com\nc@example.com: a@example.com\n");
  auto t = targets("b@example.com");
  EXPECT_EQ(t.verdict, RcptVerdict::temp_failure);
  EXPECT_EQ(t.detail, "alias loop: b@example.com -> c@example.com -> a@example.com -> b@example.com");
  EXPECT_TRUE(t.local.empty());
  EXPECT_TRUE(t.remote.empty());
}

TEST_F(AddressPolicy, LiveRulesReplaceTheReloadableFields) {
  // The server points every policy at one LiveRules and swaps it on SIGHUP.
  auto live = std::make_shared<LiveRules>(rules_of(policy_, false));
  policy_.live = live;
  EXPECT_EQ(summary("ana+x@example.com"), V{"ana@example.com ana+x@example.com"});
  EXPECT_EQ(summary("abuse@example.org"), V{"postmaster@example.com abuse@example.org"});
  AddressRules next = *live->get();
  next.delimiter = "-";
  next.postmaster = "bob@example.com";
  next.domain_aliases.clear();
  live->set(next);
  EXPECT_EQ(targets("ana+x@example.com").verdict, RcptVerdict::unknown_user);
  EXPECT_EQ(summary("ana-x@example.com"), V{"ana@example.com ana-x@example.com"});
  EXPECT_EQ(summary("abuse@example.org"), V{"bob@example.com abuse@example.org"});
  EXPECT_EQ(targets("ana@example.net").verdict, RcptVerdict::unknown_user);  // no domain alias any more
  // The policy's own fields are ignored while it has live rules.
  policy_.delimiter = "+";
  EXPECT_EQ(targets("ana+x@example.com").verdict, RcptVerdict::unknown_user);
  EXPECT_EQ(with_rules(policy_, next).delimiter, "-");
  next.max_hops = 7;
  EXPECT_EQ(with_rules(policy_, next).max_hops, 7u);
  EXPECT_EQ(with_rules(policy_, next).live, nullptr);
}

TEST_F(AddressPolicy, AliasToMissingUserIsUnknown) {
  aliases("x@example.com: ana@example.com, ghost@example.com\n");
  auto t = targets("x@example.com");
  EXPECT_EQ(t.verdict, RcptVerdict::unknown_user);
  EXPECT_EQ(t.detail, "alias target is not a mailbox: ghost@example.com");
  EXPECT_TRUE(t.local.empty());
}

TEST_F(AddressPolicy, CatchAll) {
  aliases("@example.org: bob@example.com\n");
  EXPECT_EQ(summary("anything@example.org"), V{"bob@example.com bob@example.com"});
  EXPECT_EQ(summary("ana@example.com"), V{"ana@example.com ana@example.com"});  // other domain: none
  EXPECT_EQ(targets("nobody@example.com").verdict, RcptVerdict::unknown_user);
}

TEST_F(AddressPolicy, AliasLoopAtRunTimeIsATemporaryFailure) {
  aliases("a@example.com: b@example.com\nb@example.com: a@example.com\n");
  auto t = targets("a@example.com");
  EXPECT_EQ(t.verdict, RcptVerdict::temp_failure);
  EXPECT_EQ(t.detail, "alias loop: a@example.com -> b@example.com -> a@example.com");
}

TEST_F(AddressPolicy, StartUpCheckOfTheAliases) {
  auto t = *auth::parse_aliases("a@example.com: ana@example.com\nb@example.com: ana@example.com, far@remote.test\n");
  EXPECT_EQ(alias_config_error(t, policy_, "aliases", true), "");
  // Forwarding without an outbound queue: an error naming the file, the line and the fix.
  EXPECT_EQ(alias_config_error(t, policy_, "aliases", false, "/etc/buzon.toml"),
            "aliases:2: 'b@example.com' forwards to the remote address far@remote.test, but this server has no "
            "outbound queue to send it from (fix: add a [queue] section to /etc/buzon.toml so that the relay "
            "delivers forwarded mail, or use a local mailbox as the target)");
  auto two = *auth::parse_aliases("b@example.com: ana@example.com, bob@example.com\n");
  EXPECT_EQ(alias_config_error(two, policy_, "aliases", false), "");  // several local targets: fine
  auto foreign = *auth::parse_aliases("\nx@remote.test: ana@example.com\n");
  EXPECT_NE(alias_config_error(foreign, policy_, "aliases", true).find("aliases:2: 'x@remote.test' is not in a local domain"),
            std::string::npos);
}

TEST_F(AddressPolicy, DefaultQuotaIsWrittenOnlyWhereThereIsNone) {
  const auto base = std::filesystem::temp_directory_path() / ("buzon-rcpt-quota-" + std::to_string(::getpid()));
  std::filesystem::remove_all(base);
  policy_.base_dir = base;
  policy_.default_quota = {1000, 0};
  const auto ana = base / "mail/example.com/ana", bob = base / "mail/example.com/bob";
  EXPECT_EQ(targets("ana@example.com").verdict, RcptVerdict::local);
  EXPECT_FALSE(std::filesystem::exists(ana / "maildirsize"));  // no Maildir yet: the first delivery makes it
  std::filesystem::create_directories(ana / "new");
  std::filesystem::create_directories(bob / "new");
  ASSERT_TRUE(store::maildir::set_maildir_quota(bob, {5000, 10}));  // bob's own quota
  EXPECT_EQ(targets("ana@example.com").verdict, RcptVerdict::local);
  EXPECT_EQ(targets("bob@example.com").verdict, RcptVerdict::local);
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(store::maildir::read_maildirsize(ana, now)->limits.bytes, 1000u);
  EXPECT_EQ(store::maildir::read_maildirsize(bob, now)->limits.bytes, 5000u);
  // SIZE= at RCPT time.
  {
    auto r = resolve_recipient(mb("bob@example.com"), policy_, users_);
    EXPECT_TRUE(fits_quota(r, 5000));
    EXPECT_FALSE(fits_quota(r, 5001));
    EXPECT_TRUE(fits_quota(resolve_recipient(mb("alice@example.com"), policy_, users_), 1u << 30));  // unknown
  }
  // A domain's default instead of the global one.
  policy_.domain_quota["example.com"] = {3000, 0};
  std::filesystem::remove(ana / "maildirsize");
  EXPECT_EQ(targets("ana@example.net").verdict, RcptVerdict::local);  // a domain alias of example.com
  EXPECT_EQ(store::maildir::read_maildirsize(ana, now)->limits.bytes, 3000u);
  // A quota_rule in the passwd-file is the user's own and wins over what the file says.
  users_.add("bob@example.com", {"*:storage=2k", "*:messages=7"});
  EXPECT_EQ(targets("bob@example.com").verdict, RcptVerdict::local);
  EXPECT_EQ(store::maildir::read_maildirsize(bob, now)->limits.bytes, 2048u);
  EXPECT_EQ(store::maildir::read_maildirsize(bob, now)->limits.messages, 7u);
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace buzon::smtp
