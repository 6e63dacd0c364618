// fuzz/smtp_session.cpp — the whole SMTP (or LMTP) server session over an in-memory stream and the
// memory store as Delivery: whatever a client sends, the session must never crash, hang, write a
// malformed reply or store a message it did not acknowledge.
//
// Input: [options octet][stream-failure octet] then the client's bytes. Options: bits 0-2 the read
// size the stream delivers (1 octet .. everything); bit 3 LMTP instead of SMTP; bit 4 a small
// max_errors (3) and max_recipients (2); bit 5 an injected delivery failure (temp) on the next
// deliver; bit 6 a failing stream operation (the failure octet picks which). Local domains
// example.org/example.net, users ana@example.org and bob (every local domain).
//
// Invariants after every input:
//  - the session ended (within 10 s) and closed its stream; no exception reached the catch-all
//    (it would log "session failed");
//  - the output starts with the greeting; every line is a reply "NNN " or "NNN-" with a code in
//    200..599, at most 512 octets with its CRLF (RFC 5321 §4.5.3.1.5), and every LF is in a CRLF;
//  - nothing is stored that was not acknowledged: without a "250 2.0.0 Ok: delivered" (SMTP) or a
//    "250 2.1.5 ... delivered" / per-recipient 250 after the data (LMTP) no mailbox holds a
//    message; in SMTP mode the stored messages are at most (copies) x (250s after the data).
#include "proto/smtp/server_session.hpp"

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
#include <span>
#include <string_view>
#include <vector>

namespace {

using namespace buzon;



struct Globals {
  net::WorkerPool pool{2, 16};
  test::TableDirectory dir;
  Globals() {
    dir.add("ana@example.org");
    dir.add("bob");
    fuzz::install_watch_logger();
  }
};

Globals& globals() {
  static Globals g;
  return g;
}

// Counts the copies the store accepted (whatever mailboxes they went to).
class CountingDelivery final : public store::Delivery {
 public:
  explicit CountingDelivery(store::Delivery& inner) : inner_(inner) {}
  std::vector<store::Result<void>> deliver(std::span<const store::DeliveryCopy> copies,
                                           std::span<const std::string_view> parts,
                                           store::DeliveryMode mode) override {
    auto r = inner_.deliver(copies, parts, mode);
    for (const auto& x : r) stored += x.has_value() ? 1 : 0;
    return r;
  }
  std::size_t stored = 0;

 private:
  store::Delivery& inner_;
};

std::size_t count(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)globals();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  auto& g = globals();
  const std::uint8_t opt = data[0];
  const std::uint8_t fail_op = data[1];
  std::string input(reinterpret_cast<const char*>(data + 2), size - 2);

  store::memory::MemoryStore store;
  if (opt & 0x20) store.fail_next(store::StoreErrc::temp, store::memory::MemoryStore::Op::deliver);

  smtp::Service svc;
  auto& s = svc.settings;
  s.mode = (opt & 8) ? smtp::Mode::lmtp : smtp::Mode::smtp;
  s.hostname = "mx.example.org";
  s.recipients.local_domains = {"example.org", "example.net"};
  s.recipients.mail_template = "mail/%d/%n";
  s.recipients.base_dir = "/mem";
  s.max_message_size = 20000;
  s.max_line_length = 1000;
  if (opt & 0x10) {
    s.max_errors = 3;
    s.max_recipients = 2;
  }
  svc.directory = &g.dir;
  CountingDelivery delivery(store);
  svc.delivery = &delivery;
  svc.pool = &g.pool;

  asio::io_context io;
  auto stream = std::make_unique<test::MemoryStream>(io, std::move(input));
  static constexpr std::array<std::size_t, 8> kReadSizes = {1, 2, 3, 7, 16, 64, 512, 1 << 20};
  stream->set_read_size(kReadSizes[opt & 7]);
  if (opt & 0x40) stream->set_fail_on(1 + fail_op % 16);
  auto rec = stream->record();

  const int failures_before = fuzz::session_failures().load();
  asio::co_spawn(io, smtp::serve_session(std::move(stream), svc), asio::detached);
  io.run_for(std::chrono::seconds(10));
  FUZZ_CHECK(io.stopped(), "the session ends by itself (no hang)");
  FUZZ_CHECK(rec->closed, "the session closes its stream");
  FUZZ_CHECK(fuzz::session_failures().load() == failures_before, "no exception escapes the session logic");

  const std::string& out = rec->output;
  if (!(opt & 0x40)) {
    FUZZ_CHECK(out.starts_with(s.mode == smtp::Mode::lmtp ? "220 mx.example.org LMTP" : "220 mx.example.org ESMTP"),
               "the session starts with the greeting");
  }
  FUZZ_CHECK(out.empty() || out.ends_with("\r\n"), "the output ends with a complete line");
  std::size_t pos = 0;
  while (pos < out.size()) {
    const auto eol = out.find("\r\n", pos);
    FUZZ_CHECK(eol != std::string::npos, "every reply line ends in CRLF");
    const std::string_view line(out.data() + pos, eol - pos);
    FUZZ_CHECK(line.size() + 2 <= 512, "a reply line fits 512 octets (RFC 5321 4.5.3.1.5)");
    FUZZ_CHECK(line.size() >= 4 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' &&
                   line[2] >= '0' && line[2] <= '9' && (line[3] == ' ' || line[3] == '-'),
               "every line is a reply: three digits 2xx..5xx, then SP or -");
    for (char c : line) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0', "no CR, LF or NUL inside a reply line");
    pos = eol + 2;
  }

  const std::size_t stored = delivery.stored;
  if (s.mode == smtp::Mode::smtp) {
    const auto acks = count(out, "250 2.0.0 Ok: delivered");
    // A delivery whose 250 could not be written (the stream failed) is stored but unacknowledged.
    if (!(opt & 0x40)) FUZZ_CHECK(acks > 0 || stored == 0, "nothing is stored without a 250 after the data");
    FUZZ_CHECK(stored <= acks * 2, "at most one copy per distinct mailbox (ana, bob) per acknowledged message");
  } else if (!(opt & 0x40)) {
    FUZZ_CHECK(count(out, "250 ") > 0 || stored == 0, "LMTP: nothing is stored without a 250");
  }
  return 0;
}
