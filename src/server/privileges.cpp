#include "server/privileges.hpp"

#include <sys/resource.h>

#include <fmt/format.h>

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

namespace buzon::server {

namespace {

std::string errno_text() { return std::strerror(errno); }

std::optional<Account> lookup_user(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* res = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res) return std::nullopt;
  return Account{res->pw_name, res->pw_uid, res->pw_gid};
}

std::optional<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buf(16384);
  group gr{};
  group* res = nullptr;
  if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res) != 0 || !res) return std::nullopt;
  return res->gr_gid;
}

std::string user_name(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* res = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res) return res->pw_name;
  return std::to_string(uid);
}

// The "CapEff:" line of /proc/self/status as a number; nullopt when unreadable.
std::optional<unsigned long long> effective_caps() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return std::nullopt;
}

}  // namespace

std::expected<PrivilegePlan, std::string> decide_privileges(uid_t euid, const ServerConfig& cfg,
                                                            const std::optional<Account>& account,
                                                            const std::optional<gid_t>& group_gid,
                                                            const std::string& config_file) {
  PrivilegePlan p;
  if (euid != 0) {
    p.action = PrivilegePlan::Action::none;
    p.uid = euid;
    p.note = fmt::format("started as uid {}, not root: no privileges to drop ([server] user is not used)", euid);
    return p;
  }
  if (cfg.user == "root") {
    p.action = PrivilegePlan::Action::stay_root;
    p.user = "root";
    p.note = fmt::format("running as root because {} says [server] user = \"root\"; a production server should "
                         "run as an unprivileged user (docs/SECURITY.md)", config_file);
    return p;
  }
  if (cfg.user.empty())
    return std::unexpected(fmt::format("refusing to run as root: [server] user is empty in {} (fix: name an "
                                       "unprivileged account, e.g. user = \"buzon\", or user = \"root\" to run as root "
                                       "on purpose)", config_file));
  if (!account)
    return std::unexpected(fmt::format("refusing to run as root: [server] user '{}' in {} does not exist (fix: create it "
                                       "with `adduser --system --group --home /var/lib/buzon {}`, name another "
                                       "unprivileged account, or set user = \"root\" to run as root on purpose)",
                                       cfg.user, config_file, cfg.user));
  if (account->uid == 0)
    return std::unexpected(fmt::format("refusing to run as root: [server] user '{}' in {} has uid 0 (fix: name an "
                                       "unprivileged account, or write user = \"root\" if root is really meant)",
                                       cfg.user, config_file));
  p.action = PrivilegePlan::Action::drop;
  p.user = account->name;
  p.uid = account->uid;
  p.gid = account->gid;
  if (!cfg.group.empty()) {
    if (!group_gid)
      return std::unexpected(fmt::format("[server] group '{}' in {} does not exist (fix: create it, or remove the key "
                                         "to use the primary group of '{}')", cfg.group, config_file, cfg.user));
    if (*group_gid == 0)
      return std::unexpected(fmt::format("[server] group '{}' in {} is gid 0 (fix: name an unprivileged group)",
                                         cfg.group, config_file));
    p.gid = *group_gid;
    p.group = cfg.group;
  }
  if (p.gid == 0)
    return std::unexpected(fmt::format("[server] user '{}' has primary group 0 (fix: set [server] group to an "
                                       "unprivileged group in {})", cfg.user, config_file));
  p.note = fmt::format("dropping privileges to user {} (uid {}, gid {}) after binding", p.user, p.uid, p.gid);
  return p;
}

std::expected<PrivilegePlan, std::string> plan_privileges(const ServerConfig& cfg, const std::string& config_file) {
  // Nothing this process executes may gain privileges (setuid binaries, file capabilities). Set
  // here, before any thread exists, so that every thread inherits it: the flag is per thread.
  (void)::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  std::optional<Account> account;
  std::optional<gid_t> group;
  uid_t euid = ::geteuid();
  if (euid == 0 && !cfg.user.empty() && cfg.user != "root") account = lookup_user(cfg.user);
  if (euid == 0 && !cfg.group.empty()) group = lookup_group(cfg.group);
  return decide_privileges(euid, cfg, account, group, config_file);
}

std::expected<void, std::string> drop_privileges(const PrivilegePlan& plan) {
  if (plan.action != PrivilegePlan::Action::drop) return {};
  // Supplementary groups of the user (e.g. ssl-cert to re-read a TLS key on SIGHUP), plus the
  // configured group; never root's groups.
  if (::initgroups(plan.user.c_str(), plan.gid) != 0)
    return std::unexpected(fmt::format("initgroups({}, {}) failed: {}", plan.user, plan.gid, errno_text()));
  if (::setresgid(plan.gid, plan.gid, plan.gid) != 0)
    return std::unexpected(fmt::format("setresgid({}) failed: {}", plan.gid, errno_text()));
  if (::setresuid(plan.uid, plan.uid, plan.uid) != 0)
    return std::unexpected(fmt::format("setresuid({}) failed: {}", plan.uid, errno_text()));

  // Verify: no way back, no id left at 0, no capability left.
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0)
    return std::unexpected("cannot read the process ids after dropping privileges: " + errno_text());
  if (ru != plan.uid || eu != plan.uid || su != plan.uid || rg != plan.gid || eg != plan.gid || sg != plan.gid)
    return std::unexpected(fmt::format("privileges not fully dropped: uids {}/{}/{} gids {}/{}/{}", ru, eu, su, rg, eg, sg));
  if (::setuid(0) == 0 || ::seteuid(0) == 0) return std::unexpected("privileges not dropped: setuid(0) still succeeds");
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  if (!groups.empty() && ::getgroups(static_cast<int>(groups.size()), groups.data()) < 0)
    return std::unexpected("getgroups failed: " + errno_text());
  for (gid_t g : groups)
    if (g == 0) return std::unexpected("privileges not dropped: still in group 0 (remove the user from group root)");
  if (auto caps = effective_caps(); !caps || *caps != 0)
    return std::unexpected(caps ? fmt::format("capabilities left after dropping privileges: CapEff={:x}", *caps)
                                : std::string("cannot read /proc/self/status to check capabilities"));
  // Set by plan_privileges before any thread started; make sure of it for this thread at least.
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return std::unexpected("prctl(PR_SET_NO_NEW_PRIVS) failed: " + errno_text());
  return {};
}

std::string describe_credentials() {
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  ::getresuid(&ru, &eu, &su);
  ::getresgid(&rg, &eg, &sg);
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  if (!groups.empty()) groups.resize(static_cast<std::size_t>(std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
  std::string gl;
  for (gid_t g : groups) gl += (gl.empty() ? "" : ",") + std::to_string(g);
  auto caps = effective_caps();
  return fmt::format("user={} uid={} gid={} groups={} caps={}", user_name(eu), eu, eg, gl.empty() ? "-" : gl,
                     caps ? fmt::format("{:x}", *caps) : std::string("?"));
}

bool can_access(const std::string& path, int mode) { return ::access(path.c_str(), mode) == 0; }

bool accessible_as(const PrivilegePlan& plan, const std::string& path, int mode) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return false;
  int groups_n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(groups_n));
  if (::getgrouplist(plan.user.c_str(), plan.gid, groups.data(), &groups_n) < 0) {
    groups.resize(static_cast<std::size_t>(groups_n));
    ::getgrouplist(plan.user.c_str(), plan.gid, groups.data(), &groups_n);
  }
  groups.resize(static_cast<std::size_t>(std::max(groups_n, 0)));
  groups.push_back(plan.gid);
  unsigned shift = st.st_uid == plan.uid ? 6 : std::find(groups.begin(), groups.end(), st.st_gid) != groups.end() ? 3 : 0;
  unsigned bits = (st.st_mode >> shift) & 7;
  unsigned want = ((mode & R_OK) ? 4u : 0u) | ((mode & W_OK) ? 2u : 0u) | ((mode & X_OK) ? 1u : 0u);
  return (bits & want) == want;
}

}  // namespace buzon::server

namespace buzon::server {

std::uint64_t raise_fd_limit() {
  struct rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(rl.rlim_cur);
}

}  // namespace buzon::server
