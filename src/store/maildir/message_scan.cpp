// store/maildir/message_scan.cpp — wire size and X-UIDL scan (see message_scan.hpp).
//
// SECURITY  Bounded header buffer; no allocation proportional to the message size.
// STANDARDS RFC 5322 §2.2, RFC 1939 §7.
// LIMITS    See message_scan.hpp.
#include "store/maildir/message_scan.hpp"

#include <cerrno>
#include <memory>

#include "store/maildir/maildir_fs.hpp"
#include "store/uidl.hpp"

namespace buzon::store::maildir {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim_wsp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True once `buf` holds the empty line that ends the header (or the message has no header).
bool header_complete(std::string_view buf) {
  if (buf.starts_with("\n") || buf.starts_with("\r\n")) return true;
  return buf.find("\n\n") != std::string_view::npos ||
         buf.find("\n\r\n") != std::string_view::npos;
}

}  // namespace

std::optional<std::string> find_x_uidl(std::string_view header, bool at_eof) {
  std::optional<std::string> value;  // the X-UIDL field being collected (with continuations)
  bool in_x_uidl = false;
  while (!header.empty()) {
    const auto nl = header.find('\n');
    if (nl == std::string_view::npos && !at_eof) break;
    std::string_view line = header.substr(0, nl);
    header.remove_prefix(nl == std::string_view::npos ? header.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of header
    if (line.front() == ' ' || line.front() == '\t') {
      if (in_x_uidl) *value += line;
      continue;
    }
    if (in_x_uidl) break;  // the first X-UIDL field is complete
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (iequals(trim_wsp(line.substr(0, colon)), "X-UIDL")) {
      value = std::string(line.substr(colon + 1));
      in_x_uidl = true;
    }
  }
  if (!value) return std::nullopt;
  const std::string_view v = trim_wsp(*value);
  if (!is_valid_uidl(v)) return std::nullopt;
  return std::string(v);
}

Result<ScanResult> scan_message(int fd, bool want_size, bool want_x_uidl, std::string_view what) {
  ScanResult out;
  WireSizeCounter counter;
  std::string header;
  bool header_done = !want_x_uidl;
  const std::unique_ptr<char[]> buf(new char[kScanChunk]);  // not zero-filled: read() fills it
  bool eof = false;
  while (!eof) {
    const long n = read_retry(fd, buf.get(), kScanChunk);
    if (n < 0) return sys_fail("read", what, errno);
    if (n == 0) {
      eof = true;
      break;
    }
    const std::string_view chunk(buf.get(), static_cast<std::size_t>(n));
    if (want_size) counter.feed(chunk);
    if (!header_done) {
      header.append(chunk.substr(0, kMaxHeaderScan - header.size()));
      header_done = header.size() >= kMaxHeaderScan || header_complete(header);
      if (header_done && !want_size) break;
    }
  }
  if (want_x_uidl) out.x_uidl = find_x_uidl(header, eof && header.size() < kMaxHeaderScan);
  out.wire_size = counter.final_size();
  return out;
}

}  // namespace buzon::store::maildir
