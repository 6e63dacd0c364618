// fuzz/smtp_command.cpp — the SMTP command parser (parse_command, parse_path, is_xtext).
//
// Input: [options octet] then one command line without its CRLF (the session bounds the length
// and refuses bare CR/LF before the parser sees the line; the fuzzer also sends them).
// Invariants checked on top of "no crash, no UB":
//  - every reply the parser produces is a 4xx/5xx with a text free of CR, LF and NUL (it becomes
//    one reply line, RFC 5321 §4.2), so a command can never inject a reply;
//  - a parsed mailbox holds no CR, LF or NUL and no '<' '>' (it is written into Received:,
//    Return-Path: and the queue envelope); a non-ASCII mailbox is only accepted with SMTPUTF8 on;
//  - MAIL/RCPT mailboxes re-parse to the same local part and domain.
#include "proto/smtp/command.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <string_view>

namespace {

using namespace buzon::smtp;

bool clean(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

bool ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

void check_mailbox(const Mailbox& m, bool utf8_allowed) {
  FUZZ_CHECK(clean(m.text) && clean(m.local) && clean(m.domain), "mailboxes hold no CR, LF or NUL");
  // RFC 5321 §4.1.3: a general address literal's dcontent may hold '<' and '>'; a quoted local
  // part too. Anything else is plain dot-atoms.
  FUZZ_CHECK(m.text.find_first_of("<>") == std::string::npos || m.quoted || m.literal,
             "mailbox text holds no angle brackets outside quotes and literals");
  FUZZ_CHECK(utf8_allowed || ascii(m.text), "non-ASCII mailboxes only with SMTPUTF8");
  FUZZ_CHECK(!m.utf8 || utf8_allowed, "the utf8 flag only with SMTPUTF8");
  FUZZ_CHECK(m.text.size() <= 4096, "mailboxes are bounded");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ParseOptions opts;
  opts.smtputf8 = (data[0] & 1) != 0;
  const std::string_view line(reinterpret_cast<const char*>(data + 1), size - 1);

  auto parsed = parse_command(line, opts);
  if (!parsed) {
    const Reply& r = parsed.error().reply;
    FUZZ_CHECK(r.code >= 400 && r.code <= 599, "a parse error answers 4xx or 5xx");
    FUZZ_CHECK(clean(r.text) && !r.text.empty(), "a parse error is one clean line");
    FUZZ_CHECK(r.text.size() < 512, "parse error texts are short");
  } else {
    const Command& c = *parsed;
    FUZZ_CHECK(clean(c.domain) && clean(c.arg), "parsed fields hold no CR, LF or NUL");
    if (c.verb == Verb::mail || c.verb == Verb::rcpt) {
      const bool utf8_ok = opts.smtputf8 || (c.verb == Verb::mail && c.mail.smtputf8);
      if (!c.path.null) check_mailbox(c.path.mailbox, utf8_ok);
      FUZZ_CHECK(c.verb == Verb::mail || !c.path.null, "RCPT never takes the null path");
      FUZZ_CHECK(clean(c.mail.envid) && clean(c.rcpt.orcpt), "DSN parameters hold no CR, LF or NUL");
      if (!c.path.null) {
        // The mailbox text re-parses to the same mailbox (what is stored is what was accepted).
        auto again = parse_path("<" + c.path.mailbox.text + ">", c.verb == Verb::mail);
        if (again && !again->null) {
          FUZZ_CHECK(again->mailbox.local == c.path.mailbox.local, "mailbox text re-parses to the same local part");
          FUZZ_CHECK(again->mailbox.domain == c.path.mailbox.domain, "mailbox text re-parses to the same domain");
        }
      }
    }
  }
  (void)parse_path(line, (data[0] & 2) != 0);
  (void)is_xtext(line, opts.smtputf8);
  return 0;
}
