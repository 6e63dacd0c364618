// core/log.hpp — logging setup (spdlog). One structured summary line per session is written by the
// sessions themselves; this only decides where lines go and at which level.
#pragma once

#include <spdlog/spdlog.h>

#include <expected>
#include <string>

namespace buzon {

struct LogConfig;

// Sets the default logger: stderr, or an append-only file. Errors name the file.
std::expected<void, std::string> init_logging(const LogConfig& cfg);

// Escapes a value for a key=value log line: no spaces, quotes, control characters or 8-bit bytes
// from the network reach the log unescaped (log injection).
std::string log_value(std::string_view v);

}  // namespace buzon
