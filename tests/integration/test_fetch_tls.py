"""`buzon fetch` and `buzon send` over TLS: implicit TLS and STLS/STARTTLS against buzon's own
server and a private Dovecot, with certificate verification that fails closed (untrusted CA, wrong
name, wrong pin) and says how to fix it (ca_file or fingerprint)."""
from __future__ import annotations

import pathlib
import subprocess

import pytest

from conftest import BUZON_BIN, HOST, free_port, maildir_files

USER = "alice@example.com"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path):
    """A private CA, a server certificate for localhost/127.0.0.1 signed by it, and one for another name."""
    d = tmp_path / "pki"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=buzon test CA", cwd=d)
    for name, san in (("server", "DNS:localhost,IP:127.0.0.1"), ("wrong", "DNS:other.example")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d


def fingerprint(pem: pathlib.Path) -> str:
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(pem)],
                         capture_output=True, check=True).stdout.decode()
    return "sha256:" + out.strip().split("=", 1)[1]


def fetch(port, tmp_path, password, tls, *extra, host=HOST):
    pw = tmp_path / "pw"
    pw.write_text(password + "\n")
    return subprocess.run([str(BUZON_BIN), "fetch", "--host", host, "--port", str(port), "--user", USER,
                           "--password-file", str(pw), "--tls", tls, "--state-dir", str(tmp_path / "state"),
                           "--maildir", str(tmp_path / "Maildir"), "--no-progress", "--keep", "--all", *extra],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def out(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def tls_server(buzon, pki, cert="server"):
    tls_port = free_port()
    srv = buzon(config={"tls": {"cert": str(pki / f"{cert}.pem"), "key": str(pki / f"{cert}.key")},
                        "pop3": {"listen_tls": [f"{HOST}:{tls_port}"]}})
    srv.tls_port = tls_port
    srv.deliver(USER, b"Subject: over tls\n\nsecret body\n")
    return srv


def test_implicit_tls_and_stls_against_buzon(buzon, pki, tmp_path):
    srv = tls_server(buzon, pki)
    r = fetch(srv.tls_port, tmp_path, srv.users[USER], "implicit", "--ca-file", str(pki / "ca.pem"))
    assert r.returncode == 0, f"{out(r)}\n{srv.log()}"
    assert [p.read_bytes() for p in maildir_files(tmp_path / "Maildir")] == [b"Subject: over tls\n\nsecret body\n"]
    assert 'tls="TLSv1.' in srv.log(), "the server did not see a TLS session"
    r = fetch(srv.port, tmp_path, srv.users[USER], "stls", "--ca-file", str(pki / "ca.pem"))
    assert r.returncode == 0, f"{out(r)}\n{srv.log()}"
    # localhost resolves to the loopback and the certificate has DNS:localhost
    r = fetch(srv.tls_port, tmp_path, srv.users[USER], "implicit", "--ca-file", str(pki / "ca.pem"), host="localhost")
    assert r.returncode == 0, out(r)


def test_untrusted_certificate_fails_with_fix(buzon, pki, tmp_path):
    srv = tls_server(buzon, pki)
    r = fetch(srv.tls_port, tmp_path, srv.users[USER], "implicit")
    assert r.returncode == 2, out(r)
    fp = fingerprint(pki / "server.pem")
    assert "not trusted" in out(r) and "ca_file" in out(r) and fp in out(r), out(r)
    assert not maildir_files(tmp_path / "Maildir")
    # pinning the fingerprint the error showed works without the CA
    r = fetch(srv.tls_port, tmp_path, srv.users[USER], "implicit", "--fingerprint", fp)
    assert r.returncode == 0, out(r)
    # a wrong pin fails even with the right CA
    wrong = "sha256:" + ":".join(["00"] * 32)
    r = fetch(srv.tls_port, tmp_path, srv.users[USER], "implicit", "--fingerprint", wrong, "--ca-file", str(pki / "ca.pem"))
    assert r.returncode == 2 and "pinned" in out(r), out(r)


def test_wrong_name_fails(buzon, pki, tmp_path):
    srv = tls_server(buzon, pki, cert="wrong")
    r = fetch(srv.tls_port, tmp_path, srv.users[USER], "implicit", "--ca-file", str(pki / "ca.pem"))
    assert r.returncode == 2, out(r)
    assert "not valid for the name" in out(r), out(r)


def test_stls_against_dovecot(dovecot, pki, tmp_path):
    dv = dovecot({USER: "dove-pw"})
    tls_port = free_port()
    conf = dv.conf.read_text()
    conf = conf.replace("ssl = no", f"ssl = required\nssl_cert = <{pki / 'server.pem'}\nssl_key = <{pki / 'server.key'}")
    conf = conf.replace("disable_plaintext_auth = no", "disable_plaintext_auth = yes")
    conf = conf.replace("  chroot =\n}", f"  inet_listener pop3s {{\n    address = {HOST}\n    port = {tls_port}\n    ssl = yes\n  }}\n  chroot =\n}}", 1)
    dv.conf.write_text(conf)
    dv.deliver(USER, b"Subject: dovecot tls\n\nbody\n")
    dv.start()
    for port, mode in ((dv.port, "stls"), (tls_port, "implicit")):
        r = fetch(port, tmp_path, "dove-pw", mode, "--ca-file", str(pki / "ca.pem"))
        assert r.returncode == 0, f"{mode}: {out(r)}\n{dv.log()}"
    assert [p.read_bytes() for p in maildir_files(tmp_path / "Maildir")] == [b"Subject: dovecot tls\n\nbody\n"] * 2


def test_send_starttls_and_implicit_to_buzon_smtp(buzon, pki, tmp_path):
    smtp_port = free_port()
    srv = buzon(config={"tls": {"cert": str(pki / "server.pem"), "key": str(pki / "server.key")},
                        "smtp": {"listen": [f"{HOST}:{smtp_port}"], "local_domains": ["example.com"]}})
    r = subprocess.run([str(BUZON_BIN), "send", "--host", HOST, "--port", str(smtp_port), "--tls", "starttls",
                        "--ca-file", str(pki / "ca.pem"), "-i", "-f", "ana@example.org", USER],
                       input=b"Subject: starttls\n\nsent over STARTTLS\n", capture_output=True, timeout=60)
    assert r.returncode == 0, f"{r.stderr.decode()}\n{srv.log()}"
    r = subprocess.run([str(BUZON_BIN), "send", "--host", HOST, "--port", str(smtp_port), "--tls", "starttls",
                        "-i", "-f", "ana@example.org", USER], input=b"Subject: x\n\nx\n", capture_output=True, timeout=60)
    assert r.returncode == 75 and b"not trusted" in r.stderr, r.stderr.decode()
    files = maildir_files(srv.maildir(USER))
    assert len(files) == 1, "exactly the STARTTLS message was delivered (the refused one was not)"
    assert b"sent over STARTTLS" in files[0].read_bytes()
