// store/maildir/message_scan.hpp — one streaming pass over a stored message: its wire size (octets
// once every bare LF is sent as CRLF and an unterminated last line completed) and, on request, its
// X-UIDL header.
//
// SECURITY  Message bytes are untrusted: the header is scanned only up to kMaxHeaderScan octets,
//           and an X-UIDL is accepted only when it is a valid RFC 1939 UIDL.
// STANDARDS RFC 5322 §2.2 (header fields, folding), §2.1 (header ends at the first empty line);
//           RFC 1939 §7 (UIDL charset); X-UIDL is the de-facto header left by POP3 fetchers.
// LIMITS    kMaxHeaderScan = 256 KiB of header; kScanChunk = 64 KiB reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "store/maildrop.hpp"

namespace buzon::store::maildir {

inline constexpr std::size_t kMaxHeaderScan = 256 * 1024;
inline constexpr std::size_t kScanChunk = 64 * 1024;

// The first X-UIDL header's value in `header` (the start of a message), if it is a valid UIDL.
// `at_eof` says the text is the whole message; otherwise a final line without LF is ignored.
std::optional<std::string> find_x_uidl(std::string_view header, bool at_eof);

struct ScanResult {
  std::uint64_t wire_size = 0;      // WireSizeCounter::final_size(), when the size was asked for
  std::optional<std::string> x_uidl;  // valid when the X-UIDL was asked for
};

// Reads `fd` from its current offset. Stops after the header when the size is not wanted.
// `what` names the file for error details.
Result<ScanResult> scan_message(int fd, bool want_size, bool want_x_uidl, std::string_view what);

}  // namespace buzon::store::maildir
