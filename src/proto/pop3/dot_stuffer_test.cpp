// proto/pop3/dot_stuffer_test.cpp — DotStuffer rules one by one, TOP, every split point, and an
// exhaustive check against a reference client decoder; wire_size and is_wire_ready.
#include "proto/pop3/dot_stuffer.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace buzon::pop3 {
namespace {

using namespace std::string_literals;
using Top = std::optional<std::uint64_t>;

std::string stuff(std::string_view raw, Top top = std::nullopt) {
  DotStuffer d(top);
  std::string out;
  d.feed(raw, out);
  d.finish(out);
  return out;
}

std::string stuff_chunks(const std::vector<std::string_view>& chunks, Top top = std::nullopt) {
  DotStuffer d(top);
  std::string out;
  for (auto c : chunks) d.feed(c, out);
  d.finish(out);
  return out;
}

std::string stuff_bytes(std::string_view raw, Top top = std::nullopt) {
  std::vector<std::string_view> chunks;
  for (std::size_t i = 0; i < raw.size(); ++i) chunks.push_back(raw.substr(i, 1));
  return stuff_chunks(chunks, top);
}

// What a POP3 client does with the reply body (RFC 1939 §3): read CRLF-terminated lines until
// ".", removing one leading '.' from the others. nullopt if the body is malformed: no
// terminator, octets after it, or a line end other than CRLF at the end.
std::optional<std::string> client_decode(std::string_view wire) {
  std::string msg;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    const auto end = wire.find("\r\n", pos);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view line = wire.substr(pos, end - pos);
    pos = end + 2;
    if (line == ".") return pos == wire.size() ? std::optional(msg) : std::nullopt;
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    msg += line;
    msg += "\r\n";
  }
  return std::nullopt;
}

// The message as it should reach the client: bare LF -> CRLF; a final line end added (a final
// lone CR becomes CRLF).
std::string normalized(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) out += '\r';
    out += raw[i];
  }
  if (!out.empty() && out.back() != '\n') out += out.back() == '\r' ? "\n" : "\r\n";
  return out;
}

// ---- The rules, one by one -----------------------------------------------------------------

TEST(DotStuffer, EmptyMessageIsJustTheTerminator) { EXPECT_EQ(stuff(""), ".\r\n"); }

TEST(DotStuffer, CrlfIsKept) { EXPECT_EQ(stuff("a\r\nb\r\n"), "a\r\nb\r\n.\r\n"); }

TEST(DotStuffer, BareLfBecomesCrlf) {
  EXPECT_EQ(stuff("a\nb\n"), "a\r\nb\r\n.\r\n");
  EXPECT_EQ(stuff("\n\n"), "\r\n\r\n.\r\n");
  EXPECT_EQ(stuff("a\r\nb\nc\r\n"), "a\r\nb\r\nc\r\n.\r\n");
}

TEST(DotStuffer, LeadingDotIsDoubled) {
  EXPECT_EQ(stuff(".\r\n"), "..\r\n.\r\n");
  EXPECT_EQ(stuff("a\r\n.b\r\n"), "a\r\n..b\r\n.\r\n");
  EXPECT_EQ(stuff("..\n"), "...\r\n.\r\n");
  EXPECT_EQ(stuff("x\n.\n"), "x\r\n..\r\n.\r\n");
  EXPECT_EQ(stuff("a.b\r\n"), "a.b\r\n.\r\n") << "only at the start of a line";
}

TEST(DotStuffer, MissingFinalNewlineIsAdded) {
  EXPECT_EQ(stuff("a"), "a\r\n.\r\n");
  EXPECT_EQ(stuff("a\r\nb"), "a\r\nb\r\n.\r\n");
  EXPECT_EQ(stuff("."), "..\r\n.\r\n") << "a final '.' line must not look like the terminator";
}

TEST(DotStuffer, BareCrPassesThrough) {
  EXPECT_EQ(stuff("a\rb\r\n"), "a\rb\r\n.\r\n");
  EXPECT_EQ(stuff("a\r\r\n"), "a\r\r\n.\r\n");
  EXPECT_EQ(stuff("\r.\r\n"), "\r.\r\n.\r\n") << "a CR does not start a line: no stuffing";
  EXPECT_EQ(stuff("\rx\n"), "\rx\r\n.\r\n");
}

TEST(DotStuffer, FinalCrStillEndsCorrectly) {
  EXPECT_EQ(stuff("a\r"), "a\r\n.\r\n");
  EXPECT_EQ(stuff(".\r"), "..\r\n.\r\n");
  EXPECT_EQ(stuff("\r"), "\r\n.\r\n");
  EXPECT_EQ(stuff("a\r\r"), "a\r\r\n.\r\n");
}

TEST(DotStuffer, NulAndEightBitPassThrough) {
  EXPECT_EQ(stuff("a\0b\xff\n"s), "a\0b\xff\r\n.\r\n"s);
}

TEST(DotStuffer, DoneOnlyAfterFinishForRetr) {
  DotStuffer d;
  std::string out;
  d.feed("a\r\n\r\nbody\r\n", out);
  EXPECT_FALSE(d.done());
  d.finish(out);
  EXPECT_TRUE(d.done());
  d.finish(out);
  d.feed("more", out);
  EXPECT_EQ(out, "a\r\n\r\nbody\r\n.\r\n") << "finish() twice and feed() after it do nothing";
}

// ---- TOP -----------------------------------------------------------------------------------

const std::string kMsg = "Subject: a\r\nFrom: b\r\n\r\nl1\r\nl2\r\n.l3\r\nl4";

TEST(DotStufferTop, ZeroLinesSendsHeaderAndBlankLine) {
  EXPECT_EQ(stuff(kMsg, 0), "Subject: a\r\nFrom: b\r\n\r\n.\r\n");
}

TEST(DotStufferTop, CountsBodyLines) {
  EXPECT_EQ(stuff(kMsg, 1), "Subject: a\r\nFrom: b\r\n\r\nl1\r\n.\r\n");
  EXPECT_EQ(stuff(kMsg, 2), "Subject: a\r\nFrom: b\r\n\r\nl1\r\nl2\r\n.\r\n");
  EXPECT_EQ(stuff(kMsg, 3), "Subject: a\r\nFrom: b\r\n\r\nl1\r\nl2\r\n..l3\r\n.\r\n");
  EXPECT_EQ(stuff(kMsg, 4), "Subject: a\r\nFrom: b\r\n\r\nl1\r\nl2\r\n..l3\r\nl4\r\n.\r\n");
  EXPECT_EQ(stuff(kMsg, 1000), stuff(kMsg));
  EXPECT_EQ(stuff(kMsg, 18446744073709551615u), stuff(kMsg));
}

TEST(DotStufferTop, BlankBodyLinesCount) {
  EXPECT_EQ(stuff("H: v\n\n\n\nx\n", 2), "H: v\r\n\r\n\r\n\r\n.\r\n");
}

TEST(DotStufferTop, LfOnlyMessage) {
  EXPECT_EQ(stuff("H: v\nI: w\n\nbody1\nbody2\n", 1), "H: v\r\nI: w\r\n\r\nbody1\r\n.\r\n");
}

TEST(DotStufferTop, MessageWithoutBodySendsEverything) {
  EXPECT_EQ(stuff("Subject: x\r\nFrom: y\r\n", 0), "Subject: x\r\nFrom: y\r\n.\r\n");
  EXPECT_EQ(stuff("Subject: x", 0), "Subject: x\r\n.\r\n");
  EXPECT_EQ(stuff("", 0), ".\r\n");
}

TEST(DotStufferTop, EmptyHeader) {
  EXPECT_EQ(stuff("\r\nbody\r\nmore\r\n", 0), "\r\n.\r\n");
  EXPECT_EQ(stuff("\r\nbody\r\nmore\r\n", 1), "\r\nbody\r\n.\r\n");
}

TEST(DotStufferTop, BareCrLineIsNotTheSeparator) {
  // "\r" followed by "x" is a header line holding a bare CR, not an empty line.
  EXPECT_EQ(stuff("H: v\r\n\rx\r\n\r\nbody\r\n", 0), "H: v\r\n\rx\r\n\r\n.\r\n");
}

TEST(DotStufferTop, UnterminatedLastBodyLine) {
  EXPECT_EQ(stuff("H: v\n\nbody", 5), "H: v\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(stuff("H: v\n\nbody\r", 5), "H: v\r\n\r\nbody\r\n.\r\n");
}

TEST(DotStufferTop, DoneWhenTheLimitIsReached) {
  DotStuffer d(1);
  std::string out;
  d.feed("H: v\r\n", out);
  EXPECT_FALSE(d.done());
  d.feed("\r\n", out);
  EXPECT_FALSE(d.done());
  d.feed("l1\r", out);
  EXPECT_FALSE(d.done());
  d.feed("\nl2\r\nl3\r\n", out);
  EXPECT_TRUE(d.done()) << "the caller can stop reading the message";
  d.feed("l4\r\n", out);
  d.finish(out);
  EXPECT_EQ(out, "H: v\r\n\r\nl1\r\n.\r\n");
}

TEST(DotStufferTop, ZeroLinesDoneRightAfterTheSeparator) {
  DotStuffer d(0);
  std::string out;
  d.feed("H: v\r\n\r", out);
  EXPECT_FALSE(d.done());
  d.feed("\n", out);
  EXPECT_TRUE(d.done());
}

// ---- Every split point ---------------------------------------------------------------------

const std::vector<std::string>& grind_messages() {
  static const std::vector<std::string> k = {
      kMsg,
      "Subject: dots\n\n.\n..\n.x\n\r\n.\r\n...",
      "H: v\r\n\r\n\rbare cr\r\r\n\r.\r\nend\r",
      "\r\n.\r\n\r\n",
      ".\r",
      "no newline at all",
      "a\0b\n\0\n."s,
      "X: 1\r\n.Y: 2\n\n.body\r\n\n\nz\r\r\n",
  };
  return k;
}

TEST(DotStufferGrind, EverySplitPointAndOneByteAtATime) {
  const std::vector<Top> tops = {std::nullopt, 0, 1, 2, 3, 10};
  for (const auto& msg : grind_messages()) {
    for (const auto& top : tops) {
      const std::string whole = stuff(msg, top);
      const std::string_view v = msg;
      for (std::size_t i = 0; i <= msg.size(); ++i) {
        EXPECT_EQ(stuff_chunks({v.substr(0, i), v.substr(i)}, top), whole)
            << "split at " << i << " of " << msg;
      }
      for (std::size_t i = 0; i <= msg.size(); ++i) {
        for (std::size_t j = i; j <= msg.size(); ++j) {
          ASSERT_EQ(stuff_chunks({v.substr(0, i), v.substr(i, j - i), v.substr(j)}, top), whole)
              << "splits at " << i << "," << j << " of " << msg;
        }
      }
      EXPECT_EQ(stuff_bytes(msg, top), whole) << msg;
      EXPECT_EQ(stuff_chunks({"", v, ""}, top), whole) << "empty chunks change nothing";
    }
  }
}

// Exhaustive over every message of up to 7 octets from {a . CR LF}: the wire form decodes (as a
// client would) to the normalized message, the only "." line is the terminator, any split gives
// the same bytes, wire_size() is the decoded size, and is_wire_ready() is exact.
TEST(DotStufferGrind, ExhaustiveSmallMessages) {
  const char alphabet[] = {'a', '.', '\r', '\n'};
  std::string msg;
  std::size_t checked = 0;
  for (std::size_t len = 0; len <= 7; ++len) {
    std::size_t combos = 1;
    for (std::size_t k = 0; k < len; ++k) combos *= 4;
    for (std::size_t n = 0; n < combos; ++n) {
      msg.clear();
      for (std::size_t k = 0, x = n; k < len; ++k, x /= 4) msg += alphabet[x % 4];
      const std::string wire = stuff(msg);
      const auto decoded = client_decode(wire);
      ASSERT_TRUE(decoded) << "malformed wire form for " << testing::PrintToString(msg);
      ASSERT_EQ(*decoded, normalized(msg)) << testing::PrintToString(msg);
      ASSERT_EQ(wire_size(msg), decoded->size()) << testing::PrintToString(msg);
      ASSERT_EQ(is_wire_ready(msg), wire == msg + ".\r\n") << testing::PrintToString(msg);
      for (std::size_t i = 0; i <= msg.size(); ++i) {
        const std::string_view v = msg;
        ASSERT_EQ(stuff_chunks({v.substr(0, i), v.substr(i)}), wire)
            << "split at " << i << " of " << testing::PrintToString(msg);
      }
      ASSERT_EQ(stuff_bytes(msg), wire);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 21845u);
}

// TOP output is always a prefix of the full message's lines, plus the terminator.
TEST(DotStufferGrind, TopIsAPrefixOfRetr) {
  for (const auto& msg : grind_messages()) {
    const std::string full = stuff(msg);
    const std::string body = full.substr(0, full.size() - 3);
    for (std::uint64_t n = 0; n < 8; ++n) {
      const std::string top = stuff(msg, n);
      ASSERT_GE(top.size(), 3u);
      EXPECT_EQ(top.substr(top.size() - 3), ".\r\n");
      EXPECT_EQ(body.substr(0, top.size() - 3), top.substr(0, top.size() - 3)) << msg << " " << n;
    }
  }
}

// ---- wire_size / is_wire_ready ---------------------------------------------------------------

TEST(WireSize, CountsCrlfLineEnds) {
  EXPECT_EQ(wire_size(""), 0u);
  EXPECT_EQ(wire_size("a\r\n"), 3u);
  EXPECT_EQ(wire_size("a\n"), 3u);  // bare LF counts 2
  EXPECT_EQ(wire_size("\n\n"), 4u);
  EXPECT_EQ(wire_size("a"), 3u);    // final CRLF added
  EXPECT_EQ(wire_size("a\r"), 3u);  // final CR completed
  EXPECT_EQ(wire_size(".\r\n"), 3u) << "byte-stuffing is not counted (RFC 6856 §2.1)";
  EXPECT_EQ(wire_size("a\rb\r\n"), 5u);
  EXPECT_EQ(wire_size(kMsg), 40u);
}

TEST(IsWireReady, DetectsMessagesThatNeedNoRewriting) {
  EXPECT_TRUE(is_wire_ready(""));
  EXPECT_TRUE(is_wire_ready("a\r\nb\r\n"));
  EXPECT_TRUE(is_wire_ready("a.b\r\n\r\n"));
  EXPECT_TRUE(is_wire_ready("a\rb\r\n"));
  EXPECT_FALSE(is_wire_ready("a\nb\r\n"));
  EXPECT_FALSE(is_wire_ready(".a\r\n"));
  EXPECT_FALSE(is_wire_ready("a\r\n.b\r\n"));
  EXPECT_FALSE(is_wire_ready("a"));
  EXPECT_FALSE(is_wire_ready("a\r"));
  EXPECT_FALSE(is_wire_ready("\n"));
}

}  // namespace
}  // namespace buzon::pop3
