"""Message submission (RFC 6409 with STARTTLS, RFC 8314 implicit TLS) against the real buzon binary:
smtplib and swaks authenticate (AUTH PLAIN, LOGIN; RFC 4954), the sender rules refuse what is not
the user's, local recipients land in the Maildir (read back with poplib) with Message-ID: and Date:
added, remote recipients land in the outbound spool, and a configured [[dkim.key]] signs the message
so that dkimpy verifies it.

The relay is kept away from the network: [dns] points at a closed loopback port, so a queued message
stays in the spool (temporary failure) and no query leaves the machine.
"""
from __future__ import annotations

import email.utils
import re
import smtplib
import subprocess
import urllib.request

import dkim
import pytest

from conftest import BUZON_BIN, HOST, free_port, write_toml
from smtp_support import pop_all, wait_smtp
from tlsutil import CertAuthority, tls_server

ALICE, BOB = "alice@example.com", "bob@example.com"
PW = {ALICE: "alice-Pw-1", BOB: "bob-Pw-2"}
MSG = (b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: submitted\r\n\r\n"
       b"Hello Bob,\r\n.a dotted line\r\nbye\r\n")


def submission_server(buzon, tmp_path, dkim_key: str | None = None, **submission):
    ca = CertAuthority(tmp_path / "ca")
    port, tls_port = free_port(), free_port()
    sections = {
        "smtp": {"local_domains": ["example.com"]},
        "submission": {"listen": [f"{HOST}:{port}"], "listen_tls": [f"{HOST}:{tls_port}"], **submission},
        "dns": {"servers": ["127.0.0.1:9"], "timeout": 1, "tries": 1},
    }
    if dkim_key:
        sections["dkim"] = {"key": [{"domain": "example.com", "selector": "s1", "key": dkim_key}]}
    srv = tls_server(buzon, ca, accounts=dict(PW), **sections)
    srv.ca, srv.sub_port, srv.subs_port = ca, port, tls_port
    wait_smtp(port)
    return srv


def starttls_session(srv) -> smtplib.SMTP:
    s = smtplib.SMTP(HOST, srv.sub_port, timeout=20)
    s.ehlo("laptop.example")
    s.starttls(context=srv.ca.context())
    s.ehlo("laptop.example")
    return s


def queue_ids(srv) -> list[str]:
    env = srv.root / "queue" / "env"
    return sorted(p.name for p in env.iterdir()) if env.exists() else []


def test_starttls_auth_plain_and_login_deliver_locally_with_date_and_message_id(buzon, tmp_path):
    srv = submission_server(buzon, tmp_path)
    with smtplib.SMTP(HOST, srv.sub_port, timeout=20) as s:
        s.ehlo("laptop.example")
        assert s.has_extn("starttls")
        # No password mechanism before TLS (require_tls, even from loopback), and no MAIL.
        assert "PLAIN" not in s.esmtp_features.get("auth", "")
        assert s.docmd("AUTH", "PLAIN " + "AGFsaWNlQGV4YW1wbGUuY29tAHg=")[0] == 538
        assert s.docmd("MAIL", "FROM:<alice@example.com>")[0] == 530
        s.starttls(context=srv.ca.context())
        s.ehlo("laptop.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.user, s.password = ALICE, PW[ALICE]
        code, _ = s.auth("PLAIN", s.auth_plain)
        assert code == 235
        assert s.sendmail(ALICE, [BOB], MSG) == {}
    with starttls_session(srv) as s:
        s.user, s.password = ALICE, PW[ALICE]
        assert s.auth("LOGIN", s.auth_login, initial_response_ok=False)[0] == 235
        assert s.sendmail(ALICE, [BOB], b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <mine@laptop>\r\n" + MSG) == {}
    msgs = pop_all(srv, BOB)
    assert len(msgs) == 2
    first = msgs[0]
    assert b"\r\n\tby buzon.test (buzon) with ESMTPSA id " in first, first[:400]
    assert b"Received: from laptop.example ([127.0.0.1])" in first
    head, _, body = first.partition(b"\r\n\r\n")
    assert body == b"Hello Bob,\r\n.a dotted line\r\nbye\r\n"
    date = re.search(rb"\r\nDate: ([^\r\n]+)\r\n", head)
    assert date and email.utils.parsedate_to_datetime(date.group(1).decode()) is not None, head
    assert re.search(rb"\r\nMessage-ID: <[0-9a-f]+\.[0-9]+@buzon\.test>(\r\n|$)", head), head
    second = msgs[1].partition(b"\r\n\r\n")[0]
    assert second.count(b"Date: ") == 1 and second.count(b"Message-ID: ") == 1
    assert b"Message-ID: <mine@laptop>" in second
    assert queue_ids(srv) == []  # local only: delivered directly, nothing queued


def test_implicit_tls_and_starttls_with_swaks(buzon, tmp_path):
    srv = submission_server(buzon, tmp_path, hide_client=True)
    base = ["swaks", "--server", HOST, "--from", ALICE, "--to", BOB, "--auth-user", ALICE, "--auth-password",
            PW[ALICE], "--helo", "swaks.example", "--header", "Subject: swaks", "--body", "via swaks"]
    for extra in (["--port", str(srv.subs_port), "--tls-on-connect", "--auth", "LOGIN"],
                  ["--port", str(srv.sub_port), "--tls", "--auth", "PLAIN"]):
        r = subprocess.run(base + extra, capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0, out + r.stderr.decode(errors="replace")
        assert "235 2.7.0 Authentication successful" in out, out
    msgs = pop_all(srv, BOB)
    assert len(msgs) == 2
    for m in msgs:
        head = m.partition(b"\r\n\r\n")[0]
        assert b"Received: by buzon.test (buzon) with ESMTPSA id " in head, head
        assert b"127.0.0.1" not in head and b"swaks.example" not in head, head  # hide_client


def test_refusals_no_auth_wrong_credentials_wrong_sender_wrong_from(buzon, tmp_path):
    srv = submission_server(buzon, tmp_path)
    with starttls_session(srv) as s:
        assert s.docmd("MAIL", "FROM:<alice@example.com>")[0] == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "wrong password")
        assert e.value.smtp_code == 535
    with starttls_session(srv) as s:
        s.login(ALICE, PW[ALICE])
        code, msg = s.docmd("MAIL", "FROM:<bob@example.com>")
        assert (code, msg) == (553, b"5.7.1 Error: sender address not owned by the authenticated user")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(ALICE, [BOB], MSG.replace(b"From: Alice <alice@example.com>", b"From: Boss <bob@example.com>"))
        assert e.value.smtp_code == 550 and b"From: address <bob@example.com>" in e.value.smtp_error
    assert pop_all(srv, BOB) == []
    # Implicit TLS (port 465) without AUTH: 530 as well.
    ctx = srv.ca.context()
    with smtplib.SMTP_SSL(HOST, srv.subs_port, timeout=20, context=ctx) as s:
        s.ehlo("x")
        assert s.docmd("MAIL", "FROM:<alice@example.com>")[0] == 530


def test_remote_recipient_goes_to_the_spool_with_every_recipient(buzon, tmp_path):
    srv = submission_server(buzon, tmp_path)
    with starttls_session(srv) as s:
        s.login(ALICE, PW[ALICE])
        code, _ = s.mail(ALICE)
        assert code == 250
        assert s.rcpt("friend@remote.example")[0] == 250
        assert s.rcpt(BOB)[0] == 250
        code, reply = s.data(MSG)
        assert code == 250, reply
    m = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
    assert m, reply
    qid = m.group(1).decode()
    msg_file = srv.root / "queue" / "msg" / qid
    env_file = srv.root / "queue" / "env" / qid
    assert msg_file.exists() and env_file.exists(), sorted(p.name for p in (srv.root / "queue").rglob("*"))
    env = env_file.read_text(errors="replace")
    assert "friend@remote.example" in env and BOB in env  # the local one is the relay's to deliver
    body = msg_file.read_bytes()
    assert body.startswith(b"Received: from laptop.example ([127.0.0.1])")
    assert b"\r\nMessage-ID: <" in body and b"\r\nDate: " in body
    assert body.endswith(b"\r\n\r\nHello Bob,\r\n.a dotted line\r\nbye\r\n")


def test_dkim_signature_verifies(buzon, tmp_path):
    key = tmp_path / "s1.pem"
    out = subprocess.run([str(BUZON_BIN), "dkim", "keygen", "--algorithm", "rsa", "--domain", "example.com",
                          "--selector", "s1", "--out", str(key)], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    record = "".join(re.findall(r'"([^"]*)"', out.stdout.decode())).encode()
    srv = submission_server(buzon, tmp_path, dkim_key=str(key))
    with starttls_session(srv) as s:
        s.login(ALICE, PW[ALICE])
        assert s.sendmail(ALICE, [BOB], MSG) == {}
    [m] = pop_all(srv, BOB)
    assert b"\r\nDKIM-Signature: v=1; a=rsa-sha256" in m, m[:600]

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return record if name.rstrip(".") == "s1._domainkey.example.com" else None

    assert dkim.verify(m, dnsfunc=dnsfunc), m[:800]
    assert not dkim.verify(m.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=dnsfunc)


def test_bad_dkim_key_fails_start_with_file_and_line(buzon, tmp_path):
    ca = CertAuthority(tmp_path / "ca")
    bad = tmp_path / "missing.pem"
    port = free_port()
    cert, keyfile = ca.issue("server", "buzon.test")
    server = buzon(users=dict(PW), start=False, config={
        "tls": {"cert": str(cert), "key": str(keyfile)},
        "smtp": {"local_domains": ["example.com"]},
        "submission": {"listen": [f"{HOST}:{port}"]},
        "dkim": {"key": [{"domain": "example.com", "selector": "s1", "key": str(bad)}]},
    })
    r = subprocess.run([str(BUZON_BIN), "--config", str(server.cfg_path), "serve"], capture_output=True, timeout=30,
                       cwd=server.root, stdin=subprocess.DEVNULL)
    err = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, err
    assert re.search(r"buzon\.toml:\d+: cannot load the DKIM key .*missing\.pem", err), err
    doctor = server.run_cli("doctor")
    text = doctor.stdout.decode(errors="replace")
    assert doctor.returncode != 0, text
    assert re.search(r"buzon\.toml:\d+: cannot load the DKIM key .*missing\.pem", text), text
    assert f"submission: listen {HOST}:{port} (STARTTLS)" in text, text


def test_metrics_count_logins_failures_refusals_and_queued(buzon, tmp_path):
    mport = free_port()
    srv = submission_server(buzon, tmp_path)
    srv.stop()
    srv.config["metrics"] = {"enabled": True, "listen": f"{HOST}:{mport}"}
    write_toml(srv.cfg_path, srv.config)
    srv.start()
    wait_smtp(srv.sub_port)
    with starttls_session(srv) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(ALICE, "wrong")  # smtplib tries PLAIN, then LOGIN: two failures
    with starttls_session(srv) as s:
        s.login(ALICE, PW[ALICE])
        assert s.docmd("MAIL", "FROM:<bob@example.com>")[0] == 553
        assert s.sendmail(ALICE, ["friend@remote.example"], MSG) == {}
    text = urllib.request.urlopen(f"http://{HOST}:{mport}/metrics", timeout=10).read().decode()
    for name, value in (("buzon_smtp_logins_total", 1), ("buzon_smtp_auth_failures_total", 2),
                        ("buzon_smtp_sender_refused_total", 1), ("buzon_smtp_queued_total", 1)):
        assert f'{name}{{protocol="submission"}} {value}' in text, (name, [l for l in text.splitlines() if name in l])
