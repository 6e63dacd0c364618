// fetch/fetcher.cpp — one poll, all accounts, the daemon loop (see fetcher.hpp).
#include "fetch/fetcher.hpp"

#include "fetch/connect.hpp"
#include "fetch/destination.hpp"
#include "fetch/progress.hpp"
#include "fetch/state.hpp"
#include "proto/pop3/client_session.hpp"
#include "proto/sasl/mechanism.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <fmt/format.h>

#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

namespace buzon::fetch {

namespace {

using pop3::ClientErrc;

int exit_for(ClientErrc e) {
  switch (e) {
    case ClientErrc::network:
    case ClientErrc::timeout:
    case ClientErrc::tls: return kExitNetwork;
    case ClientErrc::protocol: return kExitProtocol;
    case ClientErrc::auth:
    case ClientErrc::policy: return kExitAuth;
    case ClientErrc::in_use:
    case ClientErrc::login_delay: return kExitMailboxBusy;
    case ClientErrc::server: return kExitServer;
    case ClientErrc::local: return kExitDelivery;
  }
  return kExitProtocol;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

// A stand-in UID for servers without UIDL: size and header identify a message well enough (the
// header holds Message-ID, Date and the Received chain).
std::string synthetic_uid(std::uint64_t size, std::string_view header) {
  return "x-hdr-" + sha256_hex(fmt::format("{}\n", size) + std::string(header)).substr(0, 48);
}

// Per-run stand-ins ("x-run-<n>", servers with neither UIDL nor TOP) name a message number, not a
// message: remembering one would make the next run skip (or delete) a different message.
constexpr std::string_view kRunUidPrefix = "x-run-";
bool recordable(std::string_view uid) { return !uid.starts_with(kRunUidPrefix); }

class FetchSink final : public pop3::RetrieveSink {
 public:
  FetchSink(Destination& d, Journal& j, std::set<std::string>& delivered) : d_(d), j_(j), delivered_(delivered) {}
  asio::awaitable<std::expected<void, std::string>> begin(const pop3::RemoteMessage& m) override {
    co_return d_.begin(m.uid, j_);
  }
  asio::awaitable<std::expected<void, std::string>> data(std::string_view chunk) override { co_return d_.write(chunk); }
  asio::awaitable<std::expected<void, std::string>> end() override { co_return d_.end(); }
  void abort() override { d_.abort(); }
  asio::awaitable<std::expected<void, std::string>> commit() override { co_return commit_now(); }
  std::expected<void, std::string> commit_now() {
    auto r = d_.commit(j_);
    if (!r) return std::unexpected(r.error());
    delivered_.insert(r->begin(), r->end());
    return {};
  }

 private:
  Destination& d_;
  Journal& j_;
  std::set<std::string>& delivered_;
};

struct Poll {
  const Account& a;
  const RunOptions& o;
  std::filesystem::path state_dir;
  Outcome out;

  void fail(int code, std::string msg) {
    if (out.error.empty()) {
      out.exit_code = code;
      out.error = std::move(msg);
    }
  }
  void fail(const pop3::ClientError& e) { fail(exit_for(e.code), e.message); }

  asio::awaitable<void> run();
};

asio::awaitable<void> Poll::run() {
  const bool keep = o.keep.value_or(a.keep);
  auto password = read_secret(a.password_file, a.password_command);
  if (!password) co_return fail(kExitUsage, password.error());

  const std::string id = a.state_id();
  auto lock = AccountLock::acquire(state_dir / (id + ".lock"));
  if (!lock) co_return fail(lock.error().busy ? kExitLocked : kExitDelivery, lock.error().message);

  auto dest = make_destination(a.dest, a.dest_path);
  if (auto r = dest->open(); !r) co_return fail(kExitDelivery, r.error());
  struct Closer {
    Destination& d;
    ~Closer() { d.close(); }
  } closer{*dest};

  auto loaded = UidState::load(state_dir / (id + ".uidl"));
  if (!loaded) co_return fail(kExitDelivery, loaded.error());
  UidState state = std::move(*loaded);

  // Repair what an interrupted run left behind, before anything new happens.
  const auto journal_path = state_dir / (id + ".journal");
  auto old_journal = Journal::read(journal_path);
  if (!old_journal) co_return fail(kExitDelivery, old_journal.error());
  if (!old_journal->empty()) {
    auto rec = dest->recover(*old_journal);
    if (!rec) co_return fail(kExitDelivery, "repairing an interrupted run: " + rec.error());
    for (auto& u : *rec)
      if (recordable(u)) state.add(u);
    if (auto r = state.save(); !r) co_return fail(kExitDelivery, r.error());
    if (auto r = Journal::remove(journal_path); !r) co_return fail(kExitDelivery, r.error());
  }
  auto journal = Journal::open(journal_path);
  if (!journal) co_return fail(kExitDelivery, journal.error());

  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(a.timeout);
  auto conn = co_await connect_tcp(a.host, a.effective_port(), timeout);
  if (!conn) co_return fail(conn.error().dns ? kExitDns : kExitNetwork, conn.error().message);
  auto tls = tls_client(TlsClientOptions{a.host, a.ca_file, a.fingerprint, timeout});
  std::unique_ptr<net::Stream> stream = std::move(*conn);
  if (a.tls == TlsMode::implicit) {
    if (!tls)
      co_return fail(kExitNetwork, "TLS is not available in this build of buzon yet (fix: tls = \"none\" / --tls none "
                                   "for a trusted network only)");
    auto t = co_await tls(std::move(stream));
    if (!t) co_return fail(kExitNetwork, "TLS: " + t.error());
    stream = std::move(*t);
  }
  pop3::ClientSession s(std::move(stream), pop3::ClientOptions{timeout, pop3::LineEnds::lf});
  if (auto r = co_await s.greeting(); !r) co_return fail(r.error());
  if (auto r = co_await s.capa(); !r) co_return fail(r.error());
  if (a.tls == TlsMode::stls) {
    if (!tls)
      co_return fail(kExitNetwork, "TLS is not available in this build of buzon yet (fix: tls = \"none\" / --tls none "
                                   "for a trusted network only)");
    if (auto r = co_await s.stls(tls); !r) co_return fail(r.error());
  }
  pop3::AuthOptions auth;
  auth.user = a.user;
  auth.password = *password;
  auth.preference = a.auth;
  auth.allow_plaintext = a.allow_plaintext;
  auth.sasl = [user = a.user, pw = *password](std::string_view mech) {
    return sasl::make_client(mech, sasl::ClientCredentials{user, pw, ""});
  };
  if (auto r = co_await s.authenticate(auth); !r) co_return fail(r.error());

  auto listed = co_await s.list();
  if (!listed) co_return fail(listed.error());
  auto& msgs = *listed;
  const bool have_uids = msgs.empty() || !msgs.front().uid.empty();
  if (!have_uids) {
    std::vector<std::uint64_t> nums;
    for (auto& m : msgs) nums.push_back(m.number);
    auto heads = co_await s.top_headers(nums);
    if (heads) {
      for (std::size_t i = 0; i < msgs.size(); ++i)
        if ((*heads)[i]) msgs[i].uid = synthetic_uid(msgs[i].size, *(*heads)[i]);
    } else if (heads.error().code != ClientErrc::server) {
      co_return fail(heads.error());
    }
    if (keep && (!heads || msgs.empty() || msgs.front().uid.empty()))
      std::fprintf(stderr, "buzon fetch: %s: warning: the server has neither UIDL nor TOP, so every message counts as new\n",
                   a.label().c_str());
  }

  std::vector<pop3::RemoteMessage> todo;
  std::vector<std::uint64_t> old;
  std::uint64_t todo_bytes = 0;
  std::set<std::string> present;
  for (auto& m : msgs) {
    if (!m.uid.empty()) present.insert(m.uid);
    const bool seen = !m.uid.empty() && state.contains(m.uid);
    if (seen && !o.all) {
      if (!keep) old.push_back(m.number);
      continue;
    }
    if (a.limit && m.size > a.limit) {
      ++out.skipped;
      continue;
    }
    // Without any UID we cannot record the message: give it a per-run one (it is fetched again
    // next time unless deleted).
    if (m.uid.empty()) m.uid = fmt::format("{}{}", kRunUidPrefix, m.number);
    todo.push_back(m);
    todo_bytes += m.size;
  }

  std::vector<std::uint64_t> deleted;
  if (!old.empty()) {
    auto d = co_await s.dele(old, a.pipelining);
    if (!d) co_return fail(d.error());
    deleted = std::move(*d);
  }

  std::set<std::string> delivered;
  FetchSink sink(*dest, *journal, delivered);
  Progress progress(o.progress && ::isatty(2), a.label(), todo.size(), todo_bytes);
  pop3::RetrieveOptions ro;
  ro.pipelining = a.pipelining;
  ro.dele = !keep;
  ro.commit_messages = 128;  // one group fsync per 128 messages (or commit_bytes) amortises the journal commits
  ro.progress = [&](const pop3::RemoteMessage&, std::uint64_t octets) { progress.advance(octets); };
  auto got = co_await s.retrieve(todo, sink, ro);
  progress.finish();
  bool quit_ok = false;
  if (got) {
    out.fetched = got->retrieved;
    out.octets = got->octets;
    out.refused = got->refused.size();
    deleted.insert(deleted.end(), got->deleted.begin(), got->deleted.end());
    auto q = co_await s.quit();
    if (!q) fail(q.error());
    quit_ok = q.has_value();
  } else {
    // Keep what arrived whole (it is valid mail); DELE never went out for it, so the next run
    // deletes it on the server (it is in the state by then).
    if (auto r = sink.commit_now(); !r) fail(kExitDelivery, r.error());
    out.fetched = delivered.size();
    if (got.error().code == ClientErrc::local) (void)co_await s.quit();  // commits the DELEs acknowledged so far
    fail(got.error());
  }

  for (auto& u : delivered)
    if (recordable(u)) state.add(u);
  if (quit_ok) {
    std::set<std::string> gone;
    for (auto& m : msgs)
      if (std::find(deleted.begin(), deleted.end(), m.number) != deleted.end()) gone.insert(m.uid);
    std::set<std::string> keep_uids;
    for (auto& u : present)
      if (!gone.contains(u)) keep_uids.insert(u);
    state.retain(keep_uids);
    out.deleted = deleted.size();
    out.left = msgs.size() - deleted.size();
  }
  if (auto r = state.save(); !r) co_return fail(kExitDelivery, r.error());
  // Every delivered UID is in the saved state now; the journal has nothing left to say unless a
  // commit failed half-way (then the next run repairs from it).
  if (out.exit_code != kExitDelivery) (void)Journal::remove(journal_path);
  if (out.error.empty()) out.exit_code = out.fetched > 0 ? kExitFetched : kExitNoMail;
}

}  // namespace

Outcome poll_account(const Account& account, const RunOptions& options, const std::filesystem::path& state_dir) {
  asio::io_context io(1);
  Poll p{account, options, state_dir, {}};
  auto start = std::chrono::steady_clock::now();
  std::exception_ptr ep;
  asio::co_spawn(io, p.run(), [&](std::exception_ptr e) { ep = e; });
  io.run();
  Outcome out = std::move(p.out);
  if (ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      out.exit_code = kExitProtocol;
      out.error = std::string("internal error: ") + e.what();
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto label = account.label();
  if (!out.error.empty()) {
    out.summary = fmt::format("buzon fetch: {}: {}", label, out.error);
    if (out.fetched) out.summary += fmt::format(" ({} message(s) fetched before that are safe)", out.fetched);
  } else if (out.fetched == 0) {
    out.summary = fmt::format("buzon fetch: {}: no new mail ({} on the server{})", label, out.left,
                              out.skipped ? fmt::format(", {} over the size limit", out.skipped) : std::string());
  } else {
    const double rate = out.seconds > 0 ? static_cast<double>(out.octets) / out.seconds : 0;
    out.summary = fmt::format("buzon fetch: {}: {} new message{} ({}) in {:.1f} s, {}/s; {} deleted; {} left on the server{}{}",
                              label, out.fetched, out.fetched == 1 ? "" : "s", human_bytes(static_cast<double>(out.octets)),
                              out.seconds, human_bytes(rate), out.deleted, out.left,
                              out.skipped ? fmt::format("; {} over the size limit", out.skipped) : std::string(),
                              out.refused ? fmt::format("; {} refused by the server", out.refused) : std::string());
  }
  return out;
}

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }
}  // namespace

int run_fetch(const std::vector<Account>& accounts, const RunOptions& options, const std::filesystem::path& state_dir,
              std::optional<unsigned> daemon_interval) {
  ::signal(SIGPIPE, SIG_IGN);  // a dying MDA must not kill us; its exit status is checked
  if (daemon_interval) {
    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
  }
  int code = kExitNoMail;
  for (;;) {
    int first_error = 0;
    bool any = false;
    for (auto& a : accounts) {
      auto out = poll_account(a, options, state_dir);
      if (!out.error.empty()) {
        std::fprintf(stderr, "%s\n", out.summary.c_str());
        if (!first_error) first_error = out.exit_code;
      } else if (!options.quiet) {
        std::fprintf(stdout, "%s\n", out.summary.c_str());
        std::fflush(stdout);
      }
      if (out.fetched) any = true;
      if (g_stop.load()) break;
    }
    code = first_error ? first_error : (any ? kExitFetched : kExitNoMail);
    if (!daemon_interval || g_stop.load()) break;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(*daemon_interval);
    while (!g_stop.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_stop.load()) break;
  }
  if (daemon_interval) return 0;
  return code;
}

}  // namespace buzon::fetch
