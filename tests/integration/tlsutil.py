"""TLS and SASL helpers for the integration tests (test_tls.py, test_auth.py).

  CertAuthority        a private certificate authority made with the openssl CLI in a temp dir; issues
                server certificates for 127.0.0.1/localhost or any other name.
  Pop3Tls       conftest.Pop3Raw that can also start in TLS (POP3S) or switch with STLS.
  ScramClient   an independent SCRAM-SHA-256(-PLUS) client written from RFC 5802/7677 with hashlib
                and hmac (it shares no code with the server).
  tls_server()  a buzon with [tls], POP3S on a free port, and whatever else the test configures.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pathlib
import socket
import ssl
import subprocess

from conftest import HOST, IO_TIMEOUT, Pop3Raw, free_port


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------

def openssl(*args: str, cwd: pathlib.Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}"


class CertAuthority:
    """A CA (EC P-256) in `dir`; issue() makes a key and a certificate it signs."""

    def __init__(self, dir: pathlib.Path, name: str = "buzon test CA"):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.key = dir / "ca-key.pem"
        self.cert = dir / "ca.pem"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", f"/CN={name}", "-keyout", str(self.key), "-out", str(self.cert),
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                cwd=dir)
        self.serial = 1

    def issue(self, stem: str, cn: str, sans: str = "DNS:localhost,IP:127.0.0.1") -> tuple[pathlib.Path, pathlib.Path]:
        key, csr, cert = self.dir / f"{stem}-key.pem", self.dir / f"{stem}.csr", self.dir / f"{stem}.pem"
        ext = self.dir / f"{stem}.ext"
        ext.write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", str(key), "-out", str(csr), cwd=self.dir)
        self.serial += 1
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-set_serial",
                str(self.serial), "-days", "2", "-extfile", str(ext), "-out", str(cert), cwd=self.dir)
        return cert, key

    def context(self, **kw) -> ssl.SSLContext:
        """A client context that trusts only this CA and checks host names."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx


def peer_cn(sock: ssl.SSLSocket) -> str:
    subject = dict(x[0] for x in sock.getpeercert()["subject"])
    return subject.get("commonName", "")


# --------------------------------------------------------------------------------------------
# A raw POP3 client over TLS
# --------------------------------------------------------------------------------------------

class Pop3Tls(Pop3Raw):
    """Pop3Raw over implicit TLS (ctx given) or plain TCP with starttls() (ctx=None)."""

    def __init__(self, port: int, ctx: ssl.SSLContext | None = None, server_hostname: str = HOST,
                 timeout: float = IO_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        if ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.f = self.sock.makefile("rb")
        self.greeting = self.readline()

    def starttls(self, ctx: ssl.SSLContext, server_hostname: str = HOST) -> None:
        """Wraps the connection after a +OK to STLS (the caller sent STLS and read the reply)."""
        self.f.close()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.f = self.sock.makefile("rb")

    def stls(self, ctx: ssl.SSLContext, server_hostname: str = HOST) -> None:
        st = self.cmd("STLS")
        assert st.startswith(b"+OK"), f"STLS -> {st!r}"
        self.starttls(ctx, server_hostname)

    def capa(self) -> dict[str, list[str]]:
        st, body = self.multi("CAPA")
        assert st.startswith(b"+OK"), st
        out = {}
        for line in body.decode().splitlines():
            words = line.split()
            if words:
                out[words[0].upper()] = words[1:]
        return out

    def auth(self, mech: str, responder, initial: bytes | None = None) -> bytes:
        """AUTH mech [initial]; answers each "+ " challenge with responder(decoded challenge) ->
        bytes (or None to cancel with "*"). Returns the final status line."""
        line = f"AUTH {mech}"
        if initial is not None:
            line += " " + (base64.b64encode(initial).decode() or "=")
        st = self.cmd(line)
        while st.startswith(b"+ ") or st == b"+":
            answer = responder(base64.b64decode(st[2:]))
            st = self.cmd(b"*" if answer is None else base64.b64encode(answer))
        return st


# --------------------------------------------------------------------------------------------
# SCRAM-SHA-256 (RFC 5802, RFC 7677), written independently of the server
# --------------------------------------------------------------------------------------------

def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


class ScramClient:
    def __init__(self, user: str, password: str, cb_type: str | None = None, cb_data: bytes = b"",
                 extension: str = "", flag: str | None = None):
        self.user, self.password = user, password
        self.cb_type, self.cb_data = cb_type, cb_data
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.gs2 = (f"p={cb_type},," if cb_type else f"{flag or 'n'},,").encode()
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={name},r={self.nonce}" + (f",{extension}" if extension else "")
        self.server_signature = b""
        self.verified = False

    def first(self) -> bytes:
        return self.gs2 + self.bare.encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce), server_first
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        assert iterations >= 4096, f"iteration count {iterations} below RFC 7677's 4096"
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=" + base64.b64encode(self.gs2 + self.cb_data).decode() + ",r=" + attrs["r"]
        auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        proof = bytes(a ^ b for a, b in zip(client_key, _hmac(stored_key, auth_message)))
        self.server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def check(self, server_final: bytes) -> bytes | None:
        ok = server_final.startswith(b"v=") and \
            hmac.compare_digest(base64.b64decode(server_final[2:]), self.server_signature)
        self.verified = ok
        return b"" if ok else None

    def responder(self):
        """For Pop3Tls.auth(): first challenge -> client-final, second -> verify (or cancel)."""
        steps = iter([self.final, self.check])
        return lambda challenge: next(steps)(challenge)


def cram_md5(user: str, password: str):
    return lambda challenge: f"{user} {hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()}".encode()


# --------------------------------------------------------------------------------------------
# A buzon with TLS
# --------------------------------------------------------------------------------------------

def tls_config(cert: pathlib.Path, key: pathlib.Path, tls_port: int, **sections) -> dict:
    cfg = {"tls": {"cert": str(cert), "key": str(key)},
           "pop3": {"listen_tls": [f"{HOST}:{tls_port}"]},
           "metrics": {"enabled": False}}
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def tls_server(buzon, ca: CertAuthority, accounts: dict[str, str] | None = None, **sections):
    """A started buzon with [tls] (a certificate of `ca` for 127.0.0.1), POP3S on srv.tls_port;
    `sections` are more config ({"auth": {...}, "users": {...}}), `accounts` the users to add."""
    cert, key = ca.issue("server", "buzon.test")
    port = free_port()
    srv = buzon(users=accounts, config=tls_config(cert, key, port, **sections))
    srv.tls_port = port
    srv.cert, srv.key = cert, key
    return srv
