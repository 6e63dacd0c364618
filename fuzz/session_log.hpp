// fuzz/session_log.hpp — for the session targets (pop3_session, smtp_session): a log sink that
// counts the lines meaning "an exception escaped the session logic" (the session's catch-all logs
// "... session failed ..."), installed as the default logger at trace level so every log call runs.
#pragma once

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string_view>

namespace buzon::fuzz {

inline std::atomic<int>& session_failures() {
  static std::atomic<int> n{0};
  return n;
}

class WatchSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    if (text.find("session failed") != std::string_view::npos) {
      std::fprintf(stderr, "session log: %.*s\n", static_cast<int>(text.size()), text.data());
      session_failures().fetch_add(1);
    }
  }
  void flush_() override {}
};

inline void install_watch_logger() {
  auto logger = std::make_shared<spdlog::logger>("fuzz", std::make_shared<WatchSink>());
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace buzon::fuzz
