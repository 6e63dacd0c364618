"""Aliases with several and remote targets against running servers (issue 10), sent with swaks:

- an alias to two local users: each Maildir gets exactly one copy (the durable Maildir path);
- an alias to a remote address: the message goes through the outbound queue and the relay to an
  aiosmtpd sink on loopback ([[relay.transport]], no DNS), unchanged but for the trace fields,
  with the original envelope sender (Postfix's choice: no SRS);
- an alias to local and remote targets at once;
- a forwarding loop between two buzons (A forwards to B, B forwards back to A): A refuses the
  returning message with 554 5.4.6 (its own Delivered-To:), and B's bounce reaches the sender;
- forwarding without an outbound queue is refused at start-up with file:line and the fix;
- SIGHUP changes the plus-address delimiter, the postmaster address, the default quota and the
  over-quota answer; a broken config keeps the running rules.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

from conftest import BUZON_BIN, HOST, START_TIMEOUT, free_port, write_toml
from smtp_support import SmtpRaw, smtp_server, wait_smtp

USERS = {"alice@example.com": "alice-pw-1", "bob@example.com": "bob-pw-22", "carol@example.com": "carol-pw-333",
         "postmaster@example.com": "pm-pw-4444"}
DELIVERY_TIMEOUT = 20.0
RELAY = {"tls": "none", "connect_timeout": 5, "command_timeout": 20}
QUEUE = {"retry_first": 1, "retry_max_interval": 2, "scan_interval": 1}
DNS = {"servers": ["127.0.0.1:9"], "timeout": 1, "tries": 1}  # closed: transports only


class Sink:
    """aiosmtpd on loopback: records (mail_from, rcpt_tos, content) of every accepted message."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.got: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    sink.got.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
                return "250 2.0.0 sunk"

        self.port = free_port()
        self.ctl = Controller(Handler(), hostname=HOST, port=self.port)
        self.ctl.start()

    def wait(self, count: int = 1, timeout: float = DELIVERY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= count:
                    return list(self.got)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"the sink got {len(self.got)} messages, expected {count}")

    def stop(self):
        self.ctl.stop()


def server(buzon, aliases: str, domains=("example.com",), users=None, transports=None, queue=True, start=True,
           lmtp=False, **sections):
    cfg = dict(sections)
    cfg["aliases"] = {"file": "aliases", **cfg.get("aliases", {})}
    if queue:
        cfg["queue"] = QUEUE
        cfg["relay"] = dict(RELAY)
        if transports:
            cfg["relay"]["transport"] = [{"domain": d, "host": f"{HOST}:{p}"} for d, p in transports.items()]
        cfg["dns"] = DNS
    srv = smtp_server(buzon, users=users or USERS, smtp={"local_domains": list(domains)}, start=False, lmtp=lmtp,
                      **cfg)
    (srv.root / "aliases").write_text(aliases)
    if start:
        srv.start()
        wait_smtp(srv.smtp_port)
    return srv


def swaks(srv, to: str, sender: str = "sender@remote.test", headers: str = "", body: str = "hello") -> str:
    r = subprocess.run(["swaks", "--server", HOST, "--port", str(srv.smtp_port), "--from", sender, "--to", to,
                        "--helo", "swaks.test", "--header", "Subject: fwd test", *(["--add-header", headers] if headers else []),
                        "--body", body], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def accepted(out: str) -> bool:
    return re.search(r"<-  250 2\.0\.0 Ok: delivered as", out) is not None


def mails(srv, user: str) -> list[bytes]:
    """The messages in a user's Maildir (new/ and cur/), oldest first, read from the files."""
    files = [f for d in ("new", "cur") for f in (srv.maildir(user) / d).glob("*")] if srv.maildir(user).exists() else []
    return [f.read_bytes() for f in sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name))]


def wait_mail(srv, user: str, count: int = 1, timeout: float = DELIVERY_TIMEOUT) -> list[bytes]:
    deadline = time.monotonic() + timeout
    msgs: list[bytes] = []
    while time.monotonic() < deadline:
        msgs = mails(srv, user)
        if len(msgs) >= count:
            return msgs
        time.sleep(0.1)
    raise AssertionError(f"{user} has {len(msgs)} messages, expected {count}\n{srv.log()}")


def queue_empty(srv, timeout: float = DELIVERY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any((srv.root / "queue" / "env").glob("*")):
            return True
        time.sleep(0.05)
    return False


def maildir_files(srv, user: str) -> list:
    return sorted((srv.maildir(user) / "new").glob("*"))


def test_alias_to_two_local_users_one_copy_each(buzon):
    srv = server(buzon, "team@example.com: alice@example.com, bob@example.com\n"
                        "all@example.com: team@example.com, alice+x@example.com\n", queue=False)
    out = swaks(srv, "team@example.com,all@example.com,Alice@example.com")
    assert accepted(out), out
    # Durable before the 250: the copies are in new/ when swaks has its reply.
    assert len(maildir_files(srv, "alice@example.com")) == 1 and len(maildir_files(srv, "bob@example.com")) == 1
    alice, bob = mails(srv, "alice@example.com"), mails(srv, "bob@example.com")
    assert len(alice) == 1 and len(bob) == 1, (alice, bob)
    assert alice[0].startswith(b"Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.com\r\n"), alice[0]
    assert bob[0].startswith(b"Return-Path: <sender@remote.test>\r\nDelivered-To: bob@example.com\r\n"), bob[0]
    assert b"\r\n\r\nhello" in alice[0]
    assert "copies=2 delivered=2 forwards=0" in srv.log(), srv.log()


def test_alias_forwards_to_a_remote_address_through_the_queue(buzon):
    sink = Sink()
    try:
        srv = server(buzon, "fwd@example.com: someone@sink.test\n", transports={"sink.test": sink.port})
        out = swaks(srv, "fwd+tag@example.com", headers="X-Original: kept")
        assert accepted(out), out
        (mail_from, rcpts, content), = sink.wait(1)
        assert mail_from == "sender@remote.test"  # the original envelope sender (no SRS)
        assert rcpts == ["someone@sink.test"]
        head, _, body = content.partition(b"\r\n\r\n")
        assert head.startswith(b"Received: from swaks.test ([127.0.0.1])"), head
        assert b"\r\nDelivered-To: fwd@example.com\r\n" in head, head  # the alias, for loop detection
        assert b"\r\nX-Original: kept" in head and b"Subject: fwd test" in head
        assert body.startswith(b"hello"), body
        assert queue_empty(srv), "the forwarded entry stayed in the queue"
        assert "forwards=1 queue_id=" in srv.log()
    finally:
        sink.stop()


def test_alias_to_local_and_remote_targets(buzon):
    sink = Sink()
    try:
        srv = server(buzon, "mixed@example.com: alice@example.com, bob@example.com, one@sink.test, two@sink.test\n",
                     transports={"sink.test": sink.port})
        assert accepted(swaks(srv, "mixed@example.com"))
        assert len(maildir_files(srv, "alice@example.com")) == 1 and len(maildir_files(srv, "bob@example.com")) == 1
        got = sink.wait(1)
        time.sleep(0.5)  # a second (duplicate) delivery would show up now
        got = sink.wait(1)
        assert len(got) == 1 and sorted(got[0][1]) == ["one@sink.test", "two@sink.test"], got
        assert queue_empty(srv)
    finally:
        sink.stop()


def test_lmtp_answers_once_per_rcpt_with_aliases(buzon):
    """An MTA in front delivers over LMTP: an alias to two mailboxes and one that forwards are one
    RCPT each, so one reply each after the data (RFC 2033 §4.2)."""
    sink = Sink()
    try:
        srv = server(buzon, "team@example.com: alice@example.com, bob@example.com\nfwd@example.com: x@sink.test\n",
                     transports={"sink.test": sink.port}, lmtp=True)
        c = SmtpRaw(path=srv.lmtp_socket)
        try:
            assert c.cmd("LHLO mta.test").startswith(b"250")
            assert c.cmd("MAIL FROM:<sender@remote.test>").startswith(b"250")
            for rcpt in ("team@example.com", "fwd@example.com", "nobody@example.com"):
                c.send(f"RCPT TO:<{rcpt}>\r\n")
            assert [r[:3] for r in c.replies(3)] == [b"250", b"250", b"550"]
            assert c.cmd("DATA").startswith(b"354")
            c.send(b"Subject: lmtp alias\r\n\r\nhi\r\n.\r\n")
            got = c.replies(2)
            assert got[0].startswith(b"250 2.0.0 <team@example.com> Ok") and got[1].startswith(b"250 2.0.0 <fwd@example.com> Ok"), got
            assert c.cmd("QUIT").startswith(b"221")
        finally:
            c.close()
        assert len(mails(srv, "alice@example.com")) == 1 and len(mails(srv, "bob@example.com")) == 1
        (mail_from, rcpts, content), = sink.wait(1)
        assert mail_from == "sender@remote.test" and rcpts == ["x@sink.test"]
        assert b"Delivered-To: fwd@example.com\r\n" in content and b"with LMTP" in content
    finally:
        sink.stop()


def test_forwarding_loop_between_two_servers_is_refused_with_5_4_6(buzon):
    # A: loop@example.com -> back@b.test (B); B: back@b.test -> loop@example.com (A).
    a = server(buzon, "loop@example.com: back@b.test\n", start=False)
    b = server(buzon, "back@b.test: loop@example.com\n", domains=("b.test",), users={"x@b.test": "x-pw-55555"},
               transports={"example.com": a.smtp_port}, start=False)
    a.config["relay"]["transport"] = [{"domain": "b.test", "host": f"{HOST}:{b.smtp_port}"}]
    write_toml(a.cfg_path, a.config)
    for s in (a, b):
        s.start()
        wait_smtp(s.smtp_port)
    assert accepted(swaks(a, "loop@example.com", sender="carol@example.com"))
    # The message went A -> B -> A, where its Delivered-To: loop@example.com stops it; B bounces.
    bounce = wait_mail(a, "carol@example.com")[0]
    assert b"5.4.6" in bounce, bounce
    assert b"loop@example.com" in bounce
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while "reason=loop" not in a.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reason=loop detail=loop@example.com" in a.log(), a.log()
    assert queue_empty(a) and queue_empty(b)
    assert mails(a, "alice@example.com") == []
    # The same refusal straight from a client that sends what came back.
    out = swaks(a, "loop@example.com", headers="Delivered-To: loop@example.com")
    assert "<** 554 5.4.6 Error: mail loop detected" in out, out


def start_fails(srv) -> str:
    p = subprocess.run([str(BUZON_BIN), "--config", str(srv.cfg_path), "serve"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=START_TIMEOUT, cwd=srv.root)
    assert p.returncode != 0, "buzon started with forwarding and no queue"
    return p.stderr.decode(errors="replace")


def test_forwarding_without_a_queue_is_a_start_up_error(buzon):
    srv = server(buzon, "# forwards\nfwd@example.com: alice@example.com, someone@remote.test\n", queue=False,
                 start=False)
    err = start_fails(srv)
    assert (f"aliases:2: 'fwd@example.com' forwards to the remote address someone@remote.test, but this server has "
            f"no outbound queue to send it from (fix: add a [queue] section to {srv.cfg_path}") in err, err
    doctor = srv.run_cli("doctor")
    assert doctor.returncode == 1 and b"aliases:2: 'fwd@example.com' forwards to the remote address" in doctor.stdout


def reload(srv, marker: str) -> None:
    before = srv.log().count(marker)
    os.kill(srv.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while srv.log().count(marker) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.log().count(marker) > before, srv.log()


def test_sighup_changes_delimiter_postmaster_and_default_quota(buzon):
    srv = server(buzon, "", queue=False)
    assert accepted(swaks(srv, "alice+one@example.com"))
    assert accepted(swaks(srv, "abuse@example.com"))
    assert accepted(swaks(srv, "carol@example.com", body=("x" * 70 + "\n") * 20))
    assert accepted(swaks(srv, "carol@example.com", body=("x" * 70 + "\n") * 20))  # no quota yet
    srv.config["smtp"]["recipient_delimiter"] = "-"
    srv.config["aliases"]["postmaster"] = "bob@example.com"
    srv.config["quota"] = {"default_bytes": 2000}
    write_toml(srv.cfg_path, srv.config)
    reload(srv, "reload: address rules")
    assert 'delimiter="-" postmaster=bob@example.com' in srv.log()
    assert "<** 550 5.1.1" in swaks(srv, "alice+two@example.com")  # "+" is no delimiter any more
    assert accepted(swaks(srv, "alice-two@example.com"))
    assert accepted(swaks(srv, "abuse@example.com"))
    out = swaks(srv, "carol@example.com", body=("x" * 70 + "\n") * 20)  # carol's Maildir gets the new default
    assert "452 4.2.2" in out, out
    assert (srv.maildir("carol@example.com") / "maildirsize").read_text().startswith("2000S\n")
    delivered = [m.split(b"Delivered-To: ", 1)[1].split(b"\r\n", 1)[0] for m in mails(srv, "alice@example.com")]
    assert delivered == [b"alice+one@example.com", b"alice-two@example.com"], delivered
    assert len(mails(srv, "postmaster@example.com")) == 1 and len(mails(srv, "bob@example.com")) == 1
    # A broken config keeps the running rules and says why.
    srv.config["aliases"]["postmaster"] = "not an address"
    write_toml(srv.cfg_path, srv.config)
    reload(srv, "reload refused")
    assert "is not an address" in srv.log()
    assert accepted(swaks(srv, "alice-three@example.com"))
    assert accepted(swaks(srv, "abuse@example.com"))
    assert len(mails(srv, "bob@example.com")) == 2
    # [quota] over_quota reloads too: the full mailbox now bounces at once.
    srv.config["aliases"]["postmaster"] = "bob@example.com"
    srv.config["quota"]["over_quota"] = "permanent"
    srv.config["smtp"]["max_hops"] = 3
    write_toml(srv.cfg_path, srv.config)
    reload(srv, "reload: address rules")
    out = swaks(srv, "carol@example.com", body=("x" * 70 + "\n") * 20)
    assert "552 5.2.2" in out, out
    hops = "\n".join(f"Received: from h{i} by h{i + 1}; Fri, 27 Nov 2026 05:00:00 +0000" for i in range(3))
    out = swaks(srv, "alice@example.com", headers=hops)
    assert "<** 554 5.4.6" in out, out
