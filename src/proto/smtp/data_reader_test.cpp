// DATA and BDAT readers: dot-unstuffing, the end of data at every split point, every SMTP
// smuggling end-of-data variant (SEC Consult 2023; CVE-2023-51764/51765/51766), line and size
// limits, pipelined octets left unconsumed. Content after an error is not meaningful (the session
// throws it away) and is only compared for error-free inputs.
#include "proto/smtp/data_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace buzon::smtp {
namespace {

struct DataResult {
  bool done = false;
  std::string content;
  std::string rest;  // octets after the end of data (pipelined commands)
  ContentError error = ContentError::none;
  std::uint64_t size = 0;
};

// Feeds `input` in the given pieces.
DataResult run_pieces(const std::vector<std::string>& pieces, ContentLimits lim = {}) {
  DataReader r(lim);
  DataResult out;
  for (const auto& p : pieces) {
    if (r.done()) {
      out.rest += p;
      continue;
    }
    const std::size_t used = r.feed(p, out.content);
    EXPECT_LE(used, p.size());
    if (!r.done()) {
      EXPECT_EQ(used, p.size()) << "an unfinished reader must consume everything";
    }
    out.rest += p.substr(used);
  }
  out.done = r.done();
  out.error = r.error();
  out.size = r.size();
  return out;
}

DataResult run(const std::string& input, ContentLimits lim = {}) { return run_pieces({input}, lim); }

// The same input split at every position into two pieces, and fed one octet at a time: the
// result must not depend on how the network cut it (Beast's parsegrind).
void expect_every_split(const std::string& input, const DataResult& want, ContentLimits lim = {}) {
  for (std::size_t i = 0; i <= input.size(); ++i) {
    auto got = run_pieces({input.substr(0, i), input.substr(i)}, lim);
    EXPECT_EQ(got.done, want.done) << "split at " << i;
    if (want.error == ContentError::none) {
      EXPECT_EQ(got.content, want.content) << "split at " << i;
    }
    EXPECT_EQ(got.rest, want.rest) << "split at " << i;
    EXPECT_EQ(got.error, want.error) << "split at " << i;
  }
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  auto got = run_pieces(bytes, lim);
  EXPECT_EQ(got.done, want.done);
  if (want.error == ContentError::none) {
    EXPECT_EQ(got.content, want.content);
  }
  EXPECT_EQ(got.rest, want.rest);
  EXPECT_EQ(got.error, want.error);
}

TEST(SmtpDataReader, PlainMessageAndPipelinedRest) {
  const std::string in = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
  auto r = run(in);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.content, "Subject: x\r\n\r\nbody\r\n");
  EXPECT_EQ(r.rest, "QUIT\r\n");
  EXPECT_EQ(r.error, ContentError::none);
  EXPECT_EQ(r.size, r.content.size());
  expect_every_split(in, r);
}

TEST(SmtpDataReader, EmptyMessage) {
  // The DATA command's CRLF is the first CRLF of <CRLF>.<CRLF> (RFC 5321 §4.1.1.4).
  auto r = run(".\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.content, "");
  expect_every_split(".\r\nNOOP\r\n", run(".\r\nNOOP\r\n"));
}

TEST(SmtpDataReader, DotUnstuffing) {
  // RFC 5321 §4.5.2: a leading dot is removed from every line; "..\r\n" is a line of one dot.
  const std::string in = "..\r\n...\r\n.leading\r\nmid.dle\r\n. \r\n.\r\n";
  auto r = run(in);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.content, ".\r\n..\r\nleading\r\nmid.dle\r\n \r\n");
  EXPECT_EQ(r.error, ContentError::none);
  expect_every_split(in, r);
}

TEST(SmtpDataReader, EightBitAndNulArePassedThrough) {
  const std::string in = std::string("caf\xC3\xA9 \x01\x7F", 8) + std::string("\0", 1) + "\r\n.\r\n";
  auto r = run(in);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.content, in.substr(0, in.size() - 3));
}

TEST(SmtpDataReader, NotDoneWithoutTheTerminator) {
  for (std::string in : {"body\r\n", "body\r\n.", "body\r\n.\r", "body", "\r\n..\r\n"}) {
    auto r = run(in);
    EXPECT_FALSE(r.done) << in;
    EXPECT_TRUE(r.rest.empty());
  }
}

// Every end-of-data variant of the SMTP smuggling research. None may end the data; each makes
// the message an error (bare CR or LF); the smuggled commands stay message content; only the real
// <CRLF>.<CRLF> ends it, and what follows is the next command.
TEST(SmtpDataReader, SmugglingVariantsNeverEndTheData) {
  const std::string smuggled = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nspoofed\r\n";
  struct Variant {
    const char* name;
    std::string seq;
    ContentError error;
  };
  const Variant variants[] = {
      {"<LF>.<LF>", "\n.\n", ContentError::bare_lf},
      {"<LF>.<CR><LF>", "\n.\r\n", ContentError::bare_lf},
      {"<CR><LF>.<LF>", "\r\n.\n", ContentError::bare_lf},
      {"<CR>.<CR>", "\r.\r", ContentError::bare_cr},
      {"<CR><LF>.<CR>", "\r\n.\r", ContentError::bare_cr},
      {"<CR>.<CR><LF>", "\r.\r\n", ContentError::bare_cr},
      {"<LF>.<CR>", "\n.\r", ContentError::bare_lf},
      {"<CR>.<LF>", "\r.\n", ContentError::bare_cr},
      {"<CR><LF><NUL>.<CR><LF>", std::string("\r\n\0.\r\n", 6), ContentError::none},
      {"<CR><LF>.<SP><CR><LF>", "\r\n. \r\n", ContentError::none},
  };
  for (const auto& v : variants) {
    // A variant that ends in a complete CRLF line resumes at a line start; one that does not
    // leaves the smuggled MAIL inside a data line. Either way the data continues until the real
    // terminator.
    const std::string in = "Subject: hi\r\n\r\nbody" + v.seq + smuggled + ".\r\nQUIT\r\n";
    auto r = run(in);
    EXPECT_TRUE(r.done) << v.name;
    EXPECT_EQ(r.rest, "QUIT\r\n") << v.name << ": the data must end only at the final <CRLF>.<CRLF>";
    EXPECT_EQ(r.error, v.error) << v.name;
    expect_every_split(in, r);
  }
}

TEST(SmtpDataReader, BareLineEndsAnywhereAreErrors) {
  auto lf = run("line one\nline two\r\n.\r\n");
  EXPECT_TRUE(lf.done);
  EXPECT_EQ(lf.error, ContentError::bare_lf);
  auto cr = run("line one\rline two\r\n.\r\n");
  EXPECT_TRUE(cr.done);
  EXPECT_EQ(cr.error, ContentError::bare_cr);
  auto lead = run("\n.\r\n");  // a bare LF right at the start: "\n." is not a dot line
  EXPECT_FALSE(lead.done);
  lead = run("\n.\r\n.\r\n");
  EXPECT_TRUE(lead.done);
  EXPECT_EQ(lead.error, ContentError::bare_lf);
  auto crcr = run(".\r\r\n.\r\n");  // ".\r" then CRLF: a line ".<CR>", not the terminator
  EXPECT_TRUE(crcr.done);
  EXPECT_EQ(crcr.error, ContentError::bare_cr);
}

TEST(SmtpDataReader, LineLengthLimitCountsCrlf) {
  // RFC 5321 §4.5.3.1.6: 1000 octets including CRLF.
  const std::string ok_line(998, 'x');
  auto ok = run(ok_line + "\r\n.\r\n");
  EXPECT_EQ(ok.error, ContentError::none);
  EXPECT_EQ(ok.content, ok_line + "\r\n");
  auto stuffed = run("." + ok_line + "\r\n.\r\n");  // the stuffed dot is not part of the line
  EXPECT_EQ(stuffed.error, ContentError::none);
  const std::string long_line(999, 'x');
  auto bad = run("a\r\n" + long_line + "\r\nb\r\n.\r\nNOOP\r\n");
  EXPECT_TRUE(bad.done);
  EXPECT_EQ(bad.error, ContentError::line_too_long);
  EXPECT_EQ(bad.rest, "NOOP\r\n");
  expect_every_split("a\r\n" + long_line + "\r\nb\r\n.\r\nNOOP\r\n", bad);
  auto custom = run("12345\r\n.\r\n", ContentLimits{6, 100});
  EXPECT_EQ(custom.error, ContentError::line_too_long);
}

TEST(SmtpDataReader, SizeLimitStopsStoringButFramesToTheEnd) {
  ContentLimits lim{1000, 10};
  auto fits = run("123456\r\n.\r\n", lim);  // 8 octets
  EXPECT_EQ(fits.error, ContentError::none);
  auto big = run("1234567890\r\nmore\r\n.\r\nRSET\r\n", lim);
  EXPECT_TRUE(big.done);
  EXPECT_EQ(big.error, ContentError::too_big);
  EXPECT_LE(big.content.size(), 10u);  // memory stays bounded
  EXPECT_EQ(big.size, 18u);            // what the client sent is still counted
  EXPECT_EQ(big.rest, "RSET\r\n");
  expect_every_split("1234567890\r\nmore\r\n.\r\nRSET\r\n", big, lim);
}

// "\r\r\n.\r\n" contains a real <CRLF>.<CRLF>: every server ends the data there, the sender's
// included, so it cannot smuggle anything; the bare CR before it still refuses the message.
TEST(SmtpDataReader, RealTerminatorAfterABareCrEndsTheData) {
  auto r = run("body\r\r\n.\r\nNOOP\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.error, ContentError::bare_cr);
  EXPECT_EQ(r.rest, "NOOP\r\n");
}

TEST(SmtpDataReader, FirstErrorWins) {
  auto r = run("a\nb\rc\r\n.\r\n");
  EXPECT_EQ(r.error, ContentError::bare_lf);
  EXPECT_EQ(to_string(ContentError::bare_cr), "bare CR");
}

// ---- BDAT ----

struct BdatResult {
  std::string content;
  std::string rest;
  ContentError error = ContentError::none;
};

// Chunks: (announced size, last, octets sent after the command line) — octets may run past the
// chunk (pipelining) and are returned in `rest` for each chunk.
BdatResult run_bdat(const std::vector<std::tuple<std::uint64_t, bool, std::string>>& chunks,
                    std::size_t piece = 1 << 20, ContentLimits lim = {}) {
  BdatReader r(lim);
  BdatResult out;
  for (const auto& [size, last, octets] : chunks) {
    r.start_chunk(size, last);
    std::size_t pos = 0;
    while (!r.chunk_done() && pos < octets.size()) {
      const std::string p = octets.substr(pos, piece);
      const std::size_t used = r.feed(p, out.content);
      pos += used;
      if (used < p.size()) break;
    }
    EXPECT_TRUE(r.chunk_done());
    out.rest += octets.substr(pos);
  }
  out.error = r.error();
  return out;
}

TEST(SmtpBdatReader, ChunksAreCountedNotParsed) {
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
    auto r = run_bdat({{6, false, "Subj: RSET\r\n"}, {11, true, "\r\n.\r\nbody\r\nQUIT\r\n"}}, piece);
    EXPECT_EQ(r.content, "Subj: \r\n.\r\nbody\r\n") << piece;  // no dot-unstuffing, "." is data
    EXPECT_EQ(r.rest, "RSET\r\nQUIT\r\n") << piece;
    EXPECT_EQ(r.error, ContentError::none);
  }
}

TEST(SmtpBdatReader, CrlfMaySpanChunks) {
  auto r = run_bdat({{3, false, "ab\r"}, {3, true, "\ncd"}});
  EXPECT_EQ(r.content, "ab\r\ncd");
  EXPECT_EQ(r.error, ContentError::none);
}

TEST(SmtpBdatReader, BareLineEndsAndTrailingCr) {
  EXPECT_EQ(run_bdat({{4, true, "a\nb\n"}}).error, ContentError::bare_lf);
  EXPECT_EQ(run_bdat({{3, true, "a\rb"}}).error, ContentError::bare_cr);
  EXPECT_EQ(run_bdat({{2, false, "a\r"}, {0, true, ""}}).error, ContentError::bare_cr);  // ends in CR
  EXPECT_EQ(run_bdat({{0, true, ""}}).error, ContentError::none);                        // empty message
}

TEST(SmtpBdatReader, LimitsApplyAcrossChunks) {
  auto big = run_bdat({{6, false, "123456"}, {6, true, "789012NOOP\r\n"}}, 1 << 20, ContentLimits{1000, 10});
  EXPECT_EQ(big.error, ContentError::too_big);
  EXPECT_EQ(big.rest, "NOOP\r\n");
  EXPECT_LE(big.content.size(), 10u);
  auto longline = run_bdat({{4, false, "1234"}, {4, true, "5678"}}, 1 << 20, ContentLimits{8, 100});
  EXPECT_EQ(longline.error, ContentError::line_too_long);
}

}  // namespace
}  // namespace buzon::smtp

namespace buzon::smtp {
namespace {

// Regression (fuzz/smtp_data.cpp): the error must not depend on how the data was split into reads.
TEST(DataReaderSplit, FirstLimitCrossedNamesTheErrorWhateverTheReads) {
  const std::string in = std::string(300, 'x') + "\r\n.\r\n";
  ContentLimits lim;
  lim.max_line = 64;
  lim.max_size = 200;
  for (std::size_t piece : {std::size_t{1}, std::size_t{8}, std::size_t{100}, in.size()}) {
    DataReader r(lim);
    std::string out;
    std::size_t pos = 0;
    while (pos < in.size() && !r.done()) pos += r.feed(std::string_view(in).substr(pos, piece), out);
    EXPECT_TRUE(r.done());
    EXPECT_EQ(r.error(), ContentError::line_too_long) << "piece " << piece;
  }
  lim.max_line = 1000;
  lim.max_size = 10;
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}, in.size()}) {
    DataReader r(lim);
    std::string out;
    std::size_t pos = 0;
    while (pos < in.size() && !r.done()) pos += r.feed(std::string_view(in).substr(pos, piece), out);
    EXPECT_EQ(r.error(), ContentError::too_big) << "piece " << piece;
  }
}

}  // namespace
}  // namespace buzon::smtp
