// auth/penalty.cpp — see penalty.hpp.
#include "auth/penalty.hpp"

#include "core/ip_network.hpp"

#include <algorithm>

namespace buzon::auth {

FailurePenalty::FailurePenalty(ms initial, ms max) : initial_(initial), max_(std::max(initial, max)) {}

std::string FailurePenalty::key_of(std::string_view peer) {
  auto a = parse_peer_address(peer);
  if (!a) return std::string(peer);
  IpNetwork n = *a;
  if (!n.v4) {
    for (std::size_t i = 8; i < 16; ++i) n.addr[i] = 0;
    n.prefix = 64;
  }
  return n.str();
}

void FailurePenalty::configure(ms initial, ms max) {
  std::lock_guard lock(mu_);
  initial_ = initial;
  max_ = std::max(initial, max);
  entries_.clear();
}

FailurePenalty::ms FailurePenalty::delay_after(unsigned failures) const {
  if (failures == 0 || initial_.count() == 0) return ms(0);
  ms d = initial_;
  for (unsigned i = 1; i < failures && d < max_; ++i) d *= 2;
  return std::min(d, max_);
}

FailurePenalty::ms FailurePenalty::delay(std::string_view peer, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (initial_.count() == 0) return ms(0);
  auto it = entries_.find(key_of(peer));
  if (it == entries_.end()) return ms(0);
  const auto since = std::chrono::duration_cast<ms>(now - it->second.last);
  const auto want = delay_after(it->second.failures);
  return since >= want ? ms(0) : want - since;
}

void FailurePenalty::record_failure(std::string_view peer, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (initial_.count() == 0) return;
  auto key = key_of(peer);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= kMaxPenaltyEntries) purge(now);
    if (entries_.size() >= kMaxPenaltyEntries) return;
    it = entries_.emplace(std::move(key), Entry{}).first;
  } else if (now - it->second.last > 2 * max_) {
    it->second.failures = 0;  // quiet long enough: start over
  }
  if (it->second.failures < 64) ++it->second.failures;
  it->second.last = now;
}

void FailurePenalty::record_success(std::string_view peer) {
  std::lock_guard lock(mu_);
  entries_.erase(key_of(peer));
}

std::size_t FailurePenalty::tracked() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void FailurePenalty::purge(Clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();)
    it = now - it->second.last > 2 * max_ ? entries_.erase(it) : std::next(it);
}

}  // namespace buzon::auth
