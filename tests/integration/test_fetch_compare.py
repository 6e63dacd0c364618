"""`buzon fetch` next to mpop and fetchmail on the same mailbox.

- The same mailbox fetched by `buzon fetch` and by mpop yields identical message files (contents;
  names differ by design), from buzon's server and from Dovecot.
- Speed: the same mailbox fetched by each tool; the times and ratios are printed (run with -s),
  and written to $BUZON_FETCH_SPEED_REPORT when set. Not a timed assertion: the test only checks
  that every tool fetched everything.
"""
from __future__ import annotations

import os
import pathlib
import statistics
import subprocess
import time

from conftest import (BUZON_BIN, EDGE_MESSAGES, HOST, big_message, find_tool, maildir_files, maildir_make,
                      skip_under_sanitizer)

USER = "alice@example.com"


def mpoprc(path: pathlib.Path, port: int, password: str, md: pathlib.Path, keep: bool = True) -> pathlib.Path:
    path.write_text(
        "defaults\ntls off\ntimeout 60\naccount test\n"
        f"host {HOST}\nport {port}\nauth user\nuser {USER}\npassword {password}\n"
        f"delivery maildir {md}\nuidls_file {path.parent / (path.name + '.uidls')}\n"
        f"keep {'on' if keep else 'off'}\nonly_new off\nreceived_header off\n")
    path.chmod(0o600)
    return path


def buzon_fetch(port: int, password: str, md: pathlib.Path, state: pathlib.Path, *extra: str):
    pw = state.parent / "pw"
    pw.write_text(password + "\n")
    return subprocess.run([str(BUZON_BIN), "fetch", "--host", HOST, "--port", str(port), "--user", USER,
                           "--password-file", str(pw), "--tls", "none", "--state-dir", str(state),
                           "--maildir", str(md), "--no-progress", "--keep", "--all", *extra],
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL)


def contents(md: pathlib.Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in maildir_files(md))


def mailbox_messages() -> list[bytes]:
    msgs = list(EDGE_MESSAGES.values()) + [big_message(2 * 1024 * 1024)]
    msgs += [f"Subject: plain {i}\nFrom: x@example.org\n\n".encode() + b"From here\n" + b"body line\n" * i
             for i in range(30)]
    return msgs


def fetch_both(port: int, password: str, tmp_path: pathlib.Path):
    mpop = find_tool("mpop")
    md_m = maildir_make(tmp_path / "mpop-md")
    md_b = tmp_path / "buzon-md"
    r = subprocess.run([mpop, "-C", str(mpoprc(tmp_path / "mpoprc", port, password, md_m)), "test"],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)})
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    r = buzon_fetch(port, password, md_b, tmp_path / "state")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    return contents(md_m), contents(md_b)


def test_same_files_as_mpop_from_buzon(buzon, tmp_path):
    srv = buzon()
    msgs = mailbox_messages()
    for i, m in enumerate(msgs):
        srv.deliver(USER, m, size_in_name=(i % 2 == 0))
    by_mpop, by_buzon = fetch_both(srv.port, srv.users[USER], tmp_path)
    assert len(by_mpop) == len(msgs)
    assert by_buzon == by_mpop, "buzon fetch and mpop stored different message files"


def test_same_files_as_mpop_from_dovecot(dovecot, tmp_path):
    dv = dovecot({USER: "dove-pw"})
    msgs = mailbox_messages()
    for m in msgs:
        dv.deliver(USER, m)
    dv.start()
    by_mpop, by_buzon = fetch_both(dv.port, "dove-pw", tmp_path)
    assert len(by_mpop) == len(msgs)
    assert by_buzon == by_mpop, "buzon fetch and mpop stored different message files (Dovecot)"


def timed(fn, runs=3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        fn()
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def test_speed_vs_mpop_and_fetchmail(buzon, tmp_path):
    """2000 messages of ~10 KiB plus 10 of 1 MiB (~30 MiB), kept on the server; each tool fetches
    all of them into local storage three times; the median is reported."""
    skip_under_sanitizer("a speed comparison of a sanitizer build measures the sanitizer (and takes "
                         "minutes); the same-files tests above still run")
    mpop, fetchmail = find_tool("mpop"), find_tool("fetchmail")
    srv = buzon()
    n_small, n_big = 2000, 10
    md_server = srv.maildir(USER)
    maildir_make(md_server)
    body = (b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?-+*/=()[]{}<>@#%&\n" * 118)
    for i in range(n_small):
        srv.deliver(USER, f"Subject: speed {i}\nMessage-ID: <s{i}@t>\n\n".encode() + body)
    for i in range(n_big):
        srv.deliver(USER, big_message(1024 * 1024))
    total = n_small + n_big
    password = srv.users[USER]

    def run_buzon(*extra):
        def go():
            md = tmp_path / "b-md"
            subprocess.run(["rm", "-rf", str(md), str(tmp_path / "b-state")], check=True)
            r = buzon_fetch(srv.port, password, md, tmp_path / "b-state", *extra)
            assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
            assert len(maildir_files(md)) == total
        return go

    def run_buzon_mbox():
        mbox = tmp_path / "b.mbox"
        subprocess.run(["rm", "-rf", str(mbox), str(tmp_path / "b-state")], check=True)
        pw = tmp_path / "pw"
        pw.write_text(password + "\n")
        r = subprocess.run([str(BUZON_BIN), "fetch", "--host", HOST, "--port", str(srv.port), "--user", USER,
                            "--password-file", str(pw), "--tls", "none", "--state-dir", str(tmp_path / "b-state"),
                            "--mbox", str(mbox), "--no-progress", "--keep", "--all"],
                           capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
        assert mbox.read_bytes().count(b"\nFrom ") + 1 == total

    def run_mpop():
        md = tmp_path / "m-md"
        subprocess.run(["rm", "-rf", str(md)], check=True)
        maildir_make(md)
        rc = mpoprc(tmp_path / "mpoprc", srv.port, password, md)
        (tmp_path / "mpoprc.uidls").unlink(missing_ok=True)
        r = subprocess.run([mpop, "-C", str(rc), "test"], capture_output=True, timeout=300,
                           stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)})
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
        assert len(maildir_files(md)) == total

    def run_fetchmail():
        home = tmp_path / "fm-home"
        subprocess.run(["rm", "-rf", str(home)], check=True)
        home.mkdir()
        out = home / "bsmtp"
        rc = home / "fetchmailrc"
        rc.write_text("set no syslog\n"
                      f"poll {HOST} service {srv.port} protocol pop3 auth password timeout 60\n"
                      f'  user "{USER}" password "{password}" is "root" here\n'
                      f"  options fetchall keep no rewrite sslproto '' bsmtp {out}\n")
        rc.chmod(0o600)
        r = subprocess.run([fetchmail, "-f", str(rc), "--nodetach", "--invisible"], capture_output=True,
                           timeout=300, stdin=subprocess.DEVNULL,
                           env={**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home)})
        assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")[-2000:]
        assert out.read_bytes().count(b"\r\nDATA\r\n") + out.read_bytes().count(b"\nDATA\n") == total

    t_buzon = timed(run_buzon())
    t_buzon_seq = timed(run_buzon("--no-pipelining"))
    t_buzon_mbox = timed(run_buzon_mbox)
    t_mpop = timed(run_mpop)
    t_fetchmail = timed(run_fetchmail)
    report = (f"fetch speed, {total} messages (~{(n_small * 10 + n_big * 1024) / 1024:.0f} MiB), median of 3:\n"
              f"  buzon fetch (pipelined, Maildir, fsync)  {t_buzon:7.2f} s\n"
              f"  buzon fetch (--no-pipelining)          {t_buzon_seq:7.2f} s\n"
              f"  buzon fetch (mbox file, fsync per batch) {t_buzon_mbox:7.2f} s   ratio fetchmail/buzon-mbox = {t_fetchmail / t_buzon_mbox:.2f}\n"
              f"  mpop (Maildir)                          {t_mpop:7.2f} s   ratio mpop/buzon = {t_mpop / t_buzon:.2f}\n"
              f"  fetchmail (bsmtp file, no fsync)        {t_fetchmail:7.2f} s   ratio fetchmail/buzon = {t_fetchmail / t_buzon:.2f}\n")
    print("\n" + report)
    if os.environ.get("BUZON_FETCH_SPEED_REPORT"):
        pathlib.Path(os.environ["BUZON_FETCH_SPEED_REPORT"]).write_text(report)
