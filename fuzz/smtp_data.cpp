// fuzz/smtp_data.cpp — the DATA and BDAT readers (the SMTP smuggling defence lives here).
//
// Input: [split octet][limits octet] then the octets a client sends after "354".
// Invariants checked on top of "no crash, no UB":
//  - framing does not depend on how the octets arrive: fed whole or in pieces of 1..256 octets,
//    DataReader consumes the same octets and produces the same content, done flag and error;
//  - DATA ends only at <CRLF>.<CRLF> (or ".<CRLF>" as the very first line): never at a bare LF,
//    a bare CR or "\n.\n" — the 2023 SMTP smuggling endings;
//  - content never exceeds max_size octets once the reader reports too_big, and size() counts
//    what was read;
//  - BDAT consumes exactly the announced chunk sizes, whatever the split.
#include "proto/smtp/data_reader.hpp"

#include "fuzz_check.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace buzon::smtp;

struct Outcome {
  std::size_t consumed = 0;
  std::string content;
  bool done = false;
  ContentError error = ContentError::none;
  std::uint64_t size = 0;
};

Outcome run_data(std::string_view in, ContentLimits lim, std::size_t piece) {
  DataReader r(lim);
  Outcome o;
  while (o.consumed < in.size() && !r.done()) {
    auto chunk = in.substr(o.consumed, piece);
    const std::size_t n = r.feed(chunk, o.content);
    FUZZ_CHECK(n <= chunk.size(), "feed consumes at most its input");
    FUZZ_CHECK(n == chunk.size() || r.done(), "feed consumes everything unless the data ended");
    o.consumed += n;
  }
  o.done = r.done();
  o.error = r.error();
  o.size = r.size();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t piece = 1 + data[0];
  ContentLimits lim;
  lim.max_line = (data[1] & 1) ? 1000 : 64;
  lim.max_size = (data[1] & 2) ? 10 * 1024 * 1024 : 200;
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

  const Outcome whole = run_data(in, lim, in.size() + 1);
  const Outcome split = run_data(in, lim, piece);
  FUZZ_CHECK(whole.consumed == split.consumed, "DATA framing does not depend on the read size");
  FUZZ_CHECK(whole.done == split.done, "DATA end detection does not depend on the read size");
  FUZZ_CHECK(whole.error == split.error, "DATA errors do not depend on the read size");
  // After an error the message is refused and its content dropped: only error-free content counts.
  if (whole.error == ContentError::none)
    FUZZ_CHECK(whole.content == split.content, "DATA content does not depend on the read size");
  if (whole.done) {
    const std::string_view used = in.substr(0, whole.consumed);
    const bool first_line = used == ".\r\n";
    FUZZ_CHECK(first_line || (used.size() >= 5 && used.substr(used.size() - 5) == "\r\n.\r\n"),
               "DATA ends only at <CRLF>.<CRLF>");
  } else {
    FUZZ_CHECK(whole.consumed == in.size(), "unfinished DATA consumed everything");
  }
  if (whole.error == ContentError::none) FUZZ_CHECK(whole.size == whole.content.size(), "size() counts the content");
  if (whole.error == ContentError::too_big) FUZZ_CHECK(whole.content.size() <= lim.max_size + lim.max_line + 2, "content stops near max_size");

  // BDAT: chunk sizes from the input itself (first octet of each chunk), LAST on the final one.
  BdatReader b(lim);
  std::string out;
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::uint64_t want = static_cast<unsigned char>(in[pos++]);
    const bool last = pos + want >= in.size();
    b.start_chunk(want, last);
    std::uint64_t got = 0;
    while (!b.chunk_done() && pos < in.size()) {
      const auto n = b.feed(in.substr(pos, piece), out);
      FUZZ_CHECK(n <= piece && n > 0, "BDAT feed makes progress within its input");
      pos += n;
      got += n;
    }
    FUZZ_CHECK(got <= want, "BDAT never reads past the announced chunk");
    if (last) break;
  }
  return 0;
}
