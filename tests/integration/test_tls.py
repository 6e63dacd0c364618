"""TLS with real clients (issue 3): POP3S (RFC 8314) and STLS (RFC 2595) through curl, Python's
poplib, mpop and fetchmail, each verifying the server against a private CA this test creates; the
STLS command-injection case (CVE-2011-0411); SNI; certificate reload on SIGHUP while a session stays
up; old protocol versions refused; the handshake timeout.
"""
import pathlib
import poplib
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import HOST, find_tool, lf_form, maildir_make, wire_form
from tlsutil import CertAuthority, Pop3Tls, ScramClient, peer_cn, tls_server

USER = "alice@example.com"
TOOL_TIMEOUT = 90
MESSAGES = [
    b"From: a@example.org\nSubject: one\n\nfirst message\n.leading dot\n",
    b"From: b@example.org\nSubject: two\n\nsecond\r\nmessage with CRLF\r\n",
    # ~100 KiB: several TLS records (lines stay short: fetchmail splits lines over 8 KiB).
    b"From: c@example.org\nSubject: three\n\n" + b"".join(b"%05d " % i + b"x" * 70 + b"\n" for i in range(1400)),
]


@pytest.fixture
def ca(tmp_path):
    return CertAuthority(tmp_path / "ca")


def seeded(srv):
    for m in MESSAGES:
        srv.deliver(USER, m)
    return srv


def wait_log(srv, text: str, timeout: float = 10) -> str:
    """The server log once it contains `text` (session summaries are written as sessions end)."""
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"the server log never showed {text!r}:\n{srv.log()}"
        time.sleep(0.05)
    return srv.log()


def run(argv, cwd, env=None, timeout=TOOL_TIMEOUT):
    r = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace"), r.stdout


# --------------------------------------------------------------------------------------------
# curl
# --------------------------------------------------------------------------------------------

def test_curl_pop3s_and_stls_verify_the_certificate(buzon, ca):
    curl = find_tool("curl")
    srv = seeded(tls_server(buzon, ca))
    auth = ["-u", f"{USER}:{srv.users[USER]}"]
    # POP3S: list and download, the certificate checked against the test CA (host 127.0.0.1).
    rc, out, listing = run([curl, "-sS", "--max-time", "30", "--cacert", str(ca.cert), *auth,
                            f"pop3s://{HOST}:{srv.tls_port}/"], srv.root)
    assert rc == 0, f"curl pop3s: exit {rc}: {out}\n{srv.log()}"
    sizes = [int(l.split()[1]) for l in listing.decode().splitlines()]
    assert sizes == [len(wire_form(m)) for m in MESSAGES], listing
    for n, m in enumerate(MESSAGES, 1):
        rc, out, body = run([curl, "-sS", "--max-time", "30", "--cacert", str(ca.cert), *auth,
                             f"pop3s://{HOST}:{srv.tls_port}/{n}"], srv.root)
        assert rc == 0 and body == wire_form(m), f"curl pop3s RETR {n}: exit {rc} {out[:300]}"
    # STLS on the plain port; --ssl-reqd: curl refuses to continue without TLS.
    rc, out, body = run([curl, "-sS", "--max-time", "30", "--ssl-reqd", "--cacert", str(ca.cert), *auth,
                         f"pop3://{HOST}:{srv.port}/2"], srv.root)
    assert rc == 0 and body == wire_form(MESSAGES[1]), f"curl STLS: exit {rc}: {out}\n{srv.log()}"
    # Without the CA, verification fails (exit 60): the server really presents the CA's certificate.
    rc, out, _ = run([curl, "-sS", "--max-time", "30", *auth, f"pop3s://{HOST}:{srv.tls_port}/"], srv.root)
    assert rc == 60, f"curl without --cacert: exit {rc} (want 60, certificate problem): {out}"
    log = srv.log()
    assert 'tls="TLSv1.3' in log, "the session summary line names the TLS version"


# --------------------------------------------------------------------------------------------
# Python poplib
# --------------------------------------------------------------------------------------------

def test_poplib_pop3_ssl_and_stls(buzon, ca):
    srv = seeded(tls_server(buzon, ca))
    ctx = ca.context()
    p = poplib.POP3_SSL(HOST, srv.tls_port, context=ctx, timeout=20)
    try:
        caps = p.capa()
        assert "STLS" not in caps, f"STLS advertised on an implicit-TLS connection: {caps}"
        assert "USER" in caps and "PLAIN" in caps.get("SASL", []), caps
        p.user(USER)
        p.pass_(srv.users[USER])
        assert p.stat() == (3, sum(len(wire_form(m)) for m in MESSAGES))
        assert b"\r\n".join(p.retr(1)[1]) + b"\r\n" == wire_form(MESSAGES[0]).replace(b"\r\n..", b"\r\n.")
        assert p.sock.version() in ("TLSv1.3", "TLSv1.2")
    finally:
        p.quit()

    p = poplib.POP3(HOST, srv.port, timeout=20)
    try:
        assert "STLS" in p.capa(), "STLS must be advertised on the plain port"
        p.stls(context=ctx)
        caps = p.capa()
        assert "STLS" not in caps, f"CAPA after STLS still offers STLS: {caps}"  # RFC 2595 §4
        with pytest.raises(poplib.error_proto):
            p._shortcmd("STLS")  # a second STLS is refused
        p.user(USER)
        p.pass_(srv.users[USER])
        assert p.stat()[0] == 3
    finally:
        p.quit()


# --------------------------------------------------------------------------------------------
# mpop (GnuTLS, GNU SASL) and fetchmail (OpenSSL)
# --------------------------------------------------------------------------------------------

def mpop_rc(path: pathlib.Path, srv, port: int, starttls: bool, auth: str, trust: pathlib.Path, md: pathlib.Path):
    path.write_text(
        "defaults\n"
        "tls on\n"
        f"tls_starttls {'on' if starttls else 'off'}\n"
        f"tls_trust_file {trust}\n"
        "timeout 60\n"
        "account test\n"
        f"host {HOST}\n"
        f"port {port}\n"
        f"auth {auth}\n"
        f"user {USER}\n"
        f"password {srv.users[USER]}\n"
        f"delivery maildir {md}\n"
        f"uidls_file {path.parent / (path.name + '.uidls')}\n"
        "keep on\n"
        "received_header off\n")
    path.chmod(0o600)


@pytest.mark.parametrize("starttls,auth", [(False, "scram-sha-256"), (True, "scram-sha-256"),
                                           (False, "plain"), (True, "user")])
def test_mpop_over_tls(buzon, ca, tmp_path, starttls, auth):
    mpop = find_tool("mpop")
    # SCRAM needs the user stored as SCRAM-SHA-256 (`buzon user add` uses default_scheme).
    srv = seeded(tls_server(buzon, ca, auth={"mechanisms": ["SCRAM-SHA-256", "PLAIN", "LOGIN"]},
                            users={"default_scheme": "SCRAM-SHA-256"}))
    md = maildir_make(tmp_path / "Maildir")
    rc_file = tmp_path / "mpoprc"
    mpop_rc(rc_file, srv, srv.port if starttls else srv.tls_port, starttls, auth, ca.cert, md)
    rc, out, _ = run([mpop, "-C", str(rc_file), "-d", "test"], tmp_path, {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert rc == 0, f"mpop ({'STLS' if starttls else 'POP3S'}, auth {auth}): exit {rc}\n{out[-3000:]}\n{srv.log()}"
    got = sorted(p.read_bytes() for p in (md / "new").iterdir())
    assert got == sorted(lf_form(m) for m in MESSAGES)
    mech = {"scram-sha-256": "SCRAM-SHA-256", "plain": "PLAIN", "user": "USER"}[auth]
    wait_log(srv, f"auth={mech}")
    # The transcript shows mpop really used TLS before authenticating.
    if starttls:
        assert "STLS" in out
    # With a trust file that does not hold our CA, mpop refuses the server.
    other = CertAuthority(tmp_path / "other-ca", "someone else")
    mpop_rc(rc_file, srv, srv.tls_port, False, auth, other.cert, md)
    rc, out, _ = run([mpop, "-C", str(rc_file), "test"], tmp_path, {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert rc != 0 and "certificate" in out.lower(), f"mpop accepted a certificate it must not trust: {out}"


@pytest.mark.parametrize("mode,auth", [("pop3s", "password"), ("stls", "cram-md5")])
def test_fetchmail_over_tls(buzon, ca, tmp_path, mode, auth):
    fetchmail = find_tool("fetchmail")
    # CRAM-MD5 needs a secret the server can compute the HMAC from: Dovecot's {CRAM-MD5} context.
    srv = seeded(tls_server(buzon, ca, auth={"mechanisms": ["CRAM-MD5", "PLAIN", "LOGIN"]},
                            users={"default_scheme": "CRAM-MD5" if auth == "cram-md5" else "SHA512-CRYPT"}))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text('#!/bin/sh\nexec cat > "$1/msg.$(date +%s%N).$$"\n')
    mda.chmod(0o755)
    rc_file = home / "fetchmailrc"
    port = srv.tls_port if mode == "pop3s" else srv.port
    tls = "ssl sslcertck" if mode == "pop3s" else "sslproto TLS1.2+ sslcertck"
    rc_file.write_text(
        "set no syslog\n"
        f"poll {HOST} service {port} protocol pop3 auth {auth} timeout 60\n"
        f'  user "{USER}" password "{srv.users[USER]}" is "root" here\n'
        # fetchmail matches DNS names only (not IP SANs): it checks for "localhost" here.
        f"  options fetchall nokeep no rewrite {tls} sslcertfile {ca.cert} sslcommonname localhost\n"
        f'  mda "{mda} {out_dir}"\n')
    rc_file.chmod(0o600)
    env = {"HOME": str(home), "FETCHMAILHOME": str(home), "PATH": "/usr/bin:/bin"}
    rc, out, _ = run([fetchmail, "-f", str(rc_file), "--nodetach", "--invisible", "-v"], home, env)
    assert rc == 0, f"fetchmail {mode}: exit {rc}\n{out[-4000:]}\n{srv.log()}"
    got = sorted(p.read_bytes() for p in out_dir.iterdir())
    assert got == sorted(lf_form(m) for m in MESSAGES)
    mech = "CRAM-MD5" if auth == "cram-md5" else ("PLAIN", "USER")
    wait_log(srv, f"user={USER} result=quit")
    logins = [l for l in srv.log().splitlines() if "pop3 session" in l and f"user={USER}" in l]
    assert logins and all('tls="TLSv1.' in l for l in logins), srv.log()
    assert any(f"auth={m}" in l for l in logins for m in ((mech,) if isinstance(mech, str) else mech)), srv.log()
    if mode == "stls":
        assert "STLS" in out, out[-3000:]


# --------------------------------------------------------------------------------------------
# STLS command injection (CVE-2011-0411 class)
# --------------------------------------------------------------------------------------------

def test_stls_drops_commands_pipelined_before_the_handshake(buzon, ca):
    srv = tls_server(buzon, ca)
    c = Pop3Tls(srv.port)
    try:
        # One packet: STLS and, after it, a plaintext CAPA an attacker could have injected.
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"STLS\r\nCAPA\r\n")
        assert c.status().startswith(b"+OK"), "STLS refused"
        c.starttls(ca.context())
        # Nothing may be answered for the injected CAPA inside the TLS session.
        c.sock.settimeout(1.5)
        with pytest.raises((socket.timeout, TimeoutError, ssl.SSLWantReadError)):
            extra = c.sock.recv(100)
            pytest.fail(f"the server answered a command sent before the handshake: {extra!r}")
        c.sock.settimeout(20)
        caps = c.capa()  # one CAPA of our own, answered once
        assert "STLS" not in caps, caps
        c.sock.settimeout(1.0)
        with pytest.raises((socket.timeout, TimeoutError, ssl.SSLWantReadError)):
            extra = c.sock.recv(100)
            pytest.fail(f"a second CAPA reply arrived: {extra!r}")
        c.sock.settimeout(20)
        c.login(USER, srv.users[USER])
        c.quit()
    finally:
        c.close()
    assert "dropped 6 octets sent after STLS" in srv.log(), srv.log()


# --------------------------------------------------------------------------------------------
# SNI, reload, protocol floor, handshake timeout
# --------------------------------------------------------------------------------------------

def test_sni_and_reload_on_sighup_keep_sessions(buzon, ca):
    sni_cert, sni_key = ca.issue("sni", "mail.example.net", "DNS:mail.example.net,DNS:*.example.org")
    srv = tls_server(buzon, ca, tls={"sni": [{"names": ["mail.example.net", "*.example.org"],
                                             "cert": str(sni_cert), "key": str(sni_key)}]})
    srv.deliver(USER, MESSAGES[0])

    def cn_for(name: str | None) -> str:
        ctx = ca.context(check_hostname=False)
        with socket.create_connection((HOST, srv.tls_port), timeout=20) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                return peer_cn(s)

    assert cn_for(None) == "buzon.test"
    assert cn_for("mail.example.net") == "mail.example.net"
    assert cn_for("pop.example.org") == "mail.example.net"
    assert cn_for("other.test") == "buzon.test"
    # Python verifies the SNI certificate for its name, end to end.
    with socket.create_connection((HOST, srv.tls_port), timeout=20) as raw:
        with ca.context().wrap_socket(raw, server_hostname="mail.example.net") as s:
            assert s.recv(100).startswith(b"+OK")

    # A session over the old certificate stays up across the reload.
    old = Pop3Tls(srv.tls_port, ca.context())
    old.login(USER, srv.users[USER])
    assert peer_cn(old.sock) == "buzon.test"
    new_cert, new_key = ca.issue("renewed", "renewed.test")
    srv.cert.write_bytes(new_cert.read_bytes())
    srv.key.write_bytes(new_key.read_bytes())
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while cn_for(None) != "renewed.test":
        assert time.monotonic() < deadline, f"new handshakes still get the old certificate\n{srv.log()}"
        time.sleep(0.1)
    st, body = old.multi("RETR 1")
    assert st.startswith(b"+OK") and body == wire_form(MESSAGES[0]), "the old session broke after reload"
    old.quit()
    old.close()

    # A broken key is refused at reload; the running certificate stays.
    srv.key.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused by tls" not in srv.log():
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.1)
    assert cn_for(None) == "renewed.test"
    assert srv.running()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_old_protocols_refused_and_min_version(buzon, ca):
    def handshake(srv, min_v, max_v, ciphers=None) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version, ctx.maximum_version = min_v, max_v
        if ciphers:
            ctx.set_ciphers(ciphers)
        try:
            with socket.create_connection((HOST, srv.tls_port), timeout=20) as raw:
                with ctx.wrap_socket(raw) as s:
                    return s.version()
        except ssl.SSLError as e:
            return f"error: {e.reason or e}"

    srv = tls_server(buzon, ca)
    v11 = handshake(srv, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")
    assert v11.startswith("error"), f"TLS 1.1 accepted: {v11}"
    # The server's refusal (a protocol_version alert), not a client-side "no protocols available".
    assert "PROTOCOL_VERSION" in v11.upper() or "UNSUPPORTED_PROTOCOL" in v11.upper(), v11
    assert handshake(srv, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(srv, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    srv.stop()

    srv13 = tls_server(buzon, ca, tls={"min_version": "TLSv1.3"})
    assert handshake(srv13, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2).startswith("error")
    assert handshake(srv13, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_silent_client_is_cut_off_by_the_handshake_timeout(buzon, ca):
    srv = tls_server(buzon, ca, tls={"handshake_timeout": 1})
    with socket.create_connection((HOST, srv.tls_port), timeout=20) as s:
        t0 = time.monotonic()
        assert s.recv(10) == b"", "the server sent something to a client that never said hello"
        took = time.monotonic() - t0
    assert 0.8 <= took < 5, f"closed after {took:.1f}s (handshake_timeout = 1)"
    wait_log(srv, "pop3s tls handshake failed")


def test_scram_sha256_plus_binds_to_tls_unique(buzon, ca):
    """SCRAM-SHA-256-PLUS through an independent Python client. Python's ssl module offers only
    tls-unique, which exists on TLS 1.2; the server checks it against its own view of the channel."""
    srv = tls_server(buzon, ca, auth={"mechanisms": ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]},
                     users={"default_scheme": "SCRAM-SHA-256"})
    ctx12 = ca.context(maximum_version=ssl.TLSVersion.TLSv1_2)
    c = Pop3Tls(srv.tls_port, ctx12)
    try:
        assert c.capa()["SASL"][0] == "SCRAM-SHA-256-PLUS"
        scram = ScramClient(USER, srv.users[USER], "tls-unique", c.sock.get_channel_binding("tls-unique"))
        st = c.auth("SCRAM-SHA-256-PLUS", scram.responder(), scram.first())
        assert st.startswith(b"+OK Logged in"), st
        assert scram.verified, "the server's signature did not verify"
    finally:
        c.close()
    # A binding from another connection (what a man in the middle would have) fails.
    c = Pop3Tls(srv.tls_port, ctx12)
    try:
        scram = ScramClient(USER, srv.users[USER], "tls-unique", b"\x00" * 12)
        st = c.auth("SCRAM-SHA-256-PLUS", scram.responder(), scram.first())
        assert st.startswith(b"-ERR [AUTH]"), st
    finally:
        c.close()
    # On the plain port -PLUS is not offered at all.
    c = Pop3Tls(srv.port)
    try:
        assert "SCRAM-SHA-256-PLUS" not in c.capa().get("SASL", [])
    finally:
        c.close()
