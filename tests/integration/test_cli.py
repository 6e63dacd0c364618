"""The CLI the other tests rely on (CONTRACT.md): --version, user add/passwd/del/list/show, doctor,
serve start-up failures, SIGHUP user reload, and password hashes made by other tools (doveadm pw,
mkpasswd) accepted as they are."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUZON_BIN, HOST, Pop3Raw, find_tool

ALICE = "alice@example.com"


def try_login(srv, user, password) -> bytes:
    """Returns the PASS reply (or the USER reply if that was -ERR)."""
    with Pop3Raw(srv.port) as c:
        st = c.cmd(f"USER {user}")
        if not st.startswith(b"+OK"):
            return st
        st = c.cmd(f"PASS {password}")
        if st.startswith(b"+OK"):
            c.quit()
        return st


def wait_login(srv, user, password, want_ok: bool, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        st = try_login(srv, user, password)
        if st.startswith(b"+OK") == want_ok or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def passwd_lines(srv) -> dict[str, str]:
    out = {}
    for line in srv.passwd.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition(":")
            out[name] = rest
    return out


def test_version():
    assert BUZON_BIN.exists(), f"no binary at {BUZON_BIN}"
    r = subprocess.run([str(BUZON_BIN), "--version"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"--version exit {r.returncode}: {r.stderr!r}"
    assert re.search(rb"buzon\s+\d+\.\d+", r.stdout), f"--version printed {r.stdout!r}"


def test_user_add_list_show_del(buzon):
    srv = buzon(users={}, start=False)
    pw = srv.root / "pw"
    pw.write_text("first-Pw\n")      # a trailing newline is not part of the password
    r = srv.run_cli("user", "add", ALICE, "--password-file", str(pw))
    assert r.returncode == 0, f"user add: exit {r.returncode}, {r.stderr!r}"
    lines = passwd_lines(srv)
    assert ALICE in lines, f"passwd-file after user add: {srv.passwd.read_text()!r}"
    assert lines[ALICE].startswith("{SHA512-CRYPT}$6$"), \
        f"default_scheme SHA512-CRYPT not used: {lines[ALICE][:30]!r}"
    assert "first-Pw" not in srv.passwd.read_text(), "password stored in clear"

    r = srv.run_cli("user", "add", ALICE, "--password-file", str(pw))
    assert r.returncode != 0, "adding an existing user succeeded"
    r = srv.run_cli("user", "list")
    assert r.returncode == 0 and ALICE in r.stdout.decode().split(), f"user list: {r.stdout!r}"
    r = srv.run_cli("user", "show", ALICE)
    assert r.returncode == 0, f"user show: {r.stderr!r}"
    out = r.stdout.decode()
    m = re.search(r"^maildir: (.+)$", out, re.M)
    assert m, f"user show printed no 'maildir: PATH' line: {out!r}"
    assert os.path.normpath(m.group(1).strip()) == str(srv.maildir(ALICE)), \
        f"user show maildir {m.group(1)!r}, [mail] location gives {srv.maildir(ALICE)}"
    assert re.search(r"^scheme: SHA512-CRYPT$", out, re.M), f"user show: {out!r}"

    srv.start()
    assert try_login(srv, ALICE, "first-Pw").startswith(b"+OK"), "login with the added password failed"

    r = srv.run_cli("user", "del", ALICE)
    assert r.returncode == 0, f"user del: {r.stderr!r}"
    assert ALICE not in passwd_lines(srv)
    r = srv.run_cli("user", "show", ALICE)
    assert r.returncode != 0, "user show of a deleted user succeeded"


def test_password_from_stdin_and_schemes(buzon):
    srv = buzon(users={}, start=False)
    r = srv.run_cli("user", "add", "stdin@example.com", input=b"from-Stdin-1\n")
    assert r.returncode == 0, f"user add with the password on stdin: {r.stderr!r}"
    schemes = ["SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I", "PLAIN"]
    for i, s in enumerate(schemes):
        f = srv.root / f"pw{i}"
        f.write_text(f"pw-{s}")
        r = srv.run_cli("user", "add", f"u{i}@example.com", "--password-file", str(f), "--scheme", s)
        assert r.returncode == 0, f"user add --scheme {s}: {r.stderr!r}"
        assert passwd_lines(srv)[f"u{i}@example.com"].startswith("{" + s + "}"), \
            f"--scheme {s} stored {passwd_lines(srv)[f'u{i}@example.com'][:30]!r}"
    srv.start()
    assert try_login(srv, "stdin@example.com", "from-Stdin-1").startswith(b"+OK")
    for i, s in enumerate(schemes):
        st = try_login(srv, f"u{i}@example.com", f"pw-{s}")
        assert st.startswith(b"+OK"), f"login with a {s} hash made by `user add` -> {st!r}"
        st = try_login(srv, f"u{i}@example.com", f"wrong-{s}")
        assert st.startswith(b"-ERR [AUTH]"), f"wrong password against {s} hash -> {st!r}"


def test_hashes_from_doveadm_and_mkpasswd(buzon):
    """README: hashes made by `doveadm pw` or `mkpasswd` work as they are."""
    doveadm = find_tool("doveadm")
    mkpasswd = find_tool("mkpasswd")
    srv = buzon(users={}, start=False)
    entries = {}
    for s in ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I", "CRYPT", "PLAIN"):
        pw = f"dove-{s}"
        r = subprocess.run([doveadm, "-c", "/dev/null", "pw", "-s", s, "-p", pw], capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"doveadm pw -s {s}: {r.stderr!r}"
        entries[f"dove-{s.lower()}@example.com"] = (r.stdout.decode().strip(), pw)
    for method, prefix in (("sha-512", "{SHA512-CRYPT}"), ("sha-512", "{CRYPT}"), ("yescrypt", "{CRYPT}"),
                           ("bcrypt", "{CRYPT}")):
        pw = f"mk-{method}"
        r = subprocess.run([mkpasswd, "-m", method, pw], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"mkpasswd -m {method}: {r.stderr!r}"
        entries[f"mk-{method}-{prefix.strip('{}').lower()}@example.com"] = (prefix + r.stdout.decode().strip(), pw)
    with open(srv.passwd, "a") as fh:
        for name, (h, _) in entries.items():
            fh.write(f"{name}:{h}::::::\n")
    srv.start()
    bad = []
    for name, (h, pw) in entries.items():
        st = try_login(srv, name, pw)
        if not st.startswith(b"+OK"):
            bad.append(f"{name} ({h[:24]}...): right password -> {st!r}")
        st = try_login(srv, name, pw + "x")
        if not st.startswith(b"-ERR [AUTH]"):
            bad.append(f"{name}: wrong password -> {st!r}")
    assert not bad, "\n".join(bad)


def test_sighup_reloads_users(buzon):
    srv = buzon(users={ALICE: "alice-Pw-1"})
    pid = srv.proc.pid
    f = srv.root / "newpw"
    # add
    f.write_text("bob-Pw-1")
    assert srv.run_cli("user", "add", "bob@example.com", "--password-file", str(f)).returncode == 0
    srv.proc.send_signal(signal.SIGHUP)
    st = wait_login(srv, "bob@example.com", "bob-Pw-1", want_ok=True)
    assert st.startswith(b"+OK"), f"user added + SIGHUP, login still fails: {st!r}\n{srv.log()}"
    # passwd
    f.write_text("alice-Pw-2")
    assert srv.run_cli("user", "passwd", ALICE, "--password-file", str(f)).returncode == 0
    srv.proc.send_signal(signal.SIGHUP)
    st = wait_login(srv, ALICE, "alice-Pw-1", want_ok=False)
    assert st.startswith(b"-ERR"), f"old password still accepted after user passwd + SIGHUP: {st!r}"
    assert try_login(srv, ALICE, "alice-Pw-2").startswith(b"+OK"), "new password refused"
    # del
    assert srv.run_cli("user", "del", "bob@example.com").returncode == 0
    srv.proc.send_signal(signal.SIGHUP)
    st = wait_login(srv, "bob@example.com", "bob-Pw-1", want_ok=False)
    assert st.startswith(b"-ERR"), f"deleted user can still log in after SIGHUP: {st!r}"
    # A broken users file on reload keeps the old users (README).
    with open(srv.passwd, "a") as fh:
        fh.write("this line is not a passwd-file entry\n")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert srv.running() and srv.proc.pid == pid, f"server died or restarted on SIGHUP\n{srv.log()}"
    assert try_login(srv, ALICE, "alice-Pw-2").startswith(b"+OK"), \
        "a broken passwd-file on SIGHUP locked out existing users"


def test_doctor(buzon):
    srv = buzon(start=False)
    r = srv.run_cli("doctor")
    assert r.returncode == 0, f"doctor on a good config: exit {r.returncode}\n{r.stdout!r}\n{r.stderr!r}"
    text = srv.cfg_path.read_text()
    srv.cfg_path.write_text(text.replace("[pop3]\n", "[pop3]\nautologout = \"ten minutes\"\n"))
    r = srv.run_cli("doctor")
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 1, f"doctor on a bad config: exit {r.returncode}\n{out}"
    assert re.search(r"buzon\.toml:\d+", out), f"doctor does not point at file:line: {out!r}"


def test_serve_fails_fast_on_bad_config(buzon):
    srv = buzon(start=False)
    text = srv.cfg_path.read_text()
    srv.cfg_path.write_text(re.sub(r'listen = \[.*\]', 'listen = ["127.0.0.1:99999"]', text))
    t0 = time.monotonic()
    r = subprocess.run([str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"], capture_output=True,
                       timeout=15, stdin=subprocess.DEVNULL, cwd=srv.root)
    err = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, f"serve with port 99999 exited {r.returncode}"
    assert time.monotonic() - t0 < 5, "serve took more than 5 s to refuse a bad config"
    assert "buzon.toml" in err and len(err.strip().splitlines()) <= 3, \
        f"start-up error should be one clear line naming the file: {err!r}"


def test_serve_fails_fast_when_port_is_taken(buzon):
    srv = buzon(start=False)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((HOST, srv.port))
        blocker.listen(1)
        try:
            r = subprocess.run([str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"],
                               capture_output=True, timeout=10, stdin=subprocess.DEVNULL, cwd=srv.root)
        except subprocess.TimeoutExpired:
            pytest.fail("serve kept running although its POP3 port is taken by another socket "
                        "(SO_REUSEPORT must not let it share a port with an unrelated listener)")
        err = (r.stdout + r.stderr).decode(errors="replace")
        assert r.returncode != 0, "serve succeeded on a port that is already in use"
        assert str(srv.port) in err, f"error does not name the address: {err!r}"
    finally:
        blocker.close()


def test_hostile_user_names(buzon):
    srv = buzon()
    before = sorted(p.relative_to(srv.root) for p in srv.root.rglob("*"))
    for name in ("../../etc/passwd", "a/b@example.com", "..@example.com", "alice@example.com/..",
                 "x@../../tmp", "alice\x01@example.com"):
        st = try_login(srv, name, "whatever")
        assert st.startswith(b"-ERR"), f"USER/PASS {name!r} -> {st!r}"
    r = srv.run_cli("user", "add", "../evil@example.com", "--password-file", str(srv.passwd))
    assert r.returncode != 0, "user add accepted a name with '..'"
    after = sorted(p.relative_to(srv.root) for p in srv.root.rglob("*"))
    created = [str(p) for p in after if p not in before and not str(p).startswith("server.")]
    assert not any(".." in p or "etc" in p or "tmp" in p for p in created), f"created {created}"
    assert srv.running()
