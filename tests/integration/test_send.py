"""`buzon send` (msmtp-style submission, sendmail-compatible) against aiosmtpd, a scripted sink
that records the exact dialogue (PIPELINING, AUTH, refused recipients), and buzon's own SMTP
server (then fetched back with `buzon fetch`: the whole path of a message)."""
from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import re
import subprocess
import threading
import time

import pytest

from conftest import BUZON_BIN, HOST, free_port, maildir_files

MESSAGE = (b"From: Ana <ana@example.org>\n"
           b"To: Bob <bob@example.net>, carl@example.net\n"
           b"Cc: Dee <dee@example.net>\n"
           b"Bcc: secret@example.net,\n  hidden@example.net\n"
           b"Subject: hello\n"
           b"\n"
           b"line one\n"
           b".leading dot\n"
           b"..two dots\n"
           b"last line without newline")
# What the server must receive after DATA's dot-unstuffing: CRLF lines, no Bcc.
WIRE = (b"From: Ana <ana@example.org>\r\nTo: Bob <bob@example.net>, carl@example.net\r\n"
        b"Cc: Dee <dee@example.net>\r\nSubject: hello\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n"
        b"last line without newline\r\n")


def send(port, *args, input=MESSAGE, extra_env=None, timeout=60):
    env = dict(os.environ)
    env.update(extra_env or {})
    return subprocess.run([str(BUZON_BIN), "send", "--host", HOST, "--port", str(port), "--tls", "none", *args],
                          input=input, capture_output=True, timeout=timeout, env=env)


# --------------------------------------------------------------------------------------------
# A scripted SMTP sink that records everything (asyncio, in a thread)
# --------------------------------------------------------------------------------------------

class Sink:
    def __init__(self, pipelining=True, auth=None, reject=(), size=None):
        self.port = free_port()
        self.pipelining, self.auth, self.reject, self.size = pipelining, auth, set(reject), size
        self.transcript: list[bytes] = []   # every line the client sent
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, HOST, self.port))
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter):
        async def line():
            l = await r.readline()
            self.transcript.append(l)
            return l
        w.write(b"220 sink ESMTP\r\n")
        authed = self.auth is None
        frm, rcpts = None, []
        while True:
            l = await line()
            if not l:
                break
            cmd = l.strip().upper()
            if cmd.startswith(b"EHLO"):
                ext = [b"250-sink"]
                if self.pipelining:
                    ext.append(b"250-PIPELINING")
                if self.size:
                    ext.append(b"250-SIZE %d" % self.size)
                if self.auth:
                    ext.append(b"250-AUTH PLAIN LOGIN")
                ext.append(b"250 8BITMIME")
                w.write(b"\r\n".join(ext) + b"\r\n")
            elif cmd.startswith(b"AUTH PLAIN"):
                parts = l.strip().split(b" ")
                data = base64.b64decode(parts[2]) if len(parts) > 2 else None
                if data is None:
                    w.write(b"334 \r\n")
                    await w.drain()
                    data = base64.b64decode((await line()).strip())
                if data == b"\0" + self.auth[0].encode() + b"\0" + self.auth[1].encode():
                    authed = True
                    w.write(b"235 2.7.0 ok\r\n")
                else:
                    w.write(b"535 5.7.8 bad credentials\r\n")
            elif cmd.startswith(b"MAIL FROM:"):
                if not authed:
                    w.write(b"530 5.7.0 authentication required\r\n")
                else:
                    frm = l.strip()[10:].split(b" ")[0].strip(b"<>").decode()
                    rcpts = []
                    w.write(b"250 2.1.0 ok\r\n")
            elif cmd.startswith(b"RCPT TO:"):
                a = l.strip()[8:].strip(b"<>").decode()
                if a in self.reject:
                    w.write(b"550 5.1.1 no such user\r\n")
                else:
                    rcpts.append(a)
                    w.write(b"250 2.1.5 ok\r\n")
            elif cmd == b"DATA":
                if not rcpts:
                    w.write(b"554 5.5.1 no valid recipients\r\n")
                    continue
                w.write(b"354 go ahead\r\n")
                await w.drain()
                data = b""
                while True:
                    d = await r.readline()
                    if not d:
                        return  # client dropped the connection: no message
                    if d == b".\r\n":
                        break
                    data += d[1:] if d.startswith(b".") else d
                self.messages.append((frm, rcpts, data))
                w.write(b"250 2.0.0 queued\r\n")
            elif cmd == b"RSET":
                frm, rcpts = None, []
                w.write(b"250 2.0.0 ok\r\n")
            elif cmd == b"QUIT":
                w.write(b"221 2.0.0 bye\r\n")
                await w.drain()
                break
            else:
                w.write(b"502 5.5.2 unknown\r\n")
            await w.drain()
        w.close()

    def stop(self):
        def shut():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(shut)
        self.thread.join(10)


@pytest.fixture
def sink():
    made = []

    def factory(**kw):
        s = Sink(**kw)
        made.append(s)
        return s
    yield factory
    for s in made:
        s.stop()


# --------------------------------------------------------------------------------------------

def test_send_with_aiosmtpd(tmp_path):
    """Against aiosmtpd (nobody here wrote it): recipients from -t, Bcc gone, body intact."""
    from aiosmtpd.controller import Controller

    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            return "250 OK"

    port = free_port()
    ctl = Controller(Handler(), hostname=HOST, port=port)
    ctl.start()
    try:
        r = send(port, "-t", "-i", "-f", "ana@example.org")
        assert r.returncode == 0, r.stderr.decode()
    finally:
        ctl.stop()
    assert len(got) == 1
    frm, rcpts, data = got[0]
    assert frm == "ana@example.org"
    assert sorted(rcpts) == sorted(["bob@example.net", "carl@example.net", "dee@example.net",
                                    "secret@example.net", "hidden@example.net"])
    assert data == WIRE, f"received {data!r}"
    assert b"Bcc" not in data and b"secret@" not in data


def test_send_pipelined_transcript(sink):
    s = sink(pipelining=True)
    r = send(s.port, "-i", "x@example.net", "y@example.net", "--from", "me@example.org")
    assert r.returncode == 0, r.stderr.decode()
    assert s.messages == [("me@example.org", ["x@example.net", "y@example.net"], WIRE)]
    t = b"".join(s.transcript)
    # RFC 2920: MAIL, RCPT, RCPT and DATA go out as one group.
    assert b"MAIL FROM:<me@example.org> BODY=8BITMIME" not in t  # 7-bit message: no BODY=
    assert re.search(rb"MAIL FROM:<me@example.org>\r\nRCPT TO:<x@example.net>\r\nRCPT TO:<y@example.net>\r\nDATA\r\n", t)


def test_send_without_pipelining_and_size(sink):
    s = sink(pipelining=False, size=1000)
    r = send(s.port, "-i", "x@example.net", "-f", "me@example.org")
    assert r.returncode == 0, r.stderr.decode()
    assert s.messages[0][2] == WIRE
    assert any(l.startswith(b"MAIL FROM:<me@example.org> SIZE=%d" % len(WIRE)) for l in s.transcript)
    # too big for the announced SIZE: refused before DATA, exit 69 (EX_UNAVAILABLE)
    r = send(s.port, "-i", "x@example.net", "-f", "me@example.org", input=b"Subject: big\n\n" + b"x" * 2000)
    assert r.returncode == 69, r.stderr.decode()
    assert len(s.messages) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_send_refused_recipient_sends_nothing(sink, pipelining):
    s = sink(pipelining=pipelining, reject={"nobody@example.net"})
    r = send(s.port, "-i", "-f", "me@example.org", "x@example.net", "nobody@example.net")
    assert r.returncode == 67, f"exit {r.returncode} (want 67 EX_NOUSER): {r.stderr.decode()}"
    assert b"nobody@example.net" in r.stderr
    assert s.messages == [], "no recipient may get the message when one was refused"


def test_send_auth_plain_and_wrong_password(sink, tmp_path):
    s = sink(auth=("ana", "pa55"))
    pw = tmp_path / "pw"
    pw.write_text("pa55\n")
    r = send(s.port, "-i", "-f", "ana@example.org", "--user", "ana", "--password-file", str(pw), "x@example.net")
    assert r.returncode == 0, r.stderr.decode()
    assert len(s.messages) == 1
    pw.write_text("wrong\n")
    r = send(s.port, "-i", "-f", "ana@example.org", "--user", "ana", "--password-file", str(pw), "x@example.net")
    assert r.returncode == 77, f"exit {r.returncode} (want 77 EX_NOPERM): {r.stderr.decode()}"
    assert len(s.messages) == 1


def test_send_sendmail_dot_rule_and_config(sink, tmp_path):
    s = sink()
    # Without -i a line with a single "." ends the message (sendmail); the rest is not sent.
    r = send(s.port, "-f", "me@example.org", "x@example.net", input=b"Subject: dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr.decode()
    assert s.messages[-1][2] == b"Subject: dot\r\n\r\nbefore\r\n"
    # [send] section in the config, recipients from -t, sender from the From: field
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[send]\nhost = "{HOST}"\nport = {s.port}\ntls = "none"\n')
    r = subprocess.run([str(BUZON_BIN), "--config", str(cfg), "send", "-t", "-oi"], input=MESSAGE,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert s.messages[-1][0] == "ana@example.org" and len(s.messages[-1][1]) == 5
    # Invoked as "sendmail" (a symlink), it is `buzon send`.
    link = tmp_path / "sendmail"
    link.symlink_to(BUZON_BIN)
    r = subprocess.run([str(link), "-oi", "-f", "cron@example.org", "--host", HOST, "--port", str(s.port),
                        "--tls", "none", "root@example.net"], input=b"Subject: cron\n\noutput\n",
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert s.messages[-1] == ("cron@example.org", ["root@example.net"], b"Subject: cron\r\n\r\noutput\r\n")


def test_send_errors_and_exit_codes(tmp_path):
    r = send(free_port(), "-i", "-f", "a@x.org", "b@x.org")
    assert r.returncode == 75, f"nothing listening: want 75 (EX_TEMPFAIL), got {r.returncode}"
    r = send(free_port(), "-i", "-f", "a@x.org", input=b"Subject: x\n\nno recipients\n")
    assert r.returncode == 65, r.stderr.decode()
    r = subprocess.run([str(BUZON_BIN), "send", "--bogus"], input=b"", capture_output=True, timeout=30)
    assert r.returncode == 64
    # TLS is the default: without a TLS build the run fails clearly instead of sending in the clear.
    r = subprocess.run([str(BUZON_BIN), "send", "--host", HOST, "--port", str(free_port()), "-f", "a@x.org", "b@x.org"],
                       input=b"Subject: x\n\n.\n", capture_output=True, timeout=30)
    assert r.returncode in (75, 78), r.stderr.decode()


def test_send_to_buzon_smtp_then_fetch_back(buzon, tmp_path):
    """The whole path: `buzon send` -> buzon's SMTP server -> Maildir -> POP3 -> `buzon fetch`."""
    smtp_port = free_port()
    srv = buzon(config={"smtp": {"listen": [f"{HOST}:{smtp_port}"], "local_domains": ["example.com"]}})
    body = b"From: ana@example.org\nTo: alice@example.com\nBcc: spy@example.com\nSubject: e2e\n\n.dot\nbody\n"
    r = send(smtp_port, "-i", "-f", "ana@example.org", "alice@example.com", input=body)
    assert r.returncode == 0, f"{r.stderr.decode()}\n{srv.log()}"
    pw = tmp_path / "pw"
    pw.write_text(srv.users["alice@example.com"] + "\n")
    md = tmp_path / "got"
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run([str(BUZON_BIN), "fetch", "--host", HOST, "--port", str(srv.port), "--user",
                            "alice@example.com", "--password-file", str(pw), "--tls", "none", "--state-dir",
                            str(tmp_path / "st"), "--maildir", str(md)], capture_output=True, timeout=60)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    msgs = [p.read_bytes() for p in maildir_files(md)]
    assert len(msgs) == 1
    m = msgs[0]
    assert m.endswith(b"From: ana@example.org\nTo: alice@example.com\nSubject: e2e\n\n.dot\nbody\n"), m
    assert b"spy@" not in m

