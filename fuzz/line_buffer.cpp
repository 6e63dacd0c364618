// fuzz/line_buffer.cpp — LineBuffer in both modes against a reference splitter.
//
// Input: [mode+max octet][chunking seed octet] then the network bytes. The bytes are fed in chunks
// whose sizes come from the seed (1..64 octets, or all at once), draining next() before each
// append() as a session does. Invariants:
//  - the lines (status, text, lf_only) equal what a reference splitter that sees the whole input
//    at once produces — so the result does not depend on how reads split the input;
//  - an ok line is at most max() - 2 octets and holds no LF (and no CR in strict_crlf mode);
//  - memory is bounded: buffered() <= max() + the size of the last append;
//  - take_rest() returns exactly the unterminated tail when no overlong line is pending.
#include "core/line_buffer.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using buzon::Line;
using buzon::LineBuffer;
using buzon::LineEnd;
using buzon::LineStatus;

struct RefLine {
  LineStatus status;
  std::string text;
  bool lf_only;
  bool operator==(const RefLine&) const = default;
};

// The whole input at once; also returns the unterminated tail.
std::vector<RefLine> reference(std::string_view in, std::size_t max, LineEnd mode, std::string_view& tail) {
  std::vector<RefLine> out;
  for (;;) {
    std::size_t end;
    std::size_t term;
    if (mode == LineEnd::crlf_or_lf) {
      end = in.find('\n');
      term = 1;
    } else {
      end = in.find("\r\n");
      term = 2;
    }
    if (end == std::string_view::npos) break;
    std::string_view content = in.substr(0, end);
    bool lf_only = false;
    if (mode == LineEnd::crlf_or_lf) {
      if (!content.empty() && content.back() == '\r') {
        content.remove_suffix(1);
      } else {
        lf_only = true;
      }
    }
    in.remove_prefix(end + term);
    if (content.size() > max - 2) {
      out.push_back({LineStatus::too_long, "", false});
    } else if (mode == LineEnd::strict_crlf && content.find('\n') != std::string_view::npos) {
      out.push_back({LineStatus::bare_lf, "", false});
    } else if (mode == LineEnd::strict_crlf && content.find('\r') != std::string_view::npos) {
      out.push_back({LineStatus::bare_cr, "", false});
    } else {
      out.push_back({LineStatus::ok, std::string(content), lf_only});
    }
  }
  tail = in;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const LineEnd mode = (data[0] & 1) ? LineEnd::strict_crlf : LineEnd::crlf_or_lf;
  // max in 0..127 (values below 2 are raised to 2), or the POP3/SMTP command limits.
  std::size_t max = data[0] >> 1;
  if (max == 126) max = 255;
  if (max == 127) max = 512;
  const std::uint8_t seed = data[1];
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  LineBuffer lb(max, mode);
  const std::size_t eff_max = lb.max();
  FUZZ_CHECK(eff_max == (max < 2 ? 2 : max), "max() is the limit, at least 2");

  std::vector<RefLine> got;
  std::uint32_t rng = seed * 2654435761u + 1;
  std::size_t pos = 0;
  while (pos < input.size()) {
    std::size_t n = input.size() - pos;
    if (seed != 0) {
      rng = rng * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, 1 + (rng >> 16) % 64);
    }
    lb.append(input.substr(pos, n));
    pos += n;
    while (auto l = lb.next()) {
      FUZZ_CHECK(l->status == LineStatus::ok || l->text.empty(), "a rejected line carries no text");
      if (l->status == LineStatus::ok) {
        FUZZ_CHECK(l->text.size() <= eff_max - 2, "an ok line fits max() - 2");
        FUZZ_CHECK(l->text.find('\n') == std::string::npos, "an ok line holds no LF");
        if (mode == LineEnd::strict_crlf) {
          FUZZ_CHECK(l->text.find('\r') == std::string::npos, "strict: an ok line holds no CR");
          FUZZ_CHECK(!l->lf_only, "strict: no line ends in a bare LF");
        }
      }
      got.push_back({l->status, std::move(l->text), l->lf_only});
    }
    FUZZ_CHECK(lb.buffered() <= eff_max + n, "buffered() <= max() + last append");
  }

  std::string_view tail;
  auto want = reference(input, eff_max, mode, tail);
  FUZZ_CHECK(got.size() == want.size(), "as many lines as the reference splitter");
  for (std::size_t i = 0; i < got.size(); ++i) {
    FUZZ_CHECK(got[i] == want[i], "each line equals the reference splitter's");
  }
  const bool discarding = lb.discarding();
  std::string rest = lb.take_rest();
  if (!discarding) {
    FUZZ_CHECK(rest == tail, "take_rest() returns the unterminated tail");
  } else {
    FUZZ_CHECK(tail.size() >= eff_max, "an overlong line is pending only when the tail reached max()");
  }
  FUZZ_CHECK(lb.buffered() == 0 && !lb.discarding(), "take_rest() empties the buffer");
  return 0;
}
