// dns/dns_test.cpp — order_mx() and route() over a fake Resolver; the c-ares Resolver against a
// private dnsmasq on 127.0.0.1 (started here, stopped by PID; skipped only if dnsmasq is missing).
#include "dns/names.hpp"
#include "dns/resolver.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

namespace buzon::dns {
namespace {

// ---- pure parts ------------------------------------------------------------------------------

TEST(HostName, NormalizesAndRejects) {
  EXPECT_EQ(normalize_hostname("MX1.Example.COM."), "mx1.example.com");
  EXPECT_EQ(normalize_hostname("3com.example"), "3com.example");
  EXPECT_EQ(normalize_hostname("a-b.c"), "a-b.c");
  for (std::string_view bad : {"", ".", "a..b", "-a.b", "a-.b", "a_b.c", "a b", "a\nb", "\xc3\xa9.fr", ".a"})
    EXPECT_FALSE(normalize_hostname(bad)) << bad;
  EXPECT_TRUE(normalize_hostname(std::string(63, 'a') + ".b"));
  EXPECT_FALSE(normalize_hostname(std::string(64, 'a') + ".b"));
  std::string long_name;
  while (long_name.size() < 250) long_name += "abcdefghi.";
  EXPECT_FALSE(normalize_hostname(long_name + "abcd"));  // 254 octets
}

TEST(OrderMx, SortsByPreference) {
  auto r = order_mx({{20, "b.test"}, {10, "a.test"}, {30, "c.test"}}, 1);
  EXPECT_FALSE(r.null_mx);
  EXPECT_EQ(r.hosts, (std::vector<std::string>{"a.test", "b.test", "c.test"}));
}

TEST(OrderMx, ShufflesEqualPreferencesDeterministicallyBySeed) {
  std::vector<MxRecord> in{{5, "z.test"}, {10, "a.test"}, {10, "b.test"}, {10, "c.test"}, {10, "d.test"}, {20, "y.test"}};
  std::set<std::vector<std::string>> seen;
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    auto r = order_mx(in, seed);
    EXPECT_EQ(r.hosts, order_mx(in, seed).hosts);  // same seed, same order
    ASSERT_EQ(r.hosts.size(), 6u);
    EXPECT_EQ(r.hosts.front(), "z.test");
    EXPECT_EQ(r.hosts.back(), "y.test");
    std::vector<std::string> mid(r.hosts.begin() + 1, r.hosts.end() - 1);
    std::sort(mid.begin(), mid.end());
    EXPECT_EQ(mid, (std::vector<std::string>{"a.test", "b.test", "c.test", "d.test"}));
    seen.insert(r.hosts);
  }
  EXPECT_GT(seen.size(), 5u);  // equal preferences really are shuffled
}

TEST(OrderMx, NullMx) {
  EXPECT_TRUE(order_mx({{0, ""}}, 1).null_mx);
  EXPECT_TRUE(order_mx({{0, "."}}, 1).null_mx);
  // "." among other records is not a null MX (RFC 7505 §3): it is dropped as an unusable host.
  auto r = order_mx({{0, ""}, {10, "mx.test"}}, 1);
  EXPECT_FALSE(r.null_mx);
  EXPECT_EQ(r.hosts, std::vector<std::string>{"mx.test"});
  auto r2 = order_mx({{10, ""}}, 1);
  EXPECT_FALSE(r2.null_mx);
  EXPECT_TRUE(r2.hosts.empty());
}

TEST(OrderMx, DropsInvalidNamesAndDuplicatesAndCaps) {
  auto r = order_mx({{10, "bad_name.test"}, {20, "Good.Test."}, {30, "good.test"}, {5, "a..b"}}, 7);
  EXPECT_EQ(r.hosts, std::vector<std::string>{"good.test"});
  std::vector<MxRecord> many;
  for (int i = 0; i < 40; ++i) many.push_back({static_cast<std::uint16_t>(i), "mx" + std::to_string(i) + ".test"});
  auto capped = order_mx(many, 1);
  ASSERT_EQ(capped.hosts.size(), kMaxMx);
  EXPECT_EQ(capped.hosts[0], "mx0.test");
}

class FakeResolver : public Resolver {
 public:
  std::map<std::string, DnsResult<std::vector<MxRecord>>> mxs;
  std::vector<std::string> asked;
  DnsResult<std::vector<MxRecord>> mx(std::string_view domain) override {
    asked.emplace_back(domain);
    auto it = mxs.find(std::string(domain));
    if (it == mxs.end()) return std::unexpected(DnsError{DnsErrc::nxdomain, std::string(domain) + ": no such domain"});
    return it->second;
  }
  DnsResult<std::vector<std::string>> addresses(std::string_view) override { return std::vector<std::string>{}; }
};

TEST(Route, MxImplicitNullAndErrors) {
  FakeResolver f;
  f.mxs["b.test"] = std::vector<MxRecord>{{20, "mx2.b.test"}, {10, "mx1.b.test"}};
  f.mxs["nodata.test"] = std::unexpected(DnsError{DnsErrc::nodata, "nodata.test: no MX record"});
  f.mxs["null.test"] = std::vector<MxRecord>{{0, ""}};
  f.mxs["slow.test"] = std::unexpected(DnsError{DnsErrc::temporary, "slow.test: MX lookup timed out"});
  f.mxs["junk.test"] = std::vector<MxRecord>{{10, "bad_host.test"}};

  auto b = route(f, "B.Test.");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->hosts, (std::vector<std::string>{"mx1.b.test", "mx2.b.test"}));
  EXPECT_EQ(f.asked.back(), "b.test");  // the query name is normalized

  auto imp = route(f, "nodata.test");
  ASSERT_TRUE(imp);
  EXPECT_FALSE(imp->null_mx);
  EXPECT_EQ(imp->hosts, std::vector<std::string>{"nodata.test"});

  auto null = route(f, "null.test");
  ASSERT_TRUE(null);
  EXPECT_TRUE(null->null_mx);
  EXPECT_TRUE(null->hosts.empty());

  auto nx = route(f, "nx.test");
  ASSERT_FALSE(nx);
  EXPECT_EQ(nx.error().code, DnsErrc::nxdomain);  // permanent: no fallback to the domain

  auto slow = route(f, "slow.test");
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code, DnsErrc::temporary);

  auto junk = route(f, "junk.test");
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, DnsErrc::invalid);  // MX exists but is unusable: not implicit MX

  auto bad = route(f, "bad domain");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, DnsErrc::invalid);
}

TEST(MakeResolver, RejectsBadServers) {
  EXPECT_FALSE(make_resolver({.servers = {"not an address"}}));
  EXPECT_FALSE(make_resolver({.servers = {"1.2.3.4,5.6.7.8"}}));
  EXPECT_FALSE(make_resolver({.servers = {"127.0.0.1:99999"}}));
  EXPECT_FALSE(make_resolver({.servers = {"[::1"}}));
  EXPECT_FALSE(make_resolver({.servers = {"127.0.0.1:"}}));
  EXPECT_TRUE(make_resolver({.servers = {"127.0.0.1:5353", "[::1]:53", "10.0.0.1", "2001:db8::1", "[::1]"}}));
}

// ---- the c-ares resolver against a private dnsmasq ------------------------------------------

const char* kDnsmasq = "/usr/sbin/dnsmasq";

int free_udp_port() {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

bool tcp_connects(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

class Dnsmasq {
 public:
  explicit Dnsmasq(std::vector<std::string> records) {
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      port_ = free_udp_port();
      std::vector<std::string> args{kDnsmasq,      "--no-resolv",       "--no-hosts",
                                    "--conf-file=/dev/null", "--keep-in-foreground", "--bind-interfaces",
                                    "--listen-address=127.0.0.1", "--port=" + std::to_string(port_),
                                    "--local=/#/", "--log-facility=/dev/null", "--pid-file="};
      for (auto& r : records) args.push_back(r);
      pid_t pid = ::fork();
      if (pid == 0) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(kDnsmasq, argv.data());
        ::_exit(127);
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {  // exited: the port was taken, try another
          pid = -1;
          break;
        }
        if (tcp_connects(port_)) {
          pid_ = pid;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (pid > 0 && pid_ <= 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  }
  ~Dnsmasq() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool running() const { return pid_ > 0; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

class CaresTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::access(kDnsmasq, X_OK) != 0) return;
    dns_ = new Dnsmasq({"--mx-host=b.test,mx2.b.test,20", "--mx-host=b.test,mx1.b.test,10",
                        "--mx-host=b.test,mx3.b.test,20", "--mx-host=null.test,.,0",
                        "--host-record=mx1.b.test,192.0.2.1,2001:db8::1", "--host-record=v6.test,2001:db8::6",
                        "--host-record=imp.test,192.0.2.9", "--host-record=two.test,192.0.2.20",
                        "--host-record=two.test,192.0.2.21"});
  }
  static void TearDownTestSuite() {
    delete dns_;
    dns_ = nullptr;
  }
  void SetUp() override {
    if (::access(kDnsmasq, X_OK) != 0) GTEST_SKIP() << kDnsmasq << " is not installed";
    ASSERT_TRUE(dns_ && dns_->running()) << "dnsmasq did not start";
    auto r = make_resolver({.servers = {dns_->server()}, .timeout = std::chrono::milliseconds(2000), .tries = 2});
    ASSERT_TRUE(r) << r.error();
    resolver_ = std::move(*r);
  }
  static inline Dnsmasq* dns_ = nullptr;
  std::unique_ptr<Resolver> resolver_;
};

TEST_F(CaresTest, MxInPreferenceOrder) {
  auto mx = resolver_->mx("b.test");
  ASSERT_TRUE(mx) << mx.error().message;
  EXPECT_EQ(mx->size(), 3u);
  auto r = route(*resolver_, "B.TEST");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->hosts.size(), 3u);
  EXPECT_EQ(r->hosts[0], "mx1.b.test");
  EXPECT_TRUE((r->hosts[1] == "mx2.b.test" && r->hosts[2] == "mx3.b.test") ||
              (r->hosts[1] == "mx3.b.test" && r->hosts[2] == "mx2.b.test"));
}

TEST_F(CaresTest, AddressesIPv4First) {
  auto a = resolver_->addresses("mx1.b.test");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(*a, (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  auto v6 = resolver_->addresses("v6.test");
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(*v6, std::vector<std::string>{"2001:db8::6"});
  auto two = resolver_->addresses("two.test");
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(two->size(), 2u);
}

TEST_F(CaresTest, NxdomainIsPermanent) {
  auto mx = resolver_->mx("nx.test");
  ASSERT_FALSE(mx);
  EXPECT_EQ(mx.error().code, DnsErrc::nxdomain) << mx.error().message;
  auto a = resolver_->addresses("nx.test");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, DnsErrc::nxdomain) << a.error().message;
  auto r = route(*resolver_, "nx.test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, DnsErrc::nxdomain);
}

TEST_F(CaresTest, NoDataMeansImplicitMx) {
  auto mx = resolver_->mx("imp.test");
  ASSERT_FALSE(mx);
  EXPECT_EQ(mx.error().code, DnsErrc::nodata) << mx.error().message;
  auto r = route(*resolver_, "imp.test");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->hosts, std::vector<std::string>{"imp.test"});
  auto none = resolver_->addresses("b.test");  // MX only, no address
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, DnsErrc::nodata) << none.error().message;
}

TEST_F(CaresTest, NullMx) {
  auto r = route(*resolver_, "null.test");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->null_mx);
  EXPECT_TRUE(r->hosts.empty());
}

TEST_F(CaresTest, ConcurrentCallsFromThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto a = resolver_->addresses("mx1.b.test");
        auto r = route(*resolver_, "b.test");
        if (a && a->size() == 2 && r && r->hosts.size() == 3) ++ok;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST(CaresTimeout, SilentServerIsTemporary) {
  // A UDP socket that never answers: the lookup must end after about timeout x tries.
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  auto r = make_resolver({.servers = {"127.0.0.1:" + std::to_string(ntohs(sa.sin_port))},
                          .timeout = std::chrono::milliseconds(200), .tries = 2});
  ASSERT_TRUE(r) << r.error();
  auto start = std::chrono::steady_clock::now();
  auto mx = (*r)->mx("b.test");
  auto a = (*r)->addresses("b.test");
  auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  ASSERT_FALSE(mx);
  EXPECT_EQ(mx.error().code, DnsErrc::temporary);
  EXPECT_NE(mx.error().message.find("timed out"), std::string::npos) << mx.error().message;
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, DnsErrc::temporary) << a.error().message;
  EXPECT_LT(took, std::chrono::seconds(5));
}

}  // namespace
}  // namespace buzon::dns
