// queue/queue_internal.hpp — pieces of the queue exposed for its own unit tests and the CLI: the
// envelope text format (docs/QUEUE.md) and its strict parser.
//
// SECURITY  parse_envelope() takes untrusted-as-corrupt input: it never throws, bounds every number,
//           and rejects anything that is not exactly the format.
// STANDARDS None (buzon's own format, versioned by its first line).
// LIMITS    None beyond those of Spool (envelope files above 1 MiB are not read).
#pragma once

#include "queue/queue.hpp"

#include <expected>
#include <string>
#include <string_view>

namespace buzon::queue {

std::string format_envelope(const Entry& e);
// "line N: what" on any deviation: unknown or repeated record, bad encoding, missing record, no
// "end" (truncation), data after "end", CR or NUL anywhere, wrong version line.
std::expected<Entry, std::string> parse_envelope(std::string_view text);

}  // namespace buzon::queue
