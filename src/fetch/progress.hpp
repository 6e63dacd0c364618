// fetch/progress.hpp — the progress bar of `buzon fetch` on a terminal (messages, octets, rate,
// ETA), redrawn at most 10 times a second on standard error; nothing when disabled.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace buzon::fetch {

// "1.5 MiB", "812 KiB", "17 B".
std::string human_bytes(double octets);
// "0:03", "1:02:07".
std::string human_duration(double seconds);

// The bar as text (pure, for tests): "label [=====>    ]  3/10 msgs  1.2/4.0 MiB  2.1 MiB/s  ETA 0:02".
std::string render_progress(const std::string& label, std::size_t done, std::size_t total, std::uint64_t bytes,
                            std::uint64_t total_bytes, double seconds, std::size_t width = 24);

class Progress {
 public:
  Progress(bool enabled, std::string label, std::size_t total, std::uint64_t total_bytes);
  ~Progress() { finish(); }
  void advance(std::uint64_t bytes);  // one message done
  void finish();                      // clears the bar

 private:
  void draw(bool force);
  bool enabled_;
  std::string label_;
  std::size_t total_, done_ = 0;
  std::uint64_t total_bytes_, bytes_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_{};
  bool drawn_ = false;
};

}  // namespace buzon::fetch
