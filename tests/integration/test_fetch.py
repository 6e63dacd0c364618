"""`buzon fetch` (the POP3 client) against buzon's own POP3 server and a private Dovecot.

Every test runs the real binary over loopback. Messages are compared byte for byte with what a
Unix delivery agent must store: the wire form with LF line ends (conftest.lf_form), which is also
what mpop stores (test_fetch_compare.py proves that on the same mailbox).
"""
from __future__ import annotations

import mailbox
import os
import pathlib
import poplib
import re
import signal
import subprocess
import time

import pytest

from conftest import (BUZON_BIN, EDGE_MESSAGES, HOST, big_message, lf_form, maildir_files, maildir_make)

USER = "alice@example.com"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def pwfile(tmp_path: pathlib.Path, password: str) -> pathlib.Path:
    p = tmp_path / "fetch-password"
    p.write_text(password + "\n")
    p.chmod(0o600)
    return p


def fetch_cmd(port: int, tmp_path: pathlib.Path, password: str, *dest: str, user: str = USER, extra=()):
    return [str(BUZON_BIN), "fetch", "--host", HOST, "--port", str(port), "--user", user,
            "--password-file", str(pwfile(tmp_path, password)), "--tls", "none",
            "--state-dir", str(tmp_path / "state"), "--no-progress", *dest, *extra]


def run(argv, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def out_of(r: subprocess.CompletedProcess) -> str:
    return (r.stdout + r.stderr).decode(errors="replace")


def delivered(md: pathlib.Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in maildir_files(md))


def expected(msgs) -> list[bytes]:
    return sorted(lf_form(m) for m in msgs)


def server_count(srv, user=USER) -> int:
    p = srv.login_retry(user)
    try:
        return p.stat()[0]
    finally:
        p.quit()


def edge_messages() -> list[bytes]:
    msgs = list(EDGE_MESSAGES.values())
    msgs.append(big_message(1024 * 1024))
    # mbox quoting material and a header-only message
    msgs.append(b"From: q@example.org\nSubject: from lines\n\nFrom the start\n>From quoted\n>>From twice\nFromage\n")
    return msgs


# --------------------------------------------------------------------------------------------
# buzon's own server
# --------------------------------------------------------------------------------------------

def test_fetch_maildir_deletes_and_second_run_finds_nothing(buzon, tmp_path):
    srv = buzon()
    msgs = edge_messages()
    for i, m in enumerate(msgs):
        srv.deliver(USER, m, size_in_name=(i % 2 == 0))
    md = tmp_path / "Maildir"
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md)))
    assert r.returncode == 0, f"exit {r.returncode} (0 = mail fetched):\n{out_of(r)}\n{srv.log()}"
    assert delivered(md) == expected(msgs), "messages not stored byte-identical (LF form)"
    assert f"{len(msgs)} new messages" in out_of(r), out_of(r)
    assert server_count(srv) == 0, "keep is off: the server must be empty after the run"
    assert maildir_files(srv.maildir(USER)) == []
    # Every file is in new/ with a Maildir name, nothing left in tmp/.
    assert list((md / "tmp").iterdir()) == []
    assert all(re.fullmatch(r"\d+\.M\d+P\d+Q\d+\..+,S=\d+", p.name) for p in (md / "new").iterdir())
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md)))
    assert r.returncode == 1, f"second run: exit {r.returncode}, want 1 (no mail):\n{out_of(r)}"
    assert "no new mail" in out_of(r)


def test_fetch_keep_only_new_then_delete_old(buzon, tmp_path):
    srv = buzon()
    for i in range(5):
        srv.deliver(USER, f"Subject: keep {i}\n\nbody {i}\n".encode())
    md = tmp_path / "Maildir"
    cmd = fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md), "--keep")
    r = run(cmd)
    assert r.returncode == 0, out_of(r)
    assert len(delivered(md)) == 5
    assert server_count(srv) == 5, "--keep must leave every message on the server"
    r = run(cmd)
    assert r.returncode == 1, f"only-new: second run must find nothing new:\n{out_of(r)}"
    assert len(delivered(md)) == 5, "a kept message was fetched twice"
    srv.restart()  # UIDLs are stable across a server restart; the state file must still match
    srv.deliver(USER, b"Subject: the new one\n\nnew\n")
    r = run(cmd)
    assert r.returncode == 0, out_of(r)
    got = delivered(md)
    assert len(got) == 6 and b"Subject: the new one\n\nnew\n" in got
    # --all fetches everything again (the user asked for it)
    r = run(cmd + ["--all"])
    assert r.returncode == 0 and len(delivered(md)) == 12, out_of(r)
    # keep off: messages already fetched are deleted on the server without downloading them again
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md)))
    assert r.returncode == 1, f"nothing new, old ones deleted: exit {r.returncode}\n{out_of(r)}"
    assert len(delivered(md)) == 12
    assert server_count(srv) == 0, "old (already fetched) messages must be deleted when keep is off"


def parse_mbox(data: bytes) -> list[bytes]:
    """Splits an mboxrd file into messages, undoing the From_ quoting (independent of buzon)."""
    assert data.startswith(b"From "), data[:80]
    parts = re.split(rb"(?m)^From [^\n]*\n", data)[1:]
    out = []
    for p in parts:
        assert p.endswith(b"\n\n") or p == b"\n", f"message not followed by a blank line: {p[-40:]!r}"
        body = p[:-1]
        body = re.sub(rb"(?m)^>(>*From )", rb"\1", body)
        out.append(body)
    return out


def test_fetch_mbox_quoting_and_locking(buzon, tmp_path):
    srv = buzon()
    msgs = edge_messages()
    for m in msgs:
        srv.deliver(USER, m)
    mb = tmp_path / "inbox.mbox"
    mb.write_bytes(b"From someone Thu Jan  1 00:00:00 2026\nSubject: old\n\nalready here\n\n")
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--mbox", str(mb)))
    assert r.returncode == 0, out_of(r)
    data = mb.read_bytes()
    got = parse_mbox(data)
    assert got[0] == b"Subject: old\n\nalready here\n", "existing mbox content was changed"
    assert sorted(got[1:]) == expected(msgs)
    # mboxrd quoting on disk: body lines "From " / ">From " / ">>From " got one more '>'
    assert b"\n>From the start\n>>From quoted\n>>>From twice\nFromage\n" in data
    assert not (tmp_path / "inbox.mbox.lock").exists(), "dotlock left behind"
    # Python's mailbox module reads it too (independent parser)
    assert len(mailbox.mbox(str(mb))) == len(msgs) + 1
    # A dotlock held by another program: buzon fetch waits, then gives up with exit 10 and
    # deletes nothing on the server.
    for m in msgs[:2]:
        srv.deliver(USER, m)
    lock = tmp_path / "inbox.mbox.lock"
    lock.write_text("12345\n")
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--mbox", str(mb)), timeout=90)
    lock.unlink()
    assert r.returncode == 10, f"locked mbox: exit {r.returncode}, want 10:\n{out_of(r)}"
    assert "locked" in out_of(r)
    assert server_count(srv) == 2, "nothing may be deleted when delivery failed"


def test_fetch_mda_status_checked(buzon, tmp_path):
    srv = buzon()
    msgs = edge_messages()
    for m in msgs:
        srv.deliver(USER, m)
    outdir = tmp_path / "mda-out"
    outdir.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text('#!/bin/sh\nn=$(date +%s%N)\ncat > "$1/tmp.$n" && mv "$1/tmp.$n" "$1/msg.$n"\n')
    mda.chmod(0o755)
    failing = tmp_path / "mda-fail.sh"
    failing.write_text("#!/bin/sh\ncat >/dev/null\nexit 75\n")
    failing.chmod(0o755)
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--mda", str(failing)))
    assert r.returncode == 10, f"MDA exit 75 must fail the run with 10:\n{out_of(r)}"
    assert "status 75" in out_of(r)
    assert server_count(srv) == len(msgs), "a failed MDA delivery must not delete anything"
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--mda", f"{mda} {outdir}"))
    assert r.returncode == 0, out_of(r)
    got = sorted(p.read_bytes() for p in outdir.glob("msg.*"))
    assert got == expected(msgs)
    assert server_count(srv) == 0


def test_fetch_size_limit_leaves_big_messages(buzon, tmp_path):
    srv = buzon()
    small = b"Subject: small\n\nsmall\n"
    srv.deliver(USER, small)
    srv.deliver(USER, big_message(200_000))
    md = tmp_path / "Maildir"
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md), "--limit", "100000"))
    assert r.returncode == 0, out_of(r)
    assert delivered(md) == [small]
    assert "1 over the size limit" in out_of(r)
    assert server_count(srv) == 1, "the message over the limit stays on the server"


def test_fetch_pipelined_and_not_pipelined_identical(buzon, tmp_path):
    msgs = edge_messages() + [f"Subject: n{i}\n\n{'x' * (i * 37)}\n".encode() for i in range(60)]
    results = {}
    for mode in ("pipelined", "sequential"):
        srv = buzon(root=tmp_path / f"srv-{mode}")
        for m in msgs:
            srv.deliver(USER, m)
        md = tmp_path / f"md-{mode}"
        extra = ["--no-pipelining"] if mode == "sequential" else []
        st = tmp_path / f"st-{mode}"
        st.mkdir()
        r = run(fetch_cmd(srv.port, st, srv.users[USER], "--maildir", str(md), extra=extra))
        assert r.returncode == 0, f"{mode}: {out_of(r)}"
        results[mode] = delivered(md)
        assert server_count(srv) == 0
        srv.stop()  # one server at a time
    assert results["pipelined"] == results["sequential"] == expected(msgs)


def test_fetch_interrupted_by_sigkill_loses_and_duplicates_nothing(buzon, tmp_path):
    """kill -9 in the middle of downloading many messages, several times; the reruns end with
    every message exactly once in the Maildir and none left on the server."""
    srv = buzon()
    n = 400
    msgs = [f"Subject: m{i}\nMessage-ID: <{i}@t>\n\n".encode() + (f"line {i}\n" * (300 + i % 50)).encode()
            for i in range(n)]
    for m in msgs:
        srv.deliver(USER, m)
    md = maildir_make(tmp_path / "Maildir")
    cmd = fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md))
    kills = 0
    for threshold in (40, 150, 260):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((md / "new").iterdir())) >= threshold:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert kills >= 1, "the fetch finished before it could be interrupted; make the mailbox bigger"
    r = run(cmd)
    assert r.returncode in (0, 1), out_of(r)
    got = delivered(md)
    assert len(got) == n, f"{len(got)} messages delivered, {n} expected (lost or duplicated)"
    assert got == expected(msgs), "contents differ"
    assert server_count(srv) == 0, "messages left on the server"
    # the next run has nothing to do
    r = run(cmd)
    assert r.returncode == 1, out_of(r)


def test_fetch_mbox_interrupted_by_sigkill(buzon, tmp_path):
    srv = buzon()
    n = 300
    msgs = [f"Subject: mb{i}\n\n".encode() + (f"From here {i}\n" * (200 + i % 30)).encode() for i in range(n)]
    for m in msgs:
        srv.deliver(USER, m)
    mb = tmp_path / "box.mbox"
    cmd = fetch_cmd(srv.port, tmp_path, srv.users[USER], "--mbox", str(mb))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if mb.exists() and mb.stat().st_size > 400_000:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    (tmp_path / "box.mbox.lock").unlink(missing_ok=True)  # a kill -9 leaves the dotlock (as procmail's would)
    r = run(cmd)
    assert r.returncode in (0, 1), out_of(r)
    got = parse_mbox(mb.read_bytes())
    assert sorted(got) == expected(msgs), f"{len(got)} messages in the mbox, {n} expected"
    assert server_count(srv) == 0


def test_fetch_config_accounts_and_exit_codes(buzon, tmp_path):
    srv = buzon(users={USER: "pw-alice", "bob@example.com": "pw-bob"})
    srv.deliver(USER, b"Subject: a\n\nfor alice\n")
    srv.deliver("bob@example.com", b"Subject: b\n\nfor bob\n")
    (tmp_path / "alice.pw").write_text("pw-alice\n")
    cfg = tmp_path / "client.toml"
    cfg.write_text(f"""
[fetch]
state_dir = "state"

[[fetch.account]]
name = "alice"
host = "{HOST}"
port = {srv.port}
tls = "none"
user = "{USER}"
password_file = "alice.pw"
maildir = "mail/alice"

[[fetch.account]]
name = "bob"
host = "{HOST}"
port = {srv.port}
tls = "none"
user = "bob@example.com"
password_command = "echo pw-bob"
mbox = "mail/bob.mbox"
keep = true
""")
    r = run([str(BUZON_BIN), "--config", str(cfg), "fetch", "--no-progress"])
    assert r.returncode == 0, out_of(r)
    assert delivered(tmp_path / "mail" / "alice") == [b"Subject: a\n\nfor alice\n"]
    assert parse_mbox((tmp_path / "mail" / "bob.mbox").read_bytes()) == [b"Subject: b\n\nfor bob\n"]
    assert (tmp_path / "state" / "alice.uidl").exists() and (tmp_path / "state" / "bob.uidl").exists()
    assert not list((tmp_path / "state").glob("*.journal")), "journal left after a clean run"
    # one account by name
    r = run([str(BUZON_BIN), "--config", str(cfg), "fetch", "bob"])
    assert r.returncode == 1 and "bob" in out_of(r) and "alice" not in out_of(r), out_of(r)
    r = run([str(BUZON_BIN), "--config", str(cfg), "fetch", "carol"])
    assert r.returncode == 5, out_of(r)

    # 3: wrong password
    r = run(fetch_cmd(srv.port, tmp_path, "wrong", "--maildir", str(tmp_path / "x")))
    assert r.returncode == 3, out_of(r)
    # 2: nothing listens
    r = run(fetch_cmd(1, tmp_path, "pw-alice", "--maildir", str(tmp_path / "x")))
    assert r.returncode == 2, out_of(r)
    # 5: bad usage
    r = run([str(BUZON_BIN), "fetch", "--host", HOST, "--user", USER, "--maildir", str(tmp_path / "x")])
    assert r.returncode == 5 and "password" in out_of(r), out_of(r)
    # 5: unknown key in the config, with file:line and a fix
    bad = tmp_path / "bad.toml"
    bad.write_text("[[fetch.account]]\nhost = \"h\"\nusr = \"x\"\n")
    r = run([str(BUZON_BIN), "--config", str(bad), "fetch"])
    assert r.returncode == 5 and "bad.toml:3" in out_of(r) and "usr" in out_of(r), out_of(r)
    # tls = "none" must be explicit: the default is implicit TLS
    r = run([str(BUZON_BIN), "fetch", "--host", HOST, "--port", str(srv.port), "--user", USER,
             "--password-file", str(pwfile(tmp_path, "pw-alice")), "--maildir", str(tmp_path / "x"),
             "--state-dir", str(tmp_path / "state")])
    assert r.returncode == 2 and "TLS" in out_of(r), out_of(r)
    # one file can hold the server and the client: `buzon serve`/`doctor` accept [fetch] and [send]
    both = srv.cfg_path.read_text() + cfg.read_text().replace('state_dir = "state"', "") + '\n[send]\nhost = "x"\n'
    srv.cfg_path.write_text(both)
    d = srv.run_cli("doctor")
    assert "unknown section" not in (d.stdout + d.stderr).decode(), (d.stdout + d.stderr).decode()
    srv.restart()


def test_fetch_in_use_and_login_delay_are_explained(buzon, tmp_path):
    srv = buzon(config={"pop3": {"login_delay": 120}})
    srv.deliver(USER, b"Subject: x\n\nx\n")
    holder = srv.login(USER)  # holds the maildrop lock
    try:
        r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(tmp_path / "md")))
    finally:
        holder.quit()
    out = out_of(r)
    # Depending on the order of checks the server reports the lock or the login delay; both map to 9.
    assert r.returncode == 9, f"exit {r.returncode}, want 9:\n{out}"
    assert ("IN-USE" in out and "locked" in out) or "LOGIN-DELAY" in out, out


def test_fetch_daemon_polls_until_sigterm(buzon, tmp_path):
    srv = buzon()
    md = tmp_path / "Maildir"
    proc = subprocess.Popen(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md), "--daemon", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        srv.deliver(USER, b"Subject: later\n\narrived while polling\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(delivered(md) if md.exists() else []) < 1:
            time.sleep(0.1)
        assert delivered(md) == [b"Subject: later\n\narrived while polling\n"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
        out = (proc.stdout.read() + proc.stderr.read()).decode(errors="replace")
        proc.stdout.close()
        proc.stderr.close()
    assert rc == 0, f"--daemon must exit 0 on SIGTERM, got {rc}:\n{out}"


# --------------------------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dest", ["maildir", "mbox", "mda"])
def test_fetch_from_dovecot(dovecot, tmp_path, dest):
    dv = dovecot({USER: "dove-pw"})
    msgs = edge_messages()
    for m in msgs:
        dv.deliver(USER, m)
    dv.start()
    if dest == "maildir":
        target = ["--maildir", str(tmp_path / "Maildir")]
    elif dest == "mbox":
        target = ["--mbox", str(tmp_path / "in.mbox")]
    else:
        (tmp_path / "mda").mkdir()
        target = ["--mda", f"cat > {tmp_path}/mda/$(date +%s%N)"]
    # first: keep (only-new on the second run), then delete
    r = run(fetch_cmd(dv.port, tmp_path, "dove-pw", *target, extra=["--keep"]))
    assert r.returncode == 0, f"{out_of(r)}\n{dv.log()}"
    r = run(fetch_cmd(dv.port, tmp_path, "dove-pw", *target, extra=["--keep"]))
    assert r.returncode == 1, f"only-new against Dovecot: {out_of(r)}"
    r = run(fetch_cmd(dv.port, tmp_path, "dove-pw", *target))
    assert r.returncode == 1, out_of(r)  # nothing new; the old ones are deleted now
    if dest == "maildir":
        got = delivered(tmp_path / "Maildir")
    elif dest == "mbox":
        got = sorted(parse_mbox((tmp_path / "in.mbox").read_bytes()))
    else:
        got = sorted(p.read_bytes() for p in (tmp_path / "mda").iterdir())
    assert got == expected(msgs)
    p = dv.login(USER)
    try:
        assert p.stat()[0] == 0, "messages left on Dovecot after the keep-off run"
    finally:
        p.quit()


def test_fetch_dovecot_pipelined_vs_sequential(dovecot, tmp_path):
    dv = dovecot({USER: "dove-pw"})
    msgs = edge_messages() + [f"Subject: d{i}\n\n{'y' * (i * 53)}\n".encode() for i in range(40)]
    for m in msgs:
        dv.deliver(USER, m)
    dv.start()
    a, b = tmp_path / "a", tmp_path / "b"
    for md, extra in ((a, []), (b, ["--no-pipelining"])):
        st = tmp_path / f"st-{md.name}"
        st.mkdir()
        r = run(fetch_cmd(dv.port, st, "dove-pw", "--maildir", str(md), extra=["--keep", *extra]))
        assert r.returncode == 0, out_of(r)
    assert delivered(a) == delivered(b) == expected(msgs)


def test_fetch_prefers_scram_when_offered(buzon, tmp_path):
    """SCRAM-SHA-256 (the client side of src/proto/sasl) against buzon's server: chosen first by the
    default preference, and the server's proof is checked (a +OK alone would not be trusted)."""
    srv = buzon(config={"users": {"default_scheme": "SCRAM-SHA-256"},
                        "auth": {"mechanisms": ["SCRAM-SHA-256", "PLAIN"]}})
    srv.deliver(USER, b"Subject: scram\n\nbody\n")
    md = tmp_path / "Maildir"
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md)))
    assert r.returncode == 0, f"{out_of(r)}\n{srv.log()}"
    assert delivered(md) == [b"Subject: scram\n\nbody\n"]
    assert "auth=SCRAM-SHA-256" in srv.log(), srv.log()
    srv.deliver(USER, b"Subject: again\n\nx\n")
    r = run(fetch_cmd(srv.port, tmp_path, "wrong-password", "--maildir", str(md)))
    assert r.returncode == 3, out_of(r)
    # Forcing another method works too.
    r = run(fetch_cmd(srv.port, tmp_path, srv.users[USER], "--maildir", str(md), extra=["--auth", "plain"]))
    assert r.returncode == 0, out_of(r)
    assert "auth=PLAIN" in srv.log()


# --------------------------------------------------------------------------------------------
# Servers without UIDL (a small scripted RFC 1939 server: the fallback heuristics)
# --------------------------------------------------------------------------------------------

class MiniPop3:
    """A minimal RFC 1939 server over loopback without UIDL (and optionally without TOP and CAPA)."""

    def __init__(self, messages: list[bytes], top: bool = True):
        import socketserver
        import threading
        self.messages = [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in messages]
        self.top = top
        self.sessions = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                outer.sessions += 1
                w = self.wfile.write
                w(b"+OK mini ready\r\n")
                deleted = set()
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd, *args = line.strip().split(b" ")
                    cmd = cmd.upper()
                    live = [i for i in range(len(outer.messages)) if i not in deleted]
                    if cmd in (b"USER", b"PASS", b"NOOP"):
                        w(b"+OK\r\n")
                    elif cmd == b"LIST":
                        w(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (i + 1, len(outer.messages[i])) for i in live) + b".\r\n")
                    elif cmd == b"RETR" or (cmd == b"TOP" and outer.top):
                        m = outer.messages[int(args[0]) - 1]
                        if cmd == b"TOP":
                            m = m[: m.index(b"\r\n\r\n") + 4]
                        body = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in m.split(b"\r\n")[:-1])
                        w(b"+OK\r\n" + body + b".\r\n")
                    elif cmd == b"DELE":
                        deleted.add(int(args[0]) - 1)
                        w(b"+OK\r\n")
                    elif cmd == b"QUIT":
                        outer.messages = [m for i, m in enumerate(outer.messages) if i not in deleted]
                        w(b"+OK bye\r\n")
                        return
                    else:  # CAPA, UIDL, TOP (when off): an RFC 1939-only server
                        w(b"-ERR unknown command\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_fetch_without_uidl_uses_top_headers(tmp_path):
    msgs = [b"Message-ID: <a@x>\nSubject: a\n\none\n", b"Message-ID: <b@x>\nSubject: b\n\n.two\n"]
    srv = MiniPop3(msgs, top=True)
    try:
        md = tmp_path / "Maildir"
        cmd = fetch_cmd(srv.port, tmp_path, "pw", "--maildir", str(md), extra=["--keep"])
        r = run(cmd)
        assert r.returncode == 0, out_of(r)
        assert delivered(md) == expected(msgs)
        r = run(cmd)
        assert r.returncode == 1, f"second run must recognise both messages by their headers:\n{out_of(r)}"
        srv.messages.append(b"Message-ID: <c@x>\r\nSubject: c\r\n\r\nthree\r\n")
        r = run(cmd)
        assert r.returncode == 0 and len(delivered(md)) == 3, out_of(r)
        state = (tmp_path / "state").glob("*.uidl")
        assert all(l.startswith("x-hdr-") for f in state for l in f.read_text().splitlines()[1:])
    finally:
        srv.close()


def test_fetch_without_uidl_and_top_deletes_what_it_fetched(tmp_path):
    msgs = [b"Subject: a\n\none\n", b"Subject: b\n\ntwo\n"]
    srv = MiniPop3(msgs, top=False)
    try:
        md = tmp_path / "Maildir"
        r = run(fetch_cmd(srv.port, tmp_path, "pw", "--maildir", str(md)))
        assert r.returncode == 0, out_of(r)
        assert delivered(md) == expected(msgs)
        assert srv.messages == [], "keep off: both deleted"
        # nothing that names only a message number may be remembered
        for f in (tmp_path / "state").glob("*.uidl"):
            assert "x-run-" not in f.read_text()
        srv.messages.append(b"Subject: c\r\n\r\nthree\r\n")
        r = run(fetch_cmd(srv.port, tmp_path, "pw", "--maildir", str(md)))
        assert r.returncode == 0 and len(delivered(md)) == 3, "message 1 of the next run is a new message"
    finally:
        srv.close()
