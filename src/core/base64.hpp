// core/base64.hpp — RFC 4648 base64 (standard alphabet, with padding) encode and strict decode.
//
// SECURITY: decode() takes untrusted input (SASL responses, RFC 5034 §4) and rejects anything
//   that is not the canonical encoding of some octet string: characters outside the alphabet
//   (whitespace and line breaks included), missing or misplaced '=' padding, and non-zero pad
//   bits. RFC 5034 §4 requires rejecting, not ignoring, characters outside the alphabet.
// STANDARDS: RFC 4648 §4 (alphabet, padding), §3.3 (non-alphabet characters), §3.5 (canonical
//   encoding: decoders MAY reject non-zero pad bits; we do).
// LIMITS: none beyond memory; callers bound input by line length (pop3 kMaxAuthLine).
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace buzon {

enum class Base64Error {
  bad_length,   // not a multiple of 4 characters
  bad_char,     // a character outside the alphabet (or '=' before the end)
  bad_padding,  // more than two '=' or '=' followed by data
  noncanonical, // the pad bits of the last group are not zero
};

std::string_view to_string(Base64Error e);

std::string base64_encode(std::string_view data);

// The octets encoded by `text`; "" decodes to "".
std::expected<std::string, Base64Error> base64_decode(std::string_view text);

}  // namespace buzon
