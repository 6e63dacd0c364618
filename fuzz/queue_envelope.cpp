// fuzz/queue_envelope.cpp — the spool's envelope parser (docs/QUEUE.md): env/<id> files are read
// back after crashes, by several processes and by an operator's editor, so parse_envelope() takes
// them as untrusted-as-corrupt text.
//
// Input: the envelope file's bytes, as is.
//
// Invariants beyond "no crash, no UB, no leak, no hang":
//  - an error is one printable line "line N: ..." (it is logged and shown by `buzon queue`);
//  - an accepted envelope has an id, at least one recipient, and the fields the format encodes
//    survive: format_envelope() of it parses again, to an entry that formats identically (the
//    writer and the reader agree; a rewrite after `update` changes nothing);
//  - the formatted text is what the format promises: LF lines, first the version line, last
//    "end", no CR or NUL, no field with a space.
#include "queue/queue_internal.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <string>
#include <string_view>

using namespace buzon;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = queue::parse_envelope(text);
  if (!e) {
    const std::string& err = e.error();
    FUZZ_CHECK(err.starts_with("line "), "errors name a line");
    FUZZ_CHECK(err.size() < 1024, "errors are bounded");
    for (unsigned char c : err) FUZZ_CHECK(c >= 0x20 && c < 0x7f, "errors are printable ASCII (no CR/LF/NUL)");
    return 0;
  }
  FUZZ_CHECK(!e->id.empty(), "an accepted envelope has an id");
  FUZZ_CHECK(!e->recipients.empty(), "an accepted envelope has a recipient");
  const std::string once = queue::format_envelope(*e);
  FUZZ_CHECK(once.starts_with("buzon-queue-envelope 1\n"), "the version line comes first");
  FUZZ_CHECK(once.ends_with("\nend\n"), "the last record is end");
  for (char c : once) FUZZ_CHECK(c != '\r' && c != '\0', "no CR or NUL in a formatted envelope");
  auto again = queue::parse_envelope(once);
  FUZZ_CHECK(again.has_value(), "what format_envelope writes parses");
  FUZZ_CHECK(again->id == e->id && again->sender == e->sender && again->envid == e->envid &&
                 again->recipients.size() == e->recipients.size() && again->size == e->size &&
                 again->attempts == e->attempts && again->created == e->created &&
                 again->next_attempt == e->next_attempt,
             "the fields survive a write and a read");
  for (std::size_t i = 0; i < e->recipients.size(); ++i) {
    FUZZ_CHECK(again->recipients[i].address == e->recipients[i].address, "recipient addresses survive");
    FUZZ_CHECK(again->recipients[i].last_reply == e->recipients[i].last_reply, "last replies survive");
  }
  FUZZ_CHECK(queue::format_envelope(*again) == once, "format(parse(format(e))) == format(e)");
  return 0;
}
