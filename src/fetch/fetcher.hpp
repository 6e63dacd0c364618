// fetch/fetcher.hpp — one poll of an account (connect, TLS, login, list, retrieve, delete, QUIT,
// state), all accounts, and the --daemon loop; the exit codes of `buzon fetch`.
//
// Order of a poll (what makes an interrupted run lose nothing and duplicate nothing):
//   1. lock the account, repair what an interrupted run left (Destination::recover + journal),
//      save the merged state;
//   2. log in, UIDL + LIST; a message is new when its UID is not in the state (--all: every one);
//   3. RETR the new ones into the destination; every commit (fsync) is journaled; DELE (keep off)
//      only for committed messages and for old ones already in the state;
//   4. QUIT (the server deletes only now), save the state pruned to the UIDs still on the server,
//      remove the journal.
// A server without UIDL: the UID is "x-hdr-" + SHA-256 of the message's size and header (TOP n 0),
// as fetchmail and getmail fall back; with neither UIDL nor TOP every message counts as new.
//
// SECURITY  See account.hpp (secrets, TLS) and client_session.hpp (plaintext policy).
// STANDARDS RFC 1939 §8 (deletion at QUIT), RFC 2449 (PIPELINING, IN-USE, LOGIN-DELAY).
// LIMITS    account.limit skips larger messages (left on the server, reported).
#pragma once

#include "fetch/account.hpp"

#include <optional>
#include <string>
#include <vector>

namespace buzon::fetch {

// Exit codes (as fetchmail's; README "buzon fetch").
inline constexpr int kExitFetched = 0;      // at least one message fetched, no error
inline constexpr int kExitNoMail = 1;       // nothing new
inline constexpr int kExitNetwork = 2;      // resolve/connect/TLS failed, connection lost, timeout
inline constexpr int kExitAuth = 3;         // login refused, or no allowed method (plaintext policy)
inline constexpr int kExitProtocol = 4;     // the server broke the protocol
inline constexpr int kExitUsage = 5;        // bad arguments or config
inline constexpr int kExitServer = 7;       // the server answered -ERR ([SYS/TEMP], [SYS/PERM] ...)
inline constexpr int kExitLocked = 8;       // another buzon fetch is polling this account
inline constexpr int kExitMailboxBusy = 9;  // [IN-USE] or [LOGIN-DELAY] from the server
inline constexpr int kExitDelivery = 10;    // local delivery failed (disk, mbox lock, MDA status)
inline constexpr int kExitDns = 11;         // the host name did not resolve

struct RunOptions {
  bool all = false;                  // --all: also messages already fetched
  std::optional<bool> keep;          // --keep / --no-keep override the account
  bool quiet = false;                // no summary line
  bool progress = true;              // a progress bar when standard error is a terminal
  std::filesystem::path state_dir;   // "" = config or default
};

struct Outcome {
  int exit_code = kExitNoMail;
  std::size_t fetched = 0, deleted = 0, skipped = 0, refused = 0, left = 0;
  std::uint64_t octets = 0;
  double seconds = 0;
  std::string error;    // one line when exit_code is an error
  std::string summary;  // the one-line summary
};

// One poll of one account (runs its own event loop).
Outcome poll_account(const Account& account, const RunOptions& options, const std::filesystem::path& state_dir);

// Polls `accounts` once (or every `daemon_interval` seconds until SIGTERM/SIGINT), prints the
// summaries, returns the exit code: the first error's code if any account failed, else 0 if any
// mail was fetched, else 1.
int run_fetch(const std::vector<Account>& accounts, const RunOptions& options, const std::filesystem::path& state_dir,
              std::optional<unsigned> daemon_interval);

}  // namespace buzon::fetch
