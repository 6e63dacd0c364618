// app/cmd_queue.cpp — `buzon queue list|show|flush|delete|hold|release`: the outbound spool of a
// running (or stopped) server, through the same Spool API and the same leases as the relay.
//
// SECURITY  Ids from the command line are checked by queue::valid_id() before they name a file.
//           Output escapes nothing sensitive; it is the operator's own queue. Run as root on a
//           spool owned by the server's user, new envelope files keep that owner (Spool).
// STANDARDS None.
// THREADS   Single-threaded CLI. Concurrency with a live server is by leases (flock on msg/<id>):
//           a change is made only while holding the entry's lease, so it never races the relay.
//           An entry being delivered right now is reported busy (or waited for with --wait).
// LIMITS    `flush` only sets next_attempt = now: the live relay notices at its next spool scan,
//           within [queue] scan_interval seconds.
#include "app/cmd_queue.hpp"

#include "core/config.hpp"
#include "queue/queue.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

namespace buzon::app {

struct QueueCli {
  std::string id;
  bool message = false, wait = false;
  CLI::App *list = nullptr, *show = nullptr, *flush = nullptr, *del = nullptr, *hold = nullptr, *release = nullptr;
};

CLI::App* add_queue_command(CLI::App& app, QueueCli*& out) {
  static QueueCli q;
  out = &q;
  auto* c = app.add_subcommand("queue", "inspect and manage the outbound queue (safe while the server runs)");
  c->require_subcommand(1);
  q.list = c->add_subcommand("list", "one line per entry: id, size, age, next attempt, sender, recipients");
  q.show = c->add_subcommand("show", "the envelope and every recipient's status of one entry");
  q.show->add_option("id", q.id, "queue id")->required();
  q.show->add_flag("--message", q.message, "also print the message");
  q.flush = c->add_subcommand("flush", "try now (one entry, or every entry not on hold)");
  q.flush->add_option("id", q.id, "queue id (default: all)");
  q.del = c->add_subcommand("delete", "remove an entry without notifying anyone");
  q.del->add_option("id", q.id, "queue id")->required();
  q.hold = c->add_subcommand("hold", "do not try an entry until it is released");
  q.hold->add_option("id", q.id, "queue id")->required();
  q.release = c->add_subcommand("release", "undo hold");
  q.release->add_option("id", q.id, "queue id")->required();
  for (auto* s : {q.flush, q.del, q.hold, q.release})
    s->add_flag("--wait", q.wait, "if the entry is being delivered right now, wait for that attempt to end");
  return c;
}

namespace {

using queue::TimePoint;

TimePoint now_s() { return std::chrono::floor<std::chrono::seconds>(queue::Clock::now()); }

std::string span_text(std::int64_t s) {
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m", s / 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

std::string date_text(TimePoint t) {
  const std::time_t tt = static_cast<std::time_t>(t.time_since_epoch().count());
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

std::string next_text(const queue::Entry& e, TimePoint now) {
  if (e.held) return "held";
  const auto d = (e.next_attempt - now).count();
  return d <= 0 ? "now" : "in " + span_text(d);
}

std::string notify_text(const queue::Notify& n) {
  if (n.never) return "NEVER";
  std::string s;
  if (n.success) s += "SUCCESS,";
  if (n.failure) s += "FAILURE,";
  if (n.delay) s += "DELAY,";
  if (s.empty()) return "(none)";
  s.pop_back();
  return s;
}

int fail(std::string_view what) {
  std::cerr << "buzon queue: " << what << "\n";
  return 1;
}

int list(queue::Spool& spool) {
  const auto now = now_s();
  auto all = spool.list();
  unsigned held = 0;
  for (auto& e : all) {
    held += e.held;
    std::string line = fmt::format("{} {:>9} {:>6} {:>9} <{}>", e.id, e.size, span_text((now - e.created).count()),
                                   next_text(e, now), e.sender);
    for (auto& r : e.recipients) line += fmt::format(" {}({})", r.address, queue::to_string(r.state));
    if (e.held) line += " HOLD";
    std::cout << line << "\n";
  }
  if (all.empty())
    std::cout << "queue is empty\n";
  else
    std::cout << fmt::format("-- {} entr{}, {} on hold\n", all.size(), all.size() == 1 ? "y" : "ies", held);
  return 0;
}

int show(queue::Spool& spool, const QueueCli& q) {
  auto e = spool.load(q.id);
  if (!e) return fail(e.error());
  const auto now = now_s();
  std::cout << "id:            " << e->id << "\n";
  std::cout << "created:       " << date_text(e->created) << " (" << span_text((now - e->created).count()) << " ago)\n";
  std::cout << "sender:        <" << e->sender << ">" << (e->sender.empty() ? " (null: a bounce)" : "") << "\n";
  if (!e->envid.empty()) std::cout << "envid:         " << e->envid << "\n";
  std::cout << "size:          " << e->size << "\n";
  std::cout << "return:        " << (e->ret_hdrs ? "HDRS" : "FULL") << "\n";
  std::cout << "needs:         " << (e->smtputf8 ? "SMTPUTF8 " : "") << (e->eightbit ? "8BITMIME" : "")
            << (!e->smtputf8 && !e->eightbit ? "7bit" : "") << "\n";
  std::cout << "attempts:      " << e->attempts << "\n";
  std::cout << "next attempt:  " << (e->held ? "held (buzon queue release " + e->id + ")"
                                              : date_text(e->next_attempt) + " (" + next_text(*e, now) + ")")
            << "\n";
  std::cout << "delay warned:  " << (e->delay_warned ? "yes" : "no") << "\n";
  for (auto& r : e->recipients) {
    std::cout << "recipient:     " << r.address << "\n";
    std::cout << "  state:       " << queue::to_string(r.state) << ", " << r.attempts << " attempt"
              << (r.attempts == 1 ? "" : "s") << ", NOTIFY=" << notify_text(r.notify) << "\n";
    if (!r.orcpt.empty()) std::cout << "  orcpt:       " << r.orcpt << "\n";
    if (!r.last_reply.empty())
      std::cout << "  last reply:  " << r.last_reply << (r.remote_mta.empty() ? "" : " (from " + r.remote_mta + ")")
                << "\n";
  }
  if (q.message) {
    auto m = spool.read_message(e->id);
    if (!m) return fail(m.error());
    std::cout << "\n" << *m;
  }
  return 0;
}

// The lease of one entry: busy is an error unless --wait.
std::expected<queue::Lease, std::string> take(queue::Spool& spool, const QueueCli& q, std::string_view id) {
  if (!queue::valid_id(id)) return std::unexpected(fmt::format("'{}' is not a queue id (20 letters and digits)", id));
  if (q.wait) return spool.lease(id);
  if (auto l = spool.try_lease(id)) return std::move(*l);
  if (auto e = spool.load(id); !e) return std::unexpected(e.error());
  return std::unexpected(fmt::format("{} is being delivered right now (its lease is held); try again, or add --wait", id));
}

int change(queue::Spool& spool, const QueueCli& q, std::string_view what) {
  auto lease = take(spool, q, q.id);
  if (!lease) return fail(lease.error());
  if (what == "delete") {
    if (auto r = spool.remove(*lease); !r) return fail(r.error());
    std::cout << q.id << ": deleted\n";
    return 0;
  }
  auto e = spool.load(*lease);
  if (!e) return fail(e.error());
  if (what == "hold") {
    e->held = true;
  } else if (what == "release") {
    e->held = false;
  } else {  // flush
    if (e->held) return fail(fmt::format("{} is on hold (buzon queue release {} first)", q.id, q.id));
    e->next_attempt = now_s();
  }
  if (auto r = spool.update(*lease, *e); !r) return fail(r.error());
  std::cout << q.id << ": " << (what == "flush" ? "will be tried at the relay's next scan" : what == "hold" ? "on hold" : "released")
            << "\n";
  return 0;
}

int flush_all(queue::Spool& spool, const QueueCli& q) {
  unsigned flushed = 0, busy = 0, held = 0;
  for (auto& listed : spool.list()) {
    if (listed.held) {
      ++held;
      continue;
    }
    std::optional<queue::Lease> lease;
    if (q.wait) {
      if (auto l = spool.lease(listed.id)) lease = std::move(*l);
    } else {
      lease = spool.try_lease(listed.id);
    }
    if (!lease) {
      ++busy;  // being delivered right now (or gone meanwhile): nothing to flush
      continue;
    }
    auto e = spool.load(*lease);
    if (!e || e->held) continue;
    e->next_attempt = now_s();
    if (auto r = spool.update(*lease, *e); !r) return fail(r.error());
    ++flushed;
  }
  std::cout << fmt::format("{} flushed, {} being delivered now, {} on hold\n", flushed, busy, held);
  return 0;
}

}  // namespace

int cmd_queue(const Options& opt, const QueueCli& q) {
  // The spool reports what it finds (corrupt envelopes moved aside, crash leftovers) through spdlog:
  // to stderr here, so that stdout stays the listing.
  spdlog::set_default_logger(spdlog::stderr_color_mt("buzon-queue"));
  spdlog::set_pattern("buzon queue: %v");
  auto cfg = load_config(opt.config);
  if (!cfg) return fail(cfg.error().str());
  const auto dir = cfg->resolve(cfg->queue.dir);
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    // No spool yet: nothing was ever queued. Do not create it as whoever runs this command.
    if (*q.list) {
      std::cout << "queue is empty\n";
      return 0;
    }
    return fail(fmt::format("no queue at {} ([queue] dir)", dir.string()));
  }
  auto spool = queue::Spool::open(dir);
  if (!spool) return fail(spool.error());
  if (*q.list) return list(**spool);
  if (*q.show) return show(**spool, q);
  if (*q.flush) return q.id.empty() ? flush_all(**spool, q) : change(**spool, q, "flush");
  if (*q.del) return change(**spool, q, "delete");
  if (*q.hold) return change(**spool, q, "hold");
  if (*q.release) return change(**spool, q, "release");
  return 2;
}

}  // namespace buzon::app
