// fetch/destination.cpp — Maildir, mbox and MDA destinations (see destination.hpp).
#include "fetch/destination.hpp"

#include "store/maildir/maildir_delivery.hpp"
#include "store/maildir/maildir_fs.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <sstream>
#include <thread>

namespace buzon::fetch {

namespace {

constexpr std::string_view kFrom = "From ";
std::string errstr(int e) { return std::strerror(e); }

std::expected<void, std::string> write_all_fd(int fd, std::string_view data, std::string_view what) {
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

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// fsync(2) of many files at once from several threads: the file system commits concurrent
// fsyncs together (ext4, xfs: one journal commit for the group), which is what makes a batch of
// small messages cheap; one fsync after another would cost one commit each.
template <class Staged>
std::expected<void, std::string> fsync_all(const std::vector<Staged>& files) {
  constexpr std::size_t kThreads = 16;
  std::atomic<std::size_t> next{0};
  std::atomic<int> failed_errno{0};
  std::atomic<std::size_t> failed_index{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < files.size();) {
      if (::fsync(files[i].fd) != 0) {
        failed_index = i;
        failed_errno = errno;
      }
    }
  };
  std::vector<std::thread> threads;
  const std::size_t n = std::min(kThreads, files.size());
  for (std::size_t t = 1; t < n; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (int e = failed_errno.load())
    return std::unexpected(fmt::format("fsync {}: {}", files[failed_index.load()].tmp, errstr(e)));
  return {};
}

// ---- Maildir --------------------------------------------------------------------------------

class MaildirDest final : public Destination {
 public:
  explicit MaildirDest(std::string dir) : dir_(std::move(dir)) {}
  ~MaildirDest() override {
    abort();
    for (auto& s : staged_) {
      ::close(s.fd);
      ::unlink((dir_ + "/tmp/" + s.tmp).c_str());
    }
  }
  std::string describe() const override { return "maildir " + dir_; }

  std::expected<void, std::string> open() override {
    if (auto r = store::maildir::ensure_maildir(dir_); !r) return std::unexpected(r.error().detail);
    return {};
  }

  std::expected<std::vector<std::string>, std::string> recover(const std::vector<std::string>& journal) override {
    std::vector<std::string> done;
    bool linked = false;
    for (auto& line : journal) {
      auto w = split(line);
      if (w.size() != 5 || w[0] != "D" || w[2] != "M") continue;
      const std::string tmp = dir_ + "/tmp/" + w[3], fin = dir_ + "/new/" + w[4];
      struct stat st{};
      if (::stat(fin.c_str(), &st) != 0 && ::stat(tmp.c_str(), &st) == 0) {
        // Journaled but not yet linked: finish the delivery (roll forward).
        if (::link(tmp.c_str(), fin.c_str()) != 0 && errno != EEXIST)
          return std::unexpected(fmt::format("recover: link {} -> {}: {}", tmp, fin, errstr(errno)));
        linked = true;
      }
      ::unlink(tmp.c_str());
      done.push_back(w[1]);
    }
    if (linked)
      if (auto r = fsync_dir(dir_ + "/new"); !r) return std::unexpected(r.error());
    return done;
  }

  std::expected<void, std::string> begin(const std::string& uid, Journal&) override {
    cur_ = Staged{uid, store::maildir::make_unique_name(), -1, 0};
    cur_.fd = ::open((dir_ + "/tmp/" + cur_.tmp).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (cur_.fd < 0) return std::unexpected(fmt::format("create {}/tmp/{}: {}", dir_, cur_.tmp, errstr(errno)));
    open_ = true;
    return {};
  }
  std::expected<void, std::string> write(std::string_view chunk) override {
    cur_.size += chunk.size();
    return write_all_fd(cur_.fd, chunk, dir_ + "/tmp/" + cur_.tmp);
  }
  std::expected<void, std::string> end() override {
    staged_.push_back(cur_);
    open_ = false;
    return {};
  }
  void abort() override {
    if (!open_) return;
    ::close(cur_.fd);
    ::unlink((dir_ + "/tmp/" + cur_.tmp).c_str());
    open_ = false;
  }

  std::expected<std::vector<std::string>, std::string> commit(Journal& journal) override {
    std::vector<std::string> uids;
    if (staged_.empty()) return uids;
    if (auto r = fsync_all(staged_); !r) return std::unexpected(r.error());
    for (auto& s : staged_) {
      s.final_name = fmt::format("{},S={}", s.tmp, s.size);
      (void)journal.append(fmt::format("D {} M {} {}", s.uid, s.tmp, s.final_name));
    }
    if (auto r = journal.sync(); !r) return std::unexpected(r.error());
    for (auto& s : staged_) {
      ::close(s.fd);
      s.fd = -1;
      const std::string tmp = dir_ + "/tmp/" + s.tmp, fin = dir_ + "/new/" + s.final_name;
      // One atomic step (Dovecot does the same): the message is in tmp/ or in new/, never both
      // or neither; RENAME_NOREPLACE never overwrites.
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, fin.c_str(), RENAME_NOREPLACE) != 0)
        return std::unexpected(fmt::format("rename {} -> {}: {}", tmp, fin, errstr(errno)));
      uids.push_back(s.uid);
    }
    staged_.clear();
    if (auto r = fsync_dir(dir_ + "/new"); !r) return std::unexpected(r.error());
    return uids;
  }

 private:
  struct Staged {
    std::string uid, tmp;
    int fd = -1;
    std::uint64_t size = 0;
    std::string final_name;
  };
  std::string dir_;
  Staged cur_;
  bool open_ = false;
  std::vector<Staged> staged_;
};

// ---- mbox -----------------------------------------------------------------------------------

class MboxDest final : public Destination {
 public:
  explicit MboxDest(std::string file) : file_(std::move(file)) {}
  ~MboxDest() override { close(); }
  std::string describe() const override { return "mbox " + file_; }

  std::expected<void, std::string> open() override {
    const std::string lock = file_ + ".lock";
    // Dotlock first (mutt, procmail, Postfix local(8) do both), then fcntl.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      int fd = ::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd >= 0) {
        auto pid = fmt::format("{}\n", ::getpid());
        (void)!::write(fd, pid.data(), pid.size());
        ::close(fd);
        dotlocked_ = true;
        break;
      }
      if (errno != EEXIST) return std::unexpected(fmt::format("cannot create lock file {}: {}", lock, errstr(errno)));
      struct stat st{};
      if (::stat(lock.c_str(), &st) == 0 && std::time(nullptr) - st.st_mtime > 300) {
        ::unlink(lock.c_str());  // stale (older than 5 minutes), as procmail's lockfile does
        continue;
      }
      if (std::chrono::steady_clock::now() > deadline)
        return std::unexpected(fmt::format("mbox {} is locked ({} exists); another program is writing it", file_, lock));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) {
      int e = errno;
      close();
      return std::unexpected(fmt::format("open mbox {}: {}", file_, errstr(e)));
    }
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    for (;;) {
      if (::fcntl(fd_, F_SETLK, &fl) == 0) break;
      if ((errno != EAGAIN && errno != EACCES) || std::chrono::steady_clock::now() > deadline) {
        int e = errno;
        close();
        return std::unexpected(fmt::format("cannot lock mbox {} (fcntl): {}", file_, errstr(e)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return {};
  }

  void close() override {
    if (fd_ >= 0) ::close(fd_);  // releases the fcntl lock
    fd_ = -1;
    if (dotlocked_) ::unlink((file_ + ".lock").c_str());
    dotlocked_ = false;
  }

  std::expected<std::vector<std::string>, std::string> recover(const std::vector<std::string>& journal) override {
    std::vector<std::string> done, batch;
    std::optional<std::vector<std::string>> open_start;
    for (auto& line : journal) {
      auto w = split(line);
      if (w.size() == 4 && w[0] == "S") {
        open_start = w;
        batch.clear();
      } else if (w.size() == 3 && w[0] == "D" && w[2] == "B") {
        batch.push_back(w[1]);
      } else if (w.size() == 2 && w[0] == "E") {
        done.insert(done.end(), batch.begin(), batch.end());
        batch.clear();
        open_start.reset();
      }
    }
    if (open_start) {
      // Appended but never confirmed: cut them off (they are still on the server).
      const auto& s = *open_start;
      const auto off = std::stoull(s[1]);
      struct stat st{};
      if (::fstat(fd_, &st) == 0 && std::to_string(st.st_dev) == s[2] && std::to_string(st.st_ino) == s[3] &&
          static_cast<std::uint64_t>(st.st_size) > off) {
        char head[5] = {};
        if (::pread(fd_, head, 5, static_cast<off_t>(off)) == 5 && std::string_view(head, 5) == kFrom) {
          if (::ftruncate(fd_, static_cast<off_t>(off)) != 0 || ::fsync(fd_) != 0)
            return std::unexpected(fmt::format("recover: truncate {}: {}", file_, errstr(errno)));
        }
      }
    }
    return done;
  }

  std::expected<void, std::string> begin(const std::string& uid, Journal& journal) override {
    struct stat st{};
    if (::fstat(fd_, &st) != 0) return std::unexpected(fmt::format("stat {}: {}", file_, errstr(errno)));
    msg_start_ = static_cast<std::uint64_t>(st.st_size);
    if (batch_.empty()) {
      (void)journal.append(fmt::format("S {} {} {}", msg_start_, st.st_dev, st.st_ino));
      if (auto r = journal.sync(); !r) return r;
    }
    cur_uid_ = uid;
    quoter_ = FromQuoter{};
    buf_ = mbox_from_line(std::time(nullptr));
    open_msg_ = true;
    return {};
  }
  std::expected<void, std::string> write(std::string_view chunk) override {
    quoter_.feed(chunk, buf_);
    if (buf_.size() >= (1 << 18)) return flush();
    return {};
  }
  std::expected<void, std::string> end() override {
    quoter_.finish(buf_);
    if (auto r = flush(); !r) return r;
    batch_.push_back(cur_uid_);
    open_msg_ = false;
    return {};
  }
  void abort() override {
    if (!open_msg_) return;
    buf_.clear();
    if (::ftruncate(fd_, static_cast<off_t>(msg_start_)) != 0) {
      // Left as is: the journal's open S entry truncates on the next run.
    }
    open_msg_ = false;
  }
  std::expected<std::vector<std::string>, std::string> commit(Journal& journal) override {
    std::vector<std::string> uids;
    if (batch_.empty()) return uids;
    if (::fsync(fd_) != 0) return std::unexpected(fmt::format("fsync {}: {}", file_, errstr(errno)));
    struct stat st{};
    ::fstat(fd_, &st);
    for (auto& u : batch_) (void)journal.append(fmt::format("D {} B", u));
    (void)journal.append(fmt::format("E {}", st.st_size));
    if (auto r = journal.sync(); !r) return std::unexpected(r.error());
    uids.swap(batch_);
    return uids;
  }

 private:
  std::expected<void, std::string> flush() {
    auto r = write_all_fd(fd_, buf_, file_);
    buf_.clear();
    return r;
  }
  std::string file_;
  int fd_ = -1;
  bool dotlocked_ = false;
  std::uint64_t msg_start_ = 0;
  std::string cur_uid_, buf_;
  FromQuoter quoter_;
  bool open_msg_ = false;
  std::vector<std::string> batch_;
};

// ---- MDA ------------------------------------------------------------------------------------

class MdaDest final : public Destination {
 public:
  explicit MdaDest(std::string cmd) : cmd_(std::move(cmd)) {}
  ~MdaDest() override { abort(); }
  std::string describe() const override { return "mda " + cmd_; }
  std::expected<void, std::string> open() override { return {}; }
  std::expected<std::vector<std::string>, std::string> recover(const std::vector<std::string>& journal) override {
    std::vector<std::string> done;
    for (auto& line : journal) {
      auto w = split(line);
      if (w.size() == 3 && w[0] == "D" && w[2] == "P") done.push_back(w[1]);
    }
    return done;
  }
  std::expected<void, std::string> begin(const std::string& uid, Journal&) override {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return std::unexpected(fmt::format("pipe: {}", errstr(errno)));
    pid_ = ::fork();
    if (pid_ < 0) {
      ::close(p[0]);
      ::close(p[1]);
      return std::unexpected(fmt::format("fork: {}", errstr(errno)));
    }
    if (pid_ == 0) {
      ::dup2(p[0], 0);
      ::signal(SIGPIPE, SIG_DFL);
      ::execl("/bin/sh", "sh", "-c", cmd_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(p[0]);
    fd_ = p[1];
    uid_ = uid;
    return {};
  }
  std::expected<void, std::string> write(std::string_view chunk) override {
    if (broken_) return {};
    auto r = write_all_fd(fd_, chunk, "MDA stdin");
    if (!r && errno == EPIPE) {
      broken_ = true;  // the MDA stopped reading; its exit status decides
      return {};
    }
    return r;
  }
  std::expected<void, std::string> end() override {
    ::close(fd_);
    fd_ = -1;
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    broken_ = false;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      delivered_.push_back(uid_);
      return {};
    }
    if (WIFEXITED(st))
      return std::unexpected(fmt::format("MDA \"{}\" exited with status {}{}", cmd_, WEXITSTATUS(st),
                                         WEXITSTATUS(st) == 75 ? " (temporary failure)" : ""));
    return std::unexpected(fmt::format("MDA \"{}\" was killed by signal {}", cmd_, WTERMSIG(st)));
  }
  void abort() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    pid_ = -1;
  }
  std::expected<std::vector<std::string>, std::string> commit(Journal& journal) override {
    std::vector<std::string> uids;
    if (delivered_.empty()) return uids;
    for (auto& u : delivered_) (void)journal.append(fmt::format("D {} P", u));
    if (auto r = journal.sync(); !r) return std::unexpected(r.error());
    uids.swap(delivered_);
    return uids;
  }

 private:
  std::string cmd_;
  pid_t pid_ = -1;
  int fd_ = -1;
  bool broken_ = false;
  std::string uid_;
  std::vector<std::string> delivered_;
};

}  // namespace

std::unique_ptr<Destination> make_destination(DestKind kind, const std::string& where) {
  switch (kind) {
    case DestKind::maildir: return std::make_unique<MaildirDest>(where);
    case DestKind::mbox: return std::make_unique<MboxDest>(where);
    case DestKind::mda: return std::make_unique<MdaDest>(where);
  }
  return nullptr;
}

// ---- FromQuoter ----------------------------------------------------------------------------

void FromQuoter::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    any_ = true;
    for (;;) {  // at most two passes: a failed "From " match re-examines c in St::mid
      switch (st_) {
        case St::line_start:
        case St::gts:
          if (c == '>') {
            out += c;
            st_ = St::gts;
          } else if (c == 'F') {
            matched_ = 1;
            st_ = St::match;
          } else {
            out += c;
            st_ = c == '\n' ? St::line_start : St::mid;
          }
          break;
        case St::match:
          if (c == kFrom[matched_]) {
            if (++matched_ == kFrom.size()) {
              out += '>';
              out += kFrom;
              matched_ = 0;
              st_ = St::mid;
            }
            break;
          }
          out += kFrom.substr(0, matched_);
          matched_ = 0;
          st_ = St::mid;
          continue;  // c is ordinary data in the middle of a line
        case St::mid:
          out += c;
          if (c == '\n') st_ = St::line_start;
          break;
      }
      break;
    }
    last_ = c;
  }
}

void FromQuoter::finish(std::string& out) {
  if (matched_) out += kFrom.substr(0, matched_);
  matched_ = 0;
  if (any_ && last_ != '\n') out += '\n';
  out += '\n';
  st_ = St::line_start;
}

std::string mbox_from_line(std::int64_t unix_time) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
  return fmt::format("From MAILER-DAEMON {}\n", buf);
}

}  // namespace buzon::fetch
