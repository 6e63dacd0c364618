// core/line_buffer_test.cpp — LineBuffer: terminators, limits, strict mode, every split point.
#include "core/line_buffer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace buzon {
namespace {

using namespace std::string_literals;

// One line as a comparable string: "ok:<text>", "lf:<text>" (ok, ended by a bare LF),
// "too_long", "bare_lf", "bare_cr".
std::string show(const Line& l) {
  switch (l.status) {
    case LineStatus::ok: return (l.lf_only ? "lf:" : "ok:") + l.text;
    case LineStatus::too_long: return "too_long";
    case LineStatus::bare_lf: return "bare_lf";
    case LineStatus::bare_cr: return "bare_cr";
  }
  return "?";
}

void drain(LineBuffer& lb, std::vector<std::string>& out) {
  while (auto l = lb.next()) out.push_back(show(*l));
}

std::vector<std::string> feed_chunks(const std::vector<std::string_view>& chunks, std::size_t max,
                                     LineEnd mode) {
  LineBuffer lb(max, mode);
  std::vector<std::string> out;
  for (auto c : chunks) {
    lb.append(c);
    drain(lb, out);
  }
  return out;
}

std::vector<std::string> feed_whole(std::string_view in, std::size_t max, LineEnd mode) {
  return feed_chunks({in}, max, mode);
}

std::vector<std::string> feed_bytes(std::string_view in, std::size_t max, LineEnd mode) {
  std::vector<std::string_view> chunks;
  for (std::size_t i = 0; i < in.size(); ++i) chunks.push_back(in.substr(i, 1));
  return feed_chunks(chunks, max, mode);
}

using V = std::vector<std::string>;

// ---- crlf_or_lf (POP3) ------------------------------------------------------------------------

TEST(LineBuffer, CrlfAndLfBothEndLines) {
  EXPECT_EQ(feed_whole("USER bob\r\nPASS x\nQUIT\r\n", 255, LineEnd::crlf_or_lf),
            (V{"ok:USER bob", "lf:PASS x", "ok:QUIT"}));
}

TEST(LineBuffer, PartialLineWaitsForTerminator) {
  LineBuffer lb(255);
  lb.append("US");
  EXPECT_FALSE(lb.next());
  EXPECT_EQ(lb.buffered(), 2u);
  lb.append("ER bob");
  EXPECT_FALSE(lb.next());
  lb.append("\r");
  EXPECT_FALSE(lb.next()) << "a CR alone does not end a line";
  lb.append("\n");
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(show(*l), "ok:USER bob");
  EXPECT_FALSE(lb.next());
  EXPECT_EQ(lb.buffered(), 0u);
}

TEST(LineBuffer, ManyLinesInOneChunk) {
  std::string in;
  V expect;
  for (int i = 0; i < 1000; ++i) {
    in += "LIST " + std::to_string(i) + "\r\n";
    expect.push_back("ok:LIST " + std::to_string(i));
  }
  EXPECT_EQ(feed_whole(in, 255, LineEnd::crlf_or_lf), expect);
}

TEST(LineBuffer, EmptyLines) {
  EXPECT_EQ(feed_whole("\r\n\n\r\n", 255, LineEnd::crlf_or_lf), (V{"ok:", "lf:", "ok:"}));
}

TEST(LineBuffer, NulAndEightBitOctetsArePreserved) {
  const std::string in = "a\0b\xff\x80z\r\n"s;
  LineBuffer lb(255);
  lb.append(in);
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->status, LineStatus::ok);
  EXPECT_EQ(l->text, "a\0b\xff\x80z"s);
  EXPECT_EQ(l->text.size(), 6u);
}

TEST(LineBuffer, OnlyTheCrRightBeforeLfIsStripped) {
  EXPECT_EQ(feed_whole("a\rb\r\n", 255, LineEnd::crlf_or_lf), (V{"ok:a\rb"}));
  EXPECT_EQ(feed_whole("a\r\r\n", 255, LineEnd::crlf_or_lf), (V{"ok:a\r"}));
  EXPECT_EQ(feed_whole("\ra\n", 255, LineEnd::crlf_or_lf), (V{"lf:\ra"}));
  // A CR split from its LF by a chunk boundary is still the CRLF.
  EXPECT_EQ(feed_chunks({"abc\r", "\n"}, 255, LineEnd::crlf_or_lf), (V{"ok:abc"}));
}

TEST(LineBuffer, LimitCountsCrlf) {
  // max 10: up to 8 octets of content.
  EXPECT_EQ(feed_whole("12345678\r\n", 10, LineEnd::crlf_or_lf), (V{"ok:12345678"}));
  EXPECT_EQ(feed_whole("12345678\n", 10, LineEnd::crlf_or_lf), (V{"lf:12345678"}));
  EXPECT_EQ(feed_whole("123456789\r\n", 10, LineEnd::crlf_or_lf), (V{"too_long"}));
  EXPECT_EQ(feed_whole("123456789\n", 10, LineEnd::crlf_or_lf), (V{"too_long"}))
      << "a bare LF does not buy an extra octet of content";
}

TEST(LineBuffer, TooLongLineReportsOnceAndRecovers) {
  const std::string big(1000, 'x');
  EXPECT_EQ(feed_whole(big + "\r\nNOOP\r\n", 255, LineEnd::crlf_or_lf), (V{"too_long", "ok:NOOP"}));
  EXPECT_EQ(feed_bytes(big + "\r\nNOOP\r\n", 255, LineEnd::crlf_or_lf), (V{"too_long", "ok:NOOP"}));
  // Two long lines in a row: two events.
  EXPECT_EQ(feed_whole(big + "\n" + big + "\nSTAT\n", 255, LineEnd::crlf_or_lf),
            (V{"too_long", "too_long", "lf:STAT"}));
}

TEST(LineBuffer, TooLongIsReportedAtTheTerminatorAndMemoryStaysBounded) {
  LineBuffer lb(255);
  const std::string chunk(4096, 'A');
  std::size_t peak = 0;
  for (int i = 0; i < 256; ++i) {  // 1 MiB without a line end
    lb.append(chunk);
    peak = std::max(peak, lb.buffered());
    EXPECT_FALSE(lb.next());
    EXPECT_TRUE(lb.discarding());
    EXPECT_LE(lb.buffered(), 255u);
  }
  EXPECT_LE(peak, 255u + chunk.size());
  lb.append("tail\r\nQUIT\r\n");
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->status, LineStatus::too_long);
  EXPECT_TRUE(l->text.empty());
  EXPECT_FALSE(lb.discarding());
  l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(show(*l), "ok:QUIT");
  EXPECT_FALSE(lb.next());
}

TEST(LineBuffer, BufferedNeverExceedsMaxPlusChunkWithRandomChunks) {
  std::mt19937 rng(42);
  LineBuffer lb(100);
  std::string stream;
  for (int i = 0; i < 2000; ++i) {
    // Mostly long lines, some short ones.
    const std::size_t len = rng() % 3 == 0 ? rng() % 50 : 50 + rng() % 400;
    stream += std::string(len, 'q') + (rng() % 2 ? "\r\n" : "\n");
  }
  std::size_t pos = 0;
  std::size_t lines = 0;
  while (pos < stream.size()) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 300, stream.size() - pos);
    lb.append(std::string_view(stream).substr(pos, n));
    pos += n;
    EXPECT_LE(lb.buffered(), 100u + n);
    while (auto l = lb.next()) {
      ++lines;
      if (l->status == LineStatus::ok) {
        EXPECT_LE(l->text.size(), 98u);
      }
    }
    EXPECT_LE(lb.buffered(), 100u);
  }
  EXPECT_EQ(lines, 2000u);
}

TEST(LineBuffer, SetMaxAllowsLongerAuthResponses) {
  LineBuffer lb(255);
  const std::string b64(1000, 'Q');
  lb.set_max(16384);
  EXPECT_EQ(lb.max(), 16384u);
  lb.append(b64 + "\r\n");
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->status, LineStatus::ok);
  EXPECT_EQ(l->text, b64);
  lb.set_max(255);
  lb.append(b64 + "\r\n");
  l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->status, LineStatus::too_long);
}

TEST(LineBuffer, SetMaxAppliesToTheLineInProgress) {
  LineBuffer lb(1000);
  lb.append(std::string(300, 'z'));
  EXPECT_FALSE(lb.next());
  lb.set_max(255);
  EXPECT_FALSE(lb.next());
  EXPECT_TRUE(lb.discarding());
  lb.append("\r\n");
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->status, LineStatus::too_long);
}

TEST(LineBuffer, MaxIsAtLeastTwo) {
  LineBuffer lb(0);
  EXPECT_EQ(lb.max(), 2u);
  lb.append("\r\na\r\n");
  EXPECT_EQ(show(*lb.next()), "ok:");
  EXPECT_EQ(show(*lb.next()), "too_long");
}

TEST(LineBuffer, TakeRestReturnsAndClearsUnconsumedOctets) {
  // STARTTLS/STLS: a command pipelined after STLS must not survive into the TLS session.
  LineBuffer lb(255);
  lb.append("STLS\r\nUSER evil\r\npartial"s);
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(show(*l), "ok:STLS");
  EXPECT_EQ(lb.buffered(), 18u);
  EXPECT_EQ(lb.take_rest(), "USER evil\r\npartial");
  EXPECT_EQ(lb.buffered(), 0u);
  EXPECT_FALSE(lb.next());
  lb.append("CAPA\r\n");
  EXPECT_EQ(show(*lb.next()), "ok:CAPA");
}

TEST(LineBuffer, TakeRestForgetsADiscardedLine) {
  LineBuffer lb(10);
  lb.append(std::string(50, 'x'));
  EXPECT_FALSE(lb.next());
  EXPECT_TRUE(lb.discarding());
  EXPECT_EQ(lb.take_rest(), "");
  EXPECT_FALSE(lb.discarding());
  lb.append("rest\r\n");
  EXPECT_EQ(show(*lb.next()), "ok:rest") << "no stale too_long after take_rest()";
}

// ---- strict_crlf (SMTP) -----------------------------------------------------------------------

TEST(LineBufferStrict, OnlyCrlfEndsALine) {
  EXPECT_EQ(feed_whole("EHLO x\r\nMAIL FROM:<a>\r\n", 512, LineEnd::strict_crlf),
            (V{"ok:EHLO x", "ok:MAIL FROM:<a>"}));
  // A bare LF does not end the line: both halves form one line, reported as bare_lf.
  EXPECT_EQ(feed_whole("MAIL FROM:<a>\nRCPT TO:<b>\r\nNOOP\r\n", 512, LineEnd::strict_crlf),
            (V{"bare_lf", "ok:NOOP"}));
  EXPECT_EQ(feed_whole("abc\n", 512, LineEnd::strict_crlf), V{}) << "no line yet";
}

TEST(LineBufferStrict, BareCrIsAnError) {
  EXPECT_EQ(feed_whole("a\rb\r\nQUIT\r\n", 512, LineEnd::strict_crlf), (V{"bare_cr", "ok:QUIT"}));
  EXPECT_EQ(feed_whole("a\r\r\n", 512, LineEnd::strict_crlf), (V{"bare_cr"}));
  EXPECT_EQ(feed_whole("\n.\r\n", 512, LineEnd::strict_crlf), (V{"bare_lf"}))
      << "the SMTP smuggling sequence LF . CRLF is not an end-of-data line";
}

TEST(LineBufferStrict, NoTextIsReturnedForErrorLines) {
  LineBuffer lb(512, LineEnd::strict_crlf);
  lb.append("secret\ninjected\r\n");
  auto l = lb.next();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->status, LineStatus::bare_lf);
  EXPECT_TRUE(l->text.empty());
  EXPECT_FALSE(l->lf_only);
}

TEST(LineBufferStrict, TooLongWithCrlfSplitAcrossChunksWhileDiscarding) {
  LineBuffer lb(10, LineEnd::strict_crlf);
  std::vector<std::string> out;
  lb.append(std::string(20, 'x') + "\r");
  drain(lb, out);
  EXPECT_TRUE(lb.discarding());
  lb.append("\nOK\r\n");
  drain(lb, out);
  EXPECT_EQ(out, (V{"too_long", "ok:OK"}));
}

TEST(LineBufferStrict, LfAloneWhileDiscardingDoesNotEndTheLine) {
  EXPECT_EQ(feed_bytes(std::string(20, 'x') + "\nmore\r\nOK\r\n", 10, LineEnd::strict_crlf),
            (V{"too_long", "ok:OK"}));
}

// ---- Every split point ---------------------------------------------------------------------

const std::string kGrindInput =
    "USER bob\r\n"
    "PASS  two  spaces \n"
    "\r\n"
    "\n"
    "a\rb\r\n"
    "nul\0here\r\n"s
    "cr\r\r\n"
    "123456789012345678901234567890\r\n"  // 30 octets: too long for max 32
    "12345678901234567890123456789\r\n"   // 29: too long (29 + 2 > 30)
    "1234567890123456789012345678\r\n"    // 28: fits max 30
    "bare\nlf\r\n"
    "\xff\xfe 8bit\r\n"
    "QUIT\r\n"
    "unterminated tail";

class LineBufferGrind : public ::testing::TestWithParam<LineEnd> {};

TEST_P(LineBufferGrind, EverySplitPointGivesTheSameLines) {
  const LineEnd mode = GetParam();
  const std::size_t max = 30;
  const V whole = feed_whole(kGrindInput, max, mode);
  ASSERT_FALSE(whole.empty());
  for (std::size_t i = 0; i <= kGrindInput.size(); ++i) {
    const std::string_view in = kGrindInput;
    EXPECT_EQ(feed_chunks({in.substr(0, i), in.substr(i)}, max, mode), whole) << "split at " << i;
  }
  EXPECT_EQ(feed_bytes(kGrindInput, max, mode), whole);
}

TEST_P(LineBufferGrind, EveryPairOfSplitPointsGivesTheSameLines) {
  const LineEnd mode = GetParam();
  const std::string in = "A\r\nBB\n\r\n0123456789abc\r\n\rx\r\r\n.\r\nlast";
  const std::size_t max = 12;
  const V whole = feed_whole(in, max, mode);
  const std::string_view v = in;
  for (std::size_t i = 0; i <= in.size(); ++i) {
    for (std::size_t j = i; j <= in.size(); ++j) {
      EXPECT_EQ(feed_chunks({v.substr(0, i), v.substr(i, j - i), v.substr(j)}, max, mode), whole)
          << "splits at " << i << "," << j;
    }
  }
}

TEST(LineBufferGrind, ExpectedLinesOfTheGrindInput) {
  EXPECT_EQ(feed_whole(kGrindInput, 30, LineEnd::crlf_or_lf),
            (V{"ok:USER bob", "lf:PASS  two  spaces ", "ok:", "lf:", "ok:a\rb", "ok:nul\0here"s,
               "ok:cr\r", "too_long", "too_long", "ok:1234567890123456789012345678", "lf:bare",
               "ok:lf", "ok:\xff\xfe 8bit", "ok:QUIT"}));
  EXPECT_EQ(feed_whole(kGrindInput, 30, LineEnd::strict_crlf),
            (V{"ok:USER bob", "bare_lf", "bare_lf", "ok:nul\0here"s, "bare_cr", "too_long",
               "too_long",
               "ok:1234567890123456789012345678", "bare_lf", "ok:\xff\xfe 8bit", "ok:QUIT"}));
}

INSTANTIATE_TEST_SUITE_P(Modes, LineBufferGrind,
                         ::testing::Values(LineEnd::crlf_or_lf, LineEnd::strict_crlf));

}  // namespace
}  // namespace buzon
