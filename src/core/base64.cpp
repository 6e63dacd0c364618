// core/base64.cpp — RFC 4648 §4 base64 encode and strict decode (see base64.hpp).
//
// SECURITY: decode() reads untrusted input; it validates every character and the padding before
//   producing output and never reads past the input.
// STANDARDS: RFC 4648 §3.3, §3.5, §4.
// LIMITS: none.
#include "core/base64.hpp"

#include <array>
#include <cstdint>

namespace buzon {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t kInvalid = 0xFF;

constexpr std::array<std::uint8_t, 256> make_table() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kInvalid;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return t;
}

constexpr std::array<std::uint8_t, 256> kDecode = make_table();

}  // namespace

std::string_view to_string(Base64Error e) {
  switch (e) {
    case Base64Error::bad_length: return "base64 length is not a multiple of 4";
    case Base64Error::bad_char: return "invalid base64 character";
    case Base64Error::bad_padding: return "invalid base64 padding";
    case Base64Error::noncanonical: return "non-canonical base64 (pad bits set)";
  }
  return "invalid base64";
}

std::string base64_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(data[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(data[i + 1])} << 8) |
                            std::uint32_t{static_cast<unsigned char>(data[i + 2])};
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  const std::size_t left = data.size() - i;
  if (left == 1) {
    const std::uint32_t n = std::uint32_t{static_cast<unsigned char>(data[i])} << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (left == 2) {
    const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(data[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(data[i + 1])} << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::expected<std::string, Base64Error> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::unexpected(Base64Error::bad_length);
  if (text.empty()) return std::string{};

  // Padding: only in the last group, at most two '=' and only at its end (RFC 4648 §4).
  std::size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text[text.size() - 2] == '=') ++pad;
  if (pad == 1 && text[text.size() - 2] == '=') return std::unexpected(Base64Error::bad_padding);
  const std::size_t data_len = text.size() - pad;
  for (std::size_t i = 0; i < data_len; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (kDecode[c] == kInvalid) {
      return std::unexpected(c == '=' ? Base64Error::bad_padding : Base64Error::bad_char);
    }
  }

  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::size_t i = 0;
  auto sextet = [&](std::size_t k) {
    return std::uint32_t{kDecode[static_cast<unsigned char>(text[k])]};
  };
  for (; i + 4 <= data_len; i += 4) {
    const std::uint32_t n =
        (sextet(i) << 18) | (sextet(i + 1) << 12) | (sextet(i + 2) << 6) | sextet(i + 3);
    out += static_cast<char>((n >> 16) & 0xFF);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  }
  if (pad == 2) {  // "xx==": one octet; the low 4 bits of the second character must be zero
    const std::uint32_t a = sextet(i);
    const std::uint32_t b = sextet(i + 1);
    if ((b & 0x0F) != 0) return std::unexpected(Base64Error::noncanonical);
    out += static_cast<char>((a << 2) | (b >> 4));
  } else if (pad == 1) {  // "xxx=": two octets; the low 2 bits of the third must be zero
    const std::uint32_t c = sextet(i + 2);
    if ((c & 0x03) != 0) return std::unexpected(Base64Error::noncanonical);
    const std::uint32_t n = (sextet(i) << 18) | (sextet(i + 1) << 12) | (c << 6);
    out += static_cast<char>((n >> 16) & 0xFF);
    out += static_cast<char>((n >> 8) & 0xFF);
  }
  return out;
}

}  // namespace buzon
