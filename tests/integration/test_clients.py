"""Real POP3 clients nobody here wrote — curl, fetchmail, mpop, getmail6 — against buzon.

Each downloads every message (and deletes it where the tool does that), and the test checks that
every message arrived byte-identical (modulo what the tool itself is known to change, see
TOOL_QUIRKS) and that the server mailbox is empty afterwards (through POP3 and on disk).
"""
import grp
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import (EDGE_MESSAGES, HOST, big_message, find_tool, lf_form, maildir_files,
                      maildir_make, wire_form)

USER = "alice@example.com"
TOOL_TIMEOUT = 90

# What each delivery tool is known to change, so those messages are left out of its comparison
# (verified against Dovecot 2.3 as the server; they are client behaviour, not server bugs):
#  - fetchmail drops a lone CR inside a line and splits lines longer than its 8 KiB buffer;
#  - getmail turns a lone CR into a line end.
TOOL_QUIRKS = {
    "fetchmail": {"mixed_eol", "long_line"},
    "getmail": {"mixed_eol"},
    "mpop": set(),
    "curl": set(),
}
# Header fields delivery agents prepend; removed from the delivered copy before comparing
# (none of the test messages has them).
ADDED_HEADERS = {"return-path", "received", "delivered-to", "x-getmail-retrieved-from-mailbox",
                 "x-fetchmail-warning"}


def messages_for(tool: str) -> dict[str, bytes]:
    msgs = {k: v for k, v in EDGE_MESSAGES.items() if k not in TOOL_QUIRKS[tool]}
    msgs["big_1MiB"] = big_message(1024 * 1024)
    return msgs


def strip_added_headers(msg: bytes) -> bytes:
    """Removes header fields in ADDED_HEADERS (with their folded continuation lines)."""
    lines = msg.split(b"\n")
    out = []
    skipping = False
    in_header = True
    for line in lines:
        if in_header:
            if line in (b"", b"\r"):
                in_header = False
                out.append(line)
                continue
            if line[:1] in (b" ", b"\t"):
                if not skipping:
                    out.append(line)
                continue
            name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
            skipping = name in ADDED_HEADERS
            if not skipping:
                out.append(line)
        else:
            out.append(line)
    return b"\n".join(out)


def assert_all_delivered(tool: str, msgs: dict[str, bytes], delivered: list[bytes], form):
    got = [strip_added_headers(d) for d in delivered]
    assert len(got) == len(msgs), f"{tool} delivered {len(got)} messages, {len(msgs)} were on the server"
    missing = []
    for name, raw in msgs.items():
        if form(raw) not in got:
            missing.append(name)
    if missing:
        wanted = {form(msgs[n]) for n in missing}
        extra = [g for g in got if g not in {form(r) for r in msgs.values()}]
        pytest.fail(f"{tool}: not delivered byte-identical: {missing}\n"
                    f"expected e.g. {sorted(wanted)[0][-200:]!r}\n"
                    f"unmatched deliveries: {[e[-200:] for e in extra]}")


def assert_server_empty(srv):
    p = srv.login_retry(USER)
    try:
        st = p.stat()
    finally:
        p.quit()
    assert st == (0, 0), f"server mailbox not empty after download with deletion: STAT {st}"
    left = maildir_files(srv.maildir(USER))
    assert left == [], f"files left in the Maildir: {[f.name for f in left]}"


def run_tool(argv, cwd, env_extra, what):
    """Runs a client once. A run that starts right after the previous session may find the maildrop
    still locked ([IN-USE]; see test_poplib.py::test_reconnect_right_after_quit_reply, which
    reports that): such runs are retried for up to 5 s so this file tests the clients' view."""
    env = dict(os.environ)
    env.update(env_extra)
    deadline = time.monotonic() + 5
    while True:
        r = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TOOL_TIMEOUT)
        out = (r.stdout + r.stderr).decode(errors="replace")
        if r.returncode != 0 and "IN-USE" in out and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        return r.returncode, out


def seeded_server(buzon, tool):
    srv = buzon()
    msgs = messages_for(tool)
    for i, raw in enumerate(msgs.values()):
        srv.deliver(USER, raw, size_in_name=(i % 3 == 0))
    return srv, msgs


# ------------------------------------------------------------------------------------------------

def test_curl(buzon):
    curl_bin = find_tool("curl")
    srv, msgs = seeded_server(buzon, "curl")
    base = f"pop3://{HOST}:{srv.port}"
    auth = ["-u", f"{USER}:{srv.users[USER]}"]
    # Problems asserted at the end, so that they do not hide the download/delete checks.
    problems = []

    def curl(*args: str) -> bytes:
        """One curl run (= one POP3 session ending in QUIT). Each curl starts right after the
        previous one's QUIT, as in a shell loop; if buzon still holds the maildrop lock then
        (curl: "(67) Access denied"), that is recorded as a problem and retried for up to 5 s."""
        argv = [curl_bin, "-sS", "--max-time", "60", *auth, *args]
        deadline = time.monotonic() + 5
        while True:
            r = subprocess.run(argv, cwd=srv.root, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=TOOL_TIMEOUT)
            if r.returncode == 0:
                return r.stdout
            if r.returncode == 67 and time.monotonic() < deadline:
                v = subprocess.run([curl_bin, "-v", *argv[1:]], cwd=srv.root, stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=TOOL_TIMEOUT)
                if v.returncode == 0:
                    problems.append(f"`curl {' '.join(args)}` started right after the previous "
                                    f"curl's QUIT was refused (exit 67, login denied); a retry worked")
                    return v.stdout
                transcript = [l for l in v.stderr.decode(errors="replace").splitlines()
                              if l.startswith(("<", ">"))]
                if any("IN-USE" in l for l in transcript):
                    time.sleep(0.1)
                    continue
                pytest.fail(f"curl {' '.join(args)}: exit 67, transcript: {transcript}")
            pytest.fail(f"curl {' '.join(args)}: exit {r.returncode}: "
                        f"{r.stderr.decode(errors='replace')}\n{srv.log()}")

    out = curl(f"{base}/").decode()
    listing = {}
    for line in out.strip().splitlines():
        m = re.fullmatch(r"(\d+) (\d+)", line.strip())
        assert m, f"curl LIST output line {line!r}"
        listing[int(m.group(1))] = int(m.group(2))
    assert len(listing) == len(msgs), f"curl lists {len(listing)} messages: {out}"
    want_sizes = sorted(len(wire_form(m)) for m in msgs.values())
    if sorted(listing.values()) != want_sizes:
        problems.append(f"sizes from curl's LIST {sorted(listing.values())} differ from the CRLF "
                        f"sizes of the seeded messages {want_sizes}")

    out = curl("-X", "UIDL", f"{base}/").decode()
    uidls = [l.split()[1] for l in out.strip().splitlines()]
    assert len(uidls) == len(msgs) and len(set(uidls)) == len(uidls), f"curl UIDL output {out!r}"

    delivered = []
    for n in sorted(listing):
        body = curl(f"{base}/{n}")
        if len(body) != listing[n]:
            problems.append(f"curl RETR {n}: {len(body)} octets, LIST said {listing[n]}")
        delivered.append(body)
    assert_all_delivered("curl", msgs, delivered, wire_form)

    # Deletion through curl: "curl -X DELE -I pop3://.../1" sends DELE 1 then QUIT, so each call
    # deletes the (renumbered) first message.
    curl("-X", "DELE", "-I", f"{base}/1")
    out = curl(f"{base}/").decode()
    assert len(out.strip().splitlines()) == len(msgs) - 1, \
        f"after curl -X DELE 1 and its QUIT, LIST shows: {out!r}"
    for _ in range(len(msgs) - 1):
        curl("-X", "DELE", "-I", f"{base}/1")
    assert_server_empty(srv)
    assert not problems, "\n".join(problems)


def test_fetchmail(buzon, tmp_path):
    fetchmail = find_tool("fetchmail")
    srv, msgs = seeded_server(buzon, "fetchmail")
    out_dir = tmp_path / "fetchmail-out"
    out_dir.mkdir()
    home = tmp_path / "fetchmail-home"
    home.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text('#!/bin/sh\nexec cat > "$1/msg.$(date +%s%N).$$"\n')
    mda.chmod(0o755)
    rc_file = home / "fetchmailrc"
    rc_file.write_text(
        "set no syslog\n"
        f"poll {HOST} service {srv.port} protocol pop3 auth password timeout 60\n"
        f'  user "{USER}" password "{srv.users[USER]}" is "root" here\n'
        "  options fetchall nokeep no rewrite sslproto ''\n"
        f'  mda "{mda} {out_dir}"\n')
    rc_file.chmod(0o600)
    # As root fetchmail only warns ("Running as root is discouraged"); --invisible suppresses
    # the Received: header it would add.
    rc, out = run_tool([fetchmail, "-f", str(rc_file), "--nodetach", "--invisible", "-v"],
                       home, {"HOME": str(home), "FETCHMAILHOME": str(home)}, "fetchmail")
    assert rc == 0, f"fetchmail exit {rc} (0 = mail retrieved):\n{out[-4000:]}\n--- server ---\n{srv.log()}"
    delivered = [p.read_bytes() for p in sorted(out_dir.iterdir())]
    assert_all_delivered("fetchmail", msgs, delivered, lf_form)
    assert_server_empty(srv)
    # A second poll finds nothing (exit 1 = no mail).
    rc, out = run_tool([fetchmail, "-f", str(rc_file), "--nodetach", "--invisible"],
                       home, {"HOME": str(home), "FETCHMAILHOME": str(home)}, "fetchmail")
    assert rc == 1, f"second fetchmail run: exit {rc} (want 1, no mail):\n{out[-2000:]}"


def mpop_config(path: pathlib.Path, srv, maildir: pathlib.Path, keep: bool, only_new: bool):
    path.write_text(
        "defaults\n"
        "tls off\n"
        "timeout 60\n"
        "account test\n"
        f"host {HOST}\n"
        f"port {srv.port}\n"
        "auth user\n"
        f"user {USER}\n"
        f"password {srv.users[USER]}\n"
        f"delivery maildir {maildir}\n"
        f"uidls_file {path.parent / 'uidls'}\n"
        f"keep {'on' if keep else 'off'}\n"
        f"only_new {'on' if only_new else 'off'}\n"
        "received_header off\n")
    path.chmod(0o600)


def run_mpop(mpop, cfg, cwd, srv):
    rc, out = run_tool([mpop, "-C", str(cfg), "test"], cwd, {"HOME": str(cwd)}, "mpop")
    assert rc == 0, f"mpop exit {rc}:\n{out[-4000:]}\n--- server ---\n{srv.log()}"
    return out


def test_mpop(buzon, tmp_path):
    mpop = find_tool("mpop")
    srv, msgs = seeded_server(buzon, "mpop")
    md = maildir_make(tmp_path / "mpop-Maildir")
    cfg = tmp_path / "mpoprc"
    mpop_config(cfg, srv, md, keep=False, only_new=False)
    run_mpop(mpop, cfg, tmp_path, srv)
    delivered = [p.read_bytes() for p in sorted((md / "new").iterdir())]
    assert_all_delivered("mpop", msgs, delivered, lf_form)
    assert_server_empty(srv)


def test_mpop_keep_only_new_uses_stable_uidls(buzon, tmp_path):
    """mpop in 'leave mail on server' mode: a second run downloads nothing (the UIDLs it
    remembered are still valid, also across a server restart); a new message is the only one
    downloaded by the third run."""
    mpop = find_tool("mpop")
    srv = buzon()
    for i in range(5):
        srv.deliver(USER, f"Subject: keep {i}\n\nkept on server {i}\n".encode())
    md = maildir_make(tmp_path / "mpop-Maildir")
    cfg = tmp_path / "mpoprc"
    mpop_config(cfg, srv, md, keep=True, only_new=True)
    run_mpop(mpop, cfg, tmp_path, srv)
    assert len(list((md / "new").iterdir())) == 5, "first mpop run did not fetch all 5 messages"
    srv.restart()
    run_mpop(mpop, cfg, tmp_path, srv)
    assert len(list((md / "new").iterdir())) == 5, \
        "mpop downloaded messages again after a restart: UIDLs are not stable"
    srv.deliver(USER, b"Subject: newer\n\nthe new one\n")
    run_mpop(mpop, cfg, tmp_path, srv)
    files = list((md / "new").iterdir())
    assert len(files) == 6, f"third run: {len(files)} files, expected 6"
    assert any(f.read_bytes() == b"Subject: newer\n\nthe new one\n" for f in files)
    assert len(maildir_files(srv.maildir(USER))) == 6, "keep on: the server must keep every message"


def test_getmail(buzon, tmp_path):
    getmail = find_tool("getmail")
    srv, msgs = seeded_server(buzon, "getmail")
    # getmail refuses to deliver into a Maildir as root: it delivers as `user = nobody`, so the
    # destination lives in a world-traversable temp dir owned by nobody.
    outer = pathlib.Path(tempfile.mkdtemp(prefix="buzon-getmail-"))
    try:
        os.chmod(outer, 0o755)
        md = maildir_make(outer / "Maildir")
        uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        for d in (md, md / "new", md / "cur", md / "tmp"):
            os.chown(d, uid, gid)
        gdir = tmp_path / "getmail"
        gdir.mkdir()
        rc_file = gdir / "getmailrc"
        rc_file.write_text(
            "[retriever]\n"
            "type = SimplePOP3Retriever\n"
            f"server = {HOST}\n"
            f"port = {srv.port}\n"
            f"username = {USER}\n"
            f"password = {srv.users[USER]}\n"
            "timeout = 60\n"
            "\n[destination]\n"
            "type = Maildir\n"
            f"path = {md}/\n"
            "user = nobody\n"
            "\n[options]\n"
            "verbose = 1\n"
            "read_all = true\n"
            "delete = true\n"
            "received = false\n"
            "delivered_to = false\n"
            "message_log_syslog = false\n")
        rc, out = run_tool([getmail, "--getmaildir", str(gdir), "--rcfile", str(rc_file)],
                           gdir, {"HOME": str(gdir)}, "getmail")
        assert rc == 0, f"getmail exit {rc}:\n{out[-4000:]}\n--- server ---\n{srv.log()}"
        assert "error" not in out.lower(), f"getmail reported errors:\n{out[-4000:]}"
        delivered = [p.read_bytes() for p in sorted((md / "new").iterdir())]
        assert_all_delivered("getmail", msgs, delivered, lf_form)
        assert_server_empty(srv)
    finally:
        shutil.rmtree(outer, ignore_errors=True)
