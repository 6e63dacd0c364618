// DSN tests: the multipart/report structure (RFC 3462/3464), every field, NOTIFY, RET, the size
// cap, no bounce for a null sender, and a hostile remote reply that tries to inject fields.
#include "queue/queue.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <unistd.h>

namespace buzon::queue {
namespace {

TimePoint at(std::int64_t s) { return TimePoint(std::chrono::seconds(s)); }

const std::string kOriginal =
    "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: lunch\r\nMessage-ID: <orig@a.test>\r\n\r\nSee you at noon.\r\n";

Entry entry() {
  Entry e;
  e.id = "0123456789abcdefABCD";
  e.sender = "alice@a.test";
  e.envid = "QQ314159";
  e.created = at(1795737600);  // Fri, 27 Nov 2026 00:00:00 +0000
  Recipient r;
  r.address = "bob@b.test";
  r.orcpt = "rfc822;Bob@B.test";
  r.state = RcptState::failed;
  r.attempts = 1;
  r.last_reply = "550 5.1.1 <bob@b.test>: Recipient address rejected";
  r.remote_mta = "mx.b.test";
  e.recipients.push_back(r);
  r = Recipient{};
  r.address = "carol@b.test";
  r.state = RcptState::pending;
  r.attempts = 3;
  r.last_reply = "451 4.7.1 greylisted";
  r.remote_mta = "mx.b.test";
  e.recipients.push_back(r);
  r = Recipient{};
  r.address = "dave@b.test";
  r.state = RcptState::delivered;
  e.recipients.push_back(r);
  return e;
}

struct Part {
  std::map<std::string, std::string> headers;  // lower-case name -> unfolded value
  std::string body;
};

std::map<std::string, std::string> parse_headers(std::string_view h) {
  std::map<std::string, std::string> out;
  std::string last;
  while (!h.empty()) {
    auto nl = h.find("\r\n");
    auto line = h.substr(0, nl);
    h.remove_prefix(nl == std::string_view::npos ? h.size() : nl + 2);
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') {
      out[last] += " " + std::string(line.substr(1));
      continue;
    }
    auto colon = line.find(':');
    last = std::string(line.substr(0, colon));
    for (auto& c : last) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto v = line.substr(colon + 1);
    if (!v.empty() && v[0] == ' ') v.remove_prefix(1);
    out[last] = std::string(v);
  }
  return out;
}

// Splits a whole DSN into top headers and its parts; checks the boundary discipline.
std::pair<std::map<std::string, std::string>, std::vector<Part>> split(const std::string& m) {
  auto hend = m.find("\r\n\r\n");
  EXPECT_NE(hend, std::string::npos);
  auto top = parse_headers(std::string_view(m).substr(0, hend + 2));
  auto ct = top["content-type"];
  auto b = ct.find("boundary=\"");
  EXPECT_NE(b, std::string::npos) << ct;
  std::string boundary = ct.substr(b + 10, ct.find('"', b + 10) - b - 10);
  std::vector<Part> parts;
  const std::string delim = "\r\n--" + boundary;
  std::string_view rest = std::string_view(m).substr(hend + 2);  // keep the CRLF before the first delimiter
  auto first = rest.find(delim);
  EXPECT_NE(first, std::string::npos);
  rest.remove_prefix(first + delim.size());
  while (true) {
    if (rest.starts_with("--")) {
      EXPECT_EQ(rest, "--\r\n");
      break;
    }
    EXPECT_TRUE(rest.starts_with("\r\n"));
    rest.remove_prefix(2);
    auto next = rest.find(delim);
    EXPECT_NE(next, std::string::npos);
    auto whole = rest.substr(0, next);
    Part p;
    auto he = whole.find("\r\n\r\n");
    p.headers = parse_headers(whole.substr(0, he + 2));
    p.body = std::string(whole.substr(he + 4));
    parts.push_back(std::move(p));
    rest.remove_prefix(next + delim.size());
  }
  return {top, parts};
}

// The delivery-status body as groups of fields (first: per message, then one per recipient).
std::vector<std::map<std::string, std::string>> groups(const std::string& body) {
  std::vector<std::map<std::string, std::string>> out;
  std::string_view b = body;
  while (!b.empty()) {
    auto end = b.find("\r\n\r\n");
    auto g = b.substr(0, end == std::string_view::npos ? b.size() : end + 2);
    if (!g.empty() && g != "\r\n") out.push_back(parse_headers(g));
    if (end == std::string_view::npos) break;
    b.remove_prefix(end + 4);
  }
  return out;
}

TEST(Dsn, FailureStructureAndFields) {
  auto d = make_dsn(DsnKind::failure, entry(), kOriginal, "mx.a.test", at(1795741200), "dsn1@mx.a.test");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->find("\n"), d->find("\r\n") + 1);
  for (std::size_t i = 0; i < d->size(); ++i) {
    if ((*d)[i] == '\n') {
      ASSERT_EQ((*d)[i - 1], '\r') << "bare LF at " << i;
    }
  }
  auto [top, parts] = split(*d);
  EXPECT_EQ(top["from"], "Mail Delivery System <MAILER-DAEMON@mx.a.test>");
  EXPECT_EQ(top["to"], "<alice@a.test>");
  EXPECT_EQ(top["subject"], "Undelivered Mail Returned to Sender");
  EXPECT_EQ(top["date"], "Fri, 27 Nov 2026 01:00:00 +0000");
  EXPECT_EQ(top["message-id"], "<dsn1@mx.a.test>");
  EXPECT_EQ(top["auto-submitted"], "auto-replied");
  EXPECT_EQ(top["mime-version"], "1.0");
  EXPECT_NE(top["content-type"].find("multipart/report; report-type=delivery-status;"), std::string::npos);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_NE(parts[0].body.find("<bob@b.test> (host mx.b.test): 550 5.1.1"), std::string::npos);
  EXPECT_EQ(parts[0].body.find("carol"), std::string::npos);  // pending: not in a failure report
  EXPECT_EQ(parts[1].headers["content-type"], "message/delivery-status");
  auto g = groups(parts[1].body);
  ASSERT_EQ(g.size(), 2u);  // per-message + one recipient (only bob failed)
  EXPECT_EQ(g[0]["original-envelope-id"], "QQ314159");
  EXPECT_EQ(g[0]["reporting-mta"], "dns; mx.a.test");
  EXPECT_EQ(g[0]["arrival-date"], "Fri, 27 Nov 2026 00:00:00 +0000");
  EXPECT_EQ(g[1]["original-recipient"], "rfc822;Bob@B.test");
  EXPECT_EQ(g[1]["final-recipient"], "rfc822; bob@b.test");
  EXPECT_EQ(g[1]["action"], "failed");
  EXPECT_EQ(g[1]["status"], "5.1.1");
  EXPECT_EQ(g[1]["remote-mta"], "dns; mx.b.test");
  EXPECT_EQ(g[1]["diagnostic-code"], "smtp; 550 5.1.1 <bob@b.test>: Recipient address rejected");
  EXPECT_EQ(g[1]["last-attempt-date"], "Fri, 27 Nov 2026 01:00:00 +0000");
  EXPECT_EQ(g[1].count("will-retry-until"), 0u);
  EXPECT_EQ(parts[2].headers["content-type"], "message/rfc822");
  EXPECT_EQ(parts[2].body, kOriginal);
}

TEST(Dsn, DelayListsPendingWithRetryUntilAndHeadersOnly) {
  auto d = make_dsn(DsnKind::delay, entry(), kOriginal, "mx.a.test", at(1795752000), "<dsn2@mx.a.test>",
                    at(1795737600 + 432000));
  ASSERT_TRUE(d);
  auto [top, parts] = split(*d);
  EXPECT_EQ(top["subject"], "Delivery Status Notification (Delay)");
  EXPECT_EQ(top["message-id"], "<dsn2@mx.a.test>");
  ASSERT_EQ(parts.size(), 3u);
  auto g = groups(parts[1].body);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[1]["final-recipient"], "rfc822; carol@b.test");
  EXPECT_EQ(g[1]["action"], "delayed");
  EXPECT_EQ(g[1]["status"], "4.7.1");
  EXPECT_EQ(g[1]["will-retry-until"], "Wed, 02 Dec 2026 00:00:00 +0000");
  EXPECT_EQ(parts[2].headers["content-type"], "text/rfc822-headers");
  EXPECT_EQ(parts[2].body, kOriginal.substr(0, kOriginal.find("\r\n\r\n") + 4));
  EXPECT_NE(parts[0].body.find("until Wed, 02 Dec 2026"), std::string::npos);
}

TEST(Dsn, NotifyRetNullSenderAndSize) {
  Entry e = entry();
  e.sender = "";
  EXPECT_FALSE(make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx"));  // no bounce of a bounce
  e = entry();
  e.recipients[0].notify.failure = false;  // NOTIFY=DELAY
  EXPECT_FALSE(make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx"));
  e.recipients[0].notify = Notify{true, false, false, false};  // NEVER
  EXPECT_FALSE(make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx"));
  e = entry();
  e.recipients[1].notify.delay = false;  // NOTIFY=FAILURE: no delay notice
  EXPECT_FALSE(make_dsn(DsnKind::delay, e, kOriginal, "mx", at(0), "x@mx"));
  e = entry();
  e.ret_hdrs = true;
  auto d = make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx");
  ASSERT_TRUE(d);
  EXPECT_EQ(split(*d).second[2].headers["content-type"], "text/rfc822-headers");
  e.ret_hdrs = false;
  std::string big = kOriginal + std::string(70000, 'x') + "\r\n";
  d = make_dsn(DsnKind::failure, e, big, "mx", at(0), "x@mx");
  ASSERT_TRUE(d);
  EXPECT_LT(d->size(), 8000u);
  EXPECT_EQ(split(*d).second[2].headers["content-type"], "text/rfc822-headers");
}

TEST(Dsn, StatusFallbacksAndHostileReplies) {
  Entry e = entry();
  e.recipients.resize(1);
  auto status = [&](std::string reply) {
    e.recipients[0].last_reply = reply;
    auto d = make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx");
    return groups(split(*d).second[1].body)[1];
  };
  EXPECT_EQ(status("550 no such user")["status"], "5.0.0");
  EXPECT_EQ(status("554 4.1.1 mismatched class")["status"], "5.0.0");
  EXPECT_EQ(status("452 4.2.2 mailbox full")["status"], "4.2.2");  // expired while 4xx: Action failed, 4.x.x
  EXPECT_EQ(status("452 4.2.2 mailbox full")["action"], "failed");
  auto local = status("Host or domain name not found (null MX)");
  EXPECT_EQ(local["status"], "5.0.0");
  EXPECT_EQ(local["diagnostic-code"], "X-buzon; Host or domain name not found (null MX)");
  // A reply that tries to add a field and end the MIME part stays on one line.
  auto evil = status("550 5.7.1 no\r\nX-Injected: yes\r\n\r\n--boundary--");
  EXPECT_EQ(evil.count("x-injected"), 0u);
  EXPECT_EQ(evil["diagnostic-code"], "smtp; 550 5.7.1 no X-Injected: yes --boundary--");
  e.recipients[0].last_reply = std::string(5000, 'y');
  auto d = make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx");
  ASSERT_TRUE(d);
  std::size_t longest = 0, start = 0;
  for (std::size_t p; (p = d->find("\r\n", start)) != std::string::npos; start = p + 2) longest = std::max(longest, p - start);
  EXPECT_LE(longest, 998u);
  // The boundary is made unique if the original happens to contain it.
  std::string tricky = "Subject: x\r\n\r\n--=_buzon_0123456789abcdefABCD_0\r\n";
  e.recipients[0].last_reply = "550 x";
  d = make_dsn(DsnKind::failure, e, tricky, "mx", at(0), "x@mx");
  ASSERT_TRUE(d);
  auto [top, parts] = split(*d);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].body, tricky);
}

TEST(Dsn, InternationalRecipientUsesUtf8Type) {
  Entry e = entry();
  e.recipients.resize(1);
  e.recipients[0].address = "jos\xC3\xA9@b.test";
  auto d = make_dsn(DsnKind::failure, e, kOriginal, "mx", at(0), "x@mx");
  ASSERT_TRUE(d);
  auto [top, parts] = split(*d);
  EXPECT_EQ(top["content-transfer-encoding"], "8bit");
  EXPECT_EQ(groups(parts[1].body)[1]["final-recipient"], "utf-8; jos\xC3\xA9@b.test");
}

// An independent parser: Python's email package must see the same structure.
TEST(Dsn, PythonEmailParsesIt) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  auto d = make_dsn(DsnKind::failure, entry(), kOriginal, "mx.a.test", at(1795741200), "dsn1@mx.a.test");
  ASSERT_TRUE(d);
  char path[] = "/tmp/buzon-dsn-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, d->data(), d->size()), static_cast<ssize_t>(d->size()));
  ::close(fd);
  const std::string script =
      "import email, email.policy, sys\n"
      "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n"
      "assert not m.defects, m.defects\n"
      "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
      "assert m.get_param('report-type') == 'delivery-status'\n"
      "p = m.get_payload()\n"
      "assert [x.get_content_type() for x in p] == ['text/plain', 'message/delivery-status', 'message/rfc822']\n"
      "g = p[1].get_payload()\n"
      "assert g[0]['Reporting-MTA'] == 'dns; mx.a.test', g[0]['Reporting-MTA']\n"
      "assert g[1]['Action'] == 'failed' and g[1]['Status'] == '5.1.1'\n"
      "assert p[2].get_payload()[0]['Subject'] == 'lunch'\n"
      "assert m['Auto-Submitted'] == 'auto-replied'\n"
      "print('ok')\n";
  const std::string cmd = "/usr/bin/python3 -c \"" + std::string("exec(open('/dev/stdin').read())") + "\" " + path;
  FILE* p = ::popen(cmd.c_str(), "w");
  ASSERT_TRUE(p);
  std::fwrite(script.data(), 1, script.size(), p);
  const int rc = ::pclose(p);
  ::unlink(path);
  EXPECT_EQ(rc, 0) << "Python's email parser disagreed (see its output above)";
}

}  // namespace
}  // namespace buzon::queue
