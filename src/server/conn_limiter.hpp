// server/conn_limiter.hpp — global and per-address connection caps, shared by every event loop.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace buzon::server {

class ConnLimiter {
 public:
  ConnLimiter(std::size_t max_total, std::size_t max_per_ip) : max_total_(max_total), max_per_ip_(max_per_ip) {}
  enum class Verdict { ok, too_many_total, too_many_from_ip };
  Verdict acquire(const std::string& ip) {
    std::lock_guard lock(mu_);
    if (total_ >= max_total_) return Verdict::too_many_total;
    auto& n = per_ip_[ip];
    if (n >= max_per_ip_) {
      if (n == 0) per_ip_.erase(ip);
      return Verdict::too_many_from_ip;
    }
    ++n;
    ++total_;
    return Verdict::ok;
  }
  void release(const std::string& ip) {
    std::lock_guard lock(mu_);
    --total_;
    if (auto it = per_ip_.find(ip); it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  }
  // SIGHUP: new caps apply to new connections; open ones are never cut.
  void set_limits(std::size_t max_total, std::size_t max_per_ip) {
    std::lock_guard lock(mu_);
    max_total_ = max_total;
    max_per_ip_ = max_per_ip;
  }
  std::size_t total() const {
    std::lock_guard lock(mu_);
    return total_;
  }

 private:
  mutable std::mutex mu_;
  std::size_t max_total_, max_per_ip_;
  std::size_t total_ = 0;
  std::unordered_map<std::string, std::size_t> per_ip_;
};

}  // namespace buzon::server
