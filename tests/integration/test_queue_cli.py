"""`buzon queue list|show|flush|delete|hold|release` on a spool (issue 8).

How the entries are made: this test writes them itself, byte for byte in the on-disk format that
docs/QUEUE.md documents (msg/<id> + env/<id>, "buzon-queue-envelope 1"). That is the simplest
honest way while the relay is built elsewhere, and it also checks that the documented format is
the one the code reads. A live relay's lease is simulated exactly as the relay takes it: an
exclusive flock on msg/<id> (fcntl.flock here). The last test runs the commands against a live
server whose relay holds the real leases (a submitted message that cannot be delivered).
"""
import fcntl
import os
import pathlib
import subprocess
import time

import pytest

from conftest import BUZON_BIN
from ops_support import wait_for

NOW = int(time.time())


def enc(s: str) -> str:
    """The envelope field encoding of docs/QUEUE.md: '-' for empty, %XX for octets outside 0x21..0x7E and '%'."""
    if s == "":
        return "-"
    out = []
    for b in s.encode():
        if b < 0x21 or b > 0x7E or b == ord("%") or s == "-":
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def envelope(id, sender, rcpts, created, next_attempt, held=False, attempts=0, size=0, envid=""):
    lines = ["buzon-queue-envelope 1", f"id {id}", f"created {created}", f"next {next_attempt}",
             f"attempts {attempts}", f"held {int(held)}", "warned 0", f"size {size}", f"sender {enc(sender)}",
             f"envid {enc(envid)}", "ret FULL", "smtputf8 0", "8bitmime 0"]
    for r in rcpts:
        addr, state, reply, mta = (r + ("", "", ""))[:4] if isinstance(r, tuple) else (r, "pending", "", "")
        lines.append(f"rcpt {state} {attempts} FAILURE,DELAY {enc(addr)} - {enc(mta)} {enc(reply)}")
    lines.append("end")
    return "\n".join(lines) + "\n"


class Spool:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.dir = root / "spool"
        for d in ("", "tmp", "msg", "env"):
            (self.dir / d).mkdir(mode=0o700, exist_ok=True)
        self.config = root / "buzon.toml"
        self.config.write_text('[queue]\ndir = "spool"\n')

    def add(self, id, sender, rcpts, message=b"Subject: hi\r\n\r\nhello\r\n", age=60, next_in=300, **kw):
        m = self.dir / "msg" / id
        m.write_bytes(message)
        os.chmod(m, 0o600)
        e = self.dir / "env" / id
        e.write_text(envelope(id, sender, rcpts, NOW - age, NOW + next_in, size=len(message), **kw))
        os.chmod(e, 0o600)

    def env(self, id) -> dict:
        out = {}
        for line in (self.dir / "env" / id).read_text().splitlines()[1:]:
            k, _, v = line.partition(" ")
            out.setdefault(k, v)
        return out

    def run(self, *args, timeout=20) -> subprocess.CompletedProcess:
        return subprocess.run([str(BUZON_BIN), "-c", str(self.config), "queue", *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)


A = "0AAAAAAAAAaaaaaaaaa1"
B = "0AAAAAAAAAaaaaaaaaa2"


@pytest.fixture
def spool(tmp_path):
    s = Spool(tmp_path)
    s.add(A, "alice@a.test", [("bob@b.test", "pending", "451 4.7.1 greylisted", "mx.b.test"),
                               ("carol@c.test", "delivered", "250 2.0.0 ok", "mx.c.test")],
          attempts=2, envid="QQ31")
    s.add(B, "", [("dave@d.test", "failed", "550 5.1.1 no such user", "mx.d.test")], held=True, age=7200)
    return s


def test_list_shows_every_entry_with_states(spool):
    r = spool.run("list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(A) and "<alice@a.test>" in lines[0]
    assert "bob@b.test(pending)" in lines[0] and "carol@c.test(delivered)" in lines[0]
    assert " in 4m " in lines[0] or " in 5m " in lines[0]
    assert lines[1].startswith(B) and "<>" in lines[1] and "dave@d.test(failed)" in lines[1]
    assert lines[1].endswith("HOLD") and " held " in lines[1] and " 2h00m " in lines[1]
    assert lines[2] == "-- 2 entries, 1 on hold"


def test_list_empty_and_missing_spool(tmp_path):
    cfg = tmp_path / "buzon.toml"
    cfg.write_text('[queue]\ndir = "nowhere"\n')
    r = subprocess.run([str(BUZON_BIN), "-c", str(cfg), "queue", "list"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == "queue is empty\n"
    assert not (tmp_path / "nowhere").exists()  # listing does not create a spool


def test_show_and_message(spool):
    r = spool.run("show", A)
    assert r.returncode == 0, r.stderr
    assert f"id:            {A}" in r.stdout
    assert "sender:        <alice@a.test>" in r.stdout
    assert "envid:         QQ31" in r.stdout
    assert "recipient:     bob@b.test" in r.stdout
    assert "state:       pending, 2 attempts, NOTIFY=FAILURE,DELAY" in r.stdout
    assert "last reply:  451 4.7.1 greylisted (from mx.b.test)" in r.stdout
    assert "hello" not in r.stdout
    r = subprocess.run([str(BUZON_BIN), "-c", str(spool.config), "queue", "show", "--message", A],
                       capture_output=True, timeout=20)
    assert r.returncode == 0 and r.stdout.endswith(b"\nSubject: hi\r\n\r\nhello\r\n")  # the octets as queued
    r = spool.run("show", B)
    assert "(null: a bounce)" in r.stdout and "held (buzon queue release" in r.stdout


def test_bad_and_unknown_ids(spool):
    r = spool.run("show", "../../etc/passwd")
    assert r.returncode == 1 and "is not a queue id" in r.stderr
    r = spool.run("delete", "../../../etc/passwd0")
    assert r.returncode == 1 and "is not a queue id" in r.stderr
    r = spool.run("hold", "0AAAAAAAAAaaaaaaaaa9")
    assert r.returncode == 1 and "no queue entry 0AAAAAAAAAaaaaaaaaa9" in r.stderr


def test_hold_release_flush(spool):
    assert spool.env(A)["held"] == "0"
    r = spool.run("hold", A)
    assert r.returncode == 0 and r.stdout == f"{A}: on hold\n"
    assert spool.env(A)["held"] == "1"
    r = spool.run("flush", A)
    assert r.returncode == 1 and "is on hold" in r.stderr
    r = spool.run("release", A)
    assert r.returncode == 0 and spool.env(A)["held"] == "0"
    assert int(spool.env(A)["next"]) > NOW + 200
    before = time.time()
    r = spool.run("flush", A)
    assert r.returncode == 0 and "next scan" in r.stdout
    assert abs(int(spool.env(A)["next"]) - before) <= 2
    # Everything else in the envelope is kept as it was.
    env = spool.env(A)
    assert env["sender"] == "alice@a.test" and env["envid"] == "QQ31" and env["attempts"] == "2"
    assert os.stat(spool.dir / "env" / A).st_mode & 0o777 == 0o600
    r = spool.run("flush")
    assert r.returncode == 0 and r.stdout == "1 flushed, 0 being delivered now, 1 on hold\n"


def test_delete_refuses_while_delivering_unless_wait(spool):
    with open(spool.dir / "msg" / A, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what the relay holds while it delivers
        r = spool.run("delete", A)
        assert r.returncode == 1 and "being delivered right now" in r.stderr and "--wait" in r.stderr
        assert (spool.dir / "env" / A).exists()
        r = spool.run("flush")
        assert r.stdout == "0 flushed, 1 being delivered now, 1 on hold\n"
        waiter = subprocess.Popen([str(BUZON_BIN), "-c", str(spool.config), "queue", "delete", "--wait", A],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert waiter.poll() is None, "delete --wait did not wait for the lease"
        fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = waiter.communicate(timeout=20)
    assert waiter.returncode == 0, err
    assert out == f"{A}: deleted\n"
    assert not (spool.dir / "env" / A).exists() and not (spool.dir / "msg" / A).exists()
    assert spool.run("list").stdout.splitlines()[-1] == "-- 1 entry, 1 on hold"


def test_corrupt_envelope_and_crash_leftovers(spool):
    (spool.dir / "env" / B).write_text("buzon-queue-envelope 1\nthis is not an envelope\n")
    (spool.dir / "tmp" / f"{A}.999999999.msg").write_bytes(b"partial")  # a dead writer's file
    r = spool.run("list")
    assert r.returncode == 0
    assert r.stdout.splitlines() == [r.stdout.splitlines()[0], "-- 1 entry, 0 on hold"]
    assert "corrupt envelope" in r.stderr and f"corrupt/{B}.env" in r.stderr
    assert (spool.dir / "corrupt" / f"{B}.env").exists() and (spool.dir / "corrupt" / f"{B}.msg").exists()
    assert list((spool.dir / "tmp").iterdir()) == []


# --- against a live server: the relay holds leases, `buzon queue` coordinates with it ---------------

def test_live_server_list_show_flush_hold_delete(buzon, tmp_path, monkeypatch):
    """A message submitted to a running buzon for a remote domain whose DNS cannot answer stays
    pending; `buzon queue` shows it, `flush` makes the live relay try again within scan_interval,
    `hold` stops that, `delete` removes it, and the server keeps running. The server is set up as
    test_submission.py does (STARTTLS, AUTH, [dns] at a closed port), plus a [queue] section: a
    rescan every second and the automatic retry an hour away, so only `flush` makes it retry."""
    import re
    import test_submission
    from test_submission import ALICE, MSG, PW, starttls_session, submission_server

    orig = test_submission.tls_server

    def with_queue(b, ca, accounts=None, **sections):
        sections["queue"] = {"scan_interval": 1, "retry_first": 3600, "retry_max_interval": 3600}
        return orig(b, ca, accounts=accounts, **sections)

    monkeypatch.setattr(test_submission, "tls_server", with_queue)
    srv = submission_server(buzon, tmp_path)
    with starttls_session(srv) as s:
        s.login(ALICE, PW[ALICE])
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt("friend@remote.example")[0] == 250
        code, reply = s.data(MSG)
        assert code == 250, reply
    qid = re.search(rb"queued as ([0-9A-Za-z]+)", reply).group(1).decode()

    def q(*args):
        r = srv.run_cli("queue", *args)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def attempts():
        rc, out, _ = q("show", qid)
        m = re.search(r"^attempts:\s+(\d+)$", out, re.M)
        return int(m.group(1)) if rc == 0 and m else 0

    wait_for(lambda: attempts() >= 1, what="the relay's first attempt")
    rc, out, err = q("list")
    assert rc == 0, err
    line = out.splitlines()[0]
    assert line.startswith(qid) and f"<{ALICE}>" in line and "friend@remote.example(pending)" in line, out
    assert " in " in line  # next attempt an hour away
    rc, out, _ = q("show", qid)
    assert "last reply:" in out and "state:       pending" in out, out

    before = attempts()
    rc, out, err = q("flush", qid)
    assert rc == 0, err
    wait_for(lambda: attempts() > before, timeout=15, what="the live relay to pick up the flush")

    rc, out, err = q("hold", qid)
    assert rc == 0, err
    rc, out, _ = q("flush")
    assert out == "0 flushed, 0 being delivered now, 1 on hold\n"
    held_attempts = attempts()
    time.sleep(2.5)  # two scans: a held entry is not tried
    assert attempts() == held_attempts

    rc, out, err = q("delete", qid)
    assert rc == 0 and out == f"{qid}: deleted\n", err
    assert q("list")[1] == "queue is empty\n"
    assert srv.proc.poll() is None, "the server died"
