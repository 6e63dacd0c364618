"""A private DNS server for integration tests: dnsmasq on 127.0.0.1:<free port>, nothing else.

Usage
    from dns_support import DnsServer

    records = {
        "b.test":     {"MX": [(10, "mx1.b.test"), (20, "mx2.b.test")]},
        "mx1.b.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
        "null.test":  {"MX": [(0, ".")]},          # RFC 7505 null MX
        "imp.test":   {"A": ["127.0.0.1"]},        # no MX: the implicit MX is imp.test itself
        "s1._domainkey.a.test": {"TXT": ["v=DKIM1; k=ed25519; p=..."]},
    }
    with DnsServer(records) as dns:
        dns.port      # the UDP/TCP port on 127.0.0.1
        dns.server    # "127.0.0.1:<port>", the form buzon's resolver option takes
        ...

`records` is a dict {name: {"MX": [(preference, host), ...], "A": [addr, ...], "AAAA": [addr, ...],
"TXT": [text, ...]}} or a list of (name, type, value) tuples, where value is (preference, host) for
MX, an address string for A/AAAA and the record's text for TXT (split into 255-octet strings
here; no commas or quotes). A single value may be given without the list.

Answers: the records above; every other name is NXDOMAIN, and a name that exists without a record
of the asked type answers NOERROR with no records (NODATA). Nothing is forwarded anywhere.

The server runs in the foreground as a child process and is stopped by its PID (SIGTERM, then
SIGKILL) when the `with` block ends, also on failure. DnsServer.available() says whether dnsmasq is
installed (use it with pytest.skip). Requires /usr/sbin/dnsmasq (Debian: dnsmasq-base).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

DNSMASQ = "/usr/sbin/dnsmasq"
HOST = "127.0.0.1"


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 at the time of the call."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((HOST, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def _normalize(records) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []
    if isinstance(records, dict):
        for name, types in records.items():
            for rtype, values in types.items():
                if rtype.upper() == "MX" and isinstance(values, tuple):
                    values = [values]
                if isinstance(values, (str, tuple)):
                    values = [values]
                for v in values:
                    out.append((name, rtype.upper(), v))
    else:
        for name, rtype, v in records:
            out.append((name, rtype.upper(), v))
    return out


def dnsmasq_args(records, port: int) -> list[str]:
    """The dnsmasq command line serving `records` on 127.0.0.1:port (exposed for debugging)."""
    args = [DNSMASQ, "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--keep-in-foreground",
            "--bind-interfaces", f"--listen-address={HOST}", f"--port={port}", "--pid-file=",
            "--log-facility=/dev/null",
            "--local=/#/"]  # authoritative for every name: unknown names are NXDOMAIN, never forwarded
    for name, rtype, v in _normalize(records):
        name = name.rstrip(".")
        if rtype == "MX":
            pref, host = v
            host = host.rstrip(".") or "."
            args.append(f"--mx-host={name},{host},{int(pref)}")
        elif rtype in ("A", "AAAA"):
            args.append(f"--host-record={name},{v}")
        elif rtype == "TXT":
            if any(c in v for c in ',"\\'):  # dnsmasq's command line splits strings at commas
                raise ValueError("TXT text with commas, quotes or backslashes is not supported")
            parts = [v[i:i + 255] for i in range(0, len(v), 255)]
            args.append(f"--txt-record={name}," + ",".join(parts))
        else:
            raise ValueError(f"unsupported record type {rtype} (MX, A, AAAA, TXT)")
    return args


class DnsServer:
    """A private dnsmasq on 127.0.0.1; see the module docstring."""

    def __init__(self, records, start_timeout: float = 10.0):
        self.records = records
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return os.access(DNSMASQ, os.X_OK) or shutil.which("dnsmasq") is not None

    @property
    def server(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> "DnsServer":
        last = ""
        for _ in range(5):
            self.port = _free_port()
            self.proc = subprocess.Popen(dnsmasq_args(self.records, self.port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:  # exited: bad arguments or the port was taken
                    last = self.proc.stderr.read().decode(errors="replace").strip()
                    self.proc = None
                    break
                try:
                    with socket.create_connection((HOST, self.port), timeout=0.5):
                        return self
                except OSError:
                    time.sleep(0.02)
            else:
                self.stop()
                raise RuntimeError(f"dnsmasq did not start on port {self.port} within {self.start_timeout}s")
        raise RuntimeError(f"dnsmasq failed to start: {last}")

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
