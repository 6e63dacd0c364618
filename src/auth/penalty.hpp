// auth/penalty.hpp — the failed-login penalty per source address (after Dovecot's auth penalty):
// after n recent failures from an address, its next attempt waits initial * 2^(n-1), at most
// `max`, counted from the last failure (so a person who retypes slowly never waits).
//
// SECURITY  Slows password guessing from one address (parallel connections too: every attempt
//           waits, not only the next one on the same connection) without locking anyone out. The
//           waiting itself is the caller's (a timer on the event loop, never a sleeping thread).
//           IPv6 sources are grouped by /64 (one host usually owns a whole /64). Addresses in
//           [auth] trusted_networks are not penalised by the caller (a webmail or proxy on
//           localhost carries every user's logins).
// STANDARDS none (Dovecot: AUTH_PENALTY_INIT_SECS 2, AUTH_PENALTY_MAX_SECS 15, forgotten after
//           AUTH_PENALTY_TIMEOUT of quiet).
// LIMITS    At most kMaxPenaltyEntries addresses are tracked; an entry is forgotten after
//           2 * max without failures. Beyond the cap new addresses are not tracked (memory stays
//           bounded under a spoofed flood; per-IP connection caps still apply).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace buzon::auth {

inline constexpr std::size_t kMaxPenaltyEntries = 100000;

class FailurePenalty {
 public:
  using Clock = std::chrono::steady_clock;
  using ms = std::chrono::milliseconds;

  // initial == 0 disables the penalty.
  FailurePenalty(ms initial = ms(2000), ms max = ms(15000));
  // Changes the delays (configuration); forgets every entry.
  void configure(ms initial, ms max);

  // How long an attempt from `peer` ("ip:port", "[v6]:port" or a bare address) must wait now.
  ms delay(std::string_view peer, Clock::time_point now = Clock::now());
  void record_failure(std::string_view peer, Clock::time_point now = Clock::now());
  void record_success(std::string_view peer);

  // The delay after `failures` recent failures (0 -> 0).
  ms delay_after(unsigned failures) const;
  std::size_t tracked() const;

  // The grouping key of a peer: the IPv4 address, or the IPv6 /64.
  static std::string key_of(std::string_view peer);

 private:
  struct Entry {
    unsigned failures = 0;
    Clock::time_point last;
  };
  void purge(Clock::time_point now);

  ms initial_, max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace buzon::auth
