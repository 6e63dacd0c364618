"""Migration from Dovecot: a private Dovecot serves a Maildir first, then buzon serves the SAME
Maildir. With [mail] uidl_format = "dovecot" every message Dovecot listed keeps its UIDL (so POP3
clients that "leave mail on server" do not download everything again), and the octets served are
the same. Also: Dovecot is used as the reference for our wire-form oracle (conftest.wire_form).
"""
from conftest import (DOT_CR_ACCEPTABLE, DOT_CR_MESSAGE, EDGE_MESSAGES, Pop3Raw, big_message,
                      maildir_files, parse_scan_listing, parse_uidl_listing, uidl_ok, wire_form)

USER = "alice"
PASSWORD = "dove-Pw-1"


def raw_session_dump(port: int, user: str, password: str) -> tuple[dict[int, str], dict[int, int], dict[int, bytes]]:
    """Logs in over a raw socket and returns (uidls, sizes, contents) keyed by message number."""
    with Pop3Raw(port) as c:
        c.login(user, password)
        st, lst = c.multi("LIST")
        assert st.startswith(b"+OK"), f"LIST -> {st!r}"
        sizes = parse_scan_listing(lst)
        st, ul = c.multi("UIDL")
        assert st.startswith(b"+OK"), f"UIDL -> {st!r}"
        uidls = parse_uidl_listing(ul)
        contents = {}
        for n in sizes:
            st, body = c.multi(f"RETR {n}")
            assert st.startswith(b"+OK"), f"RETR {n} -> {st!r}"
            contents[n] = body
        c.quit()
    assert set(uidls) == set(sizes), f"UIDL numbers {sorted(uidls)} != LIST numbers {sorted(sizes)}"
    return uidls, sizes, contents


def seed_history(dv) -> dict[str, bytes]:
    """Messages in the states a real Dovecot Maildir has: new/, cur/ with flags, Dovecot-style
    ',S=,W=' names."""
    msgs = {}
    for i in range(6):
        raw = (f"From: s{i}@example.org\nTo: alice@example.com\nSubject: history {i}\n"
               f"Message-ID: <h{i}@example.org>\n\nbody of message {i}\n").encode()
        kw = {}
        if i % 3 == 1:
            kw = {"subdir": "cur", "flags": "S"}
        elif i % 3 == 2:
            kw = {"size_in_name": True}
        dv.deliver(USER, raw, **kw)
        msgs[f"h{i}"] = raw
    for name, raw in EDGE_MESSAGES.items():
        dv.deliver(USER, raw)
        msgs[name] = raw
    return msgs


def by_content(contents: dict[int, bytes], uidls: dict[int, str]) -> dict[bytes, str]:
    out = {}
    for n, body in contents.items():
        assert body not in out, f"two messages with identical content (test bug): {body[:60]!r}"
        out[body] = uidls[n]
    return out


def test_dovecot_reference_matches_wire_oracle(dovecot):
    """Not a buzon test: checks that our expected wire form (conftest.wire_form) is what a mature
    server sends, for every edge case the buzon tests use."""
    dv = dovecot({USER: PASSWORD})
    msgs = dict(EDGE_MESSAGES)
    msgs["dot_cr"] = DOT_CR_MESSAGE
    msgs["big"] = big_message(1024 * 1024)
    for raw in msgs.values():
        dv.deliver(USER, raw)
    dv.start()
    uidls, sizes, contents = raw_session_dump(dv.port, USER, PASSWORD)
    assert len(contents) == len(msgs), f"Dovecot lists {len(contents)} of {len(msgs)} messages"
    got = set(contents.values())
    for name, raw in msgs.items():
        want = wire_form(raw)
        assert want in got, f"Dovecot's RETR of {name!r} differs from wire_form()"
    assert DOT_CR_ACCEPTABLE[0] == wire_form(DOT_CR_MESSAGE)
    for n, u in uidls.items():
        assert uidl_ok(u), f"Dovecot UIDL {u!r} invalid"


def test_uidls_survive_migration_from_dovecot(dovecot, buzon):
    dv = dovecot({USER: PASSWORD})
    msgs = seed_history(dv)
    dv.start()

    # A first Dovecot session: read everything (moves new/ -> cur/), delete one message, QUIT,
    # so the uidlist has a hole and UIDs are not simply 1..n.
    with Pop3Raw(dv.port) as c:
        c.login(USER, PASSWORD)
        st, ul = c.multi("UIDL")
        assert st.startswith(b"+OK")
        first = parse_uidl_listing(ul)
        assert len(first) == len(msgs), f"Dovecot sees {len(first)} of {len(msgs)} messages:\n{dv.log()}"
        for n in first:
            st, _ = c.multi(f"RETR {n}")
            assert st.startswith(b"+OK")
        assert c.cmd("DELE 2").startswith(b"+OK")
        c.quit()

    dv_uidls, dv_sizes, dv_contents = raw_session_dump(dv.port, USER, PASSWORD)
    assert len(dv_uidls) == len(msgs) - 1, "Dovecot did not delete the message on QUIT"
    dv_map = by_content(dv_contents, dv_uidls)
    stop = dv.stop()
    assert "SIGKILL" not in stop, f"Dovecot: {stop}"

    maildir = dv.maildir(USER)
    assert (maildir / "dovecot-uidlist").exists(), "Dovecot left no dovecot-uidlist (test setup)"
    # Mail that arrives after the switch (not in dovecot-uidlist): buzon's own UIDLs.
    late = [b"From: late@example.org\nSubject: late 1\n\nafter migration 1\n",
            b"From: late@example.org\nSubject: late 2\n\nafter migration 2\n"]
    for raw in late:
        dv.deliver(USER, raw)

    srv = buzon(users={USER: PASSWORD},
                config={"mail": {"location": f"{dv.mail}/%u/Maildir", "uidl_format": "dovecot"}})
    bz_uidls, bz_sizes, bz_contents = raw_session_dump(srv.port, USER, PASSWORD)
    assert len(bz_uidls) == len(dv_uidls) + len(late), (
        f"buzon lists {len(bz_uidls)} messages, expected {len(dv_uidls)} migrated + {len(late)} new; "
        f"files on disk: {[p.name for p in maildir_files(maildir)]}\n{srv.log()}")
    bz_map = by_content(bz_contents, bz_uidls)

    problems = []
    # Same octets as Dovecot served, same UIDL for each.
    mismatches = []
    for body, dv_uidl in dv_map.items():
        if body not in bz_map:
            problems.append(f"buzon does not serve the message Dovecot served as UIDL {dv_uidl} "
                            f"byte-identically: {body[:80]!r}")
        elif bz_map[body] != dv_uidl:
            mismatches.append((dv_uidl, bz_map[body]))
    if mismatches:
        problems.append(f"UIDL changed by migration for {len(mismatches)} of {len(dv_map)} messages "
                        f"(dovecot, buzon): {mismatches}")

    # Sizes are the octets sent.
    for n, size in bz_sizes.items():
        if size != len(bz_contents[n]):
            problems.append(f"LIST {n} says {size}, RETR sent {len(bz_contents[n])} "
                            f"({bz_contents[n][:60]!r}...)")

    # Late messages: valid, unique, not colliding with migrated ones.
    all_uidls = list(bz_uidls.values())
    if len(set(all_uidls)) != len(all_uidls):
        problems.append(f"duplicate UIDLs: {all_uidls}")
    for u in all_uidls:
        if not uidl_ok(u):
            problems.append(f"invalid UIDL {u!r}")
    for raw in late:
        if wire_form(raw) not in bz_map:
            problems.append(f"late message not served byte-exact: {raw!r}")

    # Stable across a second session and a restart.
    again, _, _ = raw_session_dump(srv.port, USER, PASSWORD)
    if again != bz_uidls:
        problems.append("UIDLs changed between two buzon sessions")
    srv.restart()
    again, _, _ = raw_session_dump(srv.port, USER, PASSWORD)
    if again != bz_uidls:
        problems.append("UIDLs changed across a buzon restart")
    assert not problems, "\n".join(problems)


def test_default_uidl_format_on_dovecot_maildir_is_stable(dovecot, buzon):
    """buzon's own UIDL format on a Maildir full of Dovecot's files (dovecot-uidlist, indexes,
    cur/ with flags): one UIDL per message, valid, unique, stable across sessions, restarts and
    the new/ -> cur/ move that RETR causes."""
    dv = dovecot({USER: PASSWORD})
    msgs = seed_history(dv)
    dv.start()
    with Pop3Raw(dv.port) as c:
        c.login(USER, PASSWORD)
        st, lst = c.multi("LIST")
        assert len(parse_scan_listing(lst)) == len(msgs)
        assert c.multi("RETR 1")[0].startswith(b"+OK")
        c.quit()
    dv.stop()
    dv.deliver(USER, b"Subject: fresh\n\nstill in new/\n")
    n_msgs = len(msgs) + 1
    maildir = dv.maildir(USER)
    assert len(maildir_files(maildir)) == n_msgs

    srv = buzon(users={USER: PASSWORD}, config={"mail": {"location": f"{dv.mail}/%u/Maildir"}})
    u1, sizes, contents = raw_session_dump(srv.port, USER, PASSWORD)   # RETRs everything
    assert len(u1) == n_msgs, (f"buzon lists {len(u1)} messages, the Maildir has {n_msgs} "
                               f"(Dovecot's index/uidlist files must not be listed)\n{srv.log()}")
    vals = list(u1.values())
    assert len(set(vals)) == len(vals), f"duplicate UIDLs {vals}"
    assert all(uidl_ok(u) for u in vals), f"invalid UIDLs {vals}"
    expected = {wire_form(r) for r in msgs.values()} | {wire_form(b"Subject: fresh\n\nstill in new/\n")}
    assert set(contents.values()) == expected, "buzon does not serve the Dovecot Maildir byte-exact"
    u2, _, _ = raw_session_dump(srv.port, USER, PASSWORD)
    assert u2 == u1, "buzon default UIDLs changed after RETR (new/ -> cur/ move?)"
    srv.restart()
    u3, _, _ = raw_session_dump(srv.port, USER, PASSWORD)
    assert u3 == u1, "buzon default UIDLs changed across a restart"
    # (checked last so that a size bug does not hide the UIDL checks above)
    bad = [(n, sizes[n], len(contents[n])) for n in sizes if sizes[n] != len(contents[n])]
    assert not bad, f"LIST size != octets RETR sent (msg, LIST, sent): {bad}"


def test_x_uidl_format(buzon):
    """uidl_format = "x-uidl" (migration from servers that wrote X-UIDL headers, e.g. qpopper):
    a valid, unique X-UIDL header is the UIDL; anything else falls back to buzon's own UIDL, and
    the whole list stays unique and valid."""
    srv = buzon(users={USER: PASSWORD}, config={"mail": {"uidl_format": "x-uidl"}})
    good = {f"qpop{i}-0123456789abcdef": f"X-UIDL: qpop{i}-0123456789abcdef\nSubject: x{i}\n\nb{i}\n".encode()
            for i in range(4)}
    for raw in good.values():
        srv.deliver(USER, raw)
    too_long = "L" * 71
    odd = {
        "too_long": f"X-UIDL: {too_long}\nSubject: long\n\nlong\n".encode(),
        "dup_a": b"X-UIDL: same-uidl-twice\nSubject: dup a\n\na\n",
        "dup_b": b"X-UIDL: same-uidl-twice\nSubject: dup b\n\nb\n",
        "none": b"Subject: no header\n\nnone\n",
        "in_body": b"Subject: header only in body\n\nX-UIDL: body-not-header\n",
        "ctl": b"X-UIDL: bad\x01char\nSubject: ctl\n\nctl\n",
    }
    for raw in odd.values():
        srv.deliver(USER, raw)
    uidls, sizes, contents = raw_session_dump(srv.port, USER, PASSWORD)
    assert len(uidls) == len(good) + len(odd)
    by_body = by_content(contents, uidls)
    for u, raw in good.items():
        assert by_body[wire_form(raw)] == u, f"valid X-UIDL {u!r} not used: got {by_body[wire_form(raw)]!r}"
    vals = list(uidls.values())
    assert len(set(vals)) == len(vals), f"UIDLs not unique with uidl_format = x-uidl: {vals}"
    assert all(uidl_ok(v) for v in vals), f"invalid UIDLs: {vals}"
    assert by_body[wire_form(odd["too_long"])] != too_long, "a 71-character X-UIDL was used"
    assert by_body[wire_form(odd["in_body"])] != "body-not-header", "X-UIDL read from the body"
    again, _, _ = raw_session_dump(srv.port, USER, PASSWORD)
    assert again == uidls, "x-uidl UIDLs not stable between sessions"
