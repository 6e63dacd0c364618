"""Authentication against the real binary (issue 3): the plaintext policy seen from an untrusted
address (loopback configured as NOT trusted, so the refusal path really runs), AUTH (RFC 5034) with
PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256 from independent Python clients and from curl, stored
credentials interchangeable with Dovecot's (doveadm pw), the failed-login delay per address, and a
storm of wrong passwords that must not stall a logged-in user.
"""
import base64
import os
import poplib
import subprocess
import threading
import time

import pytest

from conftest import HOST, find_tool, wire_form
from tlsutil import CertAuthority, Pop3Tls, ScramClient, cram_md5, tls_server

USER = "alice@example.com"
PW = "s3cret-Pw"
REFUSED = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
ALL = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"]


@pytest.fixture
def ca(tmp_path):
    return CertAuthority(tmp_path / "ca")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def wait_log(srv, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"the server log never showed {text!r}:\n{srv.log()}"
        time.sleep(0.05)
    return srv.log()


# --------------------------------------------------------------------------------------------
# Plaintext policy
# --------------------------------------------------------------------------------------------

def test_plaintext_refused_without_tls_from_an_untrusted_address(buzon, ca):
    # Loopback is trusted by default; here it is not, so 127.0.0.1 is treated like any remote peer.
    # The demo's mechanisms: all of them work for a user stored as SCRAM-SHA-256. (Offering
    # CRAM-MD5 too would break curl here: it picks CRAM-MD5 first and does not fall back.)
    srv = tls_server(buzon, ca, auth={"mechanisms": ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"],
                                      "trusted_networks": []},
                     users={"default_scheme": "SCRAM-SHA-256"})
    srv.deliver(USER, b"Subject: x\n\nhello\n")
    with Pop3Tls(srv.port) as c:
        caps = c.capa()
        assert "USER" not in caps, f"USER advertised where it is refused: {caps}"
        assert caps["SASL"] == ["SCRAM-SHA-256"], caps  # no PLAIN/LOGIN; no -PLUS without TLS
        assert "STLS" in caps
        assert c.cmd("USER " + USER) == REFUSED
        assert c.cmd("PASS " + PW) == REFUSED
        assert c.cmd("AUTH PLAIN " + b64(f"\0{USER}\0{PW}".encode())) == REFUSED
        assert c.cmd("AUTH LOGIN") == REFUSED
        st, body = c.multi("AUTH")
        assert body.split() == [b"SCRAM-SHA-256"], body
        # A mechanism that does not reveal the password works without TLS.
        scram = ScramClient(USER, PW)
        st = c.auth("SCRAM-SHA-256", scram.responder(), scram.first())
        assert st.startswith(b"+OK Logged in"), st
        assert scram.verified
        c.quit()
    # poplib and curl, as a user would meet it.
    p = poplib.POP3(HOST, srv.port, timeout=20)
    with pytest.raises(poplib.error_proto) as e:
        p.user(USER)
    assert b"[AUTH]" in e.value.args[0]
    p.quit()
    curl = find_tool("curl")
    r = subprocess.run([curl, "-sS", "--max-time", "20", "-u", f"{USER}:{PW}", f"pop3://{HOST}:{srv.port}/"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0, "curl logged in with a plaintext password over plain TCP"
    # After STLS the same commands are accepted (and CAPA now offers them).
    with Pop3Tls(srv.port) as c:
        c.stls(ca.context())
        caps = c.capa()
        assert "USER" in caps and "PLAIN" in caps["SASL"] and "STLS" not in caps, caps
        c.login(USER, PW)
        c.quit()
    r = subprocess.run([curl, "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", str(ca.cert), "-u", f"{USER}:{PW}",
                        f"pop3://{HOST}:{srv.port}/1"], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == wire_form(b"Subject: x\n\nhello\n"), r.stderr


def test_trusted_network_and_policy_switch(buzon):
    # Default: loopback is trusted, plaintext is fine there (what `make run` relies on).
    srv = buzon(config={"metrics": {"enabled": False}})
    srv.login(USER).quit()
    srv.stop()
    # plaintext_requires_tls = false allows it from anywhere (and doctor warns about it).
    srv = buzon(config={"metrics": {"enabled": False},
                        "auth": {"trusted_networks": [], "plaintext_requires_tls": False}})
    srv.login(USER).quit()
    r = srv.run_cli("doctor")
    assert b"plaintext_requires_tls = false" in r.stdout, r.stdout


# --------------------------------------------------------------------------------------------
# SASL mechanisms
# --------------------------------------------------------------------------------------------

def test_sasl_mechanisms_from_python_clients(buzon):
    srv = buzon(users={"alice@example.com": PW, "carol@example.com": "tanstaaftanstaaf"},
                config={"metrics": {"enabled": False}, "auth": {"mechanisms": ALL},
                        "users": {"default_scheme": "SCRAM-SHA-256"}})
    # carol is stored as Dovecot's CRAM-MD5 context (made by buzon, equal to `doveadm pw -s CRAM-MD5`).
    r = srv.run_cli("user", "passwd", "carol@example.com", "--scheme", "CRAM-MD5", input=b"tanstaaftanstaaf\n")
    assert r.returncode == 0, r.stderr
    for u in ("alice@example.com", "carol@example.com"):
        srv.deliver(u, b"Subject: s\n\nbody\n")
    srv.proc.send_signal(1)  # SIGHUP: re-read the users
    wait_log(srv, "reloaded")

    def session(fn):
        with Pop3Tls(srv.port) as c:
            out = fn(c)
            c.cmd("QUIT")
            return out

    # AUTH alone lists what this connection offers (plain TCP: no -PLUS).
    st, body = session(lambda c: c.multi("AUTH"))
    assert st.startswith(b"+OK") and body.split() == [b"SCRAM-SHA-256", b"CRAM-MD5", b"PLAIN", b"LOGIN"], body
    # PLAIN with and without an initial response.
    assert session(lambda c: c.auth("PLAIN", None, f"\0{USER}\0{PW}".encode())).startswith(b"+OK Logged in")
    assert session(lambda c: c.auth("PLAIN", lambda ch: f"\0{USER}\0{PW}".encode())).startswith(b"+OK Logged in")
    # LOGIN: "Username:", "Password:".
    answers = iter([USER.encode(), PW.encode()])
    prompts = []
    st = session(lambda c: c.auth("LOGIN", lambda ch: (prompts.append(ch), next(answers))[1]))
    assert st.startswith(b"+OK Logged in") and prompts == [b"Username:", b"Password:"], (st, prompts)
    # CRAM-MD5 works for carol (stored context), not for alice (SCRAM keys cannot answer it).
    assert session(lambda c: c.auth("CRAM-MD5", cram_md5("carol@example.com", "tanstaaftanstaaf"))).startswith(
        b"+OK Logged in")
    assert session(lambda c: c.auth("CRAM-MD5", cram_md5(USER, PW))).startswith(b"-ERR [AUTH]")
    assert "stored scheme does not allow CRAM-MD5" in srv.log()
    # SCRAM-SHA-256, and a wrong password that fails after the full exchange.
    scram = ScramClient(USER, PW)
    assert session(lambda c: c.auth("SCRAM-SHA-256", scram.responder(), scram.first())).startswith(b"+OK Logged in")
    assert scram.verified
    bad = ScramClient(USER, "wrong")
    assert session(lambda c: c.auth("SCRAM-SHA-256", bad.responder(), bad.first())).startswith(b"-ERR [AUTH]")
    # A 12 KiB initial response (SCRAM with an extension the server ignores) is accepted.
    big = ScramClient(USER, PW, extension="x=" + "y" * 9000)
    assert len(b64(big.first())) > 12000
    assert session(lambda c: c.auth("SCRAM-SHA-256", big.responder(), big.first())).startswith(b"+OK Logged in")

    # "*" cancels; bad base64 is refused; the session goes on and can still log in.
    def cancel_then_login(c):
        first = c.cmd("AUTH LOGIN")
        cancelled = c.cmd("*")
        bad64 = c.cmd("AUTH PLAIN A=AA")
        ok = c.auth("PLAIN", None, f"\0{USER}\0{PW}".encode())
        return first, cancelled, bad64, ok

    first, cancelled, bad64, ok = session(cancel_then_login)
    assert first == b"+ VXNlcm5hbWU6"
    assert cancelled == b"-ERR Authentication cancelled."
    assert bad64 == b"-ERR Invalid base64 data in initial response."
    assert ok.startswith(b"+OK Logged in")


def test_curl_sasl_mechanisms(buzon, ca):
    curl = find_tool("curl")
    srv = tls_server(buzon, ca, auth={"mechanisms": ["CRAM-MD5", "PLAIN", "LOGIN"]}, users={"default_scheme": "CRAM-MD5"})
    srv.deliver(USER, b"Subject: c\n\ncurl\n")
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        r = subprocess.run([curl, "-sS", "--max-time", "20", "--cacert", str(ca.cert), "--login-options",
                            f"AUTH={mech}", "-u", f"{USER}:{PW}", f"pop3s://{HOST}:{srv.tls_port}/1"],
                           capture_output=True, timeout=60)
        assert r.returncode == 0 and r.stdout == wire_form(b"Subject: c\n\ncurl\n"), (mech, r.stderr, srv.log())
        wait_log(srv, f"auth={mech}")


def test_credentials_interoperate_with_dovecot(buzon):
    doveadm = find_tool("doveadm")

    def dove(*args):
        r = subprocess.run([doveadm, "pw", *args], capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode().strip()

    srv = buzon(users={}, config={"metrics": {"enabled": False}, "auth": {"mechanisms": ALL}}, start=False)
    _, scram = dove("-s", "SCRAM-SHA-256", "-p", "pencil")
    _, cram = dove("-s", "CRAM-MD5", "-p", "tanstaaftanstaaf")
    assert scram.startswith("{SCRAM-SHA-256}4096,") and cram.startswith("{CRAM-MD5}")
    with open(srv.passwd, "a") as f:
        f.write(f"dscram:{scram}::::::\ndcram:{cram}::::::\n")
    for u in ("dscram", "dcram"):
        srv.deliver(u, b"Subject: d\n\nfrom dovecot\n")
    srv.start()
    with Pop3Tls(srv.port) as c:  # Dovecot's SCRAM keys serve SCRAM...
        s = ScramClient("dscram", "pencil")
        assert c.auth("SCRAM-SHA-256", s.responder(), s.first()).startswith(b"+OK Logged in") and s.verified
    with Pop3Tls(srv.port) as c:  # ...and plaintext logins
        c.login("dscram", "pencil")
    with Pop3Tls(srv.port) as c:  # Dovecot's CRAM-MD5 context serves CRAM-MD5 and plaintext logins
        assert c.auth("CRAM-MD5", cram_md5("dcram", "tanstaaftanstaaf")).startswith(b"+OK Logged in")
    with Pop3Tls(srv.port) as c:
        c.login("dcram", "tanstaaftanstaaf")
    # `buzon user add --scheme SCRAM-SHA-256` writes what doveadm accepts.
    r = srv.run_cli("user", "add", "mine", "--scheme", "SCRAM-SHA-256", input=b"correct horse\n")
    assert r.returncode == 0, r.stderr
    line = next(l for l in srv.passwd.read_text().splitlines() if l.startswith("mine:"))
    stored = line.split(":")[1]
    assert stored.startswith("{SCRAM-SHA-256}4096,"), stored
    assert dove("-t", stored, "-p", "correct horse")[0] == 0, "doveadm rejects buzon's SCRAM-SHA-256 hash"
    assert dove("-t", stored, "-p", "wrong")[0] != 0
    assert srv.run_cli("user", "show", "mine").stdout.decode().splitlines()[1] == "scheme: SCRAM-SHA-256"


# --------------------------------------------------------------------------------------------
# Brute force: the delay per address, and hashing that cannot starve logged-in users
# --------------------------------------------------------------------------------------------

def test_failed_logins_slow_down_the_address_not_the_server(buzon):
    srv = buzon(users={USER: PW, "bob@example.com": PW},
                config={"metrics": {"enabled": False},
                        "auth": {"trusted_networks": [], "plaintext_requires_tls": False,
                                 "failure_delay_ms": 300, "failure_delay_max_ms": 1200}})
    srv.deliver(USER, b"Subject: p\n\npenalty\n")
    # Another user who is already logged in (before the attack, from the same address).
    victim = srv.raw_login("bob@example.com")
    noops_done = []  # (sent, answered)
    stop = threading.Event()

    def noops():
        while not stop.is_set():
            t0 = time.monotonic()
            assert victim.cmd("NOOP").startswith(b"+OK")
            noops_done.append((t0, time.monotonic()))
            time.sleep(0.02)

    t = threading.Thread(target=noops)
    t.start()
    try:
        attacker = srv.raw()
        waits = []
        windows = []
        for i in range(5):
            assert attacker.cmd(f"USER {USER}").startswith(b"+OK")
            t0 = time.monotonic()
            st = attacker.cmd(f"PASS wrong{i}")
            waits.append(time.monotonic() - t0)
            windows.append((t0, time.monotonic()))
            assert st == b"-ERR [AUTH] Authentication failed.", st
        # A second connection from the same address does not start afresh (parallel guessing).
        other = srv.raw()
        assert other.cmd(f"USER {USER}").startswith(b"+OK")
        t0 = time.monotonic()
        assert other.cmd(f"PASS {PW}").startswith(b"+OK Logged in")
        right_wait = time.monotonic() - t0
        other.quit()
        # The right password forgave the address: the next mistake is answered at once.
        assert attacker.cmd(f"USER {USER}").startswith(b"+OK")
        t0 = time.monotonic()
        attacker.cmd("PASS wrong-again")
        after_success = time.monotonic() - t0
        attacker.close()
    finally:
        stop.set()
        t.join()
    # Dovecot's curve, scaled: 0, then 300 ms doubling to the 1200 ms cap.
    assert waits[0] < 0.25, waits
    assert 0.25 <= waits[1] < 0.9, waits
    assert 0.55 <= waits[2] < 1.2, waits
    assert 1.1 <= waits[3] < 1.8, waits
    assert 1.1 <= waits[4] < 1.8, waits
    assert 1.1 <= right_wait < 1.8, right_wait
    assert after_success < 0.25, after_success
    # The logged-in session kept being served during the attacker's waits (a sleeping server
    # thread would have answered nothing meanwhile): the delay is a timer in the attacker's session.
    for start, end in windows[3:]:
        inside = [d for d in noops_done if start < d[0] and d[1] < end]
        assert len(inside) >= 10, f"only {len(inside)} NOOPs answered during a {end - start:.2f}s penalty wait"
    assert max(b - a for a, b in noops_done) < 0.6, "a NOOP waited as long as a penalty"
    victim.quit()


def test_password_storm_does_not_stall_a_logged_in_user(buzon):
    """Argon2id (64 MiB, 3 passes, as doveadm makes it) on ONE hashing thread: sixteen parallel wrong
    guesses keep it busy for seconds. The logged-in user's RETRs use the store pool and must not
    wait behind them (and the event loop must not block)."""
    srv = buzon(config={"metrics": {"enabled": False}, "server": {"worker_threads": 2},
                        "auth": {"hash_threads": 1}, "users": {"default_scheme": "ARGON2ID"}})
    body = b"Subject: big\n\n" + b"".join(b"%06d " % i + b"z" * 70 + b"\n" for i in range(3000))
    srv.deliver(USER, body)
    user = srv.raw_login(USER)
    storm_errors = []

    def guess(i):
        try:
            c = srv.raw()
            c.cmd(f"USER {USER}")
            st = c.cmd(f"PASS guess-{i}")
            if not st.startswith(b"-ERR [AUTH]"):
                storm_errors.append(st)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            storm_errors.append(repr(e))

    # 16 guesses: about 3 s of hashing on an idle machine (0.18 s each), well past the downloads.
    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    t_storm = time.monotonic()
    for th in threads:
        th.start()
    time.sleep(0.2)  # the guesses are queued on the hashing thread
    retr = []
    for _ in range(10):
        t0 = time.monotonic()
        st, got = user.multi("RETR 1")
        retr.append(time.monotonic() - t0)
        assert st.startswith(b"+OK") and got == wire_form(body)
    user_done = time.monotonic()
    for th in threads:
        th.join()
    storm_took = time.monotonic() - t_storm
    assert not storm_errors, storm_errors
    assert max(retr) < 1.0, f"RETR latencies during the storm: {[round(x, 2) for x in retr]}"
    assert storm_took > user_done - t_storm + 1.0, \
        f"the storm ({storm_took:.1f}s) did not outlast the downloads; the test showed nothing"
    user.quit()
