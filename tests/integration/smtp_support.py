"""SMTP/LMTP helpers for the integration tests (test_smtp*.py, test_lmtp*.py).

  smtp_server(buzon, ...)  a started buzon with [smtp] on srv.smtp_port (local domain example.com,
                           user alice@example.com), optional [lmtp] (srv.lmtp_port, srv.lmtp_socket).
  SmtpRaw                  a byte-exact SMTP/LMTP client over a plain socket: send anything (bare LF,
                           pipelined batches, BDAT chunks), read replies exactly as sent.
  strip_trace(msg)         the message without the trace fields buzon prepends (Return-Path:,
                           Delivered-To:, Received:), which must be exactly those, in that order.
  pop_all(srv, user)       every message of a mailbox over POP3 (poplib), CRLF-joined, as sent.
"""
from __future__ import annotations

import poplib
import re
import socket
import time

from conftest import HOST, IO_TIMEOUT, free_port

ALICE = "alice@example.com"


def smtp_config(port: int, **smtp) -> dict:
    cfg = {"listen": [f"{HOST}:{port}"], "local_domains": ["example.com"]}
    cfg.update(smtp)
    return cfg


def wait_smtp(port: int, timeout: float = 10.0, path: str | None = None) -> None:
    """Waits until the SMTP/LMTP listener answers with a 220 greeting."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            c = SmtpRaw(port, path=path)
            try:
                if c.greeting.startswith(b"220 "):
                    c.send(b"QUIT\r\n")
                    return
                last = c.greeting
            finally:
                c.close()
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"no SMTP greeting on {path or port}: {last!r}")


def smtp_server(buzon, users: dict[str, str] | None = None, smtp: dict | None = None, lmtp: bool | dict = False,
                start: bool = True, **sections):
    """A buzon with SMTP on srv.smtp_port; with lmtp, LMTP on TCP srv.lmtp_port and the unix
    socket srv.lmtp_socket."""
    port = free_port()
    config = {"smtp": smtp_config(port, **(smtp or {}))}
    lmtp_port = None
    if lmtp:
        lmtp_port = free_port()
        config["lmtp"] = {"listen": [f"{HOST}:{lmtp_port}"], "socket": "lmtp.sock", "socket_mode": "0660"}
        if isinstance(lmtp, dict):
            config["lmtp"].update(lmtp)
    config.update(sections)
    srv = buzon(users=users, config=config, start=False)
    srv.smtp_port = port
    srv.lmtp_port = lmtp_port
    srv.lmtp_socket = str(srv.root / "lmtp.sock") if lmtp else None
    if start:
        srv.start()
        wait_smtp(port)
    return srv


class SmtpRaw:
    """A minimal SMTP client that keeps every octet; replies come back as bytes, CRLF removed."""

    def __init__(self, port: int | None = None, path: str | None = None, timeout: float = IO_TIMEOUT,
                 read_greeting: bool = True):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rb")
        self.greeting = self.reply() if read_greeting else b""

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self) -> bytes:
        """One complete reply (all continuation lines), lines joined with LF; b'' at EOF."""
        lines = []
        while True:
            line = self.f.readline(4096)
            if not line:
                return b"\n".join(lines)
            assert line.endswith(b"\r\n"), f"reply line not ending in CRLF: {line!r}"
            lines.append(line[:-2])
            if len(line) < 4 or line[3:4] != b"-":
                return b"\n".join(lines)

    def replies(self, n: int) -> list[bytes]:
        return [self.reply() for _ in range(n)]

    def cmd(self, line: bytes | str) -> bytes:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def eof(self) -> bool:
        """True when the server closed the connection (nothing more to read)."""
        try:
            return self.f.read(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def strip_trace(msg: bytes) -> bytes:
    """Removes and checks the fields buzon prepends: Return-Path:, Delivered-To:, Received:."""
    m = re.match(rb"Return-Path: <[^\r\n]*>\r\nDelivered-To: [^\r\n]+\r\nReceived: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*",
                 msg)
    assert m, f"message does not start with buzon's trace fields: {msg[:300]!r}"
    return msg[m.end():]


def trace_fields(msg: bytes) -> bytes:
    m = re.match(rb"Return-Path: <[^\r\n]*>\r\nDelivered-To: [^\r\n]+\r\nReceived: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*",
                 msg)
    assert m, f"message does not start with buzon's trace fields: {msg[:300]!r}"
    return msg[:m.end()]


def pop_all(srv, user: str, utf8: bool = False) -> list[bytes]:
    """Every message of `user` over POP3, reassembled with CRLF (poplib un-stuffs dots)."""
    p = poplib.POP3(HOST, srv.port, timeout=IO_TIMEOUT)
    try:
        if utf8:
            p.utf8()
        p.user(user)
        p.pass_(srv.users[user])
        count, _ = p.stat()
        out = []
        for i in range(1, count + 1):
            _, lines, _ = p.retr(i)
            out.append(b"".join(l + b"\r\n" for l in lines))
        p.quit()
        return out
    finally:
        try:
            p.close()
        except Exception:
            pass


def wire(msg: bytes) -> bytes:
    """A message as an SMTP client sends it (LF -> CRLF), before dot-stuffing."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out
