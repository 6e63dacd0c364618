// core/log_json.hpp — `[log] format = "json"`: every log line as one JSON object, for log
// shippers (journald, Loki, Elasticsearch). The key=value pairs of buzon's structured lines
// ("pop3 session peer=... user=... result=...") become JSON fields; anything else is "msg".
//
// SECURITY  Values that came from the network were already escaped by log_value (quotes,
//           backslashes, control and 8-bit octets as \xNN); here every string is JSON-escaped
//           again and invalid UTF-8 is replaced, so a line is always one valid JSON object.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>

namespace buzon {

// Pure: {"ts":ts,"level":level,"msg":...,fields...} for one message (no trailing newline).
std::string log_line_to_json(std::string_view ts, std::string_view level, std::string_view message);

// Escapes a string for a JSON string literal (without the quotes).
std::string json_escape(std::string_view s);

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonLogFormatter>(); }
};

}  // namespace buzon
