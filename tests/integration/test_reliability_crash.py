"""Crash consistency of POP3 deletions: SIGKILL at random moments never damages, duplicates, loses
or resurrects a message (issue 9).

Several users, each with a Maildir of many messages (CRLF and LF, dot lines, no final newline,
sizes from 200 octets to 300 KiB, each with a unique Message-ID). Each round starts the server,
runs one session per user at once -- login, UIDL, TOP to learn new UIDLs, a few RETRs checked
byte-exact, DELE of a random subset, QUIT -- and SIGKILLs the server at a random moment: half of
the rounds at a uniformly random delay, half just after the QUIT was sent (inside UPDATE, where
unlink + fsync happen). The server is restarted each round.

What must hold afterwards (checked over POP3 and on disk):
  damaged = 0     every message still listed is byte-identical to what was delivered (RETR
                  equals the wire form) and LIST reports its exact size;
  duplicates = 0  no Message-ID appears twice, neither in a listing nor among the files;
  lost = 0        a message never DELEted in a session that reached QUIT is still there;
  resurrected = 0 a message whose DELE was confirmed by "+OK ... (N messages deleted)" is gone;
  UIDLs stable    a UIDL always names the same message across crashes and restarts.
Counts (kills, messages, deleted, intact, ...) are printed. BUZON_STRESS_SCALE=N multiplies
kills and messages (make stress).
"""
from __future__ import annotations

import os
import random
import re
import threading
import time

from conftest import Pop3Raw, maildir_files, wire_form

SCALE = max(1, int(os.environ.get("BUZON_STRESS_SCALE", "1")))
USERS = [f"u{i}@crash.test" for i in range(4)]
PW = "crash-Pw-1"
ROUNDS = 30 * SCALE
PER_USER = 120 * SCALE
MSGID = re.compile(rb"^Message-ID: <([^>]+)>\r?$", re.M | re.I)


def make_message(rnd: random.Random, ident: str) -> bytes:
    eol = rnd.choice([b"\r\n", b"\n"])
    size = rnd.choice([200, 800, 3000, 20000, 70000]) if rnd.random() > 0.03 else 300 * 1024
    head = [b"From: sender@example.org", b"To: " + ident.split("-")[0].encode() + b"@crash.test",
            b"Subject: crash test " + ident.encode(), b"Message-ID: <" + ident.encode() + b">", b""]
    body = []
    total = 0
    i = 0
    while total < size:
        line = (b"." if i % 23 == 0 else b"") + (b"%s line %06d " % (ident.encode(), i)) * 3
        body.append(line)
        total += len(line) + len(eol)
        i += 1
    raw = eol.join(head + body)
    return raw if rnd.random() < 0.2 else raw + eol  # some without a final newline


class Ledger:
    """What the clients know for sure about each message."""

    def __init__(self, originals: dict[str, bytes]):
        self.originals = originals
        self.wire = {k: wire_form(v) for k, v in originals.items()}
        self.deleted_for_sure: set[str] = set()    # QUIT confirmed the deletion
        self.maybe_deleted: set[str] = set()       # DELE + QUIT sent, reply lost to the kill
        self.uidl: dict[str, str] = {}             # uidl -> message id (must never change)
        self.retr_checked = 0
        self.problems: list[str] = []
        self.lock = threading.Lock()

    def must_exist(self, ident: str) -> bool:
        return ident not in self.deleted_for_sure and ident not in self.maybe_deleted


def message_id(content: bytes) -> str | None:
    m = MSGID.search(content[:2000])
    return m.group(1).decode() if m else None


def session(port: int, user: str, rnd: random.Random, ledger: Ledger, quit_sent: threading.Event) -> str:
    """One client session; returns how it ended. Connection errors are expected (the kill)."""
    try:
        with Pop3Raw(port, timeout=5) as c:
            c.send(f"USER {user}\r\nPASS {PW}\r\n")
            c.status()
            st = c.status()
            if not st.startswith(b"+OK"):
                return "login refused: " + st.decode(errors="replace")
            st, content = c.multi("UIDL")
            listing = {}
            for line in content.split(b"\r\n"):
                if line:
                    n, u = line.split(b" ", 1)
                    listing[int(n)] = u.decode()
            unknown = [n for n, u in listing.items() if u not in ledger.uidl]
            if unknown:
                c.send(b"".join(b"TOP %d 0\r\n" % n for n in unknown))
                for n in unknown:
                    st = c.status()
                    assert st.startswith(b"+OK"), st
                    head, _ = c.body()
                    ident = message_id(head)
                    with ledger.lock:
                        prev = ledger.uidl.setdefault(listing[n], ident)
                        if prev != ident:
                            ledger.problems.append(f"UIDL {listing[n]} named {prev}, now {ident}")
            with ledger.lock:
                for n, u in listing.items():
                    ident = ledger.uidl[u]
                    if ident in ledger.deleted_for_sure:
                        ledger.problems.append(f"{ident} listed again after a confirmed deletion")
                    ledger.maybe_deleted.discard(ident)  # listed: that deletion did not happen
            for n in rnd.sample(sorted(listing), min(2, len(listing))):
                st, body = c.multi(f"RETR {n}")
                ident = ledger.uidl.get(listing[n])
                with ledger.lock:
                    if body != ledger.wire.get(ident):
                        ledger.problems.append(f"RETR of {ident} during the rounds differs from what was delivered")
                    ledger.retr_checked += 1
            doomed = [n for n in listing if rnd.random() < 0.06]
            idents = [ledger.uidl[listing[n]] for n in doomed]
            c.send(b"".join(b"DELE %d\r\n" % n for n in doomed))
            for _ in doomed:
                st = c.status()
                assert st.startswith(b"+OK"), st
            with ledger.lock:
                ledger.maybe_deleted.update(idents)
            c.send(b"QUIT\r\n")
            quit_sent.set()
            st = c.status()
            m = re.match(rb"\+OK .*\((\d+) messages deleted\)", st)
            if m:
                assert int(m.group(1)) == len(doomed), st
                with ledger.lock:
                    ledger.deleted_for_sure.update(idents)
                    ledger.maybe_deleted.difference_update(idents)
                return "quit ok"
            return "quit: " + st.decode(errors="replace")
    except (OSError, AssertionError) as e:
        return f"cut: {type(e).__name__}"


def test_pop3_deletions_survive_sigkill(buzon):
    rnd = random.Random(int(os.environ.get("BUZON_CRASH_SEED", "20261127")))
    srv = buzon(users={u: PW for u in USERS},
                config={"server": {"io_threads": 2, "worker_threads": 2, "shutdown_grace": 1}},
                start=False)
    originals: dict[str, bytes] = {}
    for ui, user in enumerate(USERS):
        for i in range(PER_USER):
            ident = f"u{ui}-{i:05d}"
            raw = make_message(rnd, ident)
            originals[ident] = raw
            srv.deliver(user, raw, size_in_name=(i % 3 == 0))
    ledger = Ledger(originals)

    kills = 0
    outcomes: dict[str, int] = {}
    t_start = time.monotonic()
    for rnd_i in range(ROUNDS):
        srv.start()
        quit_sent = threading.Event()
        threads = []
        results = []
        for user in USERS:
            r = random.Random(rnd.random())
            t = threading.Thread(target=lambda u=user, r=r: results.append(session(srv.port, u, r, ledger, quit_sent)))
            threads.append(t)
            t.start()
        if rnd_i % 2 == 0:
            time.sleep(rnd.uniform(0, 0.4))
        else:
            quit_sent.wait(5)
            time.sleep(rnd.uniform(0, 0.004))
        srv.kill()
        kills += 1
        for t in threads:
            t.join(15)
        for res in results:
            key = res.split(":")[0]
            outcomes[key] = outcomes.get(key, 0) + 1

    # Afterwards: a clean start, everything read back over POP3 and from the files.
    srv.start()
    seen: dict[str, int] = {}
    damaged, wrong_size = [], []
    for user in USERS:
        c = srv.raw_login_retry(user)
        st, content = c.multi("LIST")
        sizes = {int(a): int(b) for a, b in (l.split() for l in content.split(b"\r\n") if l)}
        st, content = c.multi("UIDL")
        uidls = {int(a): b.decode() for a, b in (l.split(b" ", 1) for l in content.split(b"\r\n") if l)}
        for n in sorted(sizes):
            st, body = c.multi(f"RETR {n}")
            ident = message_id(body)
            if ident is None or body != ledger.wire.get(ident):
                damaged.append(f"{user} #{n} ({ident})")
                continue
            seen[ident] = seen.get(ident, 0) + 1
            if sizes[n] != len(body):
                wrong_size.append(f"{ident}: LIST {sizes[n]}, sent {len(body)}")
            if ledger.uidl.get(uidls[n], ident) != ident:
                ledger.problems.append(f"UIDL {uidls[n]} named {ledger.uidl[uidls[n]]}, now {ident}")
        c.quit()
    srv.stop()

    file_count: dict[str, int] = {}
    tmp_left = 0
    for user in USERS:
        md = srv.maildir(user)
        for p in maildir_files(md):
            ident = message_id(p.read_bytes())
            file_count[ident] = file_count.get(ident, 0) + 1
            if p.read_bytes() != originals.get(ident):
                damaged.append(f"file {p.name}")
        tmp_left += len(list((md / "tmp").iterdir())) if (md / "tmp").is_dir() else 0

    duplicates = sorted({i for i, n in seen.items() if n > 1} | {i for i, n in file_count.items() if n > 1})
    lost = sorted(i for i in originals if ledger.must_exist(i) and i not in seen)
    resurrected = sorted(i for i in ledger.deleted_for_sure if i in seen)
    gone = len(originals) - len(seen)
    maybe_gone = sum(1 for i in ledger.maybe_deleted if i not in seen)
    print(f"\ncrash consistency: kills={kills} rounds={ROUNDS} messages={len(originals)} "
          f"deleted={gone} (confirmed {len(ledger.deleted_for_sure)}, unconfirmed-but-gone {maybe_gone}, "
          f"unconfirmed-still-there {len(ledger.maybe_deleted) - maybe_gone}) intact={len(seen)} "
          f"damaged={len(damaged)} duplicates={len(duplicates)} lost={len(lost)} "
          f"resurrected={len(resurrected)} wrong_sizes={len(wrong_size)} retr_checked={ledger.retr_checked} "
          f"tmp_left={tmp_left} sessions={outcomes} in {time.monotonic() - t_start:.1f} s")
    assert not damaged, f"damaged messages: {damaged[:10]}"
    assert not duplicates, f"duplicated messages: {duplicates[:10]}"
    assert not lost, f"messages lost without a DELE: {lost[:10]}"
    assert not resurrected, f"messages back after a confirmed deletion: {resurrected[:10]}"
    assert not wrong_size, f"LIST sizes differ from the octets sent: {wrong_size[:10]}"
    assert not ledger.problems, f"inconsistencies: {ledger.problems[:10]}"
    assert kills == ROUNDS and outcomes.get("quit ok", 0) > 0 and outcomes.get("cut", 0) > 0, \
        f"the kills did not land both before and after QUIT: {outcomes}"
