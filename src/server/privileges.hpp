// server/privileges.hpp — who buzon runs as: started as root only to bind ports (and read the TLS
// key), then switched for good to the unprivileged account of [server] user / group.
//
// SECURITY  The switch is irreversible: supplementary groups are set first (initgroups), then
//           setresgid, then setresuid, all three ids of each; afterwards it is verified that
//           setuid(0) fails, that no id is 0 and that no capability is left (the kernel clears them
//           when every uid leaves 0); PR_SET_NO_NEW_PRIVS is set before any thread exists, so every
//           thread has it. glibc applies set*id to every thread of the process, so threads started
//           before the switch (the worker pools) drop too.
//           Started as root without an account to switch to, buzon refuses to start, unless the
//           config says `user = "root"` explicitly (the demo of `make run` and the test suite).
//           Started as a normal user, nothing changes (no privilege to drop).
// MODEL     One mail uid, as Dovecot's mail_uid with virtual users ("vmail"): every Maildir is read
//           and written as the service user; the uid/gid fields of passwd-file entries are not used
//           to switch per user (`buzon doctor` warns when they differ from the service user).
#pragma once

#include <cstdint>

#include "core/config.hpp"

#include <sys/types.h>

#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace buzon::server {

// What start-up will do about privileges, decided before anything is bound.
struct PrivilegePlan {
  enum class Action { none, drop, stay_root } action = Action::none;
  std::string user, group;  // for drop: the names; for none: who we already are
  uid_t uid = 0;
  gid_t gid = 0;
  std::string note;  // a line for the log: what will happen and why
};

// Pure policy: `euid` is who we are; `account` is the looked-up [server] user (nullopt: no such
// account), `group_gid` the looked-up [server] group when one is configured.
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;  // primary group
};
std::expected<PrivilegePlan, std::string> decide_privileges(uid_t euid, const ServerConfig& cfg,
                                                            const std::optional<Account>& account,
                                                            const std::optional<gid_t>& group_gid,
                                                            const std::string& config_file);

// decide_privileges with the real euid and the system's user and group databases. Also sets
// PR_SET_NO_NEW_PRIVS on the process: call it once, before any thread is started.
std::expected<PrivilegePlan, std::string> plan_privileges(const ServerConfig& cfg, const std::string& config_file);

// Carries out a `drop` plan (no-op otherwise) and verifies it; the error says what failed.
std::expected<void, std::string> drop_privileges(const PrivilegePlan& plan);

// "uid=... gid=... groups=... caps=..." of the calling process, for logs and `doctor`.
std::string describe_credentials();

// Raises the soft RLIMIT_NOFILE to the hard limit (as nginx's worker_rlimit_nofile and Dovecot's
// master do): every session holds fds, and the soft default (1024) would cap connections long
// before max_connections. Returns the soft limit now in force.
std::uint64_t raise_fd_limit();

// Whether the current process (after the switch) can access `path` with `mode` (R_OK|W_OK|X_OK).
bool can_access(const std::string& path, int mode);

// For `doctor` (run as root): whether `plan`'s user could access `path` with `mode`, judged from the
// permission bits, the owner and the user's groups (ACLs are not looked at).
bool accessible_as(const PrivilegePlan& plan, const std::string& path, int mode);

}  // namespace buzon::server
