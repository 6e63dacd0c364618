"""Observability (issue 7): the metrics endpoint scraped over real HTTP (curl and a raw client) and
checked with a strict parser of the Prometheus text format (ops_support.parse_exposition, the rules
`promtool check metrics` applies); the counters move with real POP3 sessions; the status page;
`[log] format = "json"`; and no password, SASL payload or message body in the log at level trace.
"""
from __future__ import annotations

import base64
import json
import subprocess

import pytest

from conftest import DEFAULT_PASSWORD, free_port
from ops_support import ExpositionError, http_get, parse_exposition, scrape, value, wait_for

ALICE = "alice@example.com"


def metrics_server(buzon, **extra):
    port = free_port()
    cfg = {"metrics": {"enabled": True, "listen": f"127.0.0.1:{port}"}}
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    srv = buzon(config=cfg)
    srv.metrics_port = port
    return srv


def test_exposition_checker_rejects_what_promtool_rejects():
    """The checker itself: each of these is a violation promtool reports."""
    good = '# HELP a_total x\n# TYPE a_total counter\na_total{l="v"} 1\n'
    assert parse_exposition(good)["a_total"]["samples"] == [("a_total", {"l": "v"}, 1.0)]
    bad = [
        good[:-1],                                                           # no final newline
        '# TYPE a_total counter\na_total{l="v"} 1\na_total{l="v"} 2\n',      # duplicate series
        '# TYPE a_total counter\na_total -1\n',                               # negative counter
        '# TYPE a counter\na 1\n',                                            # counter without _total
        'a{l="x\\q"} 1\n',                                                    # bad escape
        'a{l="x",l="y"} 1\n',                                                 # label twice
        'a{__l="x"} 1\n',                                                     # reserved label
        'a 1\nb 1\na 2\n',                                                    # family not contiguous
        'a 1\n# TYPE a gauge\n',                                              # TYPE after samples
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',  # not cumulative
        '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',     # no +Inf
        'a one\n',                                                            # bad value
    ]
    for text in bad:
        with pytest.raises(ExpositionError):
            parse_exposition(text)


def test_metrics_follow_real_sessions(buzon):
    srv = metrics_server(buzon)
    srv.deliver(ALICE, b"Subject: one\r\n\r\nbody one\r\n")
    listener = f"127.0.0.1:{srv.port}"
    before = scrape(srv.metrics_port)
    base = value(before, "buzon_sessions_total", protocol="pop3", listener=listener)  # the start-up probe
    assert base is not None
    assert value(before, "buzon_sessions_active", protocol="pop3", listener=listener) == 0
    assert value(before, "buzon_build_info", version="0.1.0") == 1
    assert value(before, "buzon_worker_pool_pending") == 0
    assert value(before, "buzon_worker_pool_capacity") == 2 * 64

    idle = srv.raw()  # one session left open while we scrape
    c = srv.raw_login(ALICE)
    assert c.multi("RETR 1")[0].startswith(b"+OK")
    assert c.cmd("RETR 9").startswith(b"-ERR")
    assert c.cmd("XYZW").startswith(b"-ERR")
    c.quit()
    bad = srv.raw()
    bad.cmd("USER " + ALICE)
    assert bad.cmd("PASS wrong-password").startswith(b"-ERR")
    bad.close()

    m = wait_for(lambda: (lambda f: f if value(f, "buzon_sessions_total", protocol="pop3", listener=listener) == base + 3
                          and value(f, "buzon_sessions_active", protocol="pop3", listener=listener) == 1 else None)(
        scrape(srv.metrics_port)), what="3 sessions counted, 1 active")
    def cmd(name, result):  # commands since `before` (the start-up probe sent a QUIT)
        now = value(m, "buzon_commands_total", protocol="pop3", command=name, result=result) or 0
        return now - (value(before, "buzon_commands_total", protocol="pop3", command=name, result=result) or 0)
    assert cmd("RETR", "ok") == 1
    assert cmd("RETR", "err") == 1
    assert cmd("unknown", "err") == 1
    assert cmd("QUIT", "ok") == 1
    assert cmd("PASS", "ok") == 1 and cmd("PASS", "err") == 1
    assert value(m, "buzon_auth_total", protocol="pop3", mechanism="USER", result="success") == 1
    assert value(m, "buzon_auth_total", protocol="pop3", mechanism="USER", result="failure") == 1
    assert value(m, "buzon_sent_bytes_total", protocol="pop3") > len(b"body one")
    assert value(m, "buzon_received_bytes_total", protocol="pop3") > len("RETR 1\r\n")
    assert value(m, "buzon_users") == 1
    # Labels come from fixed sets: no client address, user name or raw input in the exposition.
    text = http_get(srv.metrics_port)[2].decode()
    for secret in (ALICE, "wrong-password", DEFAULT_PASSWORD, "XYZW", "body one"):
        assert secret not in text, f"{secret!r} leaked into /metrics"
    idle.close()


def test_metrics_over_curl_status_page_and_http_errors(buzon):
    srv = metrics_server(buzon)
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", f"http://127.0.0.1:{srv.metrics_port}/metrics"],
                         capture_output=True, check=True).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK") and "version=0.0.4" in head
    parse_exposition(body)
    status, _, page = http_get(srv.metrics_port, "/status")
    page = page.decode()
    assert status == 200
    assert "buzon 0.1.0" in page and f"pop3 127.0.0.1:{srv.port}" in page and "uptime:" in page
    assert "running as: user=root" in page
    assert http_get(srv.metrics_port, "/nope")[0] == 404
    status, headers, _ = http_get(srv.metrics_port, "/metrics", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = http_get(srv.metrics_port, "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert http_get(srv.metrics_port, raw=b"GET /metrics HTTP/9.9\r\n\r\n")[0] == 505
    assert http_get(srv.metrics_port, raw=b"garbage\r\n\r\n")[0] == 400
    assert http_get(srv.metrics_port, raw=b"GET /" + b"a" * 9000)[0] == 414


def test_metrics_can_be_disabled(buzon):
    port = free_port()
    srv = buzon(config={"metrics": {"enabled": False, "listen": f"127.0.0.1:{port}"}})
    with pytest.raises(OSError):
        http_get(port, timeout=2)
    assert "metrics listening" not in srv.log()


def test_metrics_port_in_use_fails_start_up_clearly(buzon):
    import socket
    with socket.socket() as hog:
        hog.bind(("127.0.0.1", 0))
        hog.listen()
        port = hog.getsockname()[1]
        srv = buzon(config={"metrics": {"enabled": True, "listen": f"127.0.0.1:{port}"}}, start=False)
        r = subprocess.run([str(srv_bin()), "--config", str(srv.cfg_path), "serve"], capture_output=True, timeout=30)
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port} for metrics" in r.stderr.decode()
        assert "[metrics] enabled = false" in r.stderr.decode()


def srv_bin():
    from conftest import BUZON_BIN
    return BUZON_BIN


def test_json_log_lines_are_json_objects(buzon):
    srv = buzon(config={"log": {"format": "json"}})
    srv.deliver(ALICE, b"Subject: j\r\n\r\nx\r\n")
    c = srv.raw_login(ALICE)
    c.quit()
    bad = srv.raw()
    bad.cmd('USER "quoted\\name')
    bad.cmd("PASS nope")
    bad.close()
    srv.stop()
    lines = [l for l in srv.stderr_path.read_text().splitlines() if l.strip()]
    objs = [json.loads(l) for l in lines]  # every line parses
    assert all({"ts", "level", "msg"} <= o.keys() for o in objs)
    summary = [o for o in objs if o["msg"] == "pop3 session" and o.get("user") == ALICE]
    assert summary, lines
    s = summary[0]
    assert s["result"] == "quit" and isinstance(s["cmds"], int) and s["peer"].startswith("127.0.0.1:")
    failed = [o for o in objs if o["msg"] == "pop3 auth failed"]
    assert failed and failed[0]["user"] == '"quoted\\name', failed


def test_no_password_sasl_payload_or_body_in_logs_at_trace(buzon):
    secret = "Zq9-very-secret-pw"
    body_marker = "BODY-MARKER-7f3a"
    srv = buzon(users={ALICE: secret}, config={"log": {"level": "trace"}})
    srv.deliver(ALICE, f"Subject: s\r\n\r\n{body_marker}\r\n".encode())
    c = srv.raw_login(ALICE, secret)
    st, content = c.multi("RETR 1")
    assert body_marker.encode() in content
    c.quit()
    bad = srv.raw()
    bad.cmd("USER " + ALICE)
    bad.cmd("PASS " + secret + "-wrong")
    bad.close()
    plain = base64.b64encode(f"\0{ALICE}\0{secret}".encode()).decode()
    sasl = srv.raw()
    sasl.cmd("AUTH PLAIN " + plain)  # accepted or refused by policy: either way never logged
    sasl.close()
    srv.stop()
    log = srv.stderr_path.read_text()
    assert "pop3 session" in log
    for leak in (secret, body_marker, plain):
        assert leak not in log, f"{leak!r} appears in the log at level trace"
