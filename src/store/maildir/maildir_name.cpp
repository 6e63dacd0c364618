// store/maildir/maildir_name.cpp — Maildir file name parsing (see maildir_name.hpp).
//
// SECURITY  Pure string functions over untrusted names; no I/O.
// STANDARDS cr.yp.to/proto/maildir.html; Dovecot maildir extensions (,S= ,W=).
// LIMITS    See maildir_name.hpp.
#include "store/maildir/maildir_name.hpp"

#include <algorithm>
#include <limits>

namespace buzon::store::maildir {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Parses a run of decimal digits; nullopt when empty or it overflows.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace

std::string_view base_name(std::string_view name) {
  const auto pos = name.find(kInfoSeparator);
  return pos == std::string_view::npos ? name : name.substr(0, pos);
}

std::optional<std::uint64_t> size_hint(std::string_view name, char key) {
  const std::string_view base = base_name(name);
  const char field[] = {',', key, '='};
  const std::string_view needle(field, sizeof field);
  std::size_t pos = 0;
  while ((pos = base.find(needle, pos)) != std::string_view::npos) {
    const std::size_t start = pos + needle.size();
    std::size_t end = start;
    while (end < base.size() && is_digit(base[end])) ++end;
    if (end == base.size() || base[end] == ',') {
      if (auto v = parse_u64(base.substr(start, end - start))) return v;
    }
    pos = start;
  }
  return std::nullopt;
}

std::optional<std::string_view> info_flags(std::string_view name) {
  const auto pos = name.find(kInfoSeparator);
  if (pos == std::string_view::npos) return std::nullopt;
  const std::string_view info = name.substr(pos);
  if (!info.starts_with(kInfoVersion2)) return std::nullopt;
  return info.substr(kInfoVersion2.size());
}

bool has_flag(std::string_view name, char flag) {
  const auto flags = info_flags(name);
  return flags && flags->find(flag) != std::string_view::npos;
}

std::optional<std::string> with_flag(std::string_view name, char flag) {
  const auto pos = name.find(kInfoSeparator);
  if (pos == std::string_view::npos) {
    std::string out(name);
    out += kInfoVersion2;
    out += flag;
    return out;
  }
  const auto flags = info_flags(name);
  if (!flags) return std::nullopt;
  std::string f(*flags);
  if (f.find(flag) == std::string::npos) f += flag;
  std::sort(f.begin(), f.end());
  f.erase(std::unique(f.begin(), f.end()), f.end());
  std::string out(name.substr(0, pos));
  out += kInfoVersion2;
  out += f;
  return out;
}

std::optional<NameTime> name_time(std::string_view name) {
  const auto dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 18) return std::nullopt;
  const auto secs = parse_u64(name.substr(0, dot));
  if (!secs) return std::nullopt;
  NameTime t;
  t.seconds = static_cast<std::int64_t>(*secs);
  // The unique part runs to the next '.'; look for "M<digits>" in it (Dovecot "M<usec>P<pid>",
  // Postfix "V<dev>I<ino>M<usec>", buzon "M<usec>P<pid>Q<n>").
  std::string_view unique = name.substr(dot + 1);
  unique = unique.substr(0, std::min(unique.find('.'), unique.find(',')));
  for (std::size_t i = 0; i < unique.size(); ++i) {
    if (unique[i] != 'M') continue;
    std::size_t end = i + 1;
    while (end < unique.size() && is_digit(unique[end])) ++end;
    if (end > i + 1 && end - i - 1 <= 9) {
      t.micros = static_cast<std::int64_t>(*parse_u64(unique.substr(i + 1, end - i - 1)));
      break;
    }
  }
  return t;
}

std::strong_ordering natural_compare(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      std::size_t ei = i;
      std::size_t ej = j;
      while (ei < a.size() && is_digit(a[ei])) ++ei;
      while (ej < b.size() && is_digit(b[ej])) ++ej;
      // Compare numerically without overflow: strip leading zeros, then length, then digits.
      std::size_t zi = i;
      std::size_t zj = j;
      while (zi + 1 < ei && a[zi] == '0') ++zi;
      while (zj + 1 < ej && b[zj] == '0') ++zj;
      if (ei - zi != ej - zj) return (ei - zi) <=> (ej - zj);
      if (auto c = a.substr(zi, ei - zi).compare(b.substr(zj, ej - zj)); c != 0) return c <=> 0;
      i = ei;
      j = ej;
      continue;
    }
    if (a[i] != b[j]) {
      return static_cast<unsigned char>(a[i]) <=> static_cast<unsigned char>(b[j]);
    }
    ++i;
    ++j;
  }
  if (i < a.size() || j < b.size()) return (a.size() - i) <=> (b.size() - j);
  // Equal as natural strings (e.g. "01" vs "1"): fall back to plain comparison for totality.
  return a.compare(b) <=> 0;
}

std::string escape_host(std::string_view host) {
  std::string out;
  out.reserve(host.size());
  for (unsigned char c : host) {
    if (c == '/' || c == ':' || c == ',' || c == '\\' || c < 0x21 || c > 0x7E) {
      out += '\\';
      out += static_cast<char>('0' + ((c >> 6) & 7));
      out += static_cast<char>('0' + ((c >> 3) & 7));
      out += static_cast<char>('0' + (c & 7));
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.empty()) out = "localhost";
  return out;
}

}  // namespace buzon::store::maildir
