// fuzz/dot_stuffer.cpp — DotStuffer (RETR and TOP), wire_size and is_wire_ready.
//
// Input: [chunking seed][TOP selector] then a stored message's raw octets. Invariants:
//  - the output does not depend on how the message is split into feed() calls;
//  - RETR output is a well-formed multi-line body: every line ends in CRLF, the only "." line is
//    the final terminator, every other line starting with '.' is stuffed; un-stuffing it gives
//    exactly the normalized message (bare LF -> CRLF, a final CR completed to CRLF, a missing
//    final line end added), and wire_size() is the length of that normalized form;
//  - is_wire_ready(raw) implies the output is raw + ".\r\n" (what sendfile would send);
//  - TOP n sends the header, the blank line and min(n, body lines) body lines of the same
//    normalized lines, then the terminator.
#include "proto/pop3/dot_stuffer.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using buzon::pop3::DotStuffer;

// Reference normalization (see conftest.wire_form, with a final CR taken as the start of CRLF).
std::string normalize(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) out += '\r';
    out += raw[i];
  }
  if (!out.empty() && out.back() != '\n') out += out.back() == '\r' ? "\n" : "\r\n";
  return out;
}

// Splits a CRLF-terminated text into its lines (without CRLF).
std::vector<std::string_view> crlf_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  while (!s.empty()) {
    auto e = s.find("\r\n");
    FUZZ_CHECK(e != std::string_view::npos, "normalized text ends in CRLF");
    lines.push_back(s.substr(0, e));
    s.remove_prefix(e + 2);
  }
  return lines;
}

std::string run(std::string_view raw, std::optional<std::uint64_t> top, std::uint8_t seed) {
  DotStuffer ds(top);
  std::string out;
  std::uint32_t rng = seed * 2246822519u + 7;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    std::size_t n = raw.size() - pos;
    if (seed != 0) {
      rng = rng * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, 1 + (rng >> 16) % 17);
    }
    ds.feed(raw.substr(pos, n), out);
    pos += n;
    if (ds.done()) {
      FUZZ_CHECK(top.has_value(), "RETR is done only after finish()");
      break;
    }
  }
  ds.finish(out);
  FUZZ_CHECK(ds.done(), "done() after finish()");
  std::string again = out;
  ds.finish(out);
  ds.feed("more\r\n.\r\n", out);
  FUZZ_CHECK(out == again, "finish() and feed() after finish() add nothing");
  return out;
}

// Decodes a multi-line body; checks framing. Returns the un-stuffed content (CRLF line ends).
std::string decode(std::string_view wire) {
  FUZZ_CHECK(wire.size() >= 3 && wire.substr(wire.size() - 3) == ".\r\n", "output ends with the terminator");
  FUZZ_CHECK(wire.size() == 3 || wire.substr(wire.size() - 5, 2) == "\r\n",
             "the terminator is on a line of its own");
  std::string_view body = wire.substr(0, wire.size() - 3);
  std::string out;
  for (auto line : crlf_lines(body)) {
    FUZZ_CHECK(line.find('\n') == std::string_view::npos, "no bare LF on the wire");
    FUZZ_CHECK(line != ".", "no early terminator line");
    if (!line.empty() && line.front() == '.') {
      FUZZ_CHECK(line.size() >= 2 && line[1] == '.', "lines starting with '.' are stuffed");
      line.remove_prefix(1);
    }
    out += line;
    out += "\r\n";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t seed = data[0];
  const std::uint64_t topn = data[1] == 0xFF ? ~std::uint64_t{0} : data[1] % 8;
  std::string_view raw(reinterpret_cast<const char*>(data + 2), size - 2);

  const std::string norm = normalize(raw);
  FUZZ_CHECK(buzon::pop3::wire_size(raw) == norm.size(), "wire_size() is the size of the normalized form");

  const std::string whole = run(raw, std::nullopt, 0);
  const std::string chunked = run(raw, std::nullopt, seed);
  FUZZ_CHECK(whole == chunked, "RETR output does not depend on chunking");
  FUZZ_CHECK(decode(whole) == norm, "un-stuffed RETR output is the normalized message");
  if (buzon::pop3::is_wire_ready(raw)) {
    FUZZ_CHECK(whole.size() == raw.size() + 3 && std::string_view(whole).substr(0, raw.size()) == raw,
               "a wire-ready message is sent as stored");
  }

  // TOP: header lines up to and including the first empty line, then n body lines.
  const std::string top_whole = run(raw, topn, 0);
  const std::string top_chunked = run(raw, topn, seed);
  FUZZ_CHECK(top_whole == top_chunked, "TOP output does not depend on chunking");
  auto lines = crlf_lines(norm);
  std::string want;
  std::size_t i = 0;
  for (; i < lines.size(); ++i) {
    want += lines[i];
    want += "\r\n";
    if (lines[i].empty()) {
      ++i;
      break;
    }
  }
  for (std::uint64_t k = 0; k < topn && i < lines.size(); ++k, ++i) {
    want += lines[i];
    want += "\r\n";
  }
  FUZZ_CHECK(decode(top_whole) == want, "TOP sends header, blank line and n body lines");
  return 0;
}
