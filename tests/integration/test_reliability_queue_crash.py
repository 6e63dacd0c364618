"""Crash consistency of the outbound queue: SIGKILL at random moments loses no accepted message
and never sends a partial one (issue 9).

Clients submit many messages over the submission port (AUTH PLAIN, [submission] require_tls =
false on loopback) to recipients of sink.test; a [[relay.transport]] routes sink.test to an
aiosmtpd sink on loopback. Meanwhile the test SIGKILLs buzon at random moments -- while clients
are in DATA, while the relay is delivering, between the sink's 250 and the spool removal -- and
restarts it. At the end the server runs undisturbed until the spool is empty.

What must hold (counts printed):
  lost = 0        every message that got a 250 at submission arrives at the sink;
  partial = 0     every message that arrives is complete: its body equals what was submitted;
  duplicates <= kills
                  at-least-once delivery is inherent: a kill between the sink's 250 and the local
                  removal of the entry makes the restarted relay send it again (RFC 5321 §6.1). The
                  relay runs with one connection at a time, so one kill can cause at most one.
Messages whose submission was cut by a kill (no reply) may or may not arrive ("unconfirmed"): the
kill may fall after the commit point and before the 250 was sent. BUZON_STRESS_SCALE=N
multiplies kills and messages (make stress).
"""
from __future__ import annotations

import collections
import hashlib
import os
import random
import smtplib
import threading
import time

from conftest import HOST, free_port
from smtp_support import wait_smtp

SCALE = max(1, int(os.environ.get("BUZON_STRESS_SCALE", "1")))
KILLS = 6 * SCALE
MESSAGES = 120 * SCALE
CLIENTS = 3
ALICE = "alice@example.com"
PW = "queue-Crash-Pw-1"
DRAIN_TIMEOUT = 60.0


def body_for(token: str) -> bytes:
    """A body that only the complete message has: its length depends on the token, and the last
    line is a digest of all lines before it."""
    n = 5 + int(hashlib.sha256(token.encode()).hexdigest()[:4], 16) % 400
    lines = [(b"." if i % 17 == 0 else b"") + f"{token} line {i:05d} ".encode() * 2 for i in range(n)]
    digest = hashlib.sha256(b"\r\n".join(lines)).hexdigest().encode()
    return b"\r\n".join(lines + [b"digest " + digest]) + b"\r\n"


def message_for(token: str) -> bytes:
    return (f"From: <{ALICE}>\r\nTo: <sink@sink.test>\r\nSubject: queue crash {token}\r\n"
            f"X-Token: {token}\r\n\r\n").encode() + body_for(token)


def token_of(content: bytes) -> str | None:
    for line in content.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"x-token: "):
            return line[9:].decode(errors="replace").strip()
    return None


class Sink:
    """aiosmtpd on loopback: records every message it accepted (complete DATA only)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.got: list[bytes] = []
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.got.append(bytes(envelope.original_content))
                return "250 2.0.0 sunk"

        self.port = free_port()
        self.ctl = Controller(Handler(), hostname=HOST, port=self.port)

    def counts(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(token_of(m) for m in self.got)


def submit_loop(port_of, tokens: list[str], confirmed: set, unconfirmed: set, lock: threading.Lock,
                stop: threading.Event) -> None:
    """Submits each token's message, retrying (as a new message) when the server was killed."""
    conn = None
    i = 0
    pace = random.Random(tokens[0])
    while i < len(tokens) and not stop.is_set():
        token = tokens[i]
        try:
            if conn is None:
                conn = smtplib.SMTP(HOST, port_of(), timeout=20)
                conn.ehlo("client.example")
                conn.login(ALICE, PW)
            with lock:
                unconfirmed.add(token)  # from now on it may arrive even if no 250 comes back
            conn.sendmail(ALICE, ["sink@sink.test"], message_for(token))
            with lock:
                unconfirmed.discard(token)
                confirmed.add(token)
            i += 1
            time.sleep(pace.uniform(0.0, 0.1))  # spread the submissions over the kill period
        except (OSError, smtplib.SMTPException):
            # Killed mid-session (or refused while restarting): the next message gets a new
            # token, so a half-submitted one is never confused with its retry.
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            conn = None
            tokens[i] = tokens[i] + "r"
            time.sleep(0.05)


def test_outbound_queue_survives_sigkill(buzon):
    sink = Sink()
    sink.ctl.start()
    try:
        sub_port = free_port()
        srv = buzon(users={ALICE: PW}, start=False, config={
            "smtp": {"local_domains": ["example.com"]},
            "submission": {"listen": [f"{HOST}:{sub_port}"], "require_tls": False},
            "relay": {"tls": "none", "connect_timeout": 5, "command_timeout": 20,
                      "max_connections": 1, "max_per_domain": 1,
                      "transport": [{"domain": "sink.test", "host": f"{HOST}:{sink.port}"}]},
            "queue": {"retry_first": 1, "retry_max_interval": 1, "scan_interval": 1},
            "dns": {"servers": ["127.0.0.1:9"], "timeout": 1, "tries": 1},  # never used
        })
        srv.start()
        wait_smtp(sub_port)

        rnd = random.Random(int(os.environ.get("BUZON_CRASH_SEED", "0")) or None)
        per_client = MESSAGES // CLIENTS
        token_lists = [[f"c{c}m{m:05d}" for m in range(per_client)] for c in range(CLIENTS)]
        confirmed: set[str] = set()
        unconfirmed: set[str] = set()
        lock = threading.Lock()
        stop = threading.Event()
        threads = [threading.Thread(target=submit_loop, args=(lambda: sub_port, token_lists[c], confirmed,
                                                               unconfirmed, lock, stop), daemon=True)
                   for c in range(CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()

        kills = 0
        for _ in range(KILLS):
            time.sleep(rnd.uniform(0.05, 0.7))
            srv.kill()
            kills += 1
            time.sleep(rnd.uniform(0.0, 0.2))
            srv.start()
            wait_smtp(sub_port)
        for t in threads:
            t.join(timeout=120)
        stop.set()
        t_submitted = time.monotonic() - t0
        assert not any(t.is_alive() for t in threads), "the submitting clients finished"

        # Undisturbed: the relay drains the spool.
        env = srv.root / "queue" / "env"
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            got = sink.counts()
            if all(got[t] > 0 for t in confirmed) and not any(env.iterdir()):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0

        got = sink.counts()
        lost = sorted(t for t in confirmed if got[t] == 0)
        duplicates = sum(n - 1 for t, n in got.items() if n > 1)
        unconfirmed_arrived = sum(1 for t in unconfirmed if got[t] > 0)
        stray = sorted(str(t) for t in got if t not in confirmed and t not in unconfirmed)
        partial = []
        with sink.lock:
            arrived = list(sink.got)
        for m in arrived:
            t = token_of(m)
            parts = m.split(b"\r\n\r\n", 1)
            if t is None or len(parts) != 2 or parts[1] != body_for(t):
                partial.append(t)
        left = sorted(p.name for p in env.iterdir())
        print(f"\nqueue crash: kills={kills} confirmed={len(confirmed)} unconfirmed={len(unconfirmed)} "
              f"(arrived {unconfirmed_arrived}) arrived={len(arrived)} lost={len(lost)} "
              f"duplicates={duplicates} partial={len(partial)} stray={len(stray)} left_in_spool={len(left)} "
              f"in {elapsed:.1f}s (submissions done after {t_submitted:.1f}s)")
        assert len(confirmed) >= MESSAGES // 2, "most submissions got a 250 despite the kills"
        assert not lost, f"{len(lost)} messages that got a 250 never arrived: {lost[:10]}"
        assert not partial, f"partial or altered messages arrived: {partial[:10]}"
        assert not stray, f"messages nobody submitted arrived: {stray[:10]}"
        assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills (at most one per kill)"
        assert not left, f"the spool is not empty after the drain: {left[:10]}"
    finally:
        sink.ctl.stop()
