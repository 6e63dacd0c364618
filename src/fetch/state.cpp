// fetch/state.cpp — state file, journal and account lock (see state.hpp).
#include "fetch/state.hpp"

#include "proto/pop3/reply.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace buzon::fetch {

namespace {

constexpr std::string_view kHeader = "# buzon fetch state v1: UIDs of messages already delivered\n";

std::string errstr(int e) { return std::strerror(e); }

std::expected<void, std::string> write_fd(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(fmt::format("write {}: {}", what, errstr(errno)));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::expected<void, std::string> ensure_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return {};
  std::filesystem::create_directories(dir, ec);
  if (ec) return std::unexpected(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  ::chmod(dir.c_str(), 0700);
  return {};
}

}  // namespace

std::expected<void, std::string> fsync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(fmt::format("open {}: {}", dir.string(), errstr(errno)));
  int r = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (r != 0) return std::unexpected(fmt::format("fsync {}: {}", dir.string(), errstr(e)));
  return {};
}

std::expected<void, std::string> write_file_atomic(const std::filesystem::path& file, std::string_view data) {
  auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  if (auto r = ensure_dir(dir); !r) return r;
  auto tmp = file;
  tmp += fmt::format(".tmp.{}", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return std::unexpected(fmt::format("create {}: {}", tmp.string(), errstr(errno)));
  auto fail = [&](std::string m) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return std::unexpected(std::move(m));
  };
  if (auto r = write_fd(fd, data, tmp.string()); !r) return fail(r.error());
  if (::fsync(fd) != 0) return fail(fmt::format("fsync {}: {}", tmp.string(), errstr(errno)));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return std::unexpected(fmt::format("close {}: {}", tmp.string(), errstr(errno)));
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(fmt::format("rename {} -> {}: {}", tmp.string(), file.string(), errstr(e)));
  }
  return fsync_dir(dir);
}

// ---- UidState -------------------------------------------------------------------------------

std::expected<UidState, std::string> UidState::load(const std::filesystem::path& file) {
  UidState s(file);
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    if (errno == ENOENT || !std::filesystem::exists(file)) return s;
    return std::unexpected(fmt::format("cannot read state file {}", file.string()));
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    if (!pop3::valid_uid(line))
      return std::unexpected(fmt::format("{}:{}: not a UID (the state file is damaged; fix: remove the line, "
                                         "or the file to fetch everything again)",
                                         file.string(), n));
    s.uids_.insert(line);
  }
  return s;
}

std::string UidState::serialize() const {
  std::string out(kHeader);
  for (auto& u : uids_) {
    out += u;
    out += '\n';
  }
  return out;
}

std::expected<void, std::string> UidState::save() const { return write_file_atomic(file_, serialize()); }

void UidState::retain(const std::set<std::string>& present) {
  std::erase_if(uids_, [&](const std::string& u) { return !present.contains(u); });
}

// ---- Journal --------------------------------------------------------------------------------

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}
Journal::Journal(Journal&& o) noexcept : fd_(o.fd_), file_(std::move(o.file_)), pending_(std::move(o.pending_)) { o.fd_ = -1; }
Journal& Journal::operator=(Journal&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
    file_ = std::move(o.file_);
    pending_ = std::move(o.pending_);
  }
  return *this;
}

std::expected<Journal, std::string> Journal::open(const std::filesystem::path& file) {
  auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  if (auto r = ensure_dir(dir); !r) return std::unexpected(r.error());
  Journal j;
  j.fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (j.fd_ < 0) return std::unexpected(fmt::format("open journal {}: {}", file.string(), errstr(errno)));
  j.file_ = file;
  return j;
}

std::expected<std::vector<std::string>, std::string> Journal::read(const std::filesystem::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file, std::ios::binary);
  if (!in) return lines;
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  std::size_t pos = 0;
  for (;;) {
    auto nl = all.find('\n', pos);
    if (nl == std::string::npos) break;  // a torn last line was never synced as a whole: ignore
    lines.push_back(all.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

std::expected<void, std::string> Journal::remove(const std::filesystem::path& file) {
  if (::unlink(file.c_str()) != 0 && errno != ENOENT)
    return std::unexpected(fmt::format("remove {}: {}", file.string(), errstr(errno)));
  return {};
}

std::expected<void, std::string> Journal::append(std::string_view line) {
  pending_ += line;
  pending_ += '\n';
  return {};
}

std::expected<void, std::string> Journal::sync() {
  if (fd_ < 0) return std::unexpected("journal is not open");
  if (!pending_.empty()) {
    // One write(2) per sync: a crash leaves whole lines plus at most one torn line at the end.
    if (auto r = write_fd(fd_, pending_, file_.string()); !r) return r;
    pending_.clear();
  }
  if (::fdatasync(fd_) != 0) return std::unexpected(fmt::format("fdatasync {}: {}", file_.string(), errstr(errno)));
  return {};
}

// ---- AccountLock ----------------------------------------------------------------------------

AccountLock::~AccountLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::expected<AccountLock, AccountLock::Error> AccountLock::acquire(const std::filesystem::path& file) {
  auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  if (auto r = ensure_dir(dir); !r) return std::unexpected(Error{false, r.error()});
  AccountLock l;
  l.fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (l.fd_ < 0) return std::unexpected(Error{false, fmt::format("open {}: {}", file.string(), errstr(errno))});
  if (::flock(l.fd_, LOCK_EX | LOCK_NB) != 0) {
    bool busy = errno == EWOULDBLOCK;
    return std::unexpected(Error{busy, busy ? fmt::format("another buzon fetch is polling this account (lock {})", file.string())
                                            : fmt::format("flock {}: {}", file.string(), errstr(errno))});
  }
  return l;
}

}  // namespace buzon::fetch
