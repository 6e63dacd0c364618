"""PROXY protocol v1 and v2 behind a real HAProxy (issue 7): a private `haproxy -f cfg -db` on
loopback forwards to a buzon listener that expects the header; clients connect to HAProxy from
their own loopback addresses (127.0.0.5, ...) while HAProxy reaches buzon from 127.0.0.1, so buzon's
session log and per-address limit can only be right if it reads the header. Only trusted proxies
may send one; other peers, missing or bad headers are refused; listeners without the opt-in treat
a header as a (bad) command.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import Pop3Raw, free_port
from ops_support import scrape, stop, value, wait_for

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not shutil.which("haproxy") and not __import__("os").path.exists(HAPROXY),
                                reason="haproxy not installed (scripts/install-deps installs it)")
ALICE = "alice@example.com"
BUSY = b"-ERR [SYS/TEMP] Too many connections from your address."


class Client(Pop3Raw):
    """Pop3Raw from a chosen loopback source address."""

    def __init__(self, port: int, source: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
        self.source_port = self.sock.getsockname()[1]
        self.f = self.sock.makefile("rb")
        self.greeting = self.readline()


@pytest.fixture
def proxied(buzon, tmp_path):
    direct, behind, mport = free_port(), free_port(), free_port()
    srv = buzon(config={
        "server": {"max_connections_per_ip": 1},
        "pop3": {"listen": [f"127.0.0.1:{direct}", f"127.0.0.1:{behind}"]},
        "proxy": {"listeners": [f"127.0.0.1:{behind}"], "trusted": ["127.0.0.1/32", "::1"], "timeout": 1},
        "metrics": {"enabled": True, "listen": f"127.0.0.1:{mport}"},
    }, start=False)
    srv.port = direct  # conftest waits for the greeting here
    srv.start()
    srv.deliver(ALICE, b"Subject: p\r\n\r\nproxied\r\n")
    v1, v2 = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend pop3_v1
    bind 127.0.0.1:{v1}
    default_backend buzon_v1
backend buzon_v1
    server buzon 127.0.0.1:{behind} send-proxy source 127.0.0.1
frontend pop3_v2
    bind 127.0.0.1:{v2}
    default_backend buzon_v2
backend buzon_v2
    server buzon 127.0.0.1:{behind} send-proxy-v2 source 127.0.0.1
""")
    chk = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    log = open(tmp_path / "haproxy.log", "wb")
    hp = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready():
            try:
                c = Client(v1, "127.0.0.4")
                ok = c.greeting.startswith(b"+OK")
                c.close()
                return ok
            except OSError:
                return False
        wait_for(ready, 15, "haproxy to forward to buzon")
        # The probe's session must be over before limits are tested (1 per address).
        wait_for(lambda: value(scrape(mport), "buzon_connections_active") == 0, 10, "the probe session to end")
        yield srv, {"v1": v1, "v2": v2, "direct": direct, "behind": behind, "metrics": mport}
    finally:
        stop(hp)  # by its pid
        log.close()


def closed_without_reply(s: socket.socket) -> bool:
    """The server closed the connection (EOF, or RST when our bytes were left unread) without a byte."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def session_lines(srv) -> list[str]:
    return [l for l in srv.stderr_path.read_text().splitlines() if "pop3 session peer=" in l]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_real_client_address_reaches_logs(proxied, version):
    srv, ports = proxied
    source = "127.0.0.5" if version == "v1" else "127.0.0.6"
    c = Client(ports[version], source)
    assert c.greeting.startswith(b"+OK"), c.greeting
    c.login(ALICE, srv.users[ALICE])
    st, body = c.multi("RETR 1")
    assert st.startswith(b"+OK") and b"proxied" in body
    c.quit()
    want = f"peer={source}:{c.source_port} user={ALICE}"
    wait_for(lambda: any(want in l for l in session_lines(srv)), 10, f"a session line with {want}")
    assert not any(f"peer=127.0.0.1:" in l and ALICE in l for l in session_lines(srv)), \
        "a proxied session was logged with the proxy's address"


def test_per_address_limit_counts_the_real_client(proxied):
    srv, ports = proxied
    first = Client(ports["v1"], "127.0.0.7")
    assert first.greeting.startswith(b"+OK")
    second = Client(ports["v2"], "127.0.0.7")      # same client, other proxy frontend: over the limit
    assert second.greeting.rstrip() == BUSY, second.greeting
    other = Client(ports["v1"], "127.0.0.8")       # another client through the same proxy: fine
    assert other.greeting.startswith(b"+OK"), other.greeting
    for c in (first, second, other):
        c.close()
    m = scrape(ports["metrics"])
    assert value(m, "buzon_connections_refused_total", protocol="pop3", listener=f"127.0.0.1:{ports['behind']}",
                 reason="per_ip_limit") == 1


def test_untrusted_peers_and_bad_headers_are_refused(proxied):
    srv, ports = proxied
    listener = f"127.0.0.1:{ports['behind']}"
    # Not a trusted proxy: closed before anything is read or sent.
    c = Client(ports["behind"], "127.0.0.9")
    assert c.greeting == b"", c.greeting
    c.close()
    # A trusted peer that sends no header (a client talking directly): closed, nothing served.
    with socket.create_connection(("127.0.0.1", ports["behind"]), timeout=10) as s:
        s.sendall(b"USER alice\r\n")
        assert closed_without_reply(s)
    # ... or a forged one that is not valid, or nothing at all within [proxy] timeout (1 s).
    with socket.create_connection(("127.0.0.1", ports["behind"]), timeout=10) as s:
        s.sendall(b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n")
        assert closed_without_reply(s)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", ports["behind"]), timeout=10) as s:
        assert closed_without_reply(s)
    assert time.monotonic() - t0 < 5
    log = srv.stderr_path.read_text()
    assert re.search(r'connection refused peer=127\.0\.0\.9 listener=\S+ reason="not a trusted proxy"', log), log
    assert log.count('reason="bad PROXY header"') == 3, log
    assert "no PROXY header within 1000 ms" in log
    m = scrape(ports["metrics"])
    refused = lambda r: value(m, "buzon_connections_refused_total", protocol="pop3", listener=listener, reason=r)
    assert refused("untrusted_proxy") == 1 and refused("bad_proxy_header") == 3


def test_listeners_without_the_opt_in_ignore_headers(proxied):
    srv, ports = proxied
    c = Client(ports["direct"], "127.0.0.10")
    assert c.greeting.startswith(b"+OK")
    assert c.cmd("PROXY TCP4 192.0.2.1 127.0.0.1 1111 110").startswith(b"-ERR")  # just a bad command
    c.quit()
    wait_for(lambda: any(f"peer=127.0.0.10:{c.source_port}" in l for l in session_lines(srv)), 10, "the direct session")
