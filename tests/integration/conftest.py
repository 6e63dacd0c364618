"""Integration-test support: the real `buzon` binary over real loopback sockets.

Fixtures
  buzon    factory: buzon(users=..., config=..., start=True) -> BuzonServer (temp dir, buzon.toml,
           passwd-file users, Maildir seeding, `buzon serve` on a free 127.0.0.1 port). Every server
           it starts is stopped (SIGTERM, then SIGKILL) in teardown, also when the test fails.
  dovecot  factory: a PRIVATE Dovecot (its own base_dir/state_dir/log in a temp dir, `dovecot -F`),
           never the system service.

Helpers
  wire_form(raw)   the octets a POP3 server must send for a stored message (before dot-stuffing).
  Pop3Raw          a byte-exact POP3 client over a plain socket (poplib is lossy: it folds CR/LF).

Environment
  BUZON_BIN         the binary (default: <source>/build/buzon)
  BUZON_SOURCE_DIR  the source tree (default: two levels above this file)
"""
from __future__ import annotations

import os
import pathlib
import poplib
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SOURCE_DIR = pathlib.Path(os.environ.get("BUZON_SOURCE_DIR") or HERE.parent.parent)
BUZON_BIN = pathlib.Path(os.environ.get("BUZON_BIN") or SOURCE_DIR / "build" / "buzon")

# Sanitizer builds (make sanitize / make tsan, docs/RELIABILITY.md): BUZON_SANITIZER names the
# sanitizer the binary was built with, BUZON_SANITIZER_LOG_DIR a directory for reports. Each pytest
# process gets its own report directory below it (log_path in *SAN_OPTIONS, inherited by every buzon
# it starts); a report written during a test fails that test (sanitizer_reports below), and the
# Makefile fails the run if any report exists at all.
SANITIZER = os.environ.get("BUZON_SANITIZER", "")
SANITIZER_LOGS: pathlib.Path | None = None
if os.environ.get("BUZON_SANITIZER_LOG_DIR"):
    _base = pathlib.Path(os.environ["BUZON_SANITIZER_LOG_DIR"])
    _base.mkdir(parents=True, exist_ok=True)
    SANITIZER_LOGS = pathlib.Path(tempfile.mkdtemp(prefix="pytest-", dir=_base))
    os.chmod(SANITIZER_LOGS, 0o1777)  # servers that drop privileges write here too
    for _var, _name in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan"), ("TSAN_OPTIONS", "tsan")):
        _opts = os.environ.get(_var, "")
        os.environ[_var] = (_opts + ":" if _opts else "") + f"log_path={SANITIZER_LOGS}/{_name}"


def skip_under_sanitizer(reason: str) -> None:
    """For timing-based checks only: skips (visibly, with the reason) in a sanitizer build."""
    if SANITIZER:
        pytest.skip(f"under {SANITIZER}: {reason}")


START_TIMEOUT = 10.0 * (3 if SANITIZER else 1)
IO_TIMEOUT = 20.0
HOST = "127.0.0.1"

# poplib refuses lines over 2048 octets; our edge-case messages include a 10000-octet line.
poplib._MAXLINE = 1 << 20


# --------------------------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wire_form(raw: bytes) -> bytes:
    """The message as a POP3 server must send it (RFC 1939 §3), before dot-stuffing.

    - every bare LF (not preceded by CR) becomes CRLF; CRLF stays CRLF;
    - a lone CR that is not followed by LF is data and is kept (it is not a line end);
    - a non-empty message that does not end in CRLF gets a final CRLF appended, so the
      terminating "." is on a line of its own.  A message ending in a lone CR therefore ends in
      CR CR LF -- exactly what Dovecot sends (cross-checked in test_dovecot_uidl.py);
    - an empty (0-octet) message stays empty.
    The LIST/STAT size of the message is len(wire_form(raw)) (DESIGN.md principle 4: sizes are
    the exact octets sent, excluding dot-stuffing and the terminator).
    """
    out = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def lf_form(raw: bytes) -> bytes:
    """The message with LF line ends, as Unix delivery agents (fetchmail, mpop, getmail) store it."""
    return wire_form(raw).replace(b"\r\n", b"\n")


def dot_stuff(wire: bytes) -> bytes:
    """Dot-stuffed form of a wire-form message (RFC 1939 §3)."""
    lines = wire.split(b"\r\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines)


def err_bytes(e: Exception) -> bytes:
    """The server response carried by a poplib.error_proto."""
    a = e.args[0] if e.args else b""
    return a if isinstance(a, bytes) else str(a).encode()


def uidl_ok(u: str) -> bool:
    """RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E."""
    return 1 <= len(u) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in u)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. sni = [{names = [...], cert = ..., key = ...}]
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def write_toml(path: pathlib.Path, cfg: dict) -> None:
    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            lines.append(f"{k} = {toml_value(v)}")
        lines.append("")
    path.write_text("\n".join(lines))


def wait_for_greeting(port: int, proc: subprocess.Popen | None, timeout: float, what: str,
                      log_reader=lambda: "") -> bytes:
    """Polls until a POP3 greeting (+OK) arrives on port; fails with the server's log otherwise."""
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} exited with status {proc.returncode} before serving on port "
                        f"{port}.\n--- server output ---\n{log_reader()}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.settimeout(3)
                data = b""
                while b"\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"+OK"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(4096)
                    except OSError:
                        pass
                    return data
                last_err = f"greeting was {data!r}"
        except OSError as e:
            last_err = repr(e)
        time.sleep(0.05)
    pytest.fail(f"{what} did not greet with +OK on {HOST}:{port} within {timeout}s "
                f"(last: {last_err}).\n--- server output ---\n{log_reader()}")


def stop_process(proc: subprocess.Popen, grace: float = 8.0) -> str:
    """SIGTERM, wait `grace` seconds, then SIGKILL. Returns how it ended (for reports)."""
    if proc.poll() is not None:
        return f"already exited with {proc.returncode}"
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return f"already exited with {proc.poll()}"
    try:
        proc.wait(timeout=grace)
        return f"exited with {proc.returncode} after SIGTERM"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return f"needed SIGKILL (did not exit {grace}s after SIGTERM)"


# --------------------------------------------------------------------------------------------
# Byte-exact POP3 client
# --------------------------------------------------------------------------------------------

class Pop3Raw:
    """A minimal POP3 client that keeps every octet (poplib folds CR/LF and hides stuffing)."""

    def __init__(self, port: int, timeout: float = IO_TIMEOUT, read_greeting: bool = True):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rb")
        self.greeting = self.readline() if read_greeting else b""

    # -- raw I/O ------------------------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self) -> bytes:
        """One line including its line end; b'' at EOF."""
        return self.f.readline(1 << 22)

    def status(self) -> bytes:
        """Reads one status line; fails the test on EOF."""
        line = self.readline()
        assert line, "server closed the connection where a status line was expected"
        assert line.endswith(b"\r\n"), f"status line not terminated by CRLF: {line!r}"
        return line[:-2]

    def cmd(self, line: str | bytes) -> bytes:
        """Sends one command line (CRLF added) and returns its status line (without CRLF)."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.status()

    def body(self) -> tuple[bytes, list[bytes]]:
        """Reads a multi-line body up to the terminating '.' line.

        Returns (content, wire_lines): content is un-stuffed with CRLF line ends and excludes the
        terminator; wire_lines are the raw lines as received. Asserts the RFC 1939 §3 framing:
        every line ends in CRLF, and every line starting with '.' other than the terminator is
        dot-stuffed.
        """
        out = bytearray()
        wire = []
        while True:
            line = self.readline()
            assert line, ("server closed the connection inside a multi-line response; got so far "
                          f"{bytes(out[-300:])!r}")
            wire.append(line)
            assert line.endswith(b"\r\n"), f"multi-line response line not ending in CRLF: {line[-80:]!r}"
            if line == b".\r\n":
                return bytes(out), wire
            if line.startswith(b"."):
                assert line.startswith(b".."), f"line starting with '.' is not dot-stuffed: {line[:80]!r}"
                line = line[1:]
            out += line

    def multi(self, line: str | bytes) -> tuple[bytes, bytes]:
        """Sends a command that answers multi-line on +OK. Returns (status, content)."""
        st = self.cmd(line)
        if st.startswith(b"+OK"):
            content, _ = self.body()
            return st, content
        return st, b""

    def login(self, user: str, password: str) -> None:
        st = self.cmd(f"USER {user}")
        assert st.startswith(b"+OK"), f"USER {user} -> {st!r}"
        st = self.cmd(f"PASS {password}")
        assert st.startswith(b"+OK"), f"PASS for {user} -> {st!r}"

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within timeout (nothing more to read)."""
        self.sock.settimeout(timeout)
        try:
            return self.f.read(1) == b""
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def quit(self) -> None:
        """QUIT: +OK, then the server closes the connection (RFC 1939 §6)."""
        st = self.cmd("QUIT")
        assert st.startswith(b"+OK"), f"QUIT -> {st!r}"
        assert self.at_eof(), "server did not close the connection after +OK to QUIT"

    def close(self) -> None:
        try:
            self.f.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_scan_listing(content: bytes) -> dict[int, int]:
    """LIST body -> {msgnum: size}, asserting the RFC 1939 scan-listing syntax."""
    out = {}
    for line in content.split(b"\r\n"):
        if not line:
            continue
        m = re.fullmatch(rb"(\d+) (\d+)", line)
        assert m, f"bad scan listing line {line!r}"
        out[int(m.group(1))] = int(m.group(2))
    return out


def parse_uidl_listing(content: bytes) -> dict[int, str]:
    out = {}
    for line in content.split(b"\r\n"):
        if not line:
            continue
        m = re.fullmatch(rb"(\d+) (\S+)", line)
        assert m, f"bad unique-id listing line {line!r}"
        out[int(m.group(1))] = m.group(2).decode("ascii", "replace")
    return out


# --------------------------------------------------------------------------------------------
# Maildir seeding (as a delivery agent would: tmp/ then rename into new/)
# --------------------------------------------------------------------------------------------

_seq = [0]


def maildir_make(path: pathlib.Path) -> pathlib.Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def maildir_deliver(maildir: pathlib.Path, raw: bytes, subdir: str = "new", flags: str | None = None,
                    size_in_name: bool = False, when: int | None = None) -> pathlib.Path:
    """Writes one message into a Maildir the way MDAs do; returns its final path.

    Names are Maildir-unique ("<secs>.M<usec>P<pid>Q<n>.<host>") and increase with each delivery,
    as do mtimes, so delivery order is well defined.  size_in_name adds Dovecot's ",S=<size>,W=<wire
    size>" exactly as Dovecot computes them; flags (for cur/) adds ":2,<flags>".
    """
    maildir_make(maildir)
    _seq[0] += 1
    n = _seq[0]
    secs = when if when is not None else 1700000000 + n
    base = f"{secs}.M{n * 1000 % 1000000}P{os.getpid()}Q{n}.buzontest"
    if size_in_name:
        # Dovecot's W= is the size with CRLF line ends but WITHOUT the CRLF a server appends to a
        # message lacking a final line end (the value Dovecot 2.3's LIST reports for such a message).
        crlf_size = len(re.sub(rb"(?<!\r)\n", b"\r\n", raw))
        base += f",S={len(raw)},W={crlf_size}"
    tmp = maildir / "tmp" / base
    with open(tmp, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    os.utime(tmp, (secs, secs))
    name = base
    if subdir == "cur":
        name += ":2," + (flags or "")
    final = maildir / subdir / name
    os.rename(tmp, final)
    return final


def maildir_files(maildir: pathlib.Path) -> list[pathlib.Path]:
    """Messages currently in new/ and cur/ (what a POP3 server would list)."""
    out = []
    for sub in ("new", "cur"):
        d = maildir / sub
        if d.is_dir():
            out += [p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(out)


# --------------------------------------------------------------------------------------------
# The buzon server
# --------------------------------------------------------------------------------------------

DEFAULT_PASSWORD = "s3cret-Pw"


class BuzonServer:
    def __init__(self, root: pathlib.Path, users: dict[str, str], config: dict | None):
        if not BUZON_BIN.exists():
            pytest.fail(f"buzon binary not found at {BUZON_BIN} (set BUZON_BIN or build it: "
                        f"ninja -C {SOURCE_DIR}/build buzon)")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.cfg_path = root / "buzon.toml"
        self.passwd = root / "passwd"
        self.passwd.touch()
        self.proc: subprocess.Popen | None = None
        self._stopped = False
        self.stdout_path = root / "server.stdout"
        self.stderr_path = root / "server.stderr"
        self.start_count = 0
        self.fallback_users: list[str] = []   # users the CLI failed to add (bug!)
        self.user_add_errors: list[str] = []
        self.crashes: list[str] = []
        self.stop_results: list[str] = []
        self.users = {}
        cfg = {
            "server": {"hostname": "buzon.test", "io_threads": 1, "worker_threads": 2,
                       "shutdown_grace": 2, "user": "root"},  # tests run as root on purpose
            "log": {"level": "info", "file": ""},
            "users": {"passwd_file": "passwd", "default_domain": "", "lowercase": True},
            "mail": {"location": "mail/%d/%n/Maildir", "uidl_format": "buzon"},
            "pop3": {"listen": [f"{HOST}:{self.port}"]},
            # The metrics endpoint defaults to 127.0.0.1:9110: off here, so parallel servers never
            # collide; tests that scrape it turn it on with a free port (test_ops_*.py).
            "metrics": {"enabled": False},
        }
        for section, values in (config or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.config = cfg
        write_toml(self.cfg_path, cfg)
        for name, pw in users.items():
            self.add_user(name, pw)

    # -- users -------------------------------------------------------------------------------
    def run_cli(self, *args: str, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(BUZON_BIN), "--config", str(self.cfg_path), *args],
                              input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, cwd=self.root)

    def add_user(self, name: str, password: str = DEFAULT_PASSWORD) -> None:
        pwfile = self.root / f"pw-{len(self.users)}"
        pwfile.write_text(password)
        r = self.run_cli("user", "add", name, "--password-file", str(pwfile))
        listed = any(l.split(":", 1)[0] == name for l in self.passwd.read_text().splitlines())
        if r.returncode != 0 or not listed:
            err = (f"`buzon --config {self.cfg_path} user add {name} --password-file {pwfile}` "
                   f"-> exit {r.returncode}, user in passwd-file: {listed}; stderr: "
                   f"{r.stderr.decode(errors='replace').strip()[:500]}")
            self.user_add_errors.append(err)
            warnings.warn("BUG (fallback used): " + err)
            if not listed:
                with open(self.passwd, "a") as fh:
                    fh.write(f"{name}:{{PLAIN}}{password}::::::\n")
            self.fallback_users.append(name)
        self.users[name] = password

    def maildir(self, user: str) -> pathlib.Path:
        """The user's Maildir as the [mail] location template says (CONTRACT.md)."""
        local, _, domain = user.partition("@")
        dd = self.config["users"].get("default_domain", "")
        if not domain and dd:
            domain = dd
        full = f"{local}@{domain}" if domain else local
        loc = self.config["mail"]["location"]
        loc = loc.replace("%u", full).replace("%n", local).replace("%d", domain)
        p = pathlib.Path(loc)
        if not p.is_absolute():
            p = self.root / p
        return pathlib.Path(os.path.normpath(p))

    def deliver(self, user: str, raw: bytes, **kw) -> pathlib.Path:
        return maildir_deliver(self.maildir(user), raw, **kw)

    # -- process -----------------------------------------------------------------------------
    def log(self) -> str:
        out = []
        for p in (self.stderr_path, self.stdout_path):
            if p.exists():
                t = p.read_text(errors="replace")
                if t.strip():
                    out.append(f"[{p.name}]\n{t[-6000:]}")
        return "\n".join(out) or "(no output)"

    def start(self) -> "BuzonServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not BUZON_BIN.exists():
            pytest.fail(f"buzon binary not found at {BUZON_BIN} (set BUZON_BIN or build it: "
                        f"ninja -C {SOURCE_DIR}/build buzon)")
        self.start_count += 1
        mode = "w" if self.start_count == 1 else "a"
        with open(self.stdout_path, mode) as out, open(self.stderr_path, mode) as err:
            if self.start_count > 1:
                err.write(f"\n===== restart #{self.start_count} =====\n")
                err.flush()
            self._stopped = False
            self.proc = subprocess.Popen([str(BUZON_BIN), "--config", str(self.cfg_path), "serve"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.root)
        self.greeting = wait_for_greeting(self.port, self.proc, START_TIMEOUT,
                                          f"buzon ({BUZON_BIN} --config {self.cfg_path} serve)",
                                          self.log)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> str:
        if self.proc is None:
            return "never started"
        if self._stopped:
            return self.stop_results[-1]
        self._stopped = True
        rc = self.proc.poll()
        if rc is not None and rc < 0:
            self.crashes.append(f"server died by signal {-rc} before it was stopped")
        res = stop_process(self.proc)
        self.stop_results.append(res)
        return res

    def restart(self) -> "BuzonServer":
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL on purpose (crash-consistency tests): not reported as a crash; start() may follow."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stopped = True
        self.stop_results.append("SIGKILLed by the test")

    # -- clients -----------------------------------------------------------------------------
    def pop(self, timeout: float = IO_TIMEOUT) -> poplib.POP3:
        return poplib.POP3(HOST, self.port, timeout=timeout)

    def login(self, user: str, password: str | None = None) -> poplib.POP3:
        p = self.pop()
        p.user(user)
        p.pass_(password if password is not None else self.users[user])
        return p

    def raw(self, **kw) -> Pop3Raw:
        return Pop3Raw(self.port, **kw)

    def raw_login(self, user: str, password: str | None = None) -> Pop3Raw:
        c = Pop3Raw(self.port)
        c.login(user, password if password is not None else self.users[user])
        return c

    def raw_login_retry(self, user: str, timeout: float = 5.0) -> Pop3Raw:
        """raw_login, retrying while the maildrop is still locked by a just-closed session."""
        deadline = time.monotonic() + timeout
        while True:
            c = Pop3Raw(self.port)
            st = c.cmd(f"USER {user}")
            assert st.startswith(b"+OK"), f"USER {user} -> {st!r}"
            st = c.cmd(f"PASS {self.users[user]}")
            if st.startswith(b"+OK"):
                return c
            c.close()
            assert b"[IN-USE]" in st and time.monotonic() < deadline, f"PASS for {user} -> {st!r}"
            time.sleep(0.1)

    def login_retry(self, user: str, timeout: float = 5.0) -> poplib.POP3:
        """Logs in, retrying while the maildrop is still locked by a just-closed session."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.pop()
            try:
                p.user(user)
                p.pass_(self.users[user])
                return p
            except poplib.error_proto as e:
                p.close()
                if b"[IN-USE]" not in err_bytes(e):
                    raise
                if time.monotonic() > deadline:
                    raise AssertionError(f"maildrop of {user} still [IN-USE] {timeout}s after the "
                                         f"previous session ended: {e}")
                time.sleep(0.1)


@pytest.fixture(autouse=True)
def sanitizer_reports():
    """In a sanitizer build: any report a process wrote during the test fails the test."""
    if SANITIZER_LOGS is None:
        yield
        return
    before = set(SANITIZER_LOGS.iterdir())
    yield
    new = sorted(set(SANITIZER_LOGS.iterdir()) - before)
    if new:
        text = "\n".join(f"--- {p} ---\n{p.read_text(errors='replace')[-8000:]}" for p in new)
        pytest.fail(f"{len(new)} sanitizer report(s) ({SANITIZER}):\n{text}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remembers each phase's report on the test item (so fixtures can see whether it failed)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _test_failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def buzon(tmp_path, request):
    """Factory: buzon(users={name: password}, config={section: {key: value}}, start=True)."""
    servers: list[BuzonServer] = []

    def factory(users: dict[str, str] | None = None, config: dict | None = None, start: bool = True,
                root: pathlib.Path | None = None) -> BuzonServer:
        if users is None:
            users = {"alice@example.com": DEFAULT_PASSWORD}
        r = root or tmp_path / f"buzon{len(servers)}"
        srv = BuzonServer(r, users, config)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    problems = []
    for srv in servers:
        srv.stop()
        if _test_failed(request):
            # Shown by pytest under "Captured stdout teardown" of the failed test.
            print(f"\n===== buzon {BUZON_BIN} --config {srv.cfg_path} serve (port {srv.port}): "
                  f"{', '.join(srv.stop_results) or 'not started'} =====\n{srv.log()}")
        for c in srv.crashes:
            problems.append(f"buzon on port {srv.port}: {c}.\n{srv.log()}")
    if problems:
        pytest.fail("\n".join(problems))


# --------------------------------------------------------------------------------------------
# A private Dovecot (reference implementation and migration source)
# --------------------------------------------------------------------------------------------

def find_tool(name: str) -> str:
    p = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if p is None:
        pytest.fail(f"required test peer `{name}` is not installed (run scripts/install-deps)")
    return p


class DovecotServer:
    """Dovecot 2.3 as an unprivileged-mail POP3 server in a temp dir.

    Running as root: Dovecot refuses mail access as uid/gid 0 and refuses to run its login
    processes as root, so mail is accessed as nobody:nogroup (mail_uid/mail_gid) and login
    processes run as nobody; the auth process runs as root (default_internal_user = root).
    The temp dir is world-traversable and the mail tree owned by nobody.
    """

    def __init__(self, root: pathlib.Path, users: dict[str, str]):
        self.root = root
        os.chmod(root, 0o755)
        self.port = free_port()
        self.mail = root / "mail"
        self.mail.mkdir(exist_ok=True)
        for d in ("base", "state"):
            (root / d).mkdir(exist_ok=True)
        self.logfile = root / "dovecot.log"
        self.users = users
        with open(root / "passwd", "w") as fh:
            for u, pw in users.items():
                fh.write(f"{u}:{{PLAIN}}{pw}::::::\n")
        self.conf = root / "dovecot.conf"
        self.conf.write_text(f"""\
protocols = pop3
listen = {HOST}
base_dir = {root}/base
state_dir = {root}/state
log_path = {self.logfile}
info_log_path = {self.logfile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = root
default_internal_group = root
default_login_user = nobody
mail_uid = nobody
mail_gid = nogroup
mail_location = maildir:{self.mail}/%u/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {HOST}
    port = {self.port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
""")
        self.proc = None

    def maildir(self, user: str) -> pathlib.Path:
        return self.mail / user / "Maildir"

    def deliver(self, user: str, raw: bytes, **kw) -> pathlib.Path:
        return maildir_deliver(self.maildir(user), raw, **kw)

    def chown_mail(self) -> None:
        uid = pwd.getpwnam("nobody").pw_uid
        gid = grp.getgrnam("nogroup").gr_gid
        for dirpath, dirnames, filenames in os.walk(self.mail):
            os.chown(dirpath, uid, gid)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), uid, gid)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")[-6000:] if self.logfile.exists() else "(no log)"

    def start(self) -> "DovecotServer":
        self.chown_mail()
        self.proc = subprocess.Popen([find_tool("dovecot"), "-F", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.root)
        wait_for_greeting(self.port, self.proc, 15, f"dovecot -F -c {self.conf}",
                          lambda: self.log() + (self.proc.stdout.read().decode(errors="replace")
                                                if self.proc.poll() is not None else ""))
        return self

    def stop(self) -> str:
        if self.proc is None:
            return "never started"
        res = stop_process(self.proc, grace=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        return res

    def login(self, user: str) -> poplib.POP3:
        p = poplib.POP3(HOST, self.port, timeout=IO_TIMEOUT)
        p.user(user)
        p.pass_(self.users[user])
        return p


@pytest.fixture
def dovecot(request):
    """Factory: dovecot(users={name: password}) -> DovecotServer (not started)."""
    made: list[DovecotServer] = []
    dirs = []

    def factory(users: dict[str, str]) -> DovecotServer:
        d = pathlib.Path(tempfile.mkdtemp(prefix="buzon-dovecot-"))
        dirs.append(d)
        dv = DovecotServer(d, users)
        made.append(dv)
        return dv

    yield factory
    for dv in made:
        dv.stop()
        if _test_failed(request):
            print(f"\n===== dovecot -c {dv.conf} =====\n{dv.log()}")
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Edge-case messages shared by the tests
# --------------------------------------------------------------------------------------------

def big_message(size: int = 5 * 1024 * 1024) -> bytes:
    """A ~size-octet message with 76-character lines, some starting with '.', LF line ends."""
    head = b"From: big@example.org\nTo: alice@example.com\nSubject: big\nMessage-ID: <big@test>\n\n"
    lines = []
    total = len(head)
    i = 0
    while total < size:
        if i % 97 == 0:
            line = b"." + (b"%08d" % i) * 9 + b"dotline"
        else:
            line = (b"%08d" % i) + b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[: 68]
        lines.append(line)
        total += len(line) + 1
        i += 1
    return head + b"\n".join(lines) + b"\n"


EDGE_MESSAGES: dict[str, bytes] = {
    # A line starting with ".", a line that is exactly ".", and one that is exactly "..":
    # a server that forgets dot-stuffing ends the response early and desynchronizes the session.
    "dots": (b"From: a@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
             b"..\r\n. space\r\nend\r\n"),
    # Unix line ends throughout (Postfix and most MDAs store Maildir files with LF).
    "bare_lf": b"From: a@example.org\nSubject: bare LF\n\nline one\nline two\n\nline four\n",
    # 8-bit UTF-8 body and header.
    "utf8": ("From: a@example.org\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\nMIME-Version: 1.0\n"
             "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
             "Grüße, ¿qué tal? ✓ 日本語 🙂\n.ünïcode after a dot\n").encode("utf-8"),
    # Headers and the separating blank line, no body.
    "empty_body": b"From: a@example.org\nSubject: empty body\n\n",
    # The last line has no line end: the server must add CRLF before the terminator.
    "no_final_newline": b"From: a@example.org\nSubject: no final newline\n\nno newline at the end",
    # The last line has no line end AND starts with a dot.
    "no_final_newline_dot": b"From: a@example.org\nSubject: nfn dot\n\nx\n.last line is dotted",
    # CRLF, LF and a lone CR (data, not a line end) mixed in one message.
    "mixed_eol": b"From: a@example.org\r\nSubject: mixed\r\n\r\ncrlf\r\nlf\nlone\rcr\r\nend\n",
    # A 10000-octet line (violates RFC 5322's 998 limit, yet real mail has them).
    "long_line": b"From: a@example.org\nSubject: long line\n\n" + b"x" * 10000 + b"\nshort\n",
}

# A message whose last octets are ".\r" (a dotted last line ending in a lone CR, no LF).
# Expected wire (wire_form, same as Dovecot): "...\r\n.\r\r\n" dot-stuffed as "..\r\r\n"; a server
# may instead treat the trailing CR as the start of a line end (".\r\n"). Both are safe; what is
# NOT acceptable is sending "." unstuffed (the client would see the terminator early and the
# session desynchronizes) or a LIST size that differs from the octets sent.
DOT_CR_MESSAGE = b"From: a@example.org\nSubject: ends in dot CR\n\nbody\n.\r"
# Two readings of a final lone CR: Dovecot's (the CR is data, CRLF completes the line) and buzon's
# (the CR is completed to CRLF by adding LF). Both end the message cleanly before ".\r\n".
DOT_CR_ACCEPTABLE = (wire_form(DOT_CR_MESSAGE),
                     DOT_CR_MESSAGE.replace(b"\r", b"").replace(b"\n", b"\r\n") + b"\r\n")
