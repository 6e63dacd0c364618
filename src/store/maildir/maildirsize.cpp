// store/maildir/maildirsize.cpp — Maildir++ maildirsize (see maildirsize.hpp).
//
// SECURITY  Strict number parsing; malformed files are recalculated by the caller.
// STANDARDS Maildir++ quotas (Courier), Dovecot maildir quota.
// LIMITS    Values up to 2^62 octets.
#include "store/maildir/maildirsize.hpp"

#include "store/maildir/maildir_name.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <fstream>
#include <sstream>

namespace buzon::store::maildir {

namespace {

constexpr std::uint64_t kMaxValue = std::uint64_t{1} << 62;

std::optional<std::int64_t> number(std::string_view s, bool allow_negative) {
  if (s.empty()) return std::nullopt;
  bool negative = false;
  if (s.front() == '-') {
    if (!allow_negative) return std::nullopt;
    negative = true;
    s.remove_prefix(1);
  }
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v > kMaxValue) return std::nullopt;
  return negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
}

}  // namespace

std::string format_quota_limits(const QuotaLimits& limits) {
  std::string s;
  if (limits.bytes) s += std::to_string(limits.bytes) + "S";
  if (limits.messages) s += (s.empty() ? "" : ",") + std::to_string(limits.messages) + "C";
  return s;
}

std::optional<QuotaLimits> parse_quota_limits(std::string_view line) {
  QuotaLimits l;
  if (!line.empty() && line.back() == ',') return std::nullopt;
  while (!line.empty()) {
    const auto comma = line.find(',');
    std::string_view part = line.substr(0, comma);
    line = comma == std::string_view::npos ? std::string_view() : line.substr(comma + 1);
    if (part.size() < 2) return std::nullopt;
    const char kind = part.back();
    auto v = number(part.substr(0, part.size() - 1), false);
    if (!v) return std::nullopt;
    if (kind == 'S')
      l.bytes = static_cast<std::uint64_t>(*v);
    else if (kind == 'C')
      l.messages = static_cast<std::uint64_t>(*v);
    else
      return std::nullopt;
  }
  return l;
}

std::optional<Maildirsize> parse_maildirsize(std::string_view text) {
  Maildirsize m;
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;  // not even a complete limits line
  auto limits = parse_quota_limits(text.substr(0, nl));
  if (!limits) return std::nullopt;
  m.limits = *limits;
  text = text.substr(nl + 1);
  while (!text.empty()) {
    const auto end = text.find('\n');
    if (end == std::string_view::npos) break;  // a partial last line (a writer died): ignored
    std::string_view line = text.substr(0, end);
    text = text.substr(end + 1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty()) continue;
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    std::string_view second = line.substr(sp + 1);
    while (!second.empty() && second.front() == ' ') second.remove_prefix(1);
    auto b = number(line.substr(0, sp), true);
    auto c = number(second, true);
    if (!b || !c) return std::nullopt;
    m.usage.bytes += *b;
    m.usage.messages += *c;
  }
  return m;
}

std::string format_maildirsize(const QuotaLimits& limits, const QuotaUsage& usage) {
  return format_quota_limits(limits) + "\n" + format_quota_change(usage.bytes, usage.messages);
}

std::string format_quota_change(std::int64_t bytes, std::int64_t messages) {
  return std::to_string(bytes) + " " + std::to_string(messages) + "\n";
}

bool maildirsize_needs_recalc(std::size_t file_size, std::chrono::seconds age, const QuotaLimits& in_file,
                              const QuotaLimits& configured) {
  return file_size > kMaildirsizeRecalcBytes || age > kMaildirsizeMaxAge || in_file.bytes != configured.bytes ||
         in_file.messages != configured.messages;
}

bool quota_allows(const QuotaLimits& limits, const QuotaUsage& usage, std::uint64_t bytes) {
  const auto used_bytes = static_cast<std::uint64_t>(usage.bytes < 0 ? 0 : usage.bytes);
  const auto used_count = static_cast<std::uint64_t>(usage.messages < 0 ? 0 : usage.messages);
  if (limits.bytes && used_bytes + bytes > limits.bytes) return false;
  if (limits.messages && used_count + 1 > limits.messages) return false;
  return true;
}

std::optional<std::uint64_t> parse_quota_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t mult = 1;
  switch (text.back()) {
    case 'k': case 'K': mult = 1024; break;
    case 'M': mult = 1024ull * 1024; break;
    case 'G': mult = 1024ull * 1024 * 1024; break;
    case 'T': mult = 1024ull * 1024 * 1024 * 1024; break;
    default: break;
  }
  if (mult != 1) text.remove_suffix(1);
  auto v = number(text, false);
  if (!v) return std::nullopt;
  const auto n = static_cast<std::uint64_t>(*v);
  if (n > kMaxValue / mult) return std::nullopt;
  return n * mult;
}

namespace {

std::expected<void, std::string> write_atomically(const std::filesystem::path& path, const std::string& text) {
  static std::atomic<unsigned> counter{0};  // threads of one process must not share a tmp file
  const auto tmp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return std::unexpected(tmp + ": cannot create");
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  if (::close(fd) != 0 || !ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return std::unexpected(path.string() + ": cannot write");
  }
  return {};
}

}  // namespace

QuotaUsage scan_maildir_usage(const std::filesystem::path& maildir) {
  QuotaUsage u;
  for (const char* sub : {"cur", "new"}) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(maildir / sub, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.empty() || name.front() == '.') continue;
      std::uint64_t size = 0;
      if (auto hint = size_hint(name, 'S')) {
        size = *hint;
      } else {
        std::error_code sec;
        size = it->file_size(sec);
        if (sec) continue;  // vanished meanwhile
      }
      u.bytes += static_cast<std::int64_t>(size);
      ++u.messages;
    }
  }
  return u;
}

std::optional<Maildirsize> read_maildirsize(const std::filesystem::path& maildir,
                                            std::chrono::system_clock::time_point now) {
  const auto path = maildir / "maildirsize";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  auto limits = parse_quota_limits(std::string_view(text).substr(0, text.find('\n')));
  if (!limits) return std::nullopt;
  auto parsed = parse_maildirsize(text);
  const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - std::chrono::system_clock::from_time_t(st.st_mtime));
  if (parsed && !maildirsize_needs_recalc(text.size(), age, parsed->limits, *limits)) return parsed;
  Maildirsize fresh{*limits, scan_maildir_usage(maildir)};
  (void)write_atomically(path, format_maildirsize(fresh.limits, fresh.usage));  // best effort: the scan is right
  return fresh;
}

void append_maildirsize(const std::filesystem::path& maildir, std::int64_t bytes, std::int64_t messages) {
  const auto path = maildir / "maildirsize";
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  const std::string line = format_quota_change(bytes, messages);
  (void)!::write(fd, line.data(), line.size());  // a lost line is fixed by the next recalculation
  ::close(fd);
}

std::expected<Maildirsize, std::string> set_maildir_quota(const std::filesystem::path& maildir,
                                                          const QuotaLimits& limits) {
  const auto path = maildir / "maildirsize";
  Maildirsize m{limits, scan_maildir_usage(maildir)};
  if (!limits.any()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) return std::unexpected(path.string() + ": " + ec.message());
    return m;
  }
  std::error_code ec;
  std::filesystem::create_directories(maildir, ec);
  if (auto ok = write_atomically(path, format_maildirsize(limits, m.usage)); !ok) return std::unexpected(ok.error());
  return m;
}

void ensure_maildir_quota(const std::filesystem::path& maildir, const QuotaLimits& limits, bool authoritative) {
  if (!limits.any() && !authoritative) return;
  std::error_code ec;
  if (!std::filesystem::is_directory(maildir / "new", ec)) return;  // created by the first delivery
  if (authoritative) {
    auto current = read_maildirsize(maildir, std::chrono::system_clock::now());
    const QuotaLimits have = current ? current->limits : QuotaLimits{};
    if (have.bytes != limits.bytes || have.messages != limits.messages) (void)set_maildir_quota(maildir, limits);
    return;
  }
  if (std::filesystem::exists(maildir / "maildirsize", ec) || ec) return;
  (void)set_maildir_quota(maildir, limits);
}

std::optional<QuotaLimits> parse_quota_rules(const std::vector<std::string>& rules) {
  std::optional<QuotaLimits> out;
  for (std::string_view r : rules) {
    if (!r.starts_with("*:")) continue;
    r.remove_prefix(2);
    const auto eq = r.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = r.substr(0, eq), value = r.substr(eq + 1);
    auto v = parse_quota_size(value);
    if (!v) continue;
    if (key == "storage" || key == "bytes") {
      if (!out) out = QuotaLimits{};
      out->bytes = *v;
    } else if (key == "messages") {
      if (!out) out = QuotaLimits{};
      out->messages = *v;
    }
  }
  return out;
}

std::string describe_maildir_quota(const std::filesystem::path& maildir) {
  auto m = read_maildirsize(maildir, std::chrono::system_clock::now());
  const QuotaUsage u = m ? m->usage : scan_maildir_usage(maildir);
  std::string s = "usage: " + std::to_string(u.bytes) + " bytes in " + std::to_string(u.messages) + " messages\n";
  if (!m || !m->limits.any()) return s + "quota: none\n";
  auto percent = [](std::int64_t used, std::uint64_t limit) {
    return std::to_string(used <= 0 ? 0 : static_cast<std::uint64_t>(used) * 100 / limit) + "%";
  };
  s += "quota: ";
  s += m->limits.bytes ? std::to_string(m->limits.bytes) + " bytes (" + percent(u.bytes, m->limits.bytes) + ")"
                       : std::string("no byte limit");
  s += ", ";
  s += m->limits.messages ? std::to_string(m->limits.messages) + " messages (" + percent(u.messages, m->limits.messages) + ")"
                          : std::string("no message limit");
  return s + "\n";
}

}  // namespace buzon::store::maildir
