"""POP3 (RFC 1939, RFC 2449) against the real buzon binary: Python's poplib plus a byte-exact raw
socket client (conftest.Pop3Raw) for what poplib cannot see (CR/LF, stuffing, framing)."""
import os
import poplib
import re
import socket
import struct
import time

import pytest

from conftest import (DOT_CR_ACCEPTABLE, DOT_CR_MESSAGE, EDGE_MESSAGES, Pop3Raw, big_message,
                      err_bytes, maildir_files, parse_scan_listing, parse_uidl_listing, uidl_ok,
                      wire_form)

ALICE = "alice@example.com"
BOB = "bob@example.com"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def simple(i: int, body: str = "") -> bytes:
    return (f"From: sender{i}@example.org\nTo: alice@example.com\nSubject: message {i}\n"
            f"Message-ID: <m{i}@example.org>\n\nbody of message {i}\n{body}").encode()


def seed(srv, user, msgs, **kw):
    return [srv.deliver(user, raw, **kw) for raw in msgs]


def by_content(c: Pop3Raw, count: int) -> dict[bytes, int]:
    """RETRs messages 1..count and maps their content to the message number."""
    out = {}
    for n in range(1, count + 1):
        st, body = c.multi(f"RETR {n}")
        assert st.startswith(b"+OK"), f"RETR {n} -> {st!r}"
        out[body] = n
    return out


def stat(c: Pop3Raw) -> tuple[int, int]:
    st = c.cmd("STAT")
    m = re.fullmatch(rb"\+OK (\d+) (\d+)(?: .*)?", st)
    assert m, f"STAT reply not '+OK nn mm': {st!r}"
    return int(m.group(1)), int(m.group(2))


def assert_err(st: bytes, what: str):
    assert st.startswith(b"-ERR"), f"{what}: expected -ERR, got {st!r}"


def assert_ok(st: bytes, what: str):
    assert st.startswith(b"+OK"), f"{what}: expected +OK, got {st!r}"


def parse_capa(content: bytes) -> dict[str, list[str]]:
    caps = {}
    for line in content.split(b"\r\n"):
        if not line:
            continue
        words = line.decode("ascii").split()
        assert words, f"empty capability line in {content!r}"
        caps[words[0].upper()] = words[1:]
    return caps


# ------------------------------------------------------------------------------------------------
# greeting, CAPA, authentication
# ------------------------------------------------------------------------------------------------

def test_greeting_and_quit_in_authorization(buzon):
    srv = buzon()
    with Pop3Raw(srv.port) as c:
        g = c.greeting
        assert g.startswith(b"+OK"), f"greeting {g!r}"
        assert g.endswith(b"\r\n"), f"greeting not CRLF-terminated: {g!r}"
        assert len(g) <= 512, f"greeting longer than 512 octets (RFC 1939 §3): {len(g)}"
        assert_ok(c.cmd("QUIT"), "QUIT in AUTHORIZATION")
        assert c.at_eof(), "server did not close the connection after QUIT"
    # QUIT after USER but before PASS: +OK, close, nothing else.
    with Pop3Raw(srv.port) as c:
        assert_ok(c.cmd(f"USER {ALICE}"), "USER")
        assert_ok(c.cmd("QUIT"), "QUIT after USER")
        assert c.at_eof(), "server did not close the connection after QUIT"


def test_capa_before_and_after_login(buzon):
    srv = buzon()
    with Pop3Raw(srv.port) as c:
        st, pre_raw = c.multi("CAPA")
        assert_ok(st, "CAPA in AUTHORIZATION")
        pre = parse_capa(pre_raw)
        c.login(ALICE, srv.users[ALICE])
        st, post_raw = c.multi("CAPA")
        assert_ok(st, "CAPA in TRANSACTION")
        post = parse_capa(post_raw)
        c.quit()

    required_both = {"TOP", "USER", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"}
    missing_pre = required_both - set(pre)
    assert not missing_pre, f"CAPA before login lacks {sorted(missing_pre)}; got {pre}"
    assert "IMPLEMENTATION" in post, f"CAPA after login lacks IMPLEMENTATION; got {post}"
    assert post["IMPLEMENTATION"], "IMPLEMENTATION without an argument"

    # RFC 2449 §5: capabilities available in AUTHORIZATION MUST be announced in both states;
    # only LOGIN-DELAY and EXPIRE may change their argument after login. STLS (RFC 2595) is only
    # meaningful before login, so it may disappear. IMPLEMENTATION may be TRANSACTION-only.
    for cap, args in pre.items():
        if cap == "STLS":
            continue
        assert cap in post, f"{cap} announced before login but not after (RFC 2449 §5)"
        if cap not in ("LOGIN-DELAY", "EXPIRE"):
            assert post[cap] == args, f"{cap} changed after login: {args} -> {post[cap]}"
    extra = set(post) - set(pre) - {"IMPLEMENTATION"}
    assert not extra, (f"capabilities announced only after login: {sorted(extra)}; "
                       "RFC 2449 allows that only for IMPLEMENTATION")

    # Through poplib as a client library sees it.
    p = srv.pop()
    try:
        caps = p.capa()
        assert "UIDL" in caps and "TOP" in caps, f"poplib CAPA {caps}"
    finally:
        p.quit()


def test_capa_expire_and_login_delay_advertised(buzon):
    srv = buzon(config={"pop3": {"expire": 30, "login_delay": 5}})
    with Pop3Raw(srv.port) as c:
        st, raw = c.multi("CAPA")
        assert_ok(st, "CAPA")
        caps = parse_capa(raw)
    assert caps.get("EXPIRE", [None])[0] == "30", f"expire = 30 -> EXPIRE 30 expected; CAPA {caps}"
    assert caps.get("LOGIN-DELAY", [None])[0] == "5", f"login_delay = 5 -> LOGIN-DELAY 5; CAPA {caps}"


def test_user_pass_good_and_bad(buzon):
    srv = buzon(users={ALICE: "right-Pw", BOB: "bob-Pw"})
    # Wrong password -> -ERR [AUTH]; the session stays in AUTHORIZATION and a retry works.
    with Pop3Raw(srv.port) as c:
        assert_ok(c.cmd(f"USER {ALICE}"), "USER")
        st = c.cmd("PASS wrong-Pw")
        assert st.startswith(b"-ERR [AUTH]"), f"bad password -> {st!r}, want -ERR [AUTH]"
        assert_ok(c.cmd(f"USER {ALICE}"), "USER after failed PASS")
        assert_ok(c.cmd("PASS right-Pw"), "PASS after a failed attempt")
        assert stat(c)[0] == 0
        c.quit()
    # Unknown user: -ERR at USER or -ERR [AUTH] at PASS (never +OK).
    with Pop3Raw(srv.port) as c:
        st = c.cmd("USER nosuchuser@example.com")
        if st.startswith(b"+OK"):
            st = c.cmd("PASS right-Pw")
            assert st.startswith(b"-ERR [AUTH]"), f"unknown user PASS -> {st!r}"
        else:
            assert_err(st, "USER unknown")
        # Another user's password does not work either.
        assert_ok(c.cmd(f"USER {ALICE}"), "USER")
        assert c.cmd("PASS bob-Pw").startswith(b"-ERR [AUTH]"), "alice accepted bob's password"
    # PASS without USER.
    with Pop3Raw(srv.port) as c:
        assert_err(c.cmd("PASS right-Pw"), "PASS without USER")
        c.quit()
    # poplib's view.
    p = srv.pop()
    p.user(ALICE)
    with pytest.raises(poplib.error_proto) as ei:
        p.pass_("nope")
    assert err_bytes(ei.value).startswith(b"-ERR [AUTH]"), f"poplib saw {ei.value}"
    p.close()
    p = srv.login(BOB)
    assert p.stat() == (0, 0)
    p.quit()


def test_long_names_and_passwords_with_spaces(buzon):
    """RFC 2449 §4 lifts RFC 1939's 40-octet argument limit (commands up to 255 octets): long
    addresses and password-manager passwords must work; RFC 1939 §7 lets PASS contain spaces."""
    long_user = "firstname.lastname.department@subdomain.example.com"       # 51 octets
    long_pw = "Aa1-" + "x" * 60                                             # 64 octets
    spaced = "correct horse battery staple"
    srv = buzon(users={long_user: long_pw, ALICE: spaced})
    with Pop3Raw(srv.port) as c:
        assert_ok(c.cmd(f"USER {long_user}"), "USER with a 51-octet name")
        assert_ok(c.cmd(f"PASS {long_pw}"), "PASS with a 64-octet password")
        c.quit()
    with Pop3Raw(srv.port) as c:
        assert_ok(c.cmd(f"USER {ALICE}"), "USER")
        assert_ok(c.cmd(f"PASS {spaced}"), "PASS with spaces in the password")
        c.quit()


def test_commands_in_wrong_state(buzon):
    srv = buzon()
    seed(srv, ALICE, [simple(1), simple(2)])
    with Pop3Raw(srv.port) as c:
        for cmd in ("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "UIDL", "UIDL 1", "TOP 1 0", "RSET"):
            assert_err(c.cmd(cmd), f"{cmd} in AUTHORIZATION state")
        c.login(ALICE, srv.users[ALICE])
        for cmd in (f"USER {ALICE}", f"PASS {srv.users[ALICE]}", "APOP alice 0123456789abcdef0123456789abcdef"):
            assert_err(c.cmd(cmd), f"{cmd.split()[0]} in TRANSACTION state")
        assert stat(c)[0] == 2, "session unusable after wrong-state commands"
        c.quit()
    assert len(maildir_files(srv.maildir(ALICE))) == 2


# ------------------------------------------------------------------------------------------------
# STAT, LIST, UIDL, RETR
# ------------------------------------------------------------------------------------------------

def test_stat_list_uidl(buzon):
    srv = buzon()
    msgs = list(EDGE_MESSAGES.values())
    for i, raw in enumerate(msgs):
        srv.deliver(ALICE, raw, size_in_name=(i % 2 == 0))
    want_sizes = sorted(len(wire_form(m)) for m in msgs)
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        problems = []   # size mismatches, asserted at the end so the UIDL checks still run
        count, total = stat(c)
        assert count == len(msgs), f"STAT count {count}, seeded {len(msgs)}"
        if total != sum(want_sizes):
            problems.append(f"STAT size {total}, expected {sum(want_sizes)} (sum of CRLF sizes)")
        st, lst = c.multi("LIST")
        assert_ok(st, "LIST")
        sizes = parse_scan_listing(lst)
        assert sorted(sizes) == list(range(1, count + 1)), f"LIST numbers {sorted(sizes)}"
        if sorted(sizes.values()) != want_sizes:
            problems.append(f"LIST sizes {sorted(sizes.values())} != {want_sizes}")
        for n, size in sizes.items():
            st = c.cmd(f"LIST {n}")
            assert st.split()[:3] == [b"+OK", str(n).encode(), str(size).encode()], f"LIST {n} -> {st!r}"
        assert_err(c.cmd(f"LIST {count + 1}"), "LIST of a nonexistent message")
        st, ul = c.multi("UIDL")
        assert_ok(st, "UIDL")
        uidls = parse_uidl_listing(ul)
        assert sorted(uidls) == list(range(1, count + 1)), f"UIDL numbers {sorted(uidls)}"
        vals = list(uidls.values())
        assert len(set(vals)) == len(vals), f"UIDLs not unique: {vals}"
        for u in vals:
            assert uidl_ok(u), f"UIDL {u!r} violates RFC 1939 §7 (1-70 chars, 0x21-0x7E)"
        for n, u in uidls.items():
            st = c.cmd(f"UIDL {n}")
            assert st.split()[:3] == [b"+OK", str(n).encode(), u.encode()], f"UIDL {n} -> {st!r}"
        assert_err(c.cmd(f"UIDL {count + 1}"), "UIDL of a nonexistent message")
        # Sizes are the exact octets RETR sends.
        for n, size in sizes.items():
            st, body = c.multi(f"RETR {n}")
            assert_ok(st, f"RETR {n}")
            if len(body) != size:
                problems.append(f"LIST {n} = {size} but RETR sent {len(body)} octets ({body[:50]!r}...)")
        c.quit()
    assert not problems, "\n".join(problems)


def test_retr_byte_exact_edge_cases(buzon):
    srv = buzon()
    msgs = dict(EDGE_MESSAGES)
    msgs["big_5MiB"] = big_message(5 * 1024 * 1024)
    for name, raw in msgs.items():
        srv.deliver(ALICE, raw)
    problems = []
    with Pop3Raw(srv.port, timeout=60) as c:
        c.login(ALICE, srv.users[ALICE])
        st, lst = c.multi("LIST")
        sizes = parse_scan_listing(lst)
        assert len(sizes) == len(msgs)
        got = {}
        for n in sizes:
            st, body = c.multi(f"RETR {n}")
            assert_ok(st, f"RETR {n}")
            got[body] = n
            m = re.fullmatch(rb"\+OK (\d+) octets.*", st)
            if m and int(m.group(1)) != len(body):
                problems.append(f"RETR {n} status {st!r} but {len(body)} octets sent ({body[:50]!r}...)")
            if len(body) != sizes[n]:
                problems.append(f"message {n}: LIST {sizes[n]} != {len(body)} octets sent ({body[:50]!r}...)")
        for name, raw in msgs.items():
            want = wire_form(raw)
            if want not in got:
                close = min(got, key=lambda b: abs(len(b) - len(want)))
                problems.append(f"{name}: no message retrieved byte-identical to the expected wire form; "
                                f"want tail {want[-120:]!r} ({len(want)} octets), "
                                f"nearest {close[-120:]!r} ({len(close)} octets)")
        # The session is still in sync after all that.
        assert stat(c)[0] == len(msgs)
        c.quit()
    assert not problems, "\n".join(problems)


def test_retr_with_poplib_sizes_agree(buzon):
    srv = buzon()
    msgs = list(EDGE_MESSAGES.values())
    seed(srv, ALICE, msgs)
    p = srv.login(ALICE)
    try:
        _, listing, _ = p.list()
        sizes = dict(map(int, l.split()) for l in listing)
        for n, size in sizes.items():
            resp, lines, octets = p.retr(n)
            assert resp.startswith(b"+OK")
            assert octets == size, f"poplib counted {octets} octets for message {n}, LIST said {size}"
        wanted = {tuple(wire_form(m).split(b"\r\n")[:-1]) for m in msgs}
        got = {tuple(p.retr(n)[1]) for n in sizes}
        assert got == wanted, "poplib's line view of the messages differs from the seeded ones"
    finally:
        p.quit()


def test_retr_message_ending_in_dot_cr_keeps_session_in_sync(buzon):
    """A stored message whose last octets are '.\\r' (no LF). Expected: wire_form() (the lone CR
    is data, CRLF appended, line dot-stuffed: '..\\r\\r\\n' — Dovecot's behaviour); '.\\r\\n' is
    accepted too. The session must stay in sync and LIST must equal the octets sent."""
    srv = buzon()
    srv.deliver(ALICE, DOT_CR_MESSAGE)
    srv.deliver(ALICE, b"")  # a 0-octet file: sent as nothing (or one empty line); size must match
    srv.deliver(ALICE, simple(9))
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        st, lst = c.multi("LIST")
        sizes = parse_scan_listing(lst)
        assert len(sizes) == 3
        # Pipelined: RETR n followed by NOOP in one write; a missing dot-stuff shows up as the
        # NOOP reply arriving inside the message or the message's tail arriving as a reply.
        bodies = {}
        for n in sizes:
            c.send(f"RETR {n}\r\nNOOP\r\n")
            st = c.status()
            assert_ok(st, f"RETR {n}")
            body, wire = c.body()
            nst = c.status()
            assert nst.startswith(b"+OK"), f"after RETR {n} the session is out of sync: got {nst!r}"
            assert len(body) == sizes[n], f"LIST {n} = {sizes[n]} but RETR sent {len(body)} octets"
            bodies[n] = body
        dot_cr = [b for b in bodies.values() if b"ends in dot CR" in b]
        assert len(dot_cr) == 1
        assert dot_cr[0] in DOT_CR_ACCEPTABLE, f"message ending in '.\\r' sent as {dot_cr[0][-30:]!r}"
        empties = [b for b in bodies.values() if b"Subject" not in b]
        assert len(empties) == 1 and empties[0] in (b"", b"\r\n"), f"0-octet message sent as {empties!r}"
        assert wire_form(simple(9)) in bodies.values()
        c.quit()


# ------------------------------------------------------------------------------------------------
# TOP
# ------------------------------------------------------------------------------------------------

def expected_top(raw: bytes, lines: int) -> bytes:
    w = wire_form(raw)
    i = w.find(b"\r\n\r\n")
    assert i >= 0, "test message without header/body separator"
    head, body = w[: i + 4], w[i + 4:]
    body_lines = body.split(b"\r\n")[:-1]   # wire_form always ends with CRLF
    return head + b"".join(l + b"\r\n" for l in body_lines[:lines])


def test_top(buzon):
    srv = buzon()
    m_crlf = (b"From: a@example.org\r\nSubject: top test\r\nX-Long: folded\r\n header line\r\n\r\n"
              b"body 1\r\n.body 2 dotted\r\nbody 3\r\n\r\nbody 5\r\n")
    m_lf = b"From: a@example.org\nSubject: top lf\n\nl1\nl2\nl3\n"
    m_nfn = b"From: a@example.org\nSubject: top nfn\n\nonly line, no newline"
    m_empty = EDGE_MESSAGES["empty_body"]
    msgs = [m_crlf, m_lf, m_nfn, m_empty]
    seed(srv, ALICE, msgs)
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        num = by_content(c, len(msgs))
        for raw in msgs:
            n = num[wire_form(raw)]
            for k in (0, 1, 2, 3, 100):
                st, body = c.multi(f"TOP {n} {k}")
                assert_ok(st, f"TOP {n} {k}")
                want = expected_top(raw, k)
                assert body == want, (f"TOP {n} {k} of {raw[:40]!r}...:\n got {body!r}\nwant {want!r}")
        n = num[wire_form(m_crlf)]
        for bad in (f"TOP {n}", f"TOP {n} -1", f"TOP {n} x", "TOP", f"TOP {len(msgs) + 1} 0", "TOP 0 0"):
            assert_err(c.cmd(bad), bad)
        assert_ok(c.cmd("NOOP"), "NOOP after bad TOPs")
        c.quit()
    # poplib's top()
    p = srv.login(ALICE)
    try:
        resp, lines, _ = p.top(1, 0)
        assert resp.startswith(b"+OK") and lines and lines[-1] == b"", f"poplib TOP 1 0 -> {lines}"
    finally:
        p.quit()


# ------------------------------------------------------------------------------------------------
# DELE, RSET, NOOP, QUIT / UPDATE
# ------------------------------------------------------------------------------------------------

def test_dele_rset_noop(buzon):
    srv = buzon()
    msgs = [simple(1), simple(2, "x" * 100), simple(3)]
    seed(srv, ALICE, msgs)
    md = srv.maildir(ALICE)
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        count, total = stat(c)
        assert count == 3
        st, lst = c.multi("LIST")
        sizes = parse_scan_listing(lst)
        st, ul = c.multi("UIDL")
        uidls = parse_uidl_listing(ul)
        st, body3 = c.multi("RETR 3")

        assert_ok(c.cmd("DELE 2"), "DELE 2")
        assert stat(c) == (2, total - sizes[2]), "STAT still counts the deleted message"
        st, lst = c.multi("LIST")
        assert parse_scan_listing(lst) == {1: sizes[1], 3: sizes[3]}, f"LIST after DELE 2: {lst!r}"
        st, ul = c.multi("UIDL")
        assert parse_uidl_listing(ul) == {1: uidls[1], 3: uidls[3]}, f"UIDL after DELE 2: {ul!r}"
        for cmd in ("LIST 2", "UIDL 2", "RETR 2", "TOP 2 0", "DELE 2"):
            assert_err(c.cmd(cmd), f"{cmd} on a deleted message")
        st, again3 = c.multi("RETR 3")
        assert again3 == body3, "message numbers shifted after DELE (RFC 1939: they must not)"
        assert_ok(c.cmd("NOOP"), "NOOP")

        assert_ok(c.cmd("RSET"), "RSET")
        assert stat(c) == (3, total), "RSET did not restore the deleted message"
        st, lst = c.multi("LIST")
        assert parse_scan_listing(lst) == sizes
        assert c.multi("RETR 2")[0].startswith(b"+OK"), "RETR 2 after RSET"
        c.quit()
    assert len(maildir_files(md)) == 3, "RSET + QUIT deleted something on disk"
    p = srv.login_retry(ALICE)
    assert p.stat() == (3, total)
    p.quit()


def test_quit_commits_deletions(buzon):
    srv = buzon()
    msgs = [simple(i) for i in range(1, 6)]
    seed(srv, ALICE, msgs)
    md = srv.maildir(ALICE)
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        num = by_content(c, 5)
        st, ul = c.multi("UIDL")
        uidls = parse_uidl_listing(ul)
        gone = [num[wire_form(msgs[0])], num[wire_form(msgs[3])]]
        for n in gone:
            assert_ok(c.cmd(f"DELE {n}"), f"DELE {n}")
        st = c.cmd("QUIT")
        assert_ok(st, "QUIT in TRANSACTION")
        assert c.at_eof(), "no close after QUIT"
    files = maildir_files(md)
    assert len(files) == 3, f"after QUIT with 2 DELEs, {len(files)} files remain: {[f.name for f in files]}"
    on_disk = {f.read_bytes() for f in files}
    assert on_disk == {msgs[1], msgs[2], msgs[4]}, "the wrong messages were deleted"
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        assert stat(c)[0] == 3
        st, ul = c.multi("UIDL")
        left = set(parse_uidl_listing(ul).values())
        assert left == set(uidls.values()) - {uidls[n] for n in gone}, "remaining UIDLs changed"
        c.quit()


def test_lock_released_when_quit_closes_the_connection(buzon):
    """RFC 1939 §6: after UPDATE the server releases the lock, then closes the connection. So once
    the client sees the close, an immediate new login must not get [IN-USE]."""
    srv = buzon()
    seed(srv, ALICE, [simple(1)])
    for i in range(20):
        c = srv.raw_login(ALICE)
        assert_ok(c.cmd("DELE 1") if i == 19 else c.multi("RETR 1")[0], "RETR/DELE")
        c.quit()            # waits for the server to close the connection
        c.close()
        with Pop3Raw(srv.port) as c2:
            assert_ok(c2.cmd(f"USER {ALICE}"), "USER")
            st = c2.cmd(f"PASS {srv.users[ALICE]}")
            assert st.startswith(b"+OK"), f"round {i}: login right after the previous QUIT closed -> {st!r}"
            assert stat(c2)[0] == (0 if i == 19 else 1)
            c2.quit()


def test_reconnect_right_after_quit_reply(buzon):
    """What curl, fetchmail, mpop and getmail do: read +OK to QUIT, close at once, and the next
    run logs in again immediately. The server has finished the session (deletions committed) when
    it answers QUIT, so the maildrop must not still be locked by it ([IN-USE])."""
    srv = buzon()
    n = 15
    seed(srv, ALICE, [simple(i) for i in range(n)])
    refused = []
    for i in range(n):
        c = srv.raw_login_retry(ALICE) if refused else srv.raw_login(ALICE)
        st, _ = c.multi(f"RETR {i + 1}")     # a RETR: the session has messages to mark as seen
        assert_ok(st, f"RETR {i + 1}")
        assert_ok(c.cmd("QUIT"), "QUIT")
        c.close()                            # do not wait for the server's close
        with Pop3Raw(srv.port) as c2:
            assert_ok(c2.cmd(f"USER {ALICE}"), "USER")
            st = c2.cmd(f"PASS {srv.users[ALICE]}")
            if not st.startswith(b"+OK"):
                refused.append(f"round {i}: {st.decode(errors='replace')}")
            else:
                c2.quit()
    assert not refused, (f"{len(refused)} of {n} logins made right after the previous session's "
                         f"+OK to QUIT were refused:\n" + "\n".join(refused))


def test_dropped_connection_keeps_deleted_messages(buzon):
    srv = buzon()
    msgs = [simple(i) for i in range(1, 4)]
    seed(srv, ALICE, msgs)
    md = srv.maildir(ALICE)
    # 1) FIN without QUIT.
    c = srv.raw_login(ALICE)
    for n in (1, 2, 3):
        assert_ok(c.cmd(f"DELE {n}"), f"DELE {n}")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    p = srv.login_retry(ALICE)
    assert p.stat()[0] == 3, "messages DELEted in a session that never sent QUIT were deleted"
    p.quit()
    # 2) RST (SO_LINGER 0) without QUIT, in the middle of a RETR.
    big = big_message(2 * 1024 * 1024)
    srv.deliver(ALICE, big)
    c = srv.raw_login(ALICE)
    assert_ok(c.cmd("DELE 1"), "DELE 1")
    c.send("RETR 4\r\n")
    c.readline()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    p = srv.login_retry(ALICE)
    assert p.stat()[0] == 4, "aborted (RST) session deleted messages"
    p.quit()
    assert len(maildir_files(md)) == 4
    assert srv.running(), f"server died after an aborted session\n{srv.log()}"


def test_autologout_does_not_enter_update(buzon):
    """RFC 1939 §3: when the autologout timer expires the session is closed WITHOUT entering UPDATE."""
    srv = buzon(config={"pop3": {"autologout": 2}})
    seed(srv, ALICE, [simple(1), simple(2)])
    c = srv.raw_login(ALICE)
    assert_ok(c.cmd("DELE 1"), "DELE 1")
    t0 = time.monotonic()
    closed = c.at_eof(timeout=10)
    c.close()
    assert closed, "idle session not closed within 10 s with autologout = 2"
    assert time.monotonic() - t0 >= 1.5, "session closed before autologout elapsed"
    p = srv.login_retry(ALICE)
    assert p.stat()[0] == 2, "autologout committed a DELE (entered UPDATE state)"
    p.quit()


# ------------------------------------------------------------------------------------------------
# malformed input
# ------------------------------------------------------------------------------------------------

def test_bad_message_numbers(buzon):
    srv = buzon(config={"pop3": {"max_bad_commands": 200}})
    seed(srv, ALICE, [simple(1), simple(2), simple(3)])
    bad_args = ["0", "-1", "99999999999999999999999", "4294967297", "1x", "x", "1.0", "4", "0x1"]
    with Pop3Raw(srv.port) as c:
        c.login(ALICE, srv.users[ALICE])
        for cmd in ("RETR", "DELE", "LIST", "UIDL"):
            for a in bad_args:
                assert_err(c.cmd(f"{cmd} {a}"), f"{cmd} {a}")
        for a in bad_args:
            assert_err(c.cmd(f"TOP {a} 0"), f"TOP {a} 0")
        for cmd in ("RETR", "DELE"):
            assert_err(c.cmd(cmd), f"{cmd} without argument")
        assert stat(c)[0] == 3, "a bad DELE deleted something (or the session broke)"
        st, body = c.multi("RETR 1")
        assert_ok(st, "RETR 1 after bad commands")
        c.quit()
    assert len(maildir_files(srv.maildir(ALICE))) == 3, "bad message numbers deleted mail"


def test_unknown_empty_and_long_commands(buzon):
    srv = buzon()
    seed(srv, ALICE, [simple(1)])
    long_line = "NOOP " + "x" * 295           # 300 octets + CRLF > 255 (RFC 2449 §4)
    with Pop3Raw(srv.port) as c:
        for state in ("AUTHORIZATION", "TRANSACTION"):
            assert_err(c.cmd("XYZZY"), f"unknown command in {state}")
            assert_err(c.cmd(""), f"empty line in {state}")
            assert_err(c.cmd(long_line), f"300-octet command line in {state}")
            assert_err(c.cmd("RETR" + " 1" * 200), f"long argument list in {state}")
            if state == "AUTHORIZATION":
                c.login(ALICE, srv.users[ALICE])
            else:
                assert_ok(c.cmd("NOOP"), "NOOP after bad lines")
        assert_ok(c.cmd("stat"), "lower-case command (commands are case-insensitive)")
        assert_ok(c.cmd("Noop"), "mixed-case command")
        assert stat(c) == (1, len(wire_form(simple(1))))
        c.quit()


def test_huge_line_does_not_hurt_server(buzon):
    srv = buzon()
    seed(srv, ALICE, [simple(1)])
    c = Pop3Raw(srv.port)
    try:
        c.send(b"USER " + b"A" * (1 << 20) + b"\r\n")
        line = c.readline()
        assert line == b"" or line.startswith(b"-ERR"), f"1 MiB command line -> {line[:80]!r}"
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        c.close()
    assert srv.running(), f"server died on a 1 MiB command line\n{srv.log()}"
    with srv.raw_login(ALICE) as c2:
        assert stat(c2)[0] == 1
        c2.quit()


def test_max_bad_commands_disconnects(buzon):
    srv = buzon(config={"pop3": {"max_bad_commands": 3}})
    with Pop3Raw(srv.port) as c:
        errs = 0
        closed = False
        for _ in range(10):
            try:
                c.send("XYZZY\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            line = c.readline()
            if not line:
                closed = True
                break
            assert line.startswith(b"-ERR"), f"XYZZY -> {line!r}"
            errs += 1
        assert closed, "10 bad commands with max_bad_commands = 3 and still connected"
        assert errs <= 4, f"{errs} bad commands answered before disconnecting (limit 3)"


# ------------------------------------------------------------------------------------------------
# locking, sessions, names
# ------------------------------------------------------------------------------------------------

def test_second_session_same_user_in_use(buzon):
    srv = buzon(users={ALICE: "pw-alice-1", BOB: "pw-bob-1"})
    seed(srv, ALICE, [simple(1)])
    a = srv.raw_login(ALICE)
    try:
        with Pop3Raw(srv.port) as b:
            assert_ok(b.cmd(f"USER {ALICE}"), "USER")
            st = b.cmd(f"PASS {srv.users[ALICE]}")
            assert st.startswith(b"-ERR [IN-USE]"), f"second session for a locked maildrop -> {st!r}"
        # A different user is not affected.
        with srv.raw_login(BOB) as b:
            assert stat(b) == (0, 0)
            b.quit()
        assert stat(a)[0] == 1, "first session broken by the second login attempt"
        a.quit()
    finally:
        a.close()
    p = srv.login_retry(ALICE)
    assert p.stat()[0] == 1
    p.quit()


def test_default_domain_maps_to_same_mailbox(buzon):
    carol = "carol@example.com"
    srv = buzon(users={carol: "carol-Pw"}, config={"users": {"default_domain": "example.com"}})
    md = srv.maildir(carol)
    assert md == srv.root / "mail" / "example.com" / "carol" / "Maildir"
    seed(srv, carol, [simple(1), simple(2)])
    views = {}
    for name in ("carol", "carol@example.com", "Carol@Example.COM", "CAROL"):
        with Pop3Raw(srv.port) as c:
            c.login(name, "carol-Pw")
            st, ul = c.multi("UIDL")
            views[name] = parse_uidl_listing(ul)
            c.quit()
        time.sleep(0.05)
    first = views["carol"]
    assert len(first) == 2, f"'carol' sees {len(first)} messages, expected 2 in {md}"
    for name, v in views.items():
        assert v == first, f"{name!r} sees {v}, 'carol' sees {first}"
    # Aliases share one lock: the maildrop is the same.
    a = srv.raw_login("carol", "carol-Pw")
    try:
        with Pop3Raw(srv.port) as b:
            b.cmd("USER carol@example.com")
            st = b.cmd("PASS carol-Pw")
            assert st.startswith(b"-ERR [IN-USE]"), f"'carol@example.com' while 'carol' is logged in: {st!r}"
        assert_ok(a.cmd("DELE 1"), "DELE 1")
        a.quit()
    finally:
        a.close()
    p = srv.login_retry("carol@example.com")
    assert p.stat()[0] == 1, "DELE via 'carol' not visible via 'carol@example.com'"
    p.quit()


def test_pipelining(buzon):
    srv = buzon()
    msgs = [simple(1), EDGE_MESSAGES["dots"], simple(3)]
    seed(srv, ALICE, msgs)
    total = sum(len(wire_form(m)) for m in msgs)
    with Pop3Raw(srv.port) as c:
        c.send(f"CAPA\r\nUSER {ALICE}\r\nPASS {srv.users[ALICE]}\r\nSTAT\r\nLIST\r\nUIDL\r\n"
               "RETR 1\r\nRETR 2\r\nRETR 3\r\nTOP 2 1\r\nXYZZY\r\nNOOP\r\nLIST 2\r\nDELE 3\r\nSTAT\r\n"
               "RSET\r\nQUIT\r\n")
        assert_ok(c.status(), "CAPA")
        c.body()
        assert_ok(c.status(), "USER")
        assert_ok(c.status(), "PASS")
        st = c.status()
        assert st.startswith(f"+OK 3 {total}".encode()), f"STAT -> {st!r}"
        assert_ok(c.status(), "LIST")
        lst, _ = c.body()
        assert len(parse_scan_listing(lst)) == 3
        assert_ok(c.status(), "UIDL")
        assert len(parse_uidl_listing(c.body()[0])) == 3
        got = set()
        for n in (1, 2, 3):
            assert_ok(c.status(), f"RETR {n}")
            got.add(c.body()[0])
        assert got == {wire_form(m) for m in msgs}, "pipelined RETRs returned wrong content"
        assert_ok(c.status(), "TOP 2 1")
        c.body()
        assert_err(c.status(), "XYZZY")
        assert_ok(c.status(), "NOOP")
        assert c.status().startswith(b"+OK 2 "), "LIST 2"
        assert_ok(c.status(), "DELE 3")
        assert c.status().startswith(b"+OK 2 "), "STAT after DELE"
        assert_ok(c.status(), "RSET")
        assert_ok(c.status(), "QUIT")
        assert c.at_eof()
    # Many small commands in one write (server must not drop buffered commands).
    with srv.raw_login(ALICE) as c:
        c.send("LIST 1\r\n" * 300 + "NOOP\r\n")
        for i in range(300):
            st = c.status()
            assert st.startswith(b"+OK 1 "), f"pipelined LIST 1 #{i} -> {st!r}"
        assert_ok(c.status(), "NOOP")
        c.quit()
    assert len(maildir_files(srv.maildir(ALICE))) == 3


# ------------------------------------------------------------------------------------------------
# UIDL stability, Maildir details
# ------------------------------------------------------------------------------------------------

def uidl_by_content(srv, user) -> dict[bytes, str]:
    with srv.raw_login(user) as c:
        count, _ = stat(c)
        st, ul = c.multi("UIDL")
        uidls = parse_uidl_listing(ul)
        num = by_content(c, count)
        c.quit()
    return {body: uidls[n] for body, n in num.items()}


def test_uidl_stable_across_sessions_and_restarts(buzon):
    srv = buzon()
    msgs = [simple(i) for i in range(1, 6)]
    seed(srv, ALICE, msgs[:3])
    seed(srv, ALICE, msgs[3:4], subdir="cur", flags="S")
    seed(srv, ALICE, msgs[4:5], size_in_name=True)
    u1 = uidl_by_content(srv, ALICE)          # RETRs everything (may move new/ -> cur/)
    assert len(u1) == 5
    assert all(uidl_ok(u) for u in u1.values()), f"invalid UIDLs {list(u1.values())}"
    assert len(set(u1.values())) == 5, "UIDLs not unique"
    time.sleep(0.05)
    u2 = uidl_by_content(srv, ALICE)
    assert u2 == u1, "UIDLs changed between sessions (after RETR marked messages seen)"
    srv.restart()
    u3 = uidl_by_content(srv, ALICE)
    assert u3 == u1, "UIDLs changed across a server restart"
    # New mail does not disturb existing UIDLs and gets a fresh one.
    new = simple(42)
    srv.deliver(ALICE, new)
    u4 = uidl_by_content(srv, ALICE)
    assert {k: v for k, v in u4.items() if k != wire_form(new)} == u1
    assert u4[wire_form(new)] not in u1.values(), "new message reuses an existing UIDL"
    # Deleting one message does not renumber the others' UIDLs.
    with srv.raw_login(ALICE) as c:
        num = by_content(c, 6)
        assert_ok(c.cmd(f"DELE {num[wire_form(msgs[0])]}"), "DELE")
        c.quit()
    u5 = uidl_by_content(srv, ALICE)
    assert u5 == {k: v for k, v in u4.items() if k != wire_form(msgs[0])}


def test_maildir_new_cur_tmp(buzon):
    srv = buzon()
    md = srv.maildir(ALICE)
    srv.deliver(ALICE, simple(1))
    srv.deliver(ALICE, simple(2), subdir="cur", flags="S")
    srv.deliver(ALICE, simple(3), subdir="cur", flags="RS")
    srv.deliver(ALICE, simple(4), subdir="cur", flags="")
    (md / "tmp" / "1700009999.M1P1.inprogress").write_bytes(simple(5))   # being delivered: invisible
    with srv.raw_login(ALICE) as c:
        count, size = stat(c)
        assert count == 4, f"expected 4 messages (new/ + cur/, not tmp/), STAT says {count}"
        got = set(by_content(c, 4))
        assert got == {wire_form(simple(i)) for i in (1, 2, 3, 4)}
        c.quit()


def test_many_messages(buzon):
    srv = buzon()
    n = 400
    for i in range(n):
        srv.deliver(ALICE, simple(i))
    with srv.raw_login(ALICE) as c:
        assert stat(c)[0] == n
        assert len(parse_scan_listing(c.multi("LIST")[1])) == n
        u = parse_uidl_listing(c.multi("UIDL")[1])
        assert len(set(u.values())) == n, "UIDLs not unique over 400 messages"
        for i in range(1, n + 1):
            c.send(f"DELE {i}\r\n")
        for i in range(1, n + 1):
            assert_ok(c.status(), f"DELE {i}")
        assert stat(c) == (0, 0)
        c.quit()
    assert maildir_files(srv.maildir(ALICE)) == [], "QUIT did not delete all 400 messages"


def test_concurrent_users(buzon):
    users = {f"user{i}@example.com": f"pw-{i}" for i in range(5)}
    srv = buzon(users=users)
    for u in users:
        srv.deliver(u, simple(1, u))
    sessions = [srv.raw_login(u) for u in users]
    try:
        for u, c in zip(users, sessions):
            st, body = c.multi("RETR 1")
            assert_ok(st, f"RETR 1 for {u}")
            assert body == wire_form(simple(1, u)), f"{u} got someone else's mail"
        for c in sessions:
            c.quit()
    finally:
        for c in sessions:
            c.close()


def test_sigterm_exits_cleanly_and_aborts_sessions(buzon):
    srv = buzon()
    seed(srv, ALICE, [simple(1), simple(2)])
    c = srv.raw_login(ALICE)
    assert_ok(c.cmd("DELE 1"), "DELE 1")
    idle = Pop3Raw(srv.port)          # an idle AUTHORIZATION session too
    t0 = time.monotonic()
    res = srv.stop()
    took = time.monotonic() - t0
    c.close()
    idle.close()
    assert res == "exited with 0 after SIGTERM", f"SIGTERM with open sessions: {res}\n{srv.log()}"
    assert took < 2 + 3, f"shutdown took {took:.1f}s with shutdown_grace = 2"
    assert len(maildir_files(srv.maildir(ALICE))) == 2, "shutdown committed a pending DELE"


# ------------------------------------------------------------------------------------------------
# configured policies: EXPIRE 0, APOP, LOGIN-DELAY, connection limits
# ------------------------------------------------------------------------------------------------

def test_expire_zero_deletes_retrieved_at_quit(buzon):
    """README: `expire = 0` advertises EXPIRE 0 and deletes the messages RETRieved in a session at
    its QUIT (RFC 2449 §6.7); an aborted session deletes nothing."""
    srv = buzon(config={"pop3": {"expire": 0}})
    msgs = [simple(1), simple(2), simple(3)]
    seed(srv, ALICE, msgs)
    with srv.raw_login(ALICE) as c:
        st, capa = c.multi("CAPA")
        assert parse_capa(capa).get("EXPIRE") == ["0"], f"CAPA with expire = 0: {capa!r}"
        by_content(c, 3)             # RETRs all three ...
    # ... but the connection dropped without QUIT: nothing deleted.
    p = srv.login_retry(ALICE)
    assert p.stat()[0] == 3, "EXPIRE 0 deleted messages of an aborted session"
    p.quit()
    with srv.raw_login(ALICE) as c:   # RETR all three, then QUIT: all go
        by_content(c, 3)
        c.quit()
    left = maildir_files(srv.maildir(ALICE))
    assert left == [], f"EXPIRE 0: retrieved messages not deleted at QUIT: {[f.name for f in left]}"
    # Only what was retrieved goes: a fresh message that is only LISTed stays.
    srv.deliver(ALICE, simple(4))
    srv.deliver(ALICE, simple(5))
    with srv.raw_login(ALICE) as c:
        st, body = c.multi("RETR 1")
        assert_ok(st, "RETR 1")
        c.quit()
    left = [f.read_bytes() for f in maildir_files(srv.maildir(ALICE))]
    assert len(left) == 1, f"EXPIRE 0: expected the un-retrieved message to stay, left: {left}"
    assert wire_form(left[0]) != body, "the retrieved message stayed, the other one went"


def test_apop(buzon):
    import hashlib
    srv = buzon(users={}, config={"pop3": {"apop": True}}, start=False)
    f = srv.root / "apop-pw"
    f.write_text("apop-Secret")
    r = srv.run_cli("user", "add", "ap@example.com", "--password-file", str(f), "--scheme", "PLAIN")
    assert r.returncode == 0, r.stderr
    srv.users["ap@example.com"] = "apop-Secret"
    srv.start()
    with Pop3Raw(srv.port) as c:
        m = re.search(rb"<[^<>@\s]+@[^<>\s]+>", c.greeting)
        assert m, f"apop = true but no <timestamp@host> in the greeting {c.greeting!r}"
        st, capa = c.multi("CAPA")
        digest = hashlib.md5(m.group(0) + b"apop-Secret").hexdigest()
        assert c.cmd(f"APOP ap@example.com {'0' * 32}").startswith(b"-ERR [AUTH]"), "wrong APOP digest"
        st = c.cmd(f"APOP ap@example.com {digest}")
        assert_ok(st, "APOP with the right digest")
        assert stat(c) == (0, 0)
        c.quit()
    # poplib's apop()
    p = srv.pop()
    try:
        assert p.apop("ap@example.com", "apop-Secret").startswith(b"+OK")
    finally:
        p.quit()


def test_login_delay_enforced(buzon):
    srv = buzon(config={"pop3": {"login_delay": 2}})
    with srv.raw_login(ALICE) as c:
        c.quit()
    with Pop3Raw(srv.port) as c:
        c.cmd(f"USER {ALICE}")
        st = c.cmd(f"PASS {srv.users[ALICE]}")
        assert st.startswith(b"-ERR [LOGIN-DELAY]"), f"second login within login_delay = 2 s -> {st!r}"
    time.sleep(2.2)
    with srv.raw_login(ALICE) as c:
        c.quit()


def test_connection_limit_per_ip(buzon):
    srv = buzon(config={"server": {"max_connections_per_ip": 3}})
    conns = [Pop3Raw(srv.port) for _ in range(3)]
    try:
        for c in conns:
            assert c.greeting.startswith(b"+OK")
        extra = Pop3Raw(srv.port, read_greeting=False)
        try:
            line = extra.readline()
            assert line == b"" or line.startswith(b"-ERR"), \
                f"4th connection with max_connections_per_ip = 3 greeted {line!r}"
        except (ConnectionResetError, socket.timeout, TimeoutError) as e:
            assert not isinstance(e, (socket.timeout, TimeoutError)), "4th connection hung"
        finally:
            extra.close()
    finally:
        for c in conns:
            c.close()
    # Slots are given back when connections close.
    deadline = time.monotonic() + 5
    while True:
        c = Pop3Raw(srv.port, read_greeting=False)
        line = c.readline()
        c.close()
        if line.startswith(b"+OK"):
            break
        assert time.monotonic() < deadline, "connection slots not released after the clients closed"
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# other agents touching the Maildir; other processes
# ------------------------------------------------------------------------------------------------

def test_in_use_across_processes(buzon):
    """The maildrop lock holds across buzon processes (two servers on one mail tree)."""
    a_srv = buzon()
    b_srv = buzon(config={"mail": {"location": str(a_srv.root / "mail" / "%d" / "%n" / "Maildir")}})
    b_srv.users = dict(a_srv.users)
    seed(a_srv, ALICE, [simple(1)])
    assert b_srv.maildir(ALICE) == a_srv.maildir(ALICE)
    with a_srv.raw_login(ALICE) as c:
        with Pop3Raw(b_srv.port) as d:
            d.cmd(f"USER {ALICE}")
            st = d.cmd(f"PASS {a_srv.users[ALICE]}")
            assert st.startswith(b"-ERR [IN-USE]"), f"same maildrop via a second process -> {st!r}"
        assert_ok(c.cmd("DELE 1"), "DELE 1")
        c.quit()
    with b_srv.raw_login(ALICE) as d:
        assert stat(d) == (0, 0), "second process does not see the deletion"
        d.quit()


def test_maildir_changed_by_others_during_session(buzon):
    """The message list is a snapshot (RFC 1939); other agents may deliver, rename (an MUA marking
    a message read: new/X -> cur/X:2,S) or delete files meanwhile."""
    srv = buzon()
    paths = seed(srv, ALICE, [simple(1), simple(2), simple(3)])
    md = srv.maildir(ALICE)
    with srv.raw_login(ALICE) as c:
        num = by_content(c, 3)
        n1, n2, n3 = (num[wire_form(simple(i))] for i in (1, 2, 3))
        srv.deliver(ALICE, simple(4))                                  # new delivery
        renamed = md / "cur" / (paths[1].name + ":2,S")
        os.rename(paths[1], renamed)                                   # an MUA marked #2 read
        os.unlink(paths[2])                                            # another agent removed #3
        assert stat(c)[0] == 3, "a delivery during the session changed the message count"
        st, body = c.multi(f"RETR {n2}")
        assert st.startswith(b"+OK") and body == wire_form(simple(2)), \
            f"RETR of a message renamed new/ -> cur/ by another agent -> {st!r}"
        st, body = c.multi(f"RETR {n3}")
        assert st.startswith(b"-ERR") or body == wire_form(simple(3)), \
            f"RETR of a message deleted by another agent -> {st!r} {body[:60]!r}"
        assert_ok(c.cmd("NOOP"), "NOOP after RETR of a vanished message")
        assert_ok(c.cmd(f"DELE {n2}"), "DELE of the renamed message")
        c.cmd(f"DELE {n3}")   # +OK or -ERR both fine; QUIT must still succeed
        c.quit()
    left = sorted(f.read_bytes() for f in maildir_files(md))
    assert left == sorted([simple(1), simple(4)]), \
        f"after QUIT: expected messages 1 and 4 to remain, found {[l[:40] for l in left]}"
    assert srv.running()


def test_small_retrs_are_served_from_the_page_cache_identically(buzon):
    """Issue 6: a small message whose file is in the page cache is read on the event loop
    (openat2 RESOLVE_CACHED + preadv2 RWF_NOWAIT, or plain reads on tmpfs) instead of by a worker
    thread. The first RETR opens the directories on the pool; the others take the fast path, and
    every octet is the same as the slow path's (dot-stuffing, LF -> CRLF, unterminated last line)."""
    srv = buzon()
    msgs = [simple(i, ".leading dot\nbare lf\n" * (i + 1)) for i in range(4)] + [b"no final newline"]
    seed(srv, ALICE, msgs)
    p = srv.login(ALICE)
    for i, raw in enumerate(msgs, 1):
        _, lines, octets = p.retr(i)
        assert b"\r\n".join(lines) + b"\r\n" == wire_form(raw), f"RETR {i}"
    p.quit()
    deadline = time.time() + 5
    while "user=alice@example.com result=quit" not in srv.log() and time.time() < deadline:
        time.sleep(0.05)
    m = re.search(r"pop3 session .*user=alice@example\.com result=quit .*retr=5/\d+ .*cached=(\d+)", srv.log())
    assert m, srv.log()[-2000:]
    assert int(m.group(1)) >= 1, "no RETR took the page-cache path: " + m.group(0)
