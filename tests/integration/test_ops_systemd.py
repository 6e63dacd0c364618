"""systemd integration (issue 7): socket activation (sd_listen_fds: sockets passed as fd 3... with
LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, by systemd-socket-activate and by a small Python launcher),
readiness notification (sd_notify: READY=1, RELOADING=1, STOPPING=1 on a NOTIFY_SOCKET), and the
unit files checked by `systemd-analyze verify` and `systemd-analyze security --offline`.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BUZON_BIN, SOURCE_DIR, Pop3Raw, free_port, wait_for_greeting, write_toml
from ops_support import http_get, stop, wait_for

UNITS = SOURCE_DIR / "packaging" / "systemd"


def listening_socket(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def port_bound(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def activate(srv, socks: list[tuple[socket.socket, str]], pid_matches: bool = True,
             extra_env: dict | None = None) -> subprocess.Popen:
    """Starts `buzon serve` the way systemd does: the sockets as fds 3, 4, ... and LISTEN_* set for
    the child's own pid (or another pid when pid_matches is False)."""
    fds = [s.fileno() for s, _ in socks]
    names = ":".join(n for _, n in socks)

    def child():
        # Move the sockets to 3.. in order (dup first so that no target clobbers a source).
        tmp = [os.dup(fd) for fd in fds]
        for i, fd in enumerate(tmp):
            os.dup2(fd, 3 + i)
            os.set_inheritable(3 + i, True)
        os.environ["LISTEN_FDS"] = str(len(fds))
        os.environ["LISTEN_PID"] = str(os.getpid() if pid_matches else 1)
        os.environ["LISTEN_FDNAMES"] = names

    env = dict(os.environ, **(extra_env or {}))
    env.pop("LISTEN_FDS", None)
    out = open(srv.stderr_path, "ab")
    # env=None keeps the environment that child() edits; the extra variables go in os.environ first.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        p = subprocess.Popen([str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=out, cwd=srv.root, preexec_fn=child, close_fds=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return p


def test_socket_matched_by_address_is_used_instead_of_binding(buzon):
    srv = buzon(start=False)
    sock = listening_socket(srv.port)  # buzon binding this address itself would fail: it is taken
    p = activate(srv, [(sock, "unknown")])
    try:
        wait_for_greeting(srv.port, p, 15, "socket-activated buzon", srv.log)
        sock.close()  # only buzon's copy is left
        with Pop3Raw(srv.port) as c:
            assert c.cmd("CAPA").startswith(b"+OK")
        assert f"pop3 listening on 127.0.0.1:{srv.port} (socket from systemd" in srv.log()
    finally:
        assert stop(p) == 0, srv.log()


def test_socket_named_after_the_service_replaces_its_addresses(buzon):
    mport = free_port()
    srv = buzon(start=False, config={"metrics": {"enabled": True, "listen": f"127.0.0.1:{mport}"}})
    pop3 = listening_socket()
    metrics = listening_socket()
    pop3_port, metrics_port = pop3.getsockname()[1], metrics.getsockname()[1]
    p = activate(srv, [(pop3, "pop3"), (metrics, "metrics")])
    try:
        wait_for_greeting(pop3_port, p, 15, "socket-activated buzon", srv.log)
        pop3.close()
        metrics.close()
        assert not port_bound(srv.port), "buzon bound [pop3] listen although systemd passed a 'pop3' socket"
        assert not port_bound(mport), "buzon bound [metrics] listen although systemd passed a 'metrics' socket"
        status, _, body = http_get(metrics_port)
        assert status == 200 and b"buzon_sessions_total" in body
    finally:
        assert stop(p) == 0, srv.log()


def test_a_socket_nobody_uses_stops_start_up(buzon):
    srv = buzon(start=False)
    stray = listening_socket()
    p = activate(srv, [(stray, "smtp-typo")])
    try:
        assert p.wait(timeout=15) == 1
    finally:
        stop(p)
        stray.close()
    assert "systemd passed sockets that no service uses" in srv.log() and "smtp-typo" in srv.log()


def test_listen_fds_for_another_pid_are_ignored(buzon):
    srv = buzon(start=False)
    other = listening_socket()
    p = activate(srv, [(other, "pop3")], pid_matches=False)
    try:
        wait_for_greeting(srv.port, p, 15, "buzon", srv.log)  # bound [pop3] listen itself
        assert "socket from systemd" not in srv.log()
    finally:
        assert stop(p) == 0
        other.close()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
def test_systemd_socket_activate(buzon):
    srv = buzon(start=False)
    port = free_port()
    out = open(srv.stderr_path, "ab")
    p = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=pop3",
                          str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=srv.root)
    try:
        # systemd-socket-activate execs buzon on the first connection, in the same process.
        wait_for_greeting(port, p, 15, "systemd-socket-activate buzon", srv.log)
        wait_for(lambda: "socket from systemd, name pop3" in srv.log(), 10, "buzon to log the inherited socket")
        assert not port_bound(srv.port)
    finally:
        assert stop(p) == 0, srv.log()


def test_sd_notify_ready_reloading_stopping(buzon, tmp_path):
    srv = buzon(start=False)
    path = str(tmp_path / "notify.sock")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    sink.settimeout(15)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    out = open(srv.stderr_path, "ab")
    p = subprocess.Popen([str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"], env=env,
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=srv.root)
    try:
        msgs = []

        def until(state):
            while True:
                m = sink.recv(4096).decode()
                msgs.append(m)
                if state in m.split("\n"):
                    return
        until("READY=1")
        assert any(l.startswith("STATUS=serving") for l in msgs[-1].split("\n")), msgs
        with Pop3Raw(srv.port) as c:  # READY means serving
            assert c.greeting.startswith(b"+OK")
        p.send_signal(signal.SIGHUP)
        until("RELOADING=1")
        until("READY=1")
        p.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        assert p.wait(timeout=15) == 0
    finally:
        stop(p)
        sink.close()


def unit_copies(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    """The units with ExecStart pointing at the binary under test (verify checks it exists)."""
    out = []
    for name in ("buzon.service", "buzon.socket"):
        text = (UNITS / name).read_text().replace("/usr/bin/buzon", str(BUZON_BIN))
        (tmp_path / name).write_text(text)
        out.append(tmp_path / name)
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_verify_and_security_exposure(tmp_path):
    units = unit_copies(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    if r.returncode != 0 and re.search(r"Failed to (initialize|connect|create)|System has not been booted", r.stderr):
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip()[:200]}")
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(units[0])],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    m = re.search(r"Overall exposure level for buzon\.service: ([\d.]+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    assert float(m.group(1)) <= 3.0, f"the unit's hardening regressed: exposure {m.group(1)}\n{r.stdout[-3000:]}"
    text = (UNITS / "buzon.service").read_text()
    bset = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    assert sorted(bset) == ["CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID"], bset
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/buzon", "PrivateTmp=yes",
                 "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert "FileDescriptorName=pop3" in (UNITS / "buzon.socket").read_text()
