// fuzz/config.cpp — the TOML config loader (parse_config: toml++ plus buzon's validation).
//
// Invariants: never crashes or throws out of parse_config, whatever the text; an error names the
// file and a line within the text and is one line; an accepted config holds values inside their
// documented ranges (listen addresses with a port, paths resolved under the config's directory).
#include "core/config.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';

  auto cfg = buzon::parse_config(text, "/etc/buzon/buzon.toml");
  if (!cfg) {
    const auto& e = cfg.error();
    FUZZ_CHECK(e.line >= 0 && static_cast<std::size_t>(e.line) <= lines + 1, "an error names a line of the text");
    auto s = e.str();
    FUZZ_CHECK(s.starts_with("/etc/buzon/buzon.toml"), "the error starts with the file");
    FUZZ_CHECK(!e.message.empty(), "an error says what is wrong");
    return 0;
  }
  const auto& c = *cfg;
  FUZZ_CHECK(c.dir == "/etc/buzon", "the base directory is the config's directory");
  for (const auto& l : c.pop3.listen) {
    FUZZ_CHECK(!l.host.empty(), "a listen address has a host");
    auto round = buzon::parse_listen_address(l.str());
    FUZZ_CHECK(round.has_value() && round->host == l.host && round->port == l.port,
               "a listen address prints as it parses");
  }
  FUZZ_CHECK(c.resolve(c.users.passwd_file).is_absolute(), "paths resolve to absolute paths");
  return 0;
}
