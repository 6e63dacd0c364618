"""`buzon dkim keygen` and `buzon dkim sign` checked by an independent verifier (dkimpy), with the
public key fetched over DNS from a private dnsmasq (dns_support.DnsServer, also checked here with
dnspython: MX order, null MX, A/AAAA, NXDOMAIN, NODATA).
"""
from __future__ import annotations

import os
import re
import stat
import subprocess

import dkim
import dns.exception
import dns.resolver
import pytest

from conftest import BUZON_BIN
from dns_support import DnsServer

pytestmark = pytest.mark.skipif(not DnsServer.available(), reason="dnsmasq is not installed")

MESSAGE = (b"From: Alice <alice@example.org>\r\n"
           b"To: Bob <bob@b.test>\r\n"
           b"Cc: carol@c.test\r\n"
           b"Subject: DKIM   test\r\n"
           b"\twith a folded subject\r\n"
           b"Date: Fri, 27 Nov 2026 04:00:00 +0000\r\n"
           b"Message-ID: <dkim-test-1@example.org>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"X-Unsigned: not in h=\r\n"
           b"\r\n"
           b"Hello Bob,  \r\n"
           b"\r\n"
           b"this\tline has  odd spacing.\r\n"
           b"\r\n\r\n")

RECORD_LINE = re.compile(r'^(\S+)\._domainkey\.(\S+)\. IN TXT((?: "[^"]{1,255}")+)$')


def run(*args, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(BUZON_BIN), *args], input=stdin, capture_output=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def keygen(tmp_path, algorithm: str, selector: str) -> tuple[str, str]:
    """(key file, TXT value) from `buzon dkim keygen`, after checking the printed record line."""
    key = tmp_path / f"{selector}.pem"
    out = run("dkim", "keygen", "--algorithm", algorithm, "--domain", "example.org", "--selector", selector,
              "--out", str(key)).stdout.decode()
    lines = out.splitlines()
    assert len(lines) == 1, out
    m = RECORD_LINE.match(lines[0])
    assert m, lines[0]
    assert m.group(1) == selector and m.group(2) == "example.org"
    value = "".join(re.findall(r'"([^"]*)"', m.group(3)))
    tags = dkim.util.parse_tag_value(value.encode())
    assert tags[b"v"] == b"DKIM1"
    assert tags[b"k"] == (b"rsa" if algorithm == "rsa" else b"ed25519")
    assert len(tags[b"p"]) > 40
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    return str(key), value


def dnsfunc_for(server: DnsServer):
    """A dkimpy dnsfunc that asks the private DNS server (dnspython), never the system resolver."""
    def dnsfunc(name, timeout=5):
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = server.port
        r.lifetime = timeout
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = r.resolve(name, "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(next(iter(answer)).strings)
    return dnsfunc


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_keygen_sign_verify(tmp_path, algorithm):
    selector = f"sel-{algorithm}"
    key, value = keygen(tmp_path, algorithm, selector)
    with DnsServer({f"{selector}._domainkey.example.org": {"TXT": value}}) as server:
        signed = run("dkim", "sign", "--key", key, "--domain", "example.org", "--selector", selector,
                     stdin=MESSAGE).stdout
        assert signed.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if algorithm == "rsa" else b"ed25519"))
        assert signed.endswith(MESSAGE)
        field = signed[:len(signed) - len(MESSAGE)]
        assert all(len(line) <= 80 for line in field.split(b"\r\n")), field
        h = dkim.util.parse_tag_value(re.sub(rb"\r\n\s", b" ", field.split(b":", 1)[1]).strip())[b"h"]
        assert re.sub(rb"\s", b"", h) == b"from:to:cc:subject:date:message-id:mime-version:content-type:from"
        assert dkim.verify(signed, dnsfunc=dnsfunc_for(server))

        tampered = signed.replace(b"odd spacing", b"odd spacinG")
        assert not dkim.verify(tampered, dnsfunc=dnsfunc_for(server))
        whitespace_only = signed.replace(b"odd spacing", b"odd   spacing")  # relaxed: still valid
        assert dkim.verify(whitespace_only, dnsfunc=dnsfunc_for(server))
        new_from = signed.replace(b"X-Unsigned", b"From: mallory@evil.test\r\nX-Unsigned")
        assert not dkim.verify(new_from, dnsfunc=dnsfunc_for(server))  # From is over-signed

        # A file argument, with LF line ends kept as they are.
        path = tmp_path / "msg.eml"
        path.write_bytes(MESSAGE.replace(b"\r\n", b"\n"))
        signed_lf = run("dkim", "sign", "--key", key, "--domain", "example.org", "--selector", selector,
                        str(path)).stdout
        assert b"\r" not in signed_lf
        assert dkim.verify(signed_lf, dnsfunc=dnsfunc_for(server))


def test_keygen_refuses_to_overwrite_and_sign_reports_bad_keys(tmp_path):
    key, _ = keygen(tmp_path, "ed25519", "once")
    before = open(key, "rb").read()
    p = run("dkim", "keygen", "--domain", "example.org", "--selector", "once", "--out", key, check=False)
    assert p.returncode != 0 and b"exists" in p.stderr
    assert open(key, "rb").read() == before
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    p = run("dkim", "sign", "--key", str(bad), "--domain", "example.org", "--selector", "s", stdin=MESSAGE,
            check=False)
    assert p.returncode != 0 and b"not a PEM private key" in p.stderr and p.stdout == b""
    p = run("dkim", "sign", "--key", key, "--domain", "example.org", "--selector", "s",
            stdin=b"To: x@y.test\r\n\r\nno from\r\n", check=False)
    assert p.returncode != 0 and b"no From" in p.stderr


def test_dns_support_serves_what_the_relay_needs():
    records = {
        "b.test": {"MX": [(20, "mx2.b.test"), (10, "mx1.b.test")]},
        "mx1.b.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
        "null.test": {"MX": (0, ".")},
        "imp.test": {"A": "192.0.2.9"},
    }
    with DnsServer(records) as server:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = server.port
        r.lifetime = 5
        assert sorted((x.preference, x.exchange.to_text()) for x in r.resolve("b.test", "MX")) == \
            [(10, "mx1.b.test."), (20, "mx2.b.test.")]
        assert [x.exchange.to_text() for x in r.resolve("null.test", "MX")] == ["."]
        assert [x.address for x in r.resolve("mx1.b.test", "A")] == ["127.0.0.1"]
        assert [x.address for x in r.resolve("mx1.b.test", "AAAA")] == ["::1"]
        with pytest.raises(dns.resolver.NoAnswer):
            r.resolve("imp.test", "MX")  # NODATA: the implicit MX case
        with pytest.raises(dns.resolver.NXDOMAIN):
            r.resolve("nx.test", "MX")
        pid = server.proc.pid
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
