"""SMTP receiving (RFC 5321 and extensions) against the real buzon binary: Python smtplib, swaks and a
byte-exact raw client deliver; Python poplib reads the same bytes back (minus buzon's trace fields).
Also: open-relay attempts, SIZE, unknown users, SMTP smuggling over the wire, pipelining, BDAT,
8BITMIME/SMTPUTF8, STARTTLS, early talkers, limits and timeouts."""
from __future__ import annotations

import os
import pathlib
import re
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import DEFAULT_PASSWORD, HOST, free_port
from smtp_support import ALICE, SmtpRaw, pop_all, smtp_server, strip_trace, trace_fields, wire
from tlsutil import CertAuthority, tls_server

MSG = (b"From: Sender <sender@remote.example>\r\nTo: alice@example.com\r\nSubject: hello\r\n"
       b"Message-ID: <1@remote.example>\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n.\r\n\r\nend\r\n")


def mail_tree(srv) -> list[str]:
    root = srv.root / "mail"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ------------------------------------------------------------------------------------------------
# Delivery with real clients, read back over POP3
# ------------------------------------------------------------------------------------------------

def test_smtplib_delivers_and_pop3_returns_the_same_bytes(buzon):
    srv = smtp_server(buzon)
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=20) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"):
            assert s.has_extn(ext), f"EHLO does not announce {ext}: {s.esmtp_features}"
        assert not s.has_extn("starttls"), "STARTTLS offered without [tls]"
        assert s.esmtp_features["size"] == "10485760"
        assert s.sendmail("sender@remote.example", [ALICE], MSG) == {}
        code, text = s.noop()
        assert (code, text) == (250, b"2.0.0 Ok")
    msgs = pop_all(srv, ALICE)
    assert len(msgs) == 1
    assert strip_trace(msgs[0]) == MSG, "POP3 must return exactly the octets SMTP received"
    trace = trace_fields(msgs[0])
    assert trace.startswith(b"Return-Path: <sender@remote.example>\r\nDelivered-To: alice@example.com\r\n"
                            b"Received: from client.example ([127.0.0.1])\r\n\tby buzon.test (buzon) with ESMTP id "), trace
    assert re.search(rb"\r\n\tfor <alice@example.com>; \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n$", trace), trace
    assert "smtp message id=" in srv.log() and "delivered=1" in srv.log()


def test_swaks_delivers_with_and_without_pipelining(buzon, tmp_path):
    srv = smtp_server(buzon)
    body = tmp_path / "msg.eml"
    body.write_bytes(b"From: swaks@remote.example\nTo: alice@example.com\nSubject: via swaks\n\n"
                     b"first line\n.dotted line\nlast line")  # swaks ends the data with CRLF . CRLF itself
    for extra in ([], ["--pipeline"]):
        r = subprocess.run(["swaks", "--server", HOST, "--port", str(srv.smtp_port), "--from", "swaks@remote.example",
                            "--to", ALICE, "--helo", "swaks.example", "--data", str(body), *extra],
                           capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0, f"swaks {extra}: exit {r.returncode}\n{out}\n{r.stderr.decode(errors='replace')}"
        assert "<-  250 2.0.0 Ok: delivered as" in out, out
        if extra:
            assert "<** " not in out, out
    msgs = pop_all(srv, ALICE)
    assert len(msgs) == 2
    for m in msgs:
        assert strip_trace(m) == wire(body.read_bytes())
        assert b"Received: from swaks.example ([127.0.0.1])" in m


def test_bdat_from_a_raw_client(buzon):
    """RFC 3030: chunks are counted, not parsed: a "." line inside is data; pipelined with MAIL/RCPT."""
    srv = smtp_server(buzon)
    c = SmtpRaw(srv.smtp_port)
    ehlo = c.cmd("EHLO raw.example")
    assert b"250 CHUNKING" in ehlo or b"250-CHUNKING" in ehlo, ehlo
    c1 = b"From: raw@remote.example\r\nSubject: bdat\r\n\r\n"
    c2 = b".not stuffed\r\n.\r\nlast line\r\n"
    c.send(b"MAIL FROM:<raw@remote.example> BODY=8BITMIME\r\nRCPT TO:<alice@example.com>\r\n"
           + b"BDAT %d\r\n" % len(c1) + c1 + b"BDAT %d LAST\r\n" % len(c2) + c2)
    r = c.replies(4)
    assert r[:3] == [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"250 2.0.0 %d octets received" % len(c1)], r
    assert r[3].startswith(b"250 2.0.0 Ok: delivered as "), r
    # A chunk that breaks the CRLF rule fails; the chunks pipelined after it are read and dropped.
    c.send(b"MAIL FROM:<raw@remote.example>\r\nRCPT TO:<alice@example.com>\r\nBDAT 4\r\na\nbcBDAT 3 LAST\r\nxyz"
           b"RSET\r\n")
    assert c.replies(5) == [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"554 5.6.0 Error: message refused: bare LF",
                            b"503 5.5.1 Error: an earlier BDAT failed, send RSET", b"250 2.0.0 Ok"]
    assert c.cmd("QUIT").startswith(b"221 2.0.0")
    msgs = pop_all(srv, ALICE)
    assert [strip_trace(m) for m in msgs] == [c1 + c2]


def test_8bitmime_and_smtputf8(buzon):
    srv = smtp_server(buzon, users={ALICE: DEFAULT_PASSWORD, "josé@example.com": DEFAULT_PASSWORD})
    eight = ("From: a@remote.example\r\nTo: alice@example.com\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
             "Grüße, ¿qué tal? ✓ 日本語 🙂\r\n.ünïcode after a dot\r\n").encode()
    intl = ("From: José <josé@exämple.org>\r\nTo: josé@example.com\r\nSubject: ¡hola!\r\n\r\nñandú\r\n").encode()
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.sendmail("a@remote.example", [ALICE], eight, mail_options=["BODY=8BITMIME"]) == {}
        assert s.sendmail("josé@exämple.org", ["josé@example.com"], intl, mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    a = pop_all(srv, ALICE)
    assert [strip_trace(m) for m in a] == [eight]
    j = pop_all(srv, "josé@example.com", utf8=True)
    assert [strip_trace(m) for m in j] == [intl]
    assert j[0].startswith("Return-Path: <josé@exämple.org>\r\nDelivered-To: josé@example.com\r\n".encode())
    assert b" with UTF8SMTP id " in j[0]
    # Without SMTPUTF8 a UTF-8 address is refused (RFC 6531 §3.5).
    c = SmtpRaw(srv.smtp_port)
    c.cmd("EHLO raw.example")
    assert c.cmd("MAIL FROM:<josé@exämple.org>".encode()) == b"550 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter"
    assert c.cmd("MAIL FROM:<a@remote.example>") == b"250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<josé@example.com>".encode()) == b"553 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter"


def test_starttls_then_delivery(buzon, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    port = free_port()
    srv = tls_server(buzon, ca, smtp={"listen": [f"{HOST}:{port}"], "local_domains": ["example.com"]})
    srv.smtp_port = port
    with smtplib.SMTP(HOST, port, timeout=20) as s:
        s.ehlo("tls.example")
        assert s.has_extn("starttls")
        s.starttls(context=ca.context())
        s.ehlo("tls.example")
        assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
        assert s.sendmail("sender@remote.example", [ALICE], MSG) == {}
    msgs = pop_all(srv, ALICE)
    assert [strip_trace(m) for m in msgs] == [MSG]
    assert b"\r\n\t(using TLSv1.3 " in msgs[0] and b" with ESMTPS id " in msgs[0], trace_fields(msgs[0])
    # Plaintext pipelined after STARTTLS is dropped, never executed inside TLS (RFC 3207 §4.2).
    raw = socket.create_connection((HOST, port), timeout=20)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220 ")
    raw.sendall(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<alice@example.com>\r\n")
    while not (line := f.readline()).startswith(b"250 "):
        assert line.startswith(b"250-"), line
    assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
    tls = ca.context().wrap_socket(raw, server_hostname="localhost")
    tf = tls.makefile("rb")
    tls.sendall(b"MAIL FROM:<a@remote.example>\r\n")
    assert tf.readline() == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    tls.close()
    assert "discarded=" in srv.log()


# ------------------------------------------------------------------------------------------------
# Refusals: relay, size, users
# ------------------------------------------------------------------------------------------------

def test_open_relay_is_refused(buzon):
    srv = smtp_server(buzon)
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=20) as s:
        s.ehlo("spammer.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("spammer@remote.example", ["victim@elsewhere.example"], MSG)
        assert e.value.recipients == {"victim@elsewhere.example": (550, b"5.7.1 Error: relay access denied")}
    c = SmtpRaw(srv.smtp_port)
    c.cmd("EHLO spammer.example")
    assert c.cmd("MAIL FROM:<spammer@remote.example>") == b"250 2.1.0 Ok"
    for rcpt, want in [("victim@elsewhere.example", b"550 5.7.1"),
                       ("alice@example.com.elsewhere.example", b"550 5.7.1"),
                       ("alice@[127.0.0.1]", b"550 5.7.1"),
                       ("@example.com:victim@elsewhere.example", b"550 5.7.1"),  # source routes are ignored
                       ('"victim@elsewhere.example"@elsewhere.example', b"550 5.7.1"),
                       ("victim%elsewhere.example@example.com", b"550 5.1.1"),  # the % hack: just a local part
                       ("victim!elsewhere.example@example.com", b"550 5.1.1")]:
        assert c.cmd(f"RCPT TO:<{rcpt}>").startswith(want), rcpt
    assert c.cmd("DATA") == b"554 5.5.1 Error: no valid recipients"
    assert c.cmd("QUIT").startswith(b"221")
    assert mail_tree(srv) == [], "nothing may be stored for a refused relay attempt"
    assert srv.log().count("smtp relay denied") == 6  # one from smtplib, five raw


def test_size_is_announced_and_enforced(buzon):
    srv = smtp_server(buzon, smtp={"max_message_size": 4096})
    big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.esmtp_features["size"] == "4096"
        with pytest.raises(smtplib.SMTPSenderRefused) as e:  # smtplib declares SIZE=: refused at MAIL
            s.sendmail("a@remote.example", [ALICE], big)
        assert e.value.smtp_code == 552 and e.value.smtp_error.startswith(b"5.3.4")
    c = SmtpRaw(srv.smtp_port)  # a client that declares nothing is stopped while the data streams in
    c.cmd("EHLO raw.example")
    c.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    assert c.replies(3) == [b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"354 End data with <CR><LF>.<CR><LF>"]
    c.send(big + b".\r\nNOOP\r\n")
    assert c.replies(2) == [b"552 5.3.4 Error: message size exceeds the limit of 4096 octets", b"250 2.0.0 Ok"]
    assert mail_tree(srv) == []


def test_unknown_users_are_refused_at_rcpt(buzon):
    srv = smtp_server(buzon)
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=20) as s:
        s.ehlo("client.example")
        refused = s.sendmail("a@remote.example", ["nobody@example.com", ALICE], MSG)
        assert refused == {"nobody@example.com": (550, b"5.1.1 Error: no such user here")}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("a@remote.example", ["nobody@example.com", "../etc/passwd@example.com"], MSG)
    assert len(pop_all(srv, ALICE)) == 1


# ------------------------------------------------------------------------------------------------
# SMTP smuggling, pipelining, framing
# ------------------------------------------------------------------------------------------------

SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\n.\r", b"\r.\n"]


def test_smuggled_messages_are_never_delivered(buzon):
    """SEC Consult 2023: an end-of-data a sloppy server accepts, followed by a spoofed transaction.
    buzon ends DATA only at <CRLF>.<CRLF>: the whole input is one message, refused for its bare
    CR/LF, and the spoofed MAIL/RCPT are never executed."""
    srv = smtp_server(buzon, users={ALICE: DEFAULT_PASSWORD, "bob@example.com": DEFAULT_PASSWORD})
    for seq in SMUGGLING:
        c = SmtpRaw(srv.smtp_port)
        c.cmd("EHLO attacker.example")
        c.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
        assert c.replies(3)[2].startswith(b"354")
        c.send(b"Subject: real\r\n\r\nhello" + seq + b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
               b"DATA\r\nSubject: spoofed\r\n\r\nwire the money\r\n.\r\nQUIT\r\n")
        r = c.reply()
        assert r.startswith(b"554 5.6.0 Error: bare <"), (seq, r)
        assert c.reply().startswith(b"221 2.0.0"), seq
        assert c.eof()
        c.close()
    assert mail_tree(srv) == [], "a smuggled or refused message was stored"


def test_bare_lf_in_commands_and_long_lines(buzon):
    srv = smtp_server(buzon)
    c = SmtpRaw(srv.smtp_port)
    c.cmd("EHLO raw.example")
    c.send(b"RSET\nQUIT\r\n")  # one broken line, not two commands
    assert c.reply() == b"500 5.5.2 Error: bare <LF> received"
    assert c.cmd(b"NOOP " + b"x" * 5000) == b"500 5.5.2 Error: line too long"
    assert c.cmd("NOOP") == b"250 2.0.0 Ok"
    c.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    c.replies(3)
    c.send(b"y" * 999 + b"\r\n.\r\n")  # RFC 5321 4.5.3.1.6: 1000 octets including CRLF
    assert c.reply() == b"554 5.6.0 Error: message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)"


def test_pipelined_transactions_in_one_write(buzon):
    srv = smtp_server(buzon)
    c = SmtpRaw(srv.smtp_port)
    batch = b"EHLO pipe.example\r\n"
    for i in range(3):
        batch += (b"MAIL FROM:<p@remote.example>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<alice@example.com>\r\n"
                  b"DATA\r\nSubject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
    c.send(batch + b"QUIT\r\n")
    ehlo = c.reply()
    assert ehlo.startswith(b"250-buzon.test")
    for i in range(3):
        r = c.replies(5)
        assert r[:4] == [b"250 2.1.0 Ok", b"550 5.1.1 Error: no such user here", b"250 2.1.5 Ok",
                         b"354 End data with <CR><LF>.<CR><LF>"], r
        assert r[4].startswith(b"250 2.0.0 Ok: delivered as "), r
    assert c.reply().startswith(b"221 2.0.0")
    assert sorted(strip_trace(m) for m in pop_all(srv, ALICE)) == [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(3)]


# ------------------------------------------------------------------------------------------------
# Session limits
# ------------------------------------------------------------------------------------------------

def test_early_talker_timeouts_and_error_limit(buzon):
    srv = smtp_server(buzon, smtp={"greet_pause": 1, "command_timeout": 2, "max_errors": 3}, start=False)
    srv.start()
    time.sleep(0.2)
    # Talks before the greeting: refused and disconnected.
    s = socket.create_connection((HOST, srv.smtp_port), timeout=10)
    s.sendall(b"EHLO hasty.example\r\n")
    f = s.makefile("rb")
    assert f.readline() == b"554 5.5.0 buzon.test Error: SMTP protocol synchronization (input before the greeting)\r\n"
    assert f.read() == b""
    s.close()
    # Waits for the greeting: served (after the pause).
    t0 = time.monotonic()
    c = SmtpRaw(srv.smtp_port)
    assert c.greeting == b"220 buzon.test ESMTP buzon" and time.monotonic() - t0 >= 0.9
    # Errors: the third one ends the session.
    assert c.cmd("FOO") == b"500 5.5.1 Error: command not recognized"
    assert c.cmd("BAR") == b"500 5.5.1 Error: command not recognized"
    c.send(b"BAZ\r\n")
    assert c.replies(2) == [b"500 5.5.1 Error: command not recognized", b"421 4.7.0 buzon.test Error: too many errors"]
    assert c.eof()
    # Idle: closed after command_timeout.
    idle = SmtpRaw(srv.smtp_port)
    t0 = time.monotonic()
    assert idle.eof()
    assert 1.5 <= time.monotonic() - t0 < 10
    deadline = time.monotonic() + 5  # the summary line follows the close
    while "result=timeout" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "result=timeout" in srv.log() and "result=\"early talker\"" in srv.log()


def test_web_clients_are_sent_away(buzon):
    srv = smtp_server(buzon)
    c = SmtpRaw(srv.smtp_port)
    c.send(b"GET / HTTP/1.1\r\nHost: buzon.test\r\n\r\n")
    assert c.reply() == b"221 2.7.0 Error: I can break rules, too. Goodbye."
    assert c.eof()


def test_vrfy_is_252_by_default(buzon):
    srv = smtp_server(buzon)
    c = SmtpRaw(srv.smtp_port)
    c.cmd("EHLO x")
    for who in ("alice@example.com", "nobody@example.com"):
        assert c.cmd(f"VRFY {who}") == b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"


def test_counters_are_exported_to_metrics(buzon):
    import urllib.request
    mport = free_port()
    srv = smtp_server(buzon, metrics={"enabled": True, "listen": f"{HOST}:{mport}"})
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=20) as s:
        s.ehlo("client.example")
        s.sendmail("a@remote.example", [ALICE], MSG)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("a@remote.example", ["victim@elsewhere.example"], MSG)
    text = urllib.request.urlopen(f"http://{HOST}:{mport}/metrics", timeout=10).read().decode()
    assert 'buzon_smtp_messages_total{protocol="smtp"} 1' in text, text
    assert 'buzon_smtp_relay_denied_total{protocol="smtp"} 1' in text, text
