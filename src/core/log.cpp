#include "core/log.hpp"

#include "core/config.hpp"
#include "core/log_json.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace buzon {

std::expected<void, std::string> init_logging(const LogConfig& cfg) {
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (cfg.file.empty())
      logger = std::make_shared<spdlog::logger>("buzon", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    else
      logger = std::make_shared<spdlog::logger>("buzon",
                                                std::make_shared<spdlog::sinks::basic_file_sink_mt>(cfg.file));
  } catch (const spdlog::spdlog_ex& e) {
    return std::unexpected(std::string("cannot open log file ") + cfg.file + ": " + e.what());
  }
  if (cfg.format == "json")
    logger->set_formatter(std::make_unique<JsonLogFormatter>());
  else
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  logger->set_level(spdlog::level::from_str(cfg.level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return {};
}

std::string log_value(std::string_view v) {
  std::string out;
  bool quote = v.empty();
  for (unsigned char c : v) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=') quote = true;
  }
  if (!quote) return std::string(v);
  out.push_back('"');
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace buzon
