// fetch/destination.hpp — where `buzon fetch` puts messages: a Maildir, an mbox file, or an MDA
// command; and the crash-safety protocol each follows with the account's Journal (state.hpp).
//
//   Maildir  begin: create tmp/<unique>; write; commit: fsync every staged file, journal
//            "D <uid> M <tmp> <final>" (fdatasync), rename tmp/<unique> -> new/<final> (no replace),
//            fsync new/. recover: every D entry is delivered; a staged file still in tmp/
//            whose final name is missing is moved now (rolled forward).
//   mbox     open: dotlock (<file>.lock, O_EXCL) + fcntl write lock, held for the whole run.
//            First begin of a batch: journal "S <offset> <dev> <ino>" (fdatasync) before appending;
//            commit: fsync the mbox, journal the batch's "D <uid> B" lines and "E <offset>". recover:
//            an S without E means appends that were never confirmed: the mbox is truncated back to
//            the S offset (only when it is the same file and the octets there start "From ").
//   MDA      each message is piped to `/bin/sh -c COMMAND`; exit status 0 = delivered (75,
//            EX_TEMPFAIL, and any other non-zero status fail the run before any DELE). commit
//            journals "D <uid> P". The MDA's own durability is its business; a crash between its
//            exit and the journal line can deliver a message twice (never lose it).
//
// SECURITY  Files are created 0600 with O_EXCL/O_NOFOLLOW. The MDA command comes from the config
//           or the command line (trusted); the message is only its stdin, never its arguments.
// STANDARDS cr.yp.to/proto/maildir.html; mboxrd (a line matching ^>*From  gets one more '>'),
//           qmail's mbox(5); sysexits.h (EX_TEMPFAIL = 75).
// LIMITS    Memory: one write buffer; messages are streamed.
#pragma once

#include "fetch/account.hpp"
#include "fetch/state.hpp"

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::fetch {

class Destination {
 public:
  virtual ~Destination() = default;
  virtual std::string describe() const = 0;
  // Creates / locks what is needed. Called once before anything else.
  virtual std::expected<void, std::string> open() = 0;
  // Repairs what an interrupted run left (see above) and returns the UIDs it had delivered.
  virtual std::expected<std::vector<std::string>, std::string> recover(const std::vector<std::string>& journal) = 0;
  virtual std::expected<void, std::string> begin(const std::string& uid, Journal& journal) = 0;
  virtual std::expected<void, std::string> write(std::string_view chunk) = 0;
  virtual std::expected<void, std::string> end() = 0;
  // Drops the message begun last (cut short).
  virtual void abort() = 0;
  // Makes every ended message durable and visible (with its journal lines); returns their UIDs.
  virtual std::expected<std::vector<std::string>, std::string> commit(Journal& journal) = 0;
  // Releases locks.
  virtual void close() {}
};

std::unique_ptr<Destination> make_destination(DestKind kind, const std::string& where);

// mboxrd "From " quoting, streaming: any split of the input gives the same output. Input has LF
// line ends. finish() completes the last line and adds the blank line that separates messages.
class FromQuoter {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  enum class St { line_start, gts, match, mid } st_ = St::line_start;
  std::size_t matched_ = 0;  // octets of "From " matched so far (held back)
  bool any_ = false;
  char last_ = '\n';
};

// "From MAILER-DAEMON Thu Nov 27 01:17:36 2026\n" for a unix time (UTC, asctime layout).
std::string mbox_from_line(std::int64_t unix_time);

}  // namespace buzon::fetch
