"""Address policy against a running buzon (issue 10): plus-addressing with the tag kept in
Delivered-To, postmaster@ and abuse@ of every local domain, domain aliases, virtual aliases and a
catch-all from the aliases file, SIGHUP reload of the aliases, and the start-up refusals (alias
cycle with its chain, forwarding without an outbound queue) with file:line. Forwarding, aliases
with several targets and the SIGHUP of the address rules: test_forwarding.py."""
from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import time

from conftest import BUZON_BIN, HOST, IO_TIMEOUT, START_TIMEOUT
from smtp_support import pop_all, smtp_server, trace_fields, wait_smtp

USERS = {"alice@example.com": "alice-pw-1", "bob@example.com": "bob-pw-22", "postmaster@example.com": "pm-pw-333"}
DOMAINS = ["example.com", "example.net", "example.org"]


def policy_server(buzon, aliases: str | None = None, start: bool = True, **aliases_section):
    section = dict(aliases_section)
    if aliases is not None:
        section["file"] = "aliases"
    sections = {"aliases": section} if section else {}
    srv = smtp_server(buzon, users=USERS, smtp={"local_domains": DOMAINS}, start=False, **sections)
    if aliases is not None:
        (srv.root / "aliases").write_text(aliases)
    if start:
        srv.start()
        wait_smtp(srv.smtp_port)
    return srv


def send(srv, rcpt: str, body: str = "Subject: policy\r\n\r\nhello\r\n") -> None:
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=IO_TIMEOUT) as s:
        s.sendmail("sender@remote.test", [rcpt], body)


def delivered_to(srv, user: str) -> list[bytes]:
    out = []
    for m in pop_all(srv, user):
        t = trace_fields(m)
        out.append(t.split(b"Delivered-To: ", 1)[1].split(b"\r\n", 1)[0])
    return out


def refused(srv, rcpt: str) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=IO_TIMEOUT) as s:
        s.ehlo()
        s.mail("sender@remote.test")
        return s.rcpt(rcpt)


def test_plus_address_domain_alias_and_case(buzon):
    srv = policy_server(buzon, domains={"\"example.net\"": "example.com"})  # quoted: a dotted TOML key otherwise
    send(srv, "alice+lists@example.com")
    send(srv, "Alice@EXAMPLE.NET")
    send(srv, "bob+x@example.net")
    assert delivered_to(srv, "alice@example.com") == [b"alice+lists@example.com", b"Alice@EXAMPLE.NET"]
    assert delivered_to(srv, "bob@example.com") == [b"bob+x@example.net"]
    code, _ = refused(srv, "nobody+tag@example.com")
    assert code == 550


def test_plus_addressing_can_be_turned_off(buzon):
    srv = smtp_server(buzon, users=USERS, smtp={"local_domains": DOMAINS, "recipient_delimiter": ""})
    code, _ = refused(srv, "alice+lists@example.com")
    assert code == 550
    send(srv, "alice@example.com")
    assert delivered_to(srv, "alice@example.com") == [b"alice@example.com"]


def test_postmaster_and_abuse_of_every_domain(buzon):
    srv = policy_server(buzon)
    send(srv, "postmaster@example.org")
    send(srv, "abuse@example.net")
    send(srv, "Postmaster")  # RFC 5321 §4.1.1.3: no domain
    assert delivered_to(srv, "postmaster@example.com") == [b"postmaster@example.org", b"abuse@example.net",
                                                            b"postmaster@example.com"]


def test_postmaster_to_a_configured_mailbox(buzon):
    srv = policy_server(buzon, postmaster="bob@example.com")
    send(srv, "abuse@example.org")
    assert delivered_to(srv, "bob@example.com") == [b"abuse@example.org"]
    assert pop_all(srv, "postmaster@example.com") == []


def test_aliases_catch_all_and_reload(buzon):
    srv = policy_server(buzon, aliases="# team\nsales@example.com: alice@example.com\n"
                                       "info@example.org: sales@example.com  # nested\n"
                                       "@example.org: bob@example.com\n")
    send(srv, "sales@example.com")
    send(srv, "Info+web@example.org")
    send(srv, "whoever@example.org")
    assert delivered_to(srv, "alice@example.com") == [b"alice@example.com", b"alice@example.com"]
    assert delivered_to(srv, "bob@example.com") == [b"bob@example.com"]
    assert refused(srv, "whoever@example.com")[0] == 550  # no catch-all there
    # SIGHUP: a new alias; then a broken file keeps the old table.
    (srv.root / "aliases").write_text("sales@example.com: bob@example.com\n")
    os.kill(srv.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    send(srv, "sales@example.com")
    assert len(pop_all(srv, "bob@example.com")) == 2
    (srv.root / "aliases").write_text("a@example.com: b@example.com\nb@example.com: a@example.com\n")
    os.kill(srv.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "alias loop" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "alias loop: a@example.com -> b@example.com -> a@example.com" in srv.log()
    send(srv, "sales@example.com")
    assert len(pop_all(srv, "bob@example.com")) == 3


def start_fails(srv) -> str:
    p = subprocess.run([str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=START_TIMEOUT, cwd=srv.root)
    assert p.returncode != 0, "buzon started with a bad aliases file"
    return p.stderr.decode(errors="replace")


def test_alias_cycle_is_refused_at_start_up_with_the_chain(buzon):
    srv = policy_server(buzon, aliases="\na@example.com: b@example.com\nb@example.com: c@example.com\n"
                                       "c@example.com: a@example.com\n", start=False)
    err = start_fails(srv)
    assert "aliases:2: alias loop: a@example.com -> b@example.com -> c@example.com -> a@example.com" in err, err
    doctor = srv.run_cli("doctor")
    assert doctor.returncode == 1 and b"aliases:2: alias loop: a@example.com -> b@example.com" in doctor.stdout, doctor


def test_forwarding_without_a_queue_is_refused_at_start_up(buzon):
    # Forwarding itself is tested in test_forwarding.py; without [queue] it has no way out.
    srv = policy_server(buzon, aliases="fwd@example.com: someone@remote.test\n", start=False)
    err = start_fails(srv)
    assert "aliases:1: 'fwd@example.com' forwards to the remote address someone@remote.test, but this server " \
           "has no outbound queue" in err, err
    (srv.root / "aliases").write_text("x\n")
    assert "aliases:1: no ':' after the alias" in start_fails(srv)


def test_alias_cli_add_list_del_and_reload(buzon):
    srv = policy_server(buzon, aliases="# site aliases\n")
    r = srv.run_cli("alias", "add", "Sales@Example.com", "alice@example.com")
    assert r.returncode == 0, r.stderr
    assert b"reload the server" in r.stderr
    r = srv.run_cli("alias", "add", "sales@example.com", "bob@example.com")
    assert r.returncode == 1 and b"already exists" in r.stderr
    assert srv.run_cli("alias", "add", "a@example.com", "b@example.com").returncode == 0
    r = srv.run_cli("alias", "add", "b@example.com", "a@example.com")
    assert r.returncode == 1 and b"alias loop: " in r.stderr, r.stderr
    r = srv.run_cli("alias", "add", "team@example.com", "alice@example.com", "bob@example.com")
    assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr  # several targets are fine
    r = srv.run_cli("alias", "add", "far@example.com", "someone@remote.test")  # no [queue] here
    assert r.returncode == 0 and b"warning: the server will refuse this file" in r.stderr, r.stderr
    assert srv.run_cli("alias", "del", "far@example.com").returncode == 0
    assert srv.run_cli("alias", "del", "team@example.com").returncode == 0
    r = srv.run_cli("alias", "list")
    assert r.stdout == b"a@example.com: b@example.com\nsales@example.com: alice@example.com\n", r.stdout
    assert (srv.root / "aliases").read_text().startswith("# site aliases\n")
    os.kill(srv.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    send(srv, "sales@example.com")
    assert delivered_to(srv, "alice@example.com") == [b"alice@example.com"]
    r = srv.run_cli("alias", "del", "nosuch@example.com")
    assert r.returncode == 1 and b"is not an alias" in r.stderr


def test_quota_fills_a_mailbox_to_its_limit(buzon):
    srv = policy_server(buzon)
    r = srv.run_cli("quota", "alice@example.com", "--bytes", "2k")
    assert r.returncode == 0, r.stderr
    assert b"quota: 2048 bytes (0%), no message limit" in r.stdout, r.stdout
    body = "Subject: fill\r\n\r\n" + "x" * 300 + "\r\n"
    accepted = 0
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=IO_TIMEOUT) as s:
        for _ in range(20):
            try:
                s.sendmail("sender@remote.test", ["alice@example.com"], body)
                accepted += 1
            except smtplib.SMTPRecipientsRefused as e:  # (not expected: refused at RCPT)
                raise AssertionError(e.recipients)
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 452 and e.smtp_error.startswith(b"4.2.2"), (e.smtp_code, e.smtp_error)
                break
        else:
            raise AssertionError("the mailbox never filled up")
    assert 3 <= accepted <= 5, accepted  # each copy is about 450 octets with the trace fields
    maildirsize = (srv.root / "mail/example.com/alice/Maildir/maildirsize").read_text()
    assert maildirsize.startswith("2048S\n") and maildirsize.count("\n") == accepted + 2, maildirsize  # limits, "0 0", one line per copy
    show = srv.run_cli("user", "show", "alice@example.com")
    assert f"in {accepted} messages".encode() in show.stdout and b"quota: 2048 bytes" in show.stdout, show.stdout
    # POP3 deletions free the quota: one more message fits.
    import poplib
    p = poplib.POP3(HOST, srv.port, timeout=IO_TIMEOUT)
    p.user("alice@example.com")
    p.pass_(USERS["alice@example.com"])
    p.dele(1)
    p.quit()
    send(srv, "alice@example.com", body)
    r = srv.run_cli("quota", "alice@example.com", "--bytes", "0")
    assert r.returncode == 0 and b"quota: none" in r.stdout, r.stdout
    assert srv.run_cli("quota", "alice@example.com", "--bytes", "lots").returncode == 1


def test_config_default_quota(buzon):
    srv = smtp_server(buzon, users=USERS, smtp={"local_domains": DOMAINS},
                      quota={"default_bytes": 1200})
    body = "Subject: fill\r\n\r\n" + "x" * 300 + "\r\n"
    codes = []
    for _ in range(5):
        try:
            send(srv, "bob@example.com", body)
            codes.append(250)
        except smtplib.SMTPDataError as e:  # after the data
            codes.append(e.smtp_code)
        except smtplib.SMTPRecipientsRefused as e:  # at RCPT, from smtplib's SIZE=
            codes.append(e.recipients["bob@example.com"][0])
    # The first delivery creates the Maildir, the next RCPT gives it the default quota: two copies
    # of about 540 octets fit in 1200, the third does not.
    assert codes == [250, 250, 452, 452, 452], codes
    r = srv.run_cli("quota", "bob@example.com")
    assert b"quota: 1200 bytes" in r.stdout, r.stdout
    # A mailbox's own quota is kept: raising it lets mail in again.
    assert srv.run_cli("quota", "bob@example.com", "--bytes", "10k").returncode == 0
    send(srv, "bob@example.com", body)


def test_passwd_quota_rule_is_the_users_own(buzon):
    srv = policy_server(buzon, start=False)
    with open(srv.passwd, "a") as fh:
        fh.write("carol@example.com:{PLAIN}carol-pw-4444::::::userdb_quota_rule=*:storage=1k\n")
    srv.start()
    wait_smtp(srv.smtp_port)
    body = "Subject: fill\r\n\r\n" + "x" * 300 + "\r\n"
    send(srv, "carol@example.com", body)  # creates the Maildir; the next RCPT writes its maildirsize
    try:
        send(srv, "carol@example.com", body)
        raise AssertionError("a second copy fit in 1k")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 452, e
    # The passwd-file is authoritative: a limit set by hand is put back at the next RCPT.
    assert srv.run_cli("quota", "carol@example.com", "--bytes", "10k").returncode == 0
    try:
        send(srv, "carol@example.com", body)
        raise AssertionError("the passwd-file quota_rule was not applied again")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 452, e
    assert b"quota: 1024 bytes" in srv.run_cli("quota", "carol@example.com").stdout


def test_mail_loops_are_refused_with_5_4_6(buzon):
    srv = smtp_server(buzon, users=USERS, smtp={"local_domains": DOMAINS, "max_hops": 5})
    looped = "Delivered-To: Alice+x@example.com\r\nSubject: loop\r\n\r\nagain\r\n"
    try:
        send(srv, "alice+x@example.com", looped)
        raise AssertionError("a message already delivered to the address was accepted")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554 and e.smtp_error.startswith(b"5.4.6"), e
    hops = "".join(f"Received: from h{i} by h{i + 1}; Fri, 27 Nov 2026 05:00:00 +0000\r\n" for i in range(5))
    try:
        send(srv, "alice@example.com", hops + "Subject: hops\r\n\r\nround\r\n")
        raise AssertionError("a message with max_hops Received: fields was accepted")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554 and e.smtp_error.startswith(b"5.4.6"), e
    send(srv, "alice@example.com", hops.split("\r\n", 1)[1] + "Subject: ok\r\n\r\nfine\r\n")  # 4 hops
    send(srv, "bob@example.com", looped)  # another address
    assert len(pop_all(srv, "alice@example.com")) == 1 and len(pop_all(srv, "bob@example.com")) == 1


def test_size_over_quota_is_refused_at_rcpt(buzon):
    srv = policy_server(buzon)
    send(srv, "alice@example.com")  # creates the Maildir
    assert srv.run_cli("quota", "alice@example.com", "--bytes", "1k").returncode == 0
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=IO_TIMEOUT) as s:
        s.ehlo()
        assert s.mail("sender@remote.test", ["SIZE=5000"])[0] == 250
        code, text = s.rcpt("alice@example.com")
        assert code == 452 and text.startswith(b"4.2.2"), (code, text)
        assert s.rcpt("bob@example.com")[0] == 250  # no quota
        s.rset()
        assert s.mail("sender@remote.test", ["SIZE=300"])[0] == 250
        assert s.rcpt("alice@example.com")[0] == 250


def test_over_quota_permanent_answers_552(buzon):
    """[quota] over_quota = "permanent": a full mailbox bounces at once (552 5.2.2) instead of the
    default temporary 452 4.2.2; at RCPT time too when SIZE= says the message will not fit."""
    srv = smtp_server(buzon, users=USERS, smtp={"local_domains": DOMAINS}, start=False,
                      quota={"over_quota": "permanent"})
    srv.start()
    wait_smtp(srv.smtp_port)
    assert srv.run_cli("quota", "alice@example.com", "--bytes", "1k").returncode == 0
    body = "Subject: fill\r\n\r\n" + "x" * 300 + "\r\n"
    codes = []
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=IO_TIMEOUT) as s:
        for _ in range(10):
            try:
                s.sendmail("sender@remote.test", ["alice@example.com"], body)
            except smtplib.SMTPDataError as e:
                codes.append((e.smtp_code, e.smtp_error[:5]))
                break
            except smtplib.SMTPRecipientsRefused as e:
                code, text = e.recipients["alice@example.com"]
                codes.append((code, text[:5]))
                break
    assert codes == [(552, b"5.2.2")], codes
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=IO_TIMEOUT) as s:
        s.ehlo("client.test")
        assert s.mail("sender@remote.test", ["SIZE=5000"])[0] == 250
        code, text = s.rcpt("alice@example.com")
        assert (code, text[:5]) == (552, b"5.2.2"), (code, text)
