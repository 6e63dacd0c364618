// core/base64_test.cpp — RFC 4648 §10 vectors, round trips, and every class of invalid input.
#include "core/base64.hpp"

#include <gtest/gtest.h>

#include <string>

namespace buzon {
namespace {

using namespace std::string_literals;

struct Vector {
  std::string_view plain;
  std::string_view encoded;
};

// RFC 4648 §10.
constexpr Vector kRfc4648[] = {
    {"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(Base64, EncodesRfc4648Vectors) {
  for (const auto& v : kRfc4648) EXPECT_EQ(base64_encode(v.plain), v.encoded) << v.plain;
}

TEST(Base64, DecodesRfc4648Vectors) {
  for (const auto& v : kRfc4648) {
    auto d = base64_decode(v.encoded);
    ASSERT_TRUE(d) << v.encoded;
    EXPECT_EQ(*d, v.plain);
  }
}

TEST(Base64, SaslPlainResponse) {
  // RFC 4616 §4 style: authzid NUL authcid NUL password.
  const std::string plain = "\0tim\0tanstaaftanstaaf"s;
  EXPECT_EQ(base64_encode(plain), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
  auto d = base64_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, plain);
}

TEST(Base64, UsesPlusAndSlash) {
  EXPECT_EQ(base64_encode("\xfb\xff\xbf"), "+/+/");
  auto d = base64_decode("+/+/");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, "\xfb\xff\xbf");
}

TEST(Base64, RoundTripsEveryOctetAndEveryLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len = 0; len <= all.size(); ++len) {
    const std::string in = all.substr(256 - len);
    const std::string enc = base64_encode(in);
    EXPECT_EQ(enc.size(), (len + 2) / 3 * 4);
    auto d = base64_decode(enc);
    ASSERT_TRUE(d) << len;
    EXPECT_EQ(*d, in);
  }
}

TEST(Base64, RejectsLengthNotMultipleOfFour) {
  for (std::string_view s : {"Z", "Zg", "Zg=", "Zm9vY", "=", "Zm9vYmFy="}) {
    auto d = base64_decode(s);
    ASSERT_FALSE(d) << s;
    EXPECT_EQ(d.error(), Base64Error::bad_length) << s;
  }
}

TEST(Base64, RejectsCharactersOutsideTheAlphabet) {
  // RFC 5034 §4: reject, not ignore. Whitespace, line breaks, URL-safe alphabet, NUL, 8-bit.
  for (std::string s : {"Zm9v YmFy"s.substr(0, 8), "Zm9v\r\nYg"s, "Zm9-"s, "Zm9_"s, "Zm9\0"s,
                        "Zm9\xff"s, "Zm.v"s, "*AAA"s}) {
    auto d = base64_decode(s);
    ASSERT_FALSE(d) << s;
    EXPECT_EQ(d.error(), Base64Error::bad_char) << s;
  }
}

TEST(Base64, RejectsMisplacedPadding) {
  for (std::string_view s : {"====", "Z===", "Zg=a", "Z=g=", "Zg==Zm9v", "Zm9=Zm9v", "=Zm9"}) {
    auto d = base64_decode(s);
    ASSERT_FALSE(d) << s;
    EXPECT_EQ(d.error(), Base64Error::bad_padding) << s;
  }
}

TEST(Base64, RejectsNonZeroPadBits) {
  // RFC 4648 §3.5: "Zh==" and "Zm9=" decode to the same octets as "Zg==" and "Zm8=" in lax
  // decoders; a strict decoder accepts only the canonical form.
  for (std::string_view s : {"Zh==", "Zm9=", "Zm9vYh==", "AB=="}) {
    auto d = base64_decode(s);
    ASSERT_FALSE(d) << s;
    EXPECT_EQ(d.error(), Base64Error::noncanonical) << s;
  }
  EXPECT_TRUE(base64_decode("AA=="));
  EXPECT_TRUE(base64_decode("AAA="));
}

TEST(Base64, ErrorsHaveText) {
  EXPECT_EQ(to_string(Base64Error::bad_char), "invalid base64 character");
  EXPECT_EQ(to_string(Base64Error::bad_length), "base64 length is not a multiple of 4");
  EXPECT_EQ(to_string(Base64Error::bad_padding), "invalid base64 padding");
  EXPECT_EQ(to_string(Base64Error::noncanonical), "non-canonical base64 (pad bits set)");
}

}  // namespace
}  // namespace buzon
