// fuzz/pop3_session.cpp — the whole POP3 server session over an in-memory stream and the memory
// store: whatever a client sends, the session must never crash, hang, leak the maildrop lock or
// delete anything it was not told to delete.
//
// Input: [options octet][stream-failure octet] then the client's bytes. Options pick the read
// size the stream delivers (1 octet .. everything), APOP in the greeting, an injected store failure
// (maildrop in use, read error, commit error), a failing stream operation, and a small
// max_bad_commands. Users: ana/pw with six edge-case messages (dots, bare LF, no final newline, a
// final ".\r", empty, one larger than the session's 128 KiB read chunk), bob/bob with none.
//
// Invariants after every input:
//  - the session ended (within 10 s) and closed its stream; the maildrop lock is released;
//  - the output starts with the greeting, and every LF in it is preceded by CR;
//  - no exception escaped into the session's catch-all (it would be logged "session failed");
//  - messages disappear only after a "+OK ... signing off (N messages deleted)" reply, and then
//    exactly N of them; otherwise the maildrop is unchanged.
#include "proto/pop3/server_session.hpp"

#include "auth/password.hpp"
#include "store/memory/memory_store.hpp"
#include "support/memory_stream.hpp"
#include "support/table_directory.hpp"

#include "fuzz_check.hpp"
#include "session_log.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace {

using namespace buzon;



struct Globals {
  net::WorkerPool pool{2, 16};
  test::TableDirectory dir;
  std::string big;
  Globals() {
    dir.add("ana", {}, "{PLAIN}pw");
    dir.add("bob", {}, "{PLAIN}bob");
    std::string line(76, 'x');
    while (big.size() < 150 * 1024) {
      big += (big.size() / 77) % 50 == 0 ? "." + line.substr(1) : line;
      big += "\n";
    }
    fuzz::install_watch_logger();
  }
};

Globals& globals() {
  static Globals g;
  return g;
}

constexpr const char* kBox = "/mem/mail/ana";

}  // namespace

// OpenSSL's one-time initialisation (config loading) allocates error state for the thread that
// happens to run it and frees it at exit only for the thread that calls its atexit cleanup. Run it
// on the main thread, before any input, so LeakSanitizer does not blame a pool thread at exit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)globals();
  (void)auth::verify_password("{PLAIN}pw", "pw");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  auto& g = globals();
  const std::uint8_t opt = data[0];
  const std::uint8_t fail_op = data[1];
  std::string input(reinterpret_cast<const char*>(data + 2), size - 2);

  store::memory::MemoryStore store;
  store.add(kBox, "From: a@example.org\r\nSubject: dots\r\n\r\n.leading\r\n.\r\n..\r\nend\r\n", "u-dots");
  store.add(kBox, "Subject: bare LF\n\nline one\nline two\n", "u-lf");
  store.add(kBox, "Subject: nfn\n\n.no final newline", "u-nfn");
  store.add(kBox, "Subject: dot cr\n\nbody\n.\r", "u-dotcr");
  store.add(kBox, "", "u-empty");
  store.add(kBox, "Subject: big\n\n" + g.big, "u-big");
  const auto before = store.contents(kBox);

  switch ((opt >> 4) & 3) {
    case 1: store.fail_next(store::StoreErrc::in_use, store::memory::MemoryStore::Op::open_maildrop); break;
    case 2: store.fail_next(store::StoreErrc::temp, store::memory::MemoryStore::Op::read); break;
    case 3: store.fail_next(store::StoreErrc::temp, store::memory::MemoryStore::Op::commit_deletes); break;
    default: break;
  }

  pop3::Service svc;
  svc.directory = &g.dir;
  svc.store = &store;
  svc.pool = &g.pool;
  svc.settings.mail_template = "mail/%n";
  svc.settings.base_dir = "/mem";
  svc.settings.apop = (opt & 8) != 0;
  svc.settings.max_bad_commands = (opt & 0x80) ? 3 : 20;

  asio::io_context io;
  auto stream = std::make_unique<test::MemoryStream>(io, std::move(input));
  static constexpr std::array<std::size_t, 8> kReadSizes = {1, 2, 3, 5, 16, 64, 512, 1 << 20};
  stream->set_read_size(kReadSizes[opt & 7]);
  if (opt & 0x40) stream->set_fail_on(1 + fail_op % 16);
  auto rec = stream->record();

  const int failures_before = fuzz::session_failures().load();
  asio::co_spawn(io, pop3::serve_session(std::move(stream), svc), asio::detached);
  io.run_for(std::chrono::seconds(10));
  FUZZ_CHECK(io.stopped(), "the session ends by itself (no hang)");
  FUZZ_CHECK(rec->closed, "the session closes its stream");
  FUZZ_CHECK(fuzz::session_failures().load() == failures_before, "no exception escapes the session logic");
  FUZZ_CHECK(!store.is_locked(kBox), "the maildrop lock is released when the session ends");

  const std::string& out = rec->output;
  if (!(opt & 0x40)) {
    FUZZ_CHECK(out.starts_with("+OK buzon POP3 server ready"), "the session starts with the greeting");
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n') FUZZ_CHECK(i > 0 && out[i - 1] == '\r', "every LF sent is part of a CRLF");
  }
  FUZZ_CHECK(out.empty() || out.ends_with("\r\n"), "the output ends with a complete line");

  const auto after = store.contents(kBox);
  static constexpr std::string_view kSignOff = "+OK buzon POP3 server signing off (";
  const auto pos = out.rfind(kSignOff);
  if (pos == std::string::npos) {
    FUZZ_CHECK(after.size() == before.size(), "nothing is deleted without QUIT");
  } else {
    const auto n = std::strtoul(out.c_str() + pos + kSignOff.size(), nullptr, 10);
    FUZZ_CHECK(after.size() + n == before.size(), "QUIT deletes exactly the messages it reports");
  }
  // What is left is untouched: every remaining message equals one stored before.
  for (const auto& m : after) {
    bool found = false;
    for (const auto& b : before) found = found || (b.uidl == m.uidl && b.content == m.content);
    FUZZ_CHECK(found, "remaining messages are intact");
  }
  return 0;
}
