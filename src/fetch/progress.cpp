// fetch/progress.cpp — see progress.hpp.
#include "fetch/progress.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>

namespace buzon::fetch {

std::string human_bytes(double b) {
  if (b < 1024) return fmt::format("{:.0f} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return fmt::format("{:.1f} MiB", b / (1024 * 1024));
  return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
}

std::string human_duration(double s) {
  if (s < 0) s = 0;
  auto t = static_cast<long long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}

std::string render_progress(const std::string& label, std::size_t done, std::size_t total, std::uint64_t bytes,
                            std::uint64_t total_bytes, double seconds, std::size_t width) {
  double frac = total_bytes ? static_cast<double>(bytes) / static_cast<double>(total_bytes)
                            : (total ? static_cast<double>(done) / static_cast<double>(total) : 1.0);
  if (frac > 1) frac = 1;
  auto filled = static_cast<std::size_t>(frac * static_cast<double>(width));
  std::string bar(filled, '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  double rate = seconds > 0 ? static_cast<double>(bytes) / seconds : 0;
  std::string eta = (rate > 0 && total_bytes > bytes)
                        ? human_duration(static_cast<double>(total_bytes - bytes) / rate)
                        : std::string("-:--");
  return fmt::format("{} [{}] {}/{} msgs  {}/{}  {}/s  ETA {}", label, bar, done, total, human_bytes(static_cast<double>(bytes)),
                     human_bytes(static_cast<double>(total_bytes)), human_bytes(rate), eta);
}

Progress::Progress(bool enabled, std::string label, std::size_t total, std::uint64_t total_bytes)
    : enabled_(enabled && total > 0), label_(std::move(label)), total_(total), total_bytes_(total_bytes),
      start_(std::chrono::steady_clock::now()) {}

void Progress::advance(std::uint64_t bytes) {
  ++done_;
  bytes_ += bytes;
  draw(done_ == total_);
}

void Progress::draw(bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  double secs = std::chrono::duration<double>(now - start_).count();
  auto line = render_progress(label_, done_, total_, bytes_, total_bytes_, secs);
  std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_ && drawn_) {
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
  }
  drawn_ = false;
  enabled_ = false;
}

}  // namespace buzon::fetch
