// store/maildir/maildirsize.hpp — the Maildir++ quota file `maildirsize` (issue 10): its format,
// the usage it adds up to, whether it must be recalculated, and whether a new message fits.
//
// FORMAT    (Maildir++ "quotas", as Courier and Dovecot write it) first line: the limits,
//           comma-separated "<bytes>S" and/or "<count>C" (either may be absent: no limit; an empty
//           line: no quota); then one line per change "<bytes> <count>" (negative for removals:
//           POP3 deletions). Usage is the sum of every change line. The file is recalculated
//           (rewritten from a scan of cur/ and new/) when it grows over 5120 octets or is older
//           than 15 minutes, as Courier and Dovecot do, so concurrent writers that lost an append
//           cannot skew it for long.
// SECURITY  The file may be written by other tools (Dovecot, maildrop): parsing is strict about
//           numbers and refuses absurd values rather than trusting them; a bad file is
//           recalculated, never a reason to refuse mail.
// STANDARDS Maildir++ (Courier, "maildirquota"); Dovecot's maildir quota backend.
// THREADS   Pure.
// LIMITS    kMaildirsizeRecalcBytes, kMaildirsizeMaxAge.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::store::maildir {

inline constexpr std::size_t kMaildirsizeRecalcBytes = 5120;
inline constexpr std::chrono::seconds kMaildirsizeMaxAge{15 * 60};

struct QuotaLimits {
  std::uint64_t bytes = 0;     // 0 = no limit
  std::uint64_t messages = 0;  // 0 = no limit
  bool any() const { return bytes != 0 || messages != 0; }
};

struct QuotaUsage {
  std::int64_t bytes = 0;
  std::int64_t messages = 0;
};

struct Maildirsize {
  QuotaLimits limits;
  QuotaUsage usage;
};

// "<bytes>S,<count>C" (only the parts that are set; "" when there is no limit).
std::string format_quota_limits(const QuotaLimits& limits);
// Parses the first line ("10485760S,1000C", "1000C", ""). nullopt when it is not that format.
std::optional<QuotaLimits> parse_quota_limits(std::string_view line);

// The whole file: the limits line then the sum of the change lines. nullopt when any line is
// malformed (then recalculate).
std::optional<Maildirsize> parse_maildirsize(std::string_view text);

// A fresh file: the limits line and one line with the scanned usage.
std::string format_maildirsize(const QuotaLimits& limits, const QuotaUsage& usage);
// One change line to append: "<bytes> <count>\n" (negative when messages were removed).
std::string format_quota_change(std::int64_t bytes, std::int64_t messages);

// Courier/Dovecot rule: rewrite the file when it is over 5120 octets or older than 15 minutes,
// or when its limits line differs from the configured limits.
bool maildirsize_needs_recalc(std::size_t file_size, std::chrono::seconds age, const QuotaLimits& in_file,
                              const QuotaLimits& configured);

// Whether a message of `bytes` octets still fits (a message that reaches the limit exactly fits;
// a mailbox already over it accepts nothing more).
bool quota_allows(const QuotaLimits& limits, const QuotaUsage& usage, std::uint64_t bytes);

// "1G", "500M", "20k", "1048576" -> octets (powers of 1024, Dovecot's convention); nullopt on a
// bad value. "0" = no limit.
std::optional<std::uint64_t> parse_quota_size(std::string_view text);

// --- The file in a Maildir (blocking I/O: run on the worker pool) ---------------------------------

// The usage of a Maildir from a scan of cur/ and new/ (",S=" in the name, else the file size).
QuotaUsage scan_maildir_usage(const std::filesystem::path& maildir);

// The Maildir's maildirsize, rewritten from a scan (tmp + rename) when the recalculation rule says
// so or its change lines are malformed. nullopt when there is no maildirsize (no quota) or its
// limits line is unreadable (then the quota is not enforced rather than mail refused).
std::optional<Maildirsize> read_maildirsize(const std::filesystem::path& maildir,
                                            std::chrono::system_clock::time_point now);

// Appends one change line when maildirsize exists (one O_APPEND write; never creates it).
void append_maildirsize(const std::filesystem::path& maildir, std::int64_t bytes, std::int64_t messages);

// Writes maildirsize with `limits` and the scanned usage (`buzon quota USER --bytes/--messages`);
// limits without any value remove the file (no quota). Returns what is now in force.
std::expected<Maildirsize, std::string> set_maildir_quota(const std::filesystem::path& maildir,
                                                          const QuotaLimits& limits);

// The configured default ([quota]): writes maildirsize with `limits` when the Maildir exists and
// has none (a mailbox's own limits, set with `buzon quota`, are never overwritten). Best effort.
// With `authoritative` (the user's own rule in the passwd-file) the file is also rewritten when its
// limits differ.
void ensure_maildir_quota(const std::filesystem::path& maildir, const QuotaLimits& limits,
                          bool authoritative = false);

// Dovecot quota_rule values ("*:storage=1G", "*:messages=1000", "*:bytes=5000") -> limits;
// nullopt when none of them is one of those.
std::optional<QuotaLimits> parse_quota_rules(const std::vector<std::string>& rules);

// "usage: 321 bytes in 3 messages\nquota: 350 bytes (91%), no message limit\n" (or "quota: none\n")
// for `buzon quota` and `buzon user show`; reads (and may recalculate) maildirsize.
std::string describe_maildir_quota(const std::filesystem::path& maildir);

}  // namespace buzon::store::maildir
