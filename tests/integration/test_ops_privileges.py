"""Privileges (issue 7, docs/SECURITY.md): started as root, buzon binds, then runs as [server] user
for good — proved on the serving process itself (/proc/PID/task/*/status of every thread: ids,
groups, capabilities, NoNewPrivs) while it does real Maildir work and a SIGHUP reload; as root
without an account to switch to it refuses to start (before binding anything); `user = "root"`
keeps root only when written; started as a normal user nothing changes.

The unprivileged account is Debian's `nobody`/`nogroup`; the test tree lives in a world-traversable
temp dir (pytest's own is root-only) and the mail tree is given to nobody, as a deployment gives it
to `buzon`.
"""
from __future__ import annotations

import grp
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BUZON_BIN, HOST, Pop3Raw, free_port, maildir_deliver, maildir_files, wait_for_greeting, write_toml
from ops_support import http_get, proc_status, stop, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege tests need root (CI runs as root)")

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)
PASSWORD = "Pw-for-priv-test"


@pytest.fixture
def tree():
    root = pathlib.Path(tempfile.mkdtemp(prefix="buzon-ops-priv-"))
    root.chmod(0o755)
    procs: list[subprocess.Popen] = []
    yield root, procs
    for p in procs:
        stop(p)
    shutil.rmtree(root, ignore_errors=True)


def configure(root: pathlib.Path, user: str, users=("alice",), metrics_port: int | None = None) -> tuple[pathlib.Path, int]:
    port = free_port()
    cfg = {
        "server": {"hostname": "buzon.test", "io_threads": 2, "worker_threads": 2, "shutdown_grace": 2, "user": user},
        "log": {"level": "info"},
        "users": {"passwd_file": "passwd"},
        "mail": {"location": "mail/%n/Maildir"},
        "pop3": {"listen": [f"{HOST}:{port}"]},
        "metrics": {"enabled": metrics_port is not None, "listen": f"127.0.0.1:{metrics_port or 9110}"},
    }
    path = root / "buzon.toml"
    write_toml(path, cfg)
    (root / "passwd").touch()
    for u in users:
        add_user(path, u)
    return path, port


def add_user(cfg: pathlib.Path, name: str) -> None:
    pw = cfg.parent / "pw"
    pw.write_text(PASSWORD)
    subprocess.run([str(BUZON_BIN), "--config", str(cfg), "user", "add", name, "--password-file", str(pw)],
                   check=True, capture_output=True, timeout=30)


def give_to_nobody(root: pathlib.Path) -> None:
    # What the package does: users file root:<service group> 0640, mail owned by the service user.
    os.chown(root / "passwd", 0, NOGROUP.gr_gid)
    os.chmod(root / "passwd", 0o640)
    for dirpath, dirnames, filenames in os.walk(root / "mail"):
        for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
            os.chown(n, NOBODY.pw_uid, NOBODY.pw_gid)


def serve(cfg: pathlib.Path, procs: list, port: int | None, **kw) -> subprocess.Popen:
    log = open(cfg.parent / "server.log", "ab")
    p = subprocess.Popen([str(BUZON_BIN), "--config", str(cfg), "serve"], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, cwd=cfg.parent, **kw)
    procs.append(p)
    if port is not None:
        wait_for_greeting(port, p, 15, "buzon", lambda: (cfg.parent / "server.log").read_text(errors="replace"))
    return p


def test_serving_process_has_no_root_and_no_capability(tree):
    root, procs = tree
    mport = free_port()
    cfg, port = configure(root, "nobody", metrics_port=mport)
    maildir = root / "mail" / "alice" / "Maildir"
    maildir_deliver(maildir, b"Subject: one\n\nfirst\n")
    maildir_deliver(maildir, b"Subject: two\n\nsecond\n")
    give_to_nobody(root)
    p = serve(cfg, procs, port)
    log = lambda: (root / "server.log").read_text(errors="replace")

    # Every thread of the serving process (event loops, worker pool, the main thread).
    tasks = os.listdir(f"/proc/{p.pid}/task")
    assert len(tasks) >= 1 + 2 + 2, f"expected main + 2 loops + 2 workers, got {tasks}"
    uid, gid = str(NOBODY.pw_uid), str(NOBODY.pw_gid)
    for t in tasks:
        st = proc_status(p.pid, int(t))
        assert st["Uid"].split() == [uid] * 4, (t, st["Uid"])
        assert st["Gid"].split() == [gid] * 4, (t, st["Gid"])
        assert "0" not in st["Groups"].split(), (t, st["Groups"])
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(st[cap], 16) == 0, (t, cap, st[cap])
        assert st["NoNewPrivs"] == "1", (t, st["NoNewPrivs"])
    assert "dropping privileges to user nobody" in log()
    assert f"running as user=nobody uid={uid} gid={gid}" in log()

    # Real Maildir work as nobody: read, mark seen, delete at QUIT; files buzon creates are nobody's.
    c = Pop3Raw(port)
    c.login("alice", PASSWORD)
    st, body = c.multi("RETR 1")
    assert st.startswith(b"+OK") and b"first" in body, (st, log())
    assert c.cmd("DELE 2").startswith(b"+OK")
    c.quit()
    left = maildir_files(maildir)
    assert len(left) == 1 and ":2,S" in left[0].name, (left, log())
    created = [f for f in maildir.rglob("*") if f.stat().st_uid != NOBODY.pw_uid]
    assert not created, f"files not owned by nobody after serving: {created}"

    # SIGHUP re-reads the users file as nobody (readable through its group, as the package sets it).
    add_user(cfg, "bob")
    os.chown(root / "passwd", 0, NOGROUP.gr_gid)
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "users=2" in log(), 10, "the reload to finish")
    c = Pop3Raw(port)
    assert c.cmd("USER bob").startswith(b"+OK")
    assert c.cmd(f"PASS {PASSWORD}").startswith(b"+OK"), log()
    c.close()

    status = http_get(mport, "/status")[2].decode()
    assert f"running as: user=nobody uid={uid}" in status and "caps=0" in status, status
    assert stop(p) == 0, log()


def test_root_without_an_account_to_switch_to_refuses_before_binding(tree):
    root, procs = tree
    for user, why in (("buzon-no-such-user", "does not exist"), ("", "is empty")):
        cfg, port = configure(root, user, users=())
        r = subprocess.run([str(BUZON_BIN), "--config", str(cfg), "serve"], capture_output=True, timeout=30)
        err = r.stderr.decode()
        assert r.returncode == 1, err
        assert "refusing to run as root" in err and why in err and "fix:" in err, err
        assert "listening on" not in err, f"it bound a port before refusing: {err}"


def test_user_root_is_an_explicit_choice_and_logged(tree):
    root, procs = tree
    cfg, port = configure(root, "root")
    p = serve(cfg, procs, port)
    assert proc_status(p.pid)["Uid"].split() == ["0"] * 4
    assert "running as root because" in (root / "server.log").read_text()
    assert stop(p) == 0


def test_not_root_means_no_change(tree):
    root, procs = tree
    # A user that would be refused as root: started as nobody, buzon does not care.
    cfg, port = configure(root, "buzon-no-such-user")
    maildir_deliver(root / "mail" / "alice" / "Maildir", b"Subject: x\n\nx\n")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
            os.chown(n, NOBODY.pw_uid, NOBODY.pw_gid)
    binary = root / "buzon"  # a copy nobody can execute wherever the build tree is
    shutil.copy2(BUZON_BIN, binary)
    binary.chmod(0o755)

    def as_nobody():
        os.setgroups([])
        os.setgid(NOBODY.pw_gid)
        os.setuid(NOBODY.pw_uid)

    log = open(root / "server.log", "ab")
    p = subprocess.Popen([str(binary), "--config", str(cfg), "serve"], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, cwd=root, preexec_fn=as_nobody)
    procs.append(p)
    wait_for_greeting(port, p, 15, "buzon as nobody", lambda: (root / "server.log").read_text())
    text = (root / "server.log").read_text()
    assert "not root: no privileges to drop" in text, text
    c = Pop3Raw(port)
    c.login("alice", PASSWORD)
    assert c.multi("RETR 1")[0].startswith(b"+OK")
    c.quit()
    assert stop(p) == 0


def test_unreadable_files_after_the_switch_are_reported(tree):
    root, procs = tree
    cfg, port = configure(root, "nobody")
    os.makedirs(root / "mail", exist_ok=True)
    os.chmod(root / "passwd", 0o600)  # root-only: a SIGHUP as nobody could not read it
    os.chmod(root / "mail", 0o700)    # root's: nobody cannot use the mail root
    p = serve(cfg, procs, port)
    text = (root / "server.log").read_text()
    assert "cannot read the users file" in text and "SIGHUP reloads will fail" in text, text
    assert "cannot read and write the mail root" in text, text
    assert stop(p) == 0
