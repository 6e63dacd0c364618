"""LMTP (RFC 2033) against the real buzon binary: Python's smtplib.LMTP over TCP and over the unix
socket (what Postfix's `virtual_transport = lmtp:unix:...` uses), and a raw client for the
per-recipient replies after DATA, which smtplib does not read.

A private Postfix in front of buzon is not part of CI (postfix is not among the test peers and its
set-up would cost more than the rest of the suite); README "LMTP" documents the Postfix lines."""
from __future__ import annotations

import os
import smtplib
import stat

from conftest import DEFAULT_PASSWORD, HOST
from smtp_support import ALICE, SmtpRaw, pop_all, smtp_server, strip_trace, trace_fields, wait_smtp

MSG = b"From: mta@remote.example\r\nTo: alice@example.com\r\nSubject: via lmtp\r\n\r\n.dot line\r\nbody\r\n"


def test_smtplib_lmtp_over_tcp_and_unix_socket(buzon):
    srv = smtp_server(buzon, lmtp=True)
    wait_smtp(srv.lmtp_port)
    st = os.stat(srv.lmtp_socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    for where in (srv.lmtp_port, srv.lmtp_socket):
        lm = smtplib.LMTP(srv.lmtp_socket) if where == srv.lmtp_socket else smtplib.LMTP(HOST, srv.lmtp_port)
        try:
            code, _ = lm.ehlo("mta.example")  # smtplib.LMTP sends LHLO
            assert code == 250 and lm.has_extn("pipelining") and lm.has_extn("enhancedstatuscodes")
            assert lm.sendmail("mta@remote.example", [ALICE], MSG) == {}
        finally:
            lm.quit()
    msgs = pop_all(srv, ALICE)
    assert [strip_trace(m) for m in msgs] == [MSG, MSG]
    traces = [trace_fields(m) for m in msgs]
    assert all(b" with LMTP id " in t for t in traces), traces
    assert b"Received: from mta.example ([127.0.0.1])" in traces[0]  # TCP: the peer's address
    assert b"Received: from mta.example\r\n" in traces[1]              # unix socket: no address
    srv.stop()
    assert not os.path.exists(srv.lmtp_socket), "the socket file is removed at shutdown"


def test_one_reply_per_recipient_after_data(buzon):
    srv = smtp_server(buzon, lmtp=True, users={ALICE: DEFAULT_PASSWORD, "bob@example.com": DEFAULT_PASSWORD,
                                               "carol@example.net": DEFAULT_PASSWORD})
    # Bob's mailbox cannot be written (a file where his Maildir should be): his copy fails, the
    # others are delivered, and each recipient gets its own reply (RFC 2033 §4.2).
    bob = srv.root / "mail" / "example.com" / "bob"
    bob.parent.mkdir(parents=True, exist_ok=True)
    bob.write_text("not a directory")
    c = SmtpRaw(path=srv.lmtp_socket)
    assert c.greeting == b"220 buzon.test LMTP buzon"
    assert c.cmd("EHLO mta.example") == b"500 5.5.1 Error: this is LMTP, use LHLO"
    assert c.cmd("LHLO mta.example").startswith(b"250-buzon.test")
    c.send(b"MAIL FROM:<mta@remote.example>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@example.com>\r\n"
           b"RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n")
    assert c.replies(6) == [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"550 5.1.1 Error: no such user here", b"250 2.1.5 Ok",
                            b"250 2.1.5 Ok", b"354 End data with <CR><LF>.<CR><LF>"]
    c.send(MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n")  # dot-stuffed, as RFC 5321 §4.5.2 says
    r = c.replies(3)
    assert r[0].startswith(b"250 2.0.0 <alice@example.com> Ok: delivered as "), r
    assert r[1] == b"451 4.3.0 Error: local delivery failed, try again later", r
    assert r[2].startswith(b"250 2.0.0 <carol@example.net> Ok: delivered as "), r
    # LMTP delivers to any domain the MTA routes here, as long as the user exists.
    assert c.cmd("MAIL FROM:<>") == b"250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<alice@other.example>") == b"550 5.1.1 Error: no such user here"
    assert c.cmd("QUIT").startswith(b"221 2.0.0")
    assert [strip_trace(m) for m in pop_all(srv, ALICE)] == [MSG]
    assert [strip_trace(m) for m in pop_all(srv, "carol@example.net")] == [MSG]
    assert "lmtp delivery failed" in srv.log()


def test_bdat_over_lmtp(buzon):
    srv = smtp_server(buzon, lmtp=True, users={ALICE: DEFAULT_PASSWORD, "bob@example.com": DEFAULT_PASSWORD})
    c = SmtpRaw(srv.lmtp_port)
    c.cmd("LHLO mta.example")
    c.send(b"MAIL FROM:<mta@remote.example>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
           + b"BDAT %d LAST\r\n" % len(MSG) + MSG)
    r = c.replies(5)
    assert r[:3] == [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"250 2.1.5 Ok"], r
    assert r[3].startswith(b"250 2.0.0 <alice@example.com> Ok") and r[4].startswith(b"250 2.0.0 <bob@example.com> Ok"), r
    assert [strip_trace(m) for m in pop_all(srv, "bob@example.com")] == [MSG]
