// queue/dsn.cpp — RFC 3464 delivery status notifications: failure bounces and delay warnings.
//
// SECURITY  Everything taken from the entry (addresses, remote replies, remote host names) is
//           placed into header fields only after CR, LF and other controls are replaced by spaces,
//           and is cut to keep lines under 998 octets, so a hostile remote reply cannot add header
//           fields or MIME parts. The boundary is checked against the returned content.
// STANDARDS RFC 3464 (message/delivery-status, §2.1.2 per-message and §2.3 per-recipient fields),
//           RFC 3462 (multipart/report), RFC 3461 (NOTIFY, ORCPT, ENVID, RET), RFC 3834
//           (Auto-Submitted: auto-replied), RFC 5321 §6.1 and §3.6.3 (no bounce to a null
//           reverse-path), RFC 5322 (Date, Message-ID), RFC 6533 §3 (utf-8 address type for
//           internationalized recipients).
// THREADS   Pure.
// LIMITS    The original is returned whole only for failures, when RET=HDRS was not asked and it
//           is at most 64 KiB; otherwise its header section alone (text/rfc822-headers).
#include "queue/queue.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace buzon::queue {
namespace {

constexpr std::size_t kMaxReturned = 64 * 1024;
constexpr std::size_t kMaxField = 900;

std::string rfc5322_date(TimePoint t) {
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t tt = static_cast<std::time_t>(t.time_since_epoch().count());
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// One header-safe line: controls become spaces, runs of spaces shrink, the length is bounded.
std::string field(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    const char ch = (c < 0x20 || c == 0x7F) ? ' ' : static_cast<char>(c);
    if (ch == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += ch;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kMaxField) out = out.substr(0, kMaxField) + "...";
  return out;
}

bool ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool is_smtp_reply(std::string_view r) {
  return r.size() >= 3 && r[0] >= '2' && r[0] <= '5' && std::isdigit(static_cast<unsigned char>(r[1])) &&
         std::isdigit(static_cast<unsigned char>(r[2])) && (r.size() == 3 || r[3] == ' ' || r[3] == '-');
}

// RFC 3463 status from a reply "550 5.1.1 text": the enhanced code when present and consistent
// with the basic code's class, else x.0.0 from the basic code, else the kind's default.
std::string status_of(std::string_view reply, DsnKind kind) {
  const char fallback = kind == DsnKind::failure ? '5' : '4';
  if (!is_smtp_reply(reply)) return fmt::format("{}.0.0", fallback);
  const char cls = reply[0] == '2' || reply[0] == '3' ? fallback : reply[0];
  if (reply.size() > 4) {
    std::string_view rest = reply.substr(4);
    const auto end = rest.find(' ');
    const std::string_view code = rest.substr(0, end);
    // class "." 1*3digit "." 1*3digit
    auto d1 = code.find('.');
    auto d2 = d1 == std::string_view::npos ? d1 : code.find('.', d1 + 1);
    auto digits = [](std::string_view x) {
      return !x.empty() && x.size() <= 3 && std::all_of(x.begin(), x.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (d1 == 1 && d2 != std::string_view::npos && code[0] == cls && digits(code.substr(2, d2 - 2)) &&
        digits(code.substr(d2 + 1)))
      return std::string(code);
  }
  return fmt::format("{}.0.0", cls);
}

// The header section of a message (up to and including the empty line), CRLF-terminated.
std::string_view header_section(std::string_view msg) {
  if (msg.starts_with("\r\n")) return msg.substr(0, 2);
  auto p = msg.find("\r\n\r\n");
  if (p == std::string_view::npos) return msg;
  return msg.substr(0, p + 4);
}

std::string address_field(std::string_view addr) {
  return fmt::format("{}; {}", ascii(addr) ? "rfc822" : "utf-8", field(addr));
}

}  // namespace

std::optional<std::string> make_dsn(DsnKind kind, const Entry& e, std::string_view original_message,
                                    std::string_view reporting_mta, TimePoint now, std::string_view message_id,
                                    std::optional<TimePoint> will_retry_until) {
  if (e.sender.empty()) return std::nullopt;  // never bounce a bounce
  std::vector<const Recipient*> rcpts;
  for (auto& r : e.recipients) {
    if (r.notify.never) continue;
    if (kind == DsnKind::failure && r.state == RcptState::failed && r.notify.failure) rcpts.push_back(&r);
    if (kind == DsnKind::delay && r.state == RcptState::pending && r.notify.delay) rcpts.push_back(&r);
  }
  if (rcpts.empty()) return std::nullopt;

  const bool full = kind == DsnKind::failure && !e.ret_hdrs && original_message.size() <= kMaxReturned;
  const std::string_view returned = full ? original_message : header_section(original_message);
  std::string boundary = fmt::format("=_buzon_{}_{}", e.id, now.time_since_epoch().count());
  for (int i = 0; returned.find(boundary) != std::string_view::npos; ++i) boundary += fmt::format("_{}", i);
  const std::string mta = field(reporting_mta);
  const std::string mid = message_id.starts_with('<') ? field(message_id) : "<" + field(message_id) + ">";
  const bool eight_bit = !ascii(returned) || !ascii(e.sender) ||
                         std::any_of(rcpts.begin(), rcpts.end(), [](auto* r) { return !ascii(r->address); });

  std::string m;
  m += fmt::format("From: Mail Delivery System <MAILER-DAEMON@{}>\r\n", mta);
  m += fmt::format("To: <{}>\r\n", field(e.sender));
  m += fmt::format("Subject: {}\r\n", kind == DsnKind::failure ? "Undelivered Mail Returned to Sender"
                                                                : "Delivery Status Notification (Delay)");
  m += fmt::format("Date: {}\r\n", rfc5322_date(now));
  m += fmt::format("Message-ID: {}\r\n", mid);
  m += "Auto-Submitted: auto-replied\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += fmt::format("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{}\"\r\n", boundary);
  if (eight_bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\nThis is a MIME-encapsulated message (RFC 3464 delivery status notification).\r\n\r\n";

  // 1. For people.
  m += fmt::format("--{}\r\n", boundary);
  m += "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n";
  if (eight_bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += fmt::format("This is the mail system at host {}.\r\n\r\n", mta);
  if (kind == DsnKind::failure) {
    m += "Your message could not be delivered to one or more recipients.\r\n";
    m += full ? "It is attached below.\r\n" : "Its header section is attached below.\r\n";
  } else {
    m += "Your message has not been delivered yet to the recipients below.\r\n";
    m += "The mail system will keep trying";
    if (will_retry_until) m += fmt::format(" until {}", rfc5322_date(*will_retry_until));
    m += "; you do not need to send it again.\r\n";
  }
  m += "\r\n";
  for (auto* r : rcpts) {
    m += fmt::format("<{}>", field(r->address));
    if (!r->remote_mta.empty()) m += fmt::format(" (host {})", field(r->remote_mta));
    m += fmt::format(": {}\r\n", r->last_reply.empty() ? std::string("no reason recorded") : field(r->last_reply));
  }
  m += "\r\n";

  // 2. For programs: RFC 3464 §2.2 (per message) then §2.3 (per recipient), blank-line separated.
  m += fmt::format("--{}\r\n", boundary);
  m += "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n";
  if (eight_bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  if (!e.envid.empty()) m += fmt::format("Original-Envelope-Id: {}\r\n", field(e.envid));
  m += fmt::format("Reporting-MTA: dns; {}\r\n", mta);
  m += fmt::format("Arrival-Date: {}\r\n", rfc5322_date(e.created));
  for (auto* r : rcpts) {
    m += "\r\n";
    if (!r->orcpt.empty()) m += fmt::format("Original-Recipient: {}\r\n", field(r->orcpt));
    m += fmt::format("Final-Recipient: {}\r\n", address_field(r->address));
    m += fmt::format("Action: {}\r\n", kind == DsnKind::failure ? "failed" : "delayed");
    m += fmt::format("Status: {}\r\n", status_of(r->last_reply, kind));
    if (!r->remote_mta.empty()) m += fmt::format("Remote-MTA: dns; {}\r\n", field(r->remote_mta));
    if (!r->last_reply.empty())
      m += fmt::format("Diagnostic-Code: {}; {}\r\n", is_smtp_reply(r->last_reply) ? "smtp" : "X-buzon",
                       field(r->last_reply));
    if (r->attempts > 0) m += fmt::format("Last-Attempt-Date: {}\r\n", rfc5322_date(now));
    if (kind == DsnKind::delay && will_retry_until)
      m += fmt::format("Will-Retry-Until: {}\r\n", rfc5322_date(*will_retry_until));
  }
  m += "\r\n";

  // 3. The original (RFC 3462 §2: message/rfc822, or text/rfc822-headers for its header section).
  m += fmt::format("--{}\r\n", boundary);
  m += fmt::format("Content-Description: {}\r\n", full ? "Undelivered Message" : "Undelivered Message Headers");
  m += fmt::format("Content-Type: {}\r\n", full ? "message/rfc822" : "text/rfc822-headers");
  if (!ascii(returned)) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += returned;
  if (!returned.empty() && !returned.ends_with("\r\n")) m += "\r\n";
  m += fmt::format("\r\n--{}--\r\n", boundary);
  return m;
}

}  // namespace buzon::queue
