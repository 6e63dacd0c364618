"""`buzon send` (issue 5) against buzon's own submission service (issue 8): STARTTLS on the
submission port and implicit TLS, AUTH with the password from a file, the certificate checked
against the test CA; the message reaches the recipient's Maildir (read back with poplib), the
sender rules of submission are reported with the sendmail exit codes, and a wrong password fails
without delivering anything.
"""
from __future__ import annotations

import subprocess

from conftest import BUZON_BIN, HOST
from smtp_support import pop_all
from test_submission import ALICE, BOB, PW, submission_server


def send(srv, tmp_path, port, tls, *args, password=None, body=b"Subject: via buzon send\n\nhello bob\n.dot\n"):
    pw = tmp_path / "pw"
    pw.write_text((password or PW[ALICE]) + "\n")
    pw.chmod(0o600)
    return subprocess.run([str(BUZON_BIN), "send", "--host", HOST, "--port", str(port), "--tls", tls,
                           "--ca-file", str(srv.ca.cert), "--user", ALICE, "--password-file", str(pw),
                           *args], input=body, capture_output=True, timeout=60, stdin=None)


def test_buzon_send_to_submission_starttls_and_implicit_tls(buzon, tmp_path):
    srv = submission_server(buzon, tmp_path)
    for port, tls in ((srv.sub_port, "starttls"), (srv.subs_port, "implicit")):
        r = send(srv, tmp_path, port, tls, "-i", "-f", ALICE, BOB,
                 body=f"From: {ALICE}\nSubject: {tls}\n\nhello bob\n.dot\n".encode())
        assert r.returncode == 0, f"{tls}: {r.stderr.decode()}\n{srv.log()}"
    msgs = pop_all(srv, BOB)
    assert len(msgs) == 2
    for m, tls in zip(sorted(msgs, key=lambda m: b"implicit" in m), ("starttls", "implicit")):
        assert f"Subject: {tls}".encode() in m
        assert m.endswith(b"\r\nhello bob\r\n.dot\r\n"), m[-60:]
        assert b"\r\nMessage-ID: <" in m and b"\r\nDate: " in m, "submission added Message-ID and Date"
        assert b"with ESMTPSA" in m or b"with ESMTPS" in m, "the Received: field names the TLS submission"


def test_buzon_send_refusals_and_exit_codes(buzon, tmp_path):
    srv = submission_server(buzon, tmp_path)
    # An envelope sender that is not alice's: 553 5.7.1 from the server, EX_NOPERM/EX_DATAERR-style
    # failure from buzon send, nothing delivered.
    r = send(srv, tmp_path, srv.sub_port, "starttls", "-i", "-f", "ceo@example.com", BOB)
    assert r.returncode != 0
    assert b"553" in r.stderr or b"5.7.1" in r.stderr, r.stderr.decode()
    # A wrong password: an authentication error (EX_NOPERM = 77), nothing delivered.
    r = send(srv, tmp_path, srv.sub_port, "starttls", "-i", "-f", ALICE, BOB, password="wrong")
    assert r.returncode == 77, r.stderr.decode()
    assert pop_all(srv, BOB) == []
