"""Packaging (issue 7): the .deb built by CPack from the build under test is installed with dpkg on
this machine, checked (system user, conffile, permissions, `buzon doctor` on the installed config),
its unit's ExecStart is run as systemd would (as root, dropping to the `buzon` user) and serves
POP3 and metrics, a changed config survives a reinstall, and remove/purge leave nothing behind
(mail excepted: it is never deleted). Also `cmake --install --prefix` (what `make install
PREFIX=...` runs) with a config that is never overwritten.

Takes ~15 s (cpack strips the binary and computes dependencies). Skipped when not root, or when a
`buzon` package is already installed on the machine (an admin's install is never touched).
"""
from __future__ import annotations

import grp
import os
import pathlib
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUZON_BIN, Pop3Raw, free_port, maildir_deliver, wait_for_greeting
from ops_support import http_get, proc_status, scrape, stop, value

BUILD = BUZON_BIN.parent
CONF = pathlib.Path("/etc/buzon/buzon.toml")
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def run(*cmd, check=True, timeout=120, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=ENV, **kw)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def installed() -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "buzon"], capture_output=True, text=True)
    return r.returncode == 0 and "installed" in r.stdout and "not-installed" not in r.stdout


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def deb(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if not (BUILD / "CPackConfig.cmake").exists():
        pytest.skip(f"no CPackConfig.cmake in {BUILD} (BUZON_BIN is not in a CMake build tree)")
    if installed():
        pytest.skip("a buzon package is installed on this machine; not touching it")
    r = run("cpack", "-G", "DEB", "-B", str(tmp_path / "pkg"), "--config", str(BUILD / "CPackConfig.cmake"), timeout=300)
    debs = list((tmp_path / "pkg").glob("buzon_*.deb"))
    assert len(debs) == 1, r.stdout + r.stderr
    had_user = user_exists("buzon")
    had_state = pathlib.Path("/var/lib/buzon").exists()
    yield debs[0]
    # Clean up whatever a failed test left: the package, and what this test made.
    if installed():
        subprocess.run(["dpkg", "--purge", "buzon"], capture_output=True, stdin=subprocess.DEVNULL, env=ENV)
    if not had_state:
        shutil.rmtree("/var/lib/buzon", ignore_errors=True)
    shutil.rmtree("/etc/buzon", ignore_errors=True)
    if not had_user and user_exists("buzon"):
        subprocess.run(["deluser", "--system", "--quiet", "buzon"], capture_output=True)
        if grp.getgrall() and any(g.gr_name == "buzon" for g in grp.getgrall()):
            subprocess.run(["delgroup", "--system", "--quiet", "buzon"], capture_output=True)


def test_deb_install_doctor_serve_reinstall_remove_purge(deb, tmp_path):
    info = run("dpkg-deb", "-I", str(deb)).stdout
    assert re.search(r"^ Package: buzon$", info, re.M) and "adduser" in info and "libsystemd0" in info, info
    run("dpkg", "-i", str(deb))

    # What the package installed and made.
    assert run("/usr/bin/buzon", "--version").stdout.strip() == "buzon 0.1.0"
    for unit in ("buzon.service", "buzon.socket"):
        assert pathlib.Path(f"/lib/systemd/system/{unit}").is_file()
    assert "ExecStart=/usr/bin/buzon --config /etc/buzon/buzon.toml serve" in \
        pathlib.Path("/lib/systemd/system/buzon.service").read_text()
    assert "/etc/buzon/buzon.toml" in run("dpkg-query", "-W", "-f=${Conffiles}", "buzon").stdout
    svc = pwd.getpwnam("buzon")
    assert svc.pw_uid < 1000 and svc.pw_shell.endswith("nologin") and svc.pw_dir == "/var/lib/buzon"
    for path, owner, group, mode in ((CONF, "root", "buzon", 0o640), (pathlib.Path("/etc/buzon/passwd"), "root", "buzon", 0o640),
                                     (pathlib.Path("/var/lib/buzon"), "buzon", "buzon", 0o750)):
        st = path.stat()
        assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o7777) == \
            (owner, group, mode), path
    assert "#" in CONF.read_text() and 'user = "buzon"' in CONF.read_text()  # the commented default

    r = run("/usr/bin/buzon", "--config", str(CONF), "doctor", check=False)
    assert r.returncode == 0 and "doctor: ok" in r.stdout, r.stdout + r.stderr

    # The admin's edits: loopback ports for this test (a changed conffile, kept below).
    port, mport = free_port(), free_port()
    text = CONF.read_text().replace('listen = ["0.0.0.0:110"]', f'listen = ["127.0.0.1:{port}"]')
    text = text.replace('listen = "127.0.0.1:9110"', f'listen = "127.0.0.1:{mport}"')
    assert str(port) in text and str(mport) in text
    CONF.write_text(text)
    pw = tmp_path / "pw"
    pw.write_text("pkg-Test-pw")
    run("/usr/bin/buzon", "--config", str(CONF), "user", "add", "alice@example.com", "--password-file", str(pw))
    maildir = pathlib.Path("/var/lib/buzon/mail/example.com/alice/Maildir")
    maildir_deliver(maildir, b"Subject: pkg\n\ninstalled\n")
    for d, dirs, files in os.walk("/var/lib/buzon/mail"):
        for n in [d] + [os.path.join(d, f) for f in dirs + files]:
            os.chown(n, svc.pw_uid, svc.pw_gid)

    # The unit's ExecStart, as systemd runs it: as root; buzon drops to the buzon user itself.
    unit = pathlib.Path("/lib/systemd/system/buzon.service").read_text()
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(exec_start, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/")
    try:
        wait_for_greeting(port, p, 15, "installed buzon", lambda: log.read_text(errors="replace"))
        st = proc_status(p.pid)
        assert st["Uid"].split() == [str(svc.pw_uid)] * 4 and int(st["CapEff"], 16) == 0, st
        c = Pop3Raw(port)
        c.login("alice@example.com", "pkg-Test-pw")
        status, body = c.multi("RETR 1")
        assert status.startswith(b"+OK") and b"installed" in body
        c.quit()
        m = scrape(mport)
        assert value(m, "buzon_auth_total", protocol="pop3", mechanism="USER", result="success") == 1
        assert b"running as: user=buzon" in http_get(mport, "/status")[2]
    finally:
        assert stop(p) == 0, log.read_text()
    assert re.search(r"pop3 session peer=127\.0\.0\.1:\d+ user=alice@example\.com result=quit", log.read_text()), \
        log.read_text()

    # Reinstall (an upgrade to the same version): the changed config is kept, silently.
    run("dpkg", "-i", str(deb))
    assert CONF.read_text() == text, "dpkg replaced a changed conffile"
    assert oct(CONF.stat().st_mode & 0o777) == oct(0o640)

    # Remove keeps the config; purge removes config and users file, never the mail.
    run("dpkg", "-r", "buzon")
    assert not pathlib.Path("/usr/bin/buzon").exists() and not pathlib.Path("/lib/systemd/system/buzon.service").exists()
    assert CONF.exists()
    run("dpkg", "--purge", "buzon")
    assert not pathlib.Path("/etc/buzon").exists()
    assert "buzon" not in run("dpkg-statoverride", "--list", check=False).stdout
    assert list((maildir / "cur").iterdir()) or list((maildir / "new").iterdir()), "purge deleted mail"
    assert not installed()


def test_cmake_install_prefix_keeps_an_existing_config(tmp_path):
    if not (BUILD / "cmake_install.cmake").exists():
        pytest.skip(f"{BUILD} is not a CMake build tree")
    prefix = tmp_path / "opt"
    run("cmake", "--install", str(BUILD), "--prefix", str(prefix))
    conf = prefix / "etc" / "buzon" / "buzon.toml"
    unit = (prefix / "lib" / "systemd" / "system" / "buzon.service").read_text()
    assert os.access(prefix / "bin" / "buzon", os.X_OK)
    assert f"ExecStart={prefix}/bin/buzon --config {prefix}/etc/buzon/buzon.toml serve" in unit
    assert f"ReadWritePaths={prefix}/var/lib/buzon" in unit
    assert f'location = "{prefix}/var/lib/buzon/mail/%d/%n/Maildir"' in conf.read_text()
    assert (prefix / "share" / "doc" / "buzon" / "SECURITY.md").is_file()
    conf.write_text(conf.read_text() + "\n# local change\n")
    run("cmake", "--install", str(BUILD), "--prefix", str(prefix))
    assert conf.read_text().endswith("# local change\n"), "make install overwrote a changed config"
    assert (conf.parent / "buzon.toml.dist").is_file()
