"""Concurrency hammer: the threaded parts of the server (two event loops with SO_REUSEPORT
acceptors, the worker pool, the connection limiter, the maildrop locks, SIGHUP reload and SIGTERM
drain) under many simultaneous, varied clients (issue 9).

Run against the normal binary it proves the server stays correct under concurrency: every reply
is well-formed, the messages nobody deleted are all still there, and it drains and exits 0 on
SIGTERM with sessions in flight. Run against a sanitizer build (`make tsan` sets
BUZON_BIN=build-tsan/buzon, ThreadSanitizer reporting into the server's stderr) it is the TSan
test: any "WARNING: ThreadSanitizer" (or ASan/UBSan report) in the server's output fails it.
BUZON_STRESS_SCALE=N lengthens the hammering.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time

from conftest import HOST, Pop3Raw

SCALE = max(1, int(os.environ.get("BUZON_STRESS_SCALE", "1")))
USERS = [f"t{i}@threads.test" for i in range(12)]
PW = "thr-Pw-1"
KEEP = 10  # messages per user that no client ever deletes
SANITIZER_MARKS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


class Pop3From(Pop3Raw):
    """Pop3Raw from a chosen loopback address: each worker has its own, as separate clients would
    (failed logins slow down their own address only)."""

    def __init__(self, port: int, source: str, timeout: float = 20):
        self.sock = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0))
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rb")
        self.greeting = self.readline()


def scenario(port: int, rnd: random.Random, stats: dict, lock: threading.Lock, home: str, source: str) -> None:
    kind = rnd.choice(["full", "full", "full", "abort_mid_retr", "bad_password", "garbage", "pipelined",
                       "idle_close"])
    # Mostly the worker's own mailbox; sometimes another one, to meet [IN-USE] across loops.
    user = home if rnd.random() < 0.8 else rnd.choice(USERS)
    t_start = time.monotonic()
    try:
        with Pop3From(port, source) as c:
            assert c.greeting.startswith(b"+OK"), c.greeting
            if kind == "garbage":
                c.send(b"\x00\xff garbage\r\nXYZ\r\nRETR 1\r\n")
                for _ in range(3):
                    assert c.status().startswith(b"-ERR")
                c.quit()
            elif kind == "bad_password":
                assert c.cmd(f"USER {user}").startswith(b"+OK")
                assert c.cmd("PASS nope").startswith(b"-ERR [AUTH]")
                c.quit()
            elif kind == "idle_close":
                assert c.cmd("CAPA").startswith(b"+OK")
                c.body()
                return  # closes without QUIT
            else:
                assert c.cmd(f"USER {user}").startswith(b"+OK")
                st = c.cmd(f"PASS {PW}")
                if st.startswith(b"-ERR [IN-USE]"):
                    with lock:
                        stats["in_use"] = stats.get("in_use", 0) + 1
                    time.sleep(0.05)
                    return
                assert st.startswith(b"+OK"), st
                st, listing = c.multi("UIDL")
                n = len([l for l in listing.split(b"\r\n") if l])
                assert n >= KEEP, f"{user}: only {n} messages listed"
                if kind == "pipelined":
                    c.send(b"STAT\r\nLIST\r\nUIDL 1\r\nTOP 1 2\r\nNOOP\r\nRSET\r\n")
                    c.status(); c.status(); c.body(); c.status(); c.status(); c.body(); c.status(); c.status()
                elif kind == "abort_mid_retr":
                    c.send(f"RETR {rnd.randint(1, n)}\r\n")
                    c.status()
                    c.readline()  # the first line of the message, then an RST instead of the rest
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    with lock:
                        stats["aborted"] = stats.get("aborted", 0) + 1
                    return  # RST in the middle of a reply
                else:
                    for m in rnd.sample(range(1, n + 1), 3):
                        st, body = c.multi(f"RETR {m}")
                        assert st.startswith(b"+OK") and body.endswith(b"\r\n"), st
                    # Only messages beyond the first KEEP may be deleted, and QUIT commits them.
                    extra = [m for m in range(KEEP + 1, n + 1) if rnd.random() < 0.3]
                    for m in extra:
                        assert c.cmd(f"DELE {m}").startswith(b"+OK")
                c.quit()
        with lock:
            stats[kind] = stats.get(kind, 0) + 1
    except (AssertionError, OSError) as e:
        with lock:
            stats.setdefault("failures", []).append((time.monotonic(), f"{kind} {user}: {e!r}"))
    finally:
        with lock:
            sec = stats.setdefault("seconds", {})
            sec[kind] = sec.get(kind, 0.0) + time.monotonic() - t_start
            cnt = stats.setdefault("count", {})
            cnt[kind] = cnt.get(kind, 0) + 1


def test_hammer_two_loops_reload_and_drain(buzon):
    drain_user = "drain@threads.test"
    srv = buzon(users={**{u: PW for u in USERS}, drain_user: PW},
                config={"server": {"io_threads": 2, "worker_threads": 2, "shutdown_grace": 3,
                                   "max_connections_per_ip": 1000}},
                start=False)
    rnd = random.Random(99)
    for u in USERS:
        for i in range(KEEP + 30 * SCALE):
            srv.deliver(u, b"Subject: %d\n\n" % i + b"line of text\n" * rnd.choice([1, 50, 3000]))
    for i in range(3):
        srv.deliver(drain_user, b"Subject: d%d\n\nkept\n" % i)
    srv.start()
    pid = srv.proc.pid

    stats: dict = {}
    lock = threading.Lock()
    stop = threading.Event()

    def worker(seed: int):
        r = random.Random(seed)
        while not stop.is_set():
            scenario(srv.port, r, stats, lock, USERS[seed % len(USERS)], f"127.0.1.{seed + 1}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(12)]
    for t in threads:
        t.start()
    reloads = 0
    t_end = time.monotonic() + 8 * SCALE
    while time.monotonic() < t_end:
        time.sleep(0.5)
        os.kill(pid, signal.SIGHUP)  # reload under load
        reloads += 1
    # SIGTERM with sessions still in flight: drain, then a clean exit. No new sessions after it.
    # Besides the workers' last sessions, three idle connections and one logged-in session with a
    # DELE but no QUIT are open: the drain closes them after shutdown_grace and deletes nothing.
    stop.set()
    idle = [Pop3From(srv.port, "127.0.2.1") for _ in range(3)]
    held = Pop3From(srv.port, "127.0.2.2")
    held.login(drain_user, PW)
    assert held.cmd("DELE 1").startswith(b"+OK")
    os.kill(pid, signal.SIGTERM)
    t0 = time.monotonic()
    rc = srv.proc.wait(timeout=20)
    drained = time.monotonic() - t0
    for c in idle + [held]:
        c.close()
    for t in threads:
        t.join(30)
    srv.stop()  # already exited: records the result for the fixture
    log = (srv.root / "server.stderr").read_text(errors="replace")
    reports = [l for l in log.splitlines() if any(m in l for m in SANITIZER_MARKS)]
    failures = stats.pop("failures", [])
    seconds = stats.pop("seconds", {})
    count = stats.pop("count", {})
    # Sessions cut by the drain (after SIGTERM) are expected; anything before it is a failure.
    real = [f for t, f in failures if t < t0]
    drain_cuts = [f for t, f in failures if t >= t0]
    print(f"\nhammer: {sum(stats.values())} sessions {stats}, {reloads} SIGHUP reloads, "
          f"{len(drain_cuts)} cut by the drain, SIGTERM drained in {drained:.1f} s, "
          f"exit {rc}, sanitizer reports: {len(reports)}; mean seconds per session: "
          f"{ {k: round(v / count[k], 3) for k, v in seconds.items()} }")
    assert not reports, "sanitizer reports in the server's output:\n" + "\n".join(reports[:20]) + \
        f"\n--- server stderr (tail) ---\n{log[-8000:]}"
    assert rc == 0, f"server exited with {rc} after SIGTERM\n{srv.log()}"
    assert not real, f"protocol failures under load: {real[:10]}"
    assert stats.get("full", 0) > 20, f"too little work done: {stats}"
    assert drained >= 2.5, f"SIGTERM did not wait shutdown_grace (3 s) for the open sessions: {drained:.1f} s"

    # Every message nobody was allowed to delete is still there.
    srv.start()
    for u in USERS:
        c = srv.raw_login_retry(u)
        st = c.cmd("STAT")
        assert int(st.split()[1]) >= KEEP, f"{u}: {st!r}"
        c.quit()
    c = srv.raw_login_retry(drain_user)
    assert c.cmd("STAT").startswith(b"+OK 3 "), "the session cut by the drain deleted a message"
    c.quit()
