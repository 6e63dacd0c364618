// store/maildir/maildir_index.cpp — "buzon-index" format (see maildir_index.hpp).
//
// SECURITY  Untrusted text; malformed lines are skipped.
// STANDARDS Own format, version 2.
// LIMITS    See maildir_index.hpp.
#include "store/maildir/maildir_index.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

#include "store/uidl.hpp"

namespace buzon::store::maildir {
namespace {

template <class T>
bool parse_num(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

Index parse_index(std::string_view text) {
  Index index;
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos || text.substr(0, nl) != kIndexHeader) return index;
  text.remove_prefix(nl + 1);
  while (!text.empty()) {
    const auto end = text.find('\n');
    if (end == std::string_view::npos) break;  // a truncated last line is ignored
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);

    const auto t1 = line.find('\t');
    const auto t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    const auto t3 = t2 == std::string_view::npos ? t2 : line.find('\t', t2 + 1);
    if (t3 == std::string_view::npos) continue;
    IndexEntry e;
    if (!parse_num(line.substr(0, t1), e.wire_size)) continue;
    if (!parse_num(line.substr(t1 + 1, t2 - t1 - 1), e.mtime)) continue;
    const std::string_view x = line.substr(t2 + 1, t3 - t2 - 1);
    if (x == "?") {
      e.x_uidl_state = IndexEntry::XUidl::unknown;
    } else if (x == "-") {
      e.x_uidl_state = IndexEntry::XUidl::none;
    } else if (x.size() > 1 && x[0] == '+' && is_valid_uidl(x.substr(1))) {
      e.x_uidl_state = IndexEntry::XUidl::present;
      e.x_uidl = std::string(x.substr(1));
    } else {
      continue;
    }
    const std::string_view base = line.substr(t3 + 1);
    if (base.empty() || base.find('/') != std::string_view::npos) continue;
    index.insert_or_assign(std::string(base), std::move(e));
  }
  return index;
}

std::string format_index(const Index& index) {
  std::vector<const Index::value_type*> rows;
  rows.reserve(index.size());
  for (const auto& kv : index) {
    if (kv.first.find('\n') == std::string::npos && !kv.first.empty()) rows.push_back(&kv);
  }
  std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->first < b->first; });
  std::string out;
  out.reserve(kIndexHeader.size() + 1 + rows.size() * 80);
  out += kIndexHeader;
  out += '\n';
  for (const auto* kv : rows) {
    const IndexEntry& e = kv->second;
    out += std::to_string(e.wire_size);
    out += '\t';
    out += std::to_string(e.mtime);
    out += '\t';
    switch (e.x_uidl_state) {
      case IndexEntry::XUidl::unknown: out += '?'; break;
      case IndexEntry::XUidl::none: out += '-'; break;
      case IndexEntry::XUidl::present:
        out += '+';
        out += e.x_uidl;
        break;
    }
    out += '\t';
    out += kv->first;
    out += '\n';
  }
  return out;
}

}  // namespace buzon::store::maildir
