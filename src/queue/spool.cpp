// queue/spool.cpp — the on-disk spool: ids, durable enqueue, envelope files, leases, crash cleanup.
//
// SECURITY  Ids are generated here from the kernel CSPRNG (getrandom) and checked by valid_id()
//           before any use as a path component. Every file is created 0600 with O_NOFOLLOW and every
//           directory 0700. The envelope parser is strict: a file that does not parse is reported,
//           moved to corrupt/ and never crashes the caller.
// STANDARDS POSIX rename(2), fsync(2), fdatasync(2); flock(2) (Linux: one lock per open file
//           description, so two threads of one process exclude each other too).
// THREADS   Any thread; every call blocks on the disk. Concurrency between processes and threads is
//           by flock on msg/<id> (the lease) — msg/<id> is never replaced while the entry exists,
//           unlike env/<id>, which is renamed over at every update (a lock on it would be lost at the
//           first update). docs/QUEUE.md explains the choice.
// LIMITS    Envelope files above 1 MiB are refused as corrupt (100 recipients take a few KiB).
#include "queue/queue.hpp"
#include "queue/queue_internal.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

namespace buzon::queue {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kMagic = "buzon-queue-envelope 1";
constexpr std::size_t kMaxEnvelope = 1 << 20;
// A tmp/ file whose writer is still alive is kept unless it is this old (a recycled pid).
constexpr auto kStaleTmp = std::chrono::hours(1);

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string sys_error(const std::filesystem::path& p, std::string_view what, int err) {
  return fmt::format("{}: {}: {}", p.string(), what, std::strerror(err));
}

std::expected<void, std::string> write_all(int fd, std::string_view data, const std::filesystem::path& p) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sys_error(p, "write failed", errno));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::expected<void, std::string> fsync_dir(const std::filesystem::path& d) {
  Fd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(sys_error(d, "cannot open directory", errno));
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return std::unexpected(sys_error(d, "fsync failed", errno));
  return {};
}

std::expected<std::string, std::string> read_file(const std::filesystem::path& p, std::size_t limit) {
  Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return std::unexpected(sys_error(p, "cannot open", errno));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sys_error(p, "read failed", errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit) return std::unexpected(fmt::format("{}: larger than {} octets", p.string(), limit));
  }
  return out;
}

// Names in a directory (no . and ..); empty on error.
std::vector<std::string> names_in(const std::filesystem::path& d) {
  std::vector<std::string> out;
  DIR* dir = ::opendir(d.c_str());
  if (!dir) return out;
  while (auto* ent = ::readdir(dir)) {
    std::string_view n = ent->d_name;
    if (n == "." || n == "..") continue;
    out.emplace_back(n);
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::string base62(std::uint64_t v, std::size_t width) {
  std::string s(width, '0');
  for (std::size_t i = width; i-- > 0;) {
    s[i] = kAlphabet[v % 62];
    v /= 62;
  }
  return s;
}

// 20 characters: 6 of seconds and 4 of microseconds since the epoch (base 62 in ASCII order, so
// ids sort by creation time until the year 3770), then 10 random ones (59 bits).
std::string new_id() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
  std::string id = base62(static_cast<std::uint64_t>(us / 1000000), 6) + base62(static_cast<std::uint64_t>(us % 1000000), 4);
  unsigned char rnd[10];
  std::size_t got = 0;
  while (got < sizeof rnd) {
    const ssize_t n = ::getrandom(rnd + got, sizeof rnd - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen on Linux >= 3.17 once the pool is initialised; fall back below
    }
    got += static_cast<std::size_t>(n);
  }
  for (std::size_t i = 0; i < sizeof rnd; ++i) {
    unsigned v = rnd[i];
    if (got < sizeof rnd) v ^= static_cast<unsigned>(us >> (i % 8)) ^ static_cast<unsigned>(::getpid());
    id += kAlphabet[v % 62];  // slight bias is irrelevant: uniqueness, not secrecy
  }
  return id;
}

// ---- envelope text format (docs/QUEUE.md) ----

// Field encoding: "-" is the empty string; otherwise every octet outside 0x21..0x7E, '%', and a
// value that is exactly "-" are written %XX. So a field never contains space, CR, LF or NUL.
std::string enc(std::string_view s) {
  if (s.empty()) return "-";
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7E || c == '%' || (s == "-" && c == '-'))
      out += fmt::format("%{:02X}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

std::optional<std::string> dec(std::string_view s) {
  if (s == "-") return std::string();
  if (s.empty()) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      unsigned v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
      out += static_cast<char>(v);
      i += 2;
    } else if (c < 0x21 || c > 0x7E) {
      return std::nullopt;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::optional<std::uint64_t> num(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<bool> flag(std::string_view s) {
  if (s == "0") return false;
  if (s == "1") return true;
  return std::nullopt;
}

std::string notify_text(const Notify& n) {
  if (n.never) return "NEVER";
  std::string s;
  auto add = [&](bool on, std::string_view w) {
    if (on) s += (s.empty() ? "" : ",") + std::string(w);
  };
  add(n.success, "SUCCESS");
  add(n.failure, "FAILURE");
  add(n.delay, "DELAY");
  return s.empty() ? "-" : s;
}

std::optional<Notify> parse_notify(std::string_view s) {
  Notify n{false, false, false, false};
  if (s == "NEVER") {
    n.never = true;
    return n;
  }
  if (s == "-") return n;
  while (!s.empty()) {
    auto comma = s.find(',');
    auto w = s.substr(0, comma);
    bool* f = w == "SUCCESS" ? &n.success : w == "FAILURE" ? &n.failure : w == "DELAY" ? &n.delay : nullptr;
    if (!f || *f) return std::nullopt;
    *f = true;
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
    if (s.empty()) return std::nullopt;
  }
  return n;
}

std::optional<RcptState> parse_state(std::string_view s) {
  if (s == "pending") return RcptState::pending;
  if (s == "delivered") return RcptState::delivered;
  if (s == "failed") return RcptState::failed;
  return std::nullopt;
}

std::int64_t secs(TimePoint t) { return t.time_since_epoch().count(); }

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i <= line.size()) {
    auto sp = line.find(' ', i);
    if (sp == std::string_view::npos) sp = line.size();
    out.push_back(line.substr(i, sp - i));
    i = sp + 1;
  }
  return out;
}

}  // namespace

std::string_view to_string(RcptState s) {
  switch (s) {
    case RcptState::pending: return "pending";
    case RcptState::delivered: return "delivered";
    case RcptState::failed: return "failed";
  }
  return "unknown";
}

bool valid_id(std::string_view id) {
  return id.size() == 20 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
         });
}

// Exposed for the tests (queue_internal): the envelope text of an entry, and its strict parser.
std::string format_envelope(const Entry& e) {
  std::string s;
  s += kMagic;
  s += '\n';
  s += fmt::format("id {}\n", e.id);
  s += fmt::format("created {}\n", secs(e.created));
  s += fmt::format("next {}\n", secs(e.next_attempt));
  s += fmt::format("attempts {}\n", e.attempts);
  s += fmt::format("held {}\n", e.held ? 1 : 0);
  s += fmt::format("warned {}\n", e.delay_warned ? 1 : 0);
  s += fmt::format("size {}\n", e.size);
  s += fmt::format("sender {}\n", enc(e.sender));
  s += fmt::format("envid {}\n", enc(e.envid));
  s += fmt::format("ret {}\n", e.ret_hdrs ? "HDRS" : "FULL");
  s += fmt::format("smtputf8 {}\n", e.smtputf8 ? 1 : 0);
  s += fmt::format("8bitmime {}\n", e.eightbit ? 1 : 0);
  for (auto& r : e.recipients)
    s += fmt::format("rcpt {} {} {} {} {} {} {}\n", to_string(r.state), r.attempts, notify_text(r.notify), enc(r.address),
                     enc(r.orcpt), enc(r.remote_mta), enc(r.last_reply));
  s += "end\n";
  return s;
}

std::expected<Entry, std::string> parse_envelope(std::string_view text) {
  Entry e;
  std::size_t lineno = 0;
  bool ended = false;
  unsigned seen = 0;  // bit per single-valued record
  static constexpr std::string_view singles[] = {"id",   "created", "next",  "attempts", "held",     "warned",
                                                 "size", "sender",  "envid", "ret",      "smtputf8", "8bitmime"};
  auto bad = [&](std::string_view what) -> std::unexpected<std::string> {
    return std::unexpected(fmt::format("line {}: {}", lineno, what));
  };
  if (text.find('\0') != std::string_view::npos || text.find('\r') != std::string_view::npos) {
    lineno = 0;
    return bad("NUL or CR in the envelope");
  }
  if (text.empty() || text.back() != '\n') return bad("the file does not end with a newline (truncated?)");
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++lineno;
    if (ended) return bad("data after 'end'");
    if (lineno == 1) {
      if (line != kMagic) {
        if (line.starts_with("buzon-queue-envelope "))
          return bad(fmt::format("unsupported envelope version '{}' (written by a newer buzon?)",
                                 enc(line.substr(21, 40))));
        return bad("not a buzon queue envelope (first line must be 'buzon-queue-envelope 1')");
      }
      continue;
    }
    if (line == "end") {
      ended = true;
      continue;
    }
    auto f = split_spaces(line);
    const std::string_view key = f[0];
    if (key == "rcpt") {
      if (f.size() != 8) return bad("'rcpt' needs 7 fields");
      Recipient r;
      auto st = parse_state(f[1]);
      auto att = num(f[2]);
      auto no = parse_notify(f[3]);
      auto addr = dec(f[4]), orcpt = dec(f[5]), mta = dec(f[6]), reply = dec(f[7]);
      if (!st) return bad("bad recipient state");
      if (!att || *att > 1000000) return bad("bad recipient attempt count");
      if (!no) return bad("bad NOTIFY value");
      if (!addr || addr->empty() || !orcpt || !mta || !reply) return bad("bad recipient field encoding");
      r.state = *st;
      r.attempts = static_cast<unsigned>(*att);
      r.notify = *no;
      r.address = std::move(*addr);
      r.orcpt = std::move(*orcpt);
      r.remote_mta = std::move(*mta);
      r.last_reply = std::move(*reply);
      e.recipients.push_back(std::move(r));
      continue;
    }
    auto it = std::find(std::begin(singles), std::end(singles), key);
    // The text goes to logs and `buzon queue`: octets it does not own are shown %XX-encoded.
    if (it == std::end(singles)) return bad(fmt::format("unknown record '{}'", enc(key.substr(0, 40))));
    const unsigned bit = 1u << (it - std::begin(singles));
    if (seen & bit) return bad(fmt::format("record '{}' given twice", key));
    seen |= bit;
    if (f.size() != 2) return bad(fmt::format("'{}' needs exactly one field", key));
    const std::string_view v = f[1];
    if (key == "id") {
      if (!valid_id(v)) return bad("bad id");
      e.id = std::string(v);
    } else if (key == "created" || key == "next") {
      auto n = num(v);
      if (!n || *n > (std::uint64_t{1} << 40)) return bad(fmt::format("bad time in '{}'", key));
      (key == "created" ? e.created : e.next_attempt) = TimePoint(std::chrono::seconds(static_cast<std::int64_t>(*n)));
    } else if (key == "attempts") {
      auto n = num(v);
      if (!n || *n > 1000000) return bad("bad attempt count");
      e.attempts = static_cast<unsigned>(*n);
    } else if (key == "size") {
      auto n = num(v);
      if (!n) return bad("bad size");
      e.size = *n;
    } else if (key == "held" || key == "warned" || key == "smtputf8" || key == "8bitmime") {
      auto b = flag(v);
      if (!b) return bad(fmt::format("'{}' must be 0 or 1", key));
      (key == "held" ? e.held : key == "warned" ? e.delay_warned : key == "smtputf8" ? e.smtputf8 : e.eightbit) = *b;
    } else if (key == "sender" || key == "envid") {
      auto d = dec(v);
      if (!d) return bad(fmt::format("bad field encoding in '{}'", key));
      (key == "sender" ? e.sender : e.envid) = std::move(*d);
    } else if (key == "ret") {
      if (v != "HDRS" && v != "FULL") return bad("'ret' must be HDRS or FULL");
      e.ret_hdrs = v == "HDRS";
    }
  }
  if (!ended) return bad("no 'end' record (truncated?)");
  for (std::size_t i = 0; i < std::size(singles); ++i)
    if (!(seen & (1u << i))) return bad(fmt::format("missing record '{}'", singles[i]));
  if (e.recipients.empty()) return bad("no recipient");
  return e;
}

// ---- Lease ----

Lease::Lease(Lease&& o) noexcept : fd_(std::exchange(o.fd_, -1)), id_(std::move(o.id_)) {}
Lease& Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    id_ = std::move(o.id_);
  }
  return *this;
}
Lease::~Lease() {
  if (fd_ >= 0) ::close(fd_);  // closing the only descriptor of the open file releases the flock
}

// ---- Spool ----

namespace {

bool pid_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// tmp/ names: "<id>.<pid>.msg" and "<id>.<pid>.env".
long tmp_writer_pid(std::string_view name) {
  auto dot = name.find('.');
  if (dot == std::string_view::npos) return -1;
  auto rest = name.substr(dot + 1);
  auto dot2 = rest.find('.');
  long pid = -1;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + (dot2 == std::string_view::npos ? rest.size() : dot2), pid);
  if (ec != std::errc()) return -1;
  return pid;
}

// Run as root (`buzon queue` by an operator) on a spool owned by the server's user: a new file
// gets the owner of its directory, so the server can still read and replace it.
void adopt_owner(int fd, const std::filesystem::path& dir) {
  if (::geteuid() != 0) return;
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0 && st.st_uid != 0) (void)!::fchown(fd, st.st_uid, st.st_gid);
}

std::expected<void, std::string> mkdir_0700(const std::filesystem::path& p) {
  if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) return std::unexpected(sys_error(p, "cannot create directory", errno));
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) return std::unexpected(sys_error(p, "cannot stat", errno));
  if (!S_ISDIR(st.st_mode)) return std::unexpected(p.string() + ": not a directory");
  return {};
}

}  // namespace

std::expected<std::unique_ptr<Spool>, std::string> Spool::open(const std::filesystem::path& dir) {
  if (auto r = mkdir_0700(dir); !r) return std::unexpected(r.error());
  for (auto sub : {"tmp", "msg", "env", "corrupt"})
    if (auto r = mkdir_0700(dir / sub); !r) return std::unexpected(r.error());
  std::unique_ptr<Spool> s(new Spool(dir));

  // tmp/: a file whose writer is dead is a crash leftover (see docs/QUEUE.md: a writer's pid is in
  // the name, so a concurrent enqueue in a live process is never disturbed).
  const auto now = std::filesystem::file_time_type::clock::now();
  for (auto& n : names_in(dir / "tmp")) {
    const auto p = dir / "tmp" / n;
    const long pid = tmp_writer_pid(n);
    std::error_code ec;
    const auto mtime = std::filesystem::last_write_time(p, ec);
    const bool old = !ec && now - mtime > kStaleTmp;
    if (pid == ::getpid() && !old) continue;
    if (!pid_alive(pid) || old) {
      if (::unlink(p.c_str()) == 0) spdlog::info("queue: removed crash leftover {}", p.string());
    }
  }
  // msg/ without env/: an enqueue that died before its commit point. A live enqueue holds the flock
  // on its msg/ file from before the file appears until after env/ is committed, so a file we can
  // lock and that still has no env/ is an orphan.
  bool removed = false;
  for (auto& n : names_in(dir / "msg")) {
    if (!valid_id(n)) continue;
    const auto m = dir / "msg" / n;
    if (::access((dir / "env" / n).c_str(), F_OK) == 0) continue;
    Fd fd(::open(m.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0 || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (::access((dir / "env" / n).c_str(), F_OK) == 0) continue;
    if (::unlink(m.c_str()) == 0) {
      spdlog::info("queue: removed orphan message {} (crash before its envelope was committed)", m.string());
      removed = true;
    }
  }
  if (removed) (void)fsync_dir(dir / "msg");
  // env/ without msg/ cannot happen (msg/ is durable first); if the disk says otherwise, keep the
  // envelope for inspection in corrupt/.
  for (auto& n : names_in(dir / "env")) {
    if (!valid_id(n)) continue;
    if (::access((dir / "msg" / n).c_str(), F_OK) != 0 && errno == ENOENT) {
      const auto to = dir / "corrupt" / (n + ".env");
      if (::rename((dir / "env" / n).c_str(), to.c_str()) == 0)
        spdlog::error("queue: envelope {} has no message; moved to {}", n, to.string());
    }
  }
  return s;
}

std::filesystem::path Spool::message_path(std::string_view id) const { return dir_ / "msg" / std::string(id); }

std::expected<std::string, std::string> Spool::read_message(std::string_view id) const {
  if (!valid_id(id)) return std::unexpected(fmt::format("'{}' is not a queue id", id));
  return read_file(message_path(id), std::size_t{1} << 31);
}

std::expected<std::string, std::string> Spool::enqueue(const NewMessage& m, std::span<const std::string_view> parts,
                                                       TimePoint now) {
  if (m.recipients.empty()) return std::unexpected("no recipient");
  const std::string id = new_id();
  const std::string pid = std::to_string(::getpid());
  const auto tmp_msg = dir_ / "tmp" / (id + "." + pid + ".msg");
  const auto tmp_env = dir_ / "tmp" / (id + "." + pid + ".env");
  const auto msg = dir_ / "msg" / id;
  const auto env = dir_ / "env" / id;

  // 1. The message, in tmp/, locked (the lock travels with the file into msg/ and makes it visibly
  //    "being enqueued" to open()'s orphan sweep), written, fdatasync'd, renamed into msg/.
  Fd mfd(::open(tmp_msg.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (mfd.get() < 0) return std::unexpected(sys_error(tmp_msg, "cannot create", errno));
  auto fail = [&](std::string err) -> std::expected<std::string, std::string> {
    ::unlink(tmp_msg.c_str());
    ::unlink(tmp_env.c_str());
    ::unlink(msg.c_str());
    return std::unexpected(std::move(err));
  };
  if (::flock(mfd.get(), LOCK_EX) != 0) return fail(sys_error(tmp_msg, "flock failed", errno));
  adopt_owner(mfd.get(), dir_ / "msg");
  std::uint64_t size = 0;
  for (auto p : parts) {
    if (auto r = write_all(mfd.get(), p, tmp_msg); !r) return fail(r.error());
    size += p.size();
  }
  if (::fdatasync(mfd.get()) != 0) return fail(sys_error(tmp_msg, "fdatasync failed", errno));
  if (::rename(tmp_msg.c_str(), msg.c_str()) != 0) return fail(sys_error(msg, "cannot rename into msg/", errno));
  // msg/ must be durable before env/ can name it: the two directories are not ordered otherwise.
  if (auto r = fsync_dir(dir_ / "msg"); !r) return fail(r.error());

  // 2. The envelope: tmp, fsync, rename into env/ — the commit point — then env/ made durable.
  Entry e;
  e.id = id;
  e.sender = m.sender;
  e.envid = m.envid;
  e.ret_hdrs = m.ret_hdrs;
  e.smtputf8 = m.smtputf8;
  e.eightbit = m.eightbit;
  e.recipients = m.recipients;
  e.created = now;
  e.next_attempt = now;
  e.size = size;
  const std::string text = format_envelope(e);
  {
    Fd efd(::open(tmp_env.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (efd.get() < 0) return fail(sys_error(tmp_env, "cannot create", errno));
    adopt_owner(efd.get(), dir_ / "env");
    if (auto r = write_all(efd.get(), text, tmp_env); !r) return fail(r.error());
    if (::fsync(efd.get()) != 0) return fail(sys_error(tmp_env, "fsync failed", errno));
  }
  if (::rename(tmp_env.c_str(), env.c_str()) != 0) return fail(sys_error(env, "cannot rename into env/", errno));
  if (auto r = fsync_dir(dir_ / "env"); !r) {
    // The rename happened but may not be durable: undo so that the caller's 4xx is the truth.
    ::unlink(env.c_str());
    return fail(r.error());
  }
  return id;  // mfd closes here: the entry becomes leasable
}

std::expected<Entry, std::string> Spool::load(std::string_view id) const {
  if (!valid_id(id)) return std::unexpected(fmt::format("'{}' is not a queue id", id));
  const auto p = dir_ / "env" / std::string(id);
  auto text = read_file(p, kMaxEnvelope);
  if (!text) {
    if (::access(p.c_str(), F_OK) != 0 && errno == ENOENT) return std::unexpected(fmt::format("no queue entry {}", id));
    return std::unexpected(text.error());
  }
  auto e = parse_envelope(*text);
  if (!e || e->id != id) {
    const std::string why = e ? "its id record does not match the file name" : e.error();
    // Reported and moved aside (with its message) so that it is not tried again and again.
    const std::string sid(id);
    const auto to = dir_ / "corrupt" / (sid + ".env");
    if (::rename(p.c_str(), to.c_str()) == 0) {
      ::rename(message_path(id).c_str(), (dir_ / "corrupt" / (sid + ".msg")).c_str());
      spdlog::error("queue: corrupt envelope {}: {}; moved to {}", p.string(), why, to.string());
    }
    return std::unexpected(fmt::format("corrupt envelope {}: {} (moved to {})", p.string(), why, to.string()));
  }
  return e;
}

std::vector<Entry> Spool::list() const {
  std::vector<Entry> out;
  for (auto& n : names_in(dir_ / "env")) {
    if (!valid_id(n)) continue;
    auto e = load(n);
    if (e) out.push_back(std::move(*e));
  }
  return out;
}

namespace {

// Opens and flocks msg/<id>; then checks that the entry still exists (it may have been removed by
// the previous holder while we waited).
std::expected<int, std::string> lock_entry(const std::filesystem::path& dir, std::string_view id, bool wait,
                                           bool& busy) {
  busy = false;
  if (!valid_id(id)) return std::unexpected(fmt::format("'{}' is not a queue id", id));
  const std::string sid(id);
  const auto m = dir / "msg" / sid;
  Fd fd(::open(m.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::unexpected(fmt::format("no queue entry {}", id));
    return std::unexpected(sys_error(m, "cannot open", errno));
  }
  while (::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      busy = true;
      return std::unexpected(fmt::format("queue entry {} is in use", id));
    }
    return std::unexpected(sys_error(m, "flock failed", errno));
  }
  if (::access((dir / "env" / sid).c_str(), F_OK) != 0)
    return std::unexpected(fmt::format("no queue entry {}", id));
  return fd.release();
}

}  // namespace

std::optional<Lease> Spool::try_lease(std::string_view id) {
  bool busy = false;
  auto fd = lock_entry(dir_, id, false, busy);
  if (!fd) return std::nullopt;
  Lease l;
  l.fd_ = *fd;
  l.id_ = std::string(id);
  return l;
}

std::expected<Lease, std::string> Spool::lease(std::string_view id) {
  bool busy = false;
  auto fd = lock_entry(dir_, id, true, busy);
  if (!fd) return std::unexpected(fd.error());
  Lease l;
  l.fd_ = *fd;
  l.id_ = std::string(id);
  return l;
}

std::expected<Entry, std::string> Spool::load(const Lease& lease) const {
  if (lease.fd_ < 0) return std::unexpected("no lease");
  return load(lease.id_);
}

std::expected<void, std::string> Spool::update(const Lease& lease, const Entry& e) {
  if (lease.fd_ < 0) return std::unexpected("no lease");
  if (e.id != lease.id_) return std::unexpected(fmt::format("lease is for {}, entry is {}", lease.id_, e.id));
  if (e.recipients.empty()) return std::unexpected("an entry needs a recipient");
  const auto tmp = dir_ / "tmp" / (e.id + "." + std::to_string(::getpid()) + ".env");
  const auto env = dir_ / "env" / e.id;
  const std::string text = format_envelope(e);
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) return std::unexpected(sys_error(tmp, "cannot create", errno));
    adopt_owner(fd.get(), dir_ / "env");
    auto r = write_all(fd.get(), text, tmp);
    if (r && ::fsync(fd.get()) != 0) r = std::unexpected(sys_error(tmp, "fsync failed", errno));
    if (!r) {
      ::unlink(tmp.c_str());
      return r;
    }
  }
  if (::rename(tmp.c_str(), env.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(sys_error(env, "cannot rename", err));
  }
  return fsync_dir(dir_ / "env");
}

std::expected<void, std::string> Spool::remove(const Lease& lease) {
  if (lease.fd_ < 0) return std::unexpected("no lease");
  const auto env = dir_ / "env" / lease.id_;
  const auto msg = dir_ / "msg" / lease.id_;
  // env/ first: once it is gone the entry no longer exists; a crash before msg/ is unlinked leaves
  // an orphan that the next open() removes.
  if (::unlink(env.c_str()) != 0 && errno != ENOENT) return std::unexpected(sys_error(env, "cannot remove", errno));
  if (auto r = fsync_dir(dir_ / "env"); !r) return r;
  if (::unlink(msg.c_str()) != 0 && errno != ENOENT) return std::unexpected(sys_error(msg, "cannot remove", errno));
  return fsync_dir(dir_ / "msg");
}

}  // namespace buzon::queue
