"""The mission's end-to-end test (issue 8): two providers on loopback, a private DNS, real clients.

Provider A (a.test) listens on 127.0.0.2, provider B (b.test) on 127.0.0.3; a private dnsmasq on
127.0.0.1 serves MX and A records for a.test, b.test and a null-MX domain, and both buzon instances
use only it ([dns] servers). Alice submits over A's submission port with STARTTLS + AUTH (smtplib);
A's relay looks up the MX of b.test and delivers to B over SMTP with STARTTLS; B deposits the
message; Bob downloads it with poplib from B. B's SMTP listens on a high port and A's [relay] port
points at it, so the test runs unprivileged too (no port 25).

Also: B down at first -> A retries ([queue] retry_first = 1) and delivers when B comes back; an
unknown user at B -> a failure DSN (multipart/report, Action: failed, Status: 5.1.1) in Alice's
mailbox at A; a null MX (RFC 7505) -> an immediate bounce (5.1.10).
"""
from __future__ import annotations

import pathlib
import poplib
import re
import smtplib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "integration"))

from conftest import IO_TIMEOUT, buzon, free_port  # noqa: E402,F401  (buzon is the fixture)
from dns_support import DnsServer  # noqa: E402
from smtp_support import pop_all  # noqa: E402
from tlsutil import CertAuthority  # noqa: E402

A_IP, B_IP = "127.0.0.2", "127.0.0.3"
ALICE, BOB = "alice@a.test", "bob@b.test"
PW = {ALICE: "alice-Pw-1", BOB: "bob-Pw-2"}
DELIVERY_TIMEOUT = 40.0

BODY = (b"Hello Bob,\r\n"
        b".a line that starts with a dot\r\n"
        b"\r\n"
        b"Two providers, one path.\r\n")


def message(to: str, subject: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\n").encode() + BODY


def free_port_on(ip: str) -> int:
    import socket
    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind((ip, p))
                return p
            except OSError:
                continue
    raise RuntimeError(f"no free port on {ip}")


class Providers:
    def __init__(self, buzon, tmp_path: pathlib.Path, start_b: bool = True):
        if not DnsServer.available():
            pytest.fail("dnsmasq is not installed (run scripts/install-deps: dnsmasq-base)")
        self.b_smtp = free_port_on(B_IP)
        self.a_smtp = free_port_on(A_IP)
        self.a_sub = free_port_on(A_IP)
        self.dns = DnsServer({
            "a.test": {"MX": [(10, "mx.a.test")]},
            "mx.a.test": {"A": [A_IP]},
            "b.test": {"MX": [(10, "mx.b.test")]},
            "mx.b.test": {"A": [B_IP]},
            "null.test": {"MX": [(0, ".")]},
        }).start()
        self.ca = CertAuthority(tmp_path / "ca")
        a_cert, a_key = self.ca.issue("a", "mx.a.test", sans=f"DNS:mx.a.test,IP:{A_IP}")
        b_cert, b_key = self.ca.issue("b", "mx.b.test", sans=f"DNS:mx.b.test,IP:{B_IP}")
        common = {
            "dns": {"servers": [self.dns.server], "timeout": 1, "tries": 2},
            "queue": {"retry_first": 1, "retry_max_interval": 2, "scan_interval": 1},
            "relay": {"port": self.b_smtp, "connect_timeout": 5, "command_timeout": 30},
        }
        self.a = buzon(users={ALICE: PW[ALICE]}, start=False, root=tmp_path / "provider-a", config={
            **common,
            "server": {"hostname": "mx.a.test"},
            "relay": {**common["relay"], "source_address": A_IP},  # A's mail leaves from A's address
            "tls": {"cert": str(a_cert), "key": str(a_key)},
            "smtp": {"listen": [f"{A_IP}:{self.a_smtp}"], "local_domains": ["a.test"]},
            "submission": {"listen": [f"{A_IP}:{self.a_sub}"]},
        })
        self.b = buzon(users={BOB: PW[BOB]}, start=False, root=tmp_path / "provider-b", config={
            **common,
            "server": {"hostname": "mx.b.test"},
            "tls": {"cert": str(b_cert), "key": str(b_key)},
            "smtp": {"listen": [f"{B_IP}:{self.b_smtp}"], "local_domains": ["b.test"]},
        })
        self.a.start()
        wait_smtp_on(A_IP, self.a_sub)
        if start_b:
            self.start_b()

    def start_b(self):
        self.b.start()
        wait_smtp_on(B_IP, self.b_smtp)

    def close(self):
        self.dns.stop()

    def submit(self, to: str, msg: bytes) -> None:
        with smtplib.SMTP(A_IP, self.a_sub, timeout=IO_TIMEOUT) as s:
            s.ehlo("laptop.a.test")
            s.starttls(context=self.ca.context())
            s.ehlo("laptop.a.test")
            s.login(ALICE, PW[ALICE])
            assert s.sendmail(ALICE, [to], msg) == {}

    def queue_ids(self, srv) -> list[str]:
        env = srv.root / "queue" / "env"
        return sorted(p.name for p in env.iterdir()) if env.exists() else []


def wait_smtp_on(ip: str, port: int, timeout: float = 10.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=2) as s:
                s.settimeout(3)
                g = s.recv(512)
                if g.startswith(b"220 "):
                    s.sendall(b"QUIT\r\n")
                    return
                last = g
        except OSError as e:
            last = e
        time.sleep(0.05)
    pytest.fail(f"no SMTP greeting on {ip}:{port}: {last}")


def wait_mail(srv, user: str, count: int = 1, timeout: float = DELIVERY_TIMEOUT) -> list[bytes]:
    deadline = time.monotonic() + timeout
    msgs: list[bytes] = []
    while time.monotonic() < deadline:
        try:
            msgs = pop_all(srv, user)
        except poplib.error_proto:
            msgs = []  # maildrop busy or not there yet
        if len(msgs) >= count:
            return msgs
        time.sleep(0.25)
    pytest.fail(f"{user} has {len(msgs)} message(s) after {timeout}s, expected {count}.\n"
                f"--- A ---\n{PROVIDERS_LOG[0]()}\n--- B ---\n{PROVIDERS_LOG[1]()}")


PROVIDERS_LOG = [lambda: "", lambda: ""]


@pytest.fixture
def providers(buzon, tmp_path):
    made = []

    def make(**kw) -> Providers:
        p = Providers(buzon, tmp_path, **kw)
        PROVIDERS_LOG[0], PROVIDERS_LOG[1] = p.a.log, p.b.log
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def received_headers(msg: bytes) -> list[bytes]:
    head = msg.partition(b"\r\n\r\n")[0]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    return [l for l in unfolded.split(b"\r\n") if l.lower().startswith(b"received:")]


def test_alice_at_a_to_bob_at_b_over_mx_and_starttls(providers):
    p = providers()
    t0 = time.monotonic()
    p.submit(BOB, message(BOB, "across providers"))
    msgs = wait_mail(p.b, BOB)
    elapsed = time.monotonic() - t0
    assert len(msgs) == 1
    got = msgs[0]
    head, _, body = got.partition(b"\r\n\r\n")
    assert body == BODY, body  # byte-identical through submission, the spool, the relay and B
    rec = received_headers(got)
    print(f"delivered A -> B in {elapsed:.2f}s; Received headers: {len(rec)}")
    for r in rec:
        print("  ", r.decode(errors="replace")[:200])
    assert len(rec) >= 2, head
    # Newest first: B's (from A's relay, over TLS), then A's (the submission, authenticated).
    assert b"by mx.b.test" in rec[0] and b"from mx.a.test" in rec[0] and b"[127.0.0.2]" in rec[0], rec[0]
    assert b"with ESMTPS" in rec[0], rec[0]  # STARTTLS between the providers (RFC 3848)
    assert b"by mx.a.test" in rec[1] and b"with ESMTPSA" in rec[1], rec[1]
    assert b"Return-Path: <alice@a.test>" in head and b"Delivered-To: bob@b.test" in head
    assert b"Subject: across providers" in head
    deadline = time.monotonic() + 10
    while p.queue_ids(p.a) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p.queue_ids(p.a) == []  # delivered: the entry is gone
    log = p.a.log()
    assert re.search(r"relay id=\S+ rcpt=bob@b\.test host=mx\.b\.test\[127\.0\.0\.3\]:\d+ tls=yes status=delivered", log), log


def test_b_down_at_first_then_a_retries_and_delivers(providers):
    p = providers(start_b=False)
    p.submit(BOB, message(BOB, "retry"))
    deadline = time.monotonic() + 20
    while "connect failed" not in p.a.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = p.a.log()
    assert "connect failed" in log, log
    assert len(p.queue_ids(p.a)) == 1  # still queued, not bounced
    failures = log.count("connect failed")
    p.start_b()
    msgs = wait_mail(p.b, BOB)
    assert len(msgs) == 1 and msgs[0].partition(b"\r\n\r\n")[2] == BODY
    print(f"connection attempts refused while B was down: {failures}")
    assert wait_mail(p.a, ALICE, 0, timeout=0.1) == []  # no bounce


def dsn_parts(msg: bytes) -> tuple[bytes, bytes]:
    head, _, body = msg.partition(b"\r\n\r\n")
    return head, body


def test_unknown_user_at_b_bounces_to_alice_at_a(providers):
    p = providers()
    p.submit("nobody@b.test", message("nobody@b.test", "to nobody"))
    msgs = wait_mail(p.a, ALICE)
    assert len(msgs) == 1
    head, body = dsn_parts(msgs[0])
    print(head.decode(errors="replace"))
    assert re.search(rb"Content-Type: multipart/report;[^\r\n]*report-type=\"?delivery-status", head, re.I) or \
        b"multipart/report" in head, head
    assert b"Return-Path: <>" in head
    assert re.search(rb"Action: failed", body), body[:2000]
    assert re.search(rb"Status: 5\.1\.1", body), body[:2000]
    assert b"nobody@b.test" in body
    assert wait_mail(p.b, BOB, 0, timeout=0.1) == []


def test_null_mx_bounces_at_once(providers):
    p = providers()
    t0 = time.monotonic()
    p.submit("x@null.test", message("x@null.test", "to a null MX"))
    msgs = wait_mail(p.a, ALICE)
    elapsed = time.monotonic() - t0
    print(f"null MX bounce after {elapsed:.2f}s")
    assert len(msgs) == 1
    head, body = dsn_parts(msgs[0])
    assert b"multipart/report" in head
    assert re.search(rb"Action: failed", body), body[:2000]
    assert re.search(rb"Status: 5\.1\.10", body), body[:2000]
    assert b"null MX" in body or b"556" in body
    assert "connect failed" not in p.a.log()  # nothing was tried
