// fuzz/base64.cpp — strict base64 decode (SASL responses) and encode.
//
// Invariants: decode() accepts exactly the canonical encodings: whatever it accepts re-encodes to
// the same text, and its length is 3/4 of the text minus the padding; encode() of any octets
// decodes back to them. Errors are one of the four documented kinds with a non-empty text.
#include "core/base64.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

std::optional<std::string> lenient_decode(std::string_view t) {
  static constexpr std::string_view kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t pad = 0;
  while (pad < 2 && t.size() > pad && t[t.size() - 1 - pad] == '=') ++pad;
  if (t.size() % 4 != 0) return std::nullopt;
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : t.substr(0, t.size() - pad)) {
    auto v = kAlpha.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto dec = buzon::base64_decode(text);
  if (dec) {
    FUZZ_CHECK(text.size() % 4 == 0, "accepted base64 has a length that is a multiple of 4");
    FUZZ_CHECK(buzon::base64_encode(*dec) == text, "accepted base64 is canonical (re-encodes to itself)");
    FUZZ_CHECK(dec->size() == text.size() / 4 * 3 - (text.ends_with("==") ? 2 : text.ends_with("=") ? 1 : 0),
               "decoded length matches the padding");
  } else {
    FUZZ_CHECK(!buzon::to_string(dec.error()).empty(), "every error has a text");
    // A lenient reference decoder: if what it decodes re-encodes to the text, the text was
    // canonical and decode() must not have refused it.
    if (auto ref = lenient_decode(text)) {
      FUZZ_CHECK(buzon::base64_encode(*ref) != text, "decode() accepts every canonical encoding");
    }
  }

  // Round trip of arbitrary octets.
  std::string enc = buzon::base64_encode(text);
  FUZZ_CHECK(enc.size() == (size + 2) / 3 * 4, "encoded length is 4 * ceil(n / 3)");
  auto back = buzon::base64_decode(enc);
  FUZZ_CHECK(back.has_value() && *back == text, "decode(encode(x)) == x");
  return 0;
}
