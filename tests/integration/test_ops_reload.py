"""SIGHUP reloads the config (issue 7): users, connection limits and the log level change live,
open sessions keep going; a config that does not load, or a users file that does not, is refused
with one clear log line and the running configuration stays in force — all or nothing.
"""
from __future__ import annotations

import copy
import signal

from conftest import DEFAULT_PASSWORD, free_port, write_toml
from ops_support import scrape, value, wait_for

ALICE = "alice@example.com"
BUSY = b"-ERR [SYS/TEMP] Too many connections from your address."


def hup_and_wait(srv, mport: int, result: str) -> None:
    """SIGHUP, then wait until the metrics count one more reload with `result` (success|failure):
    the log may be at level warn, where the success line is not written."""
    def count():
        return value(scrape(mport), "buzon_config_reloads_total", result=result)
    before = count()
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: count() == before + 1, 10, f"a reload with result {result}")


def test_reload_applies_live_parts_and_refuses_bad_configs(buzon):
    mport = free_port()
    srv = buzon(config={"server": {"max_connections_per_ip": 100},
                        "metrics": {"enabled": True, "listen": f"127.0.0.1:{mport}"}})
    srv.deliver(ALICE, b"Subject: r\r\n\r\nreload\r\n")
    pid = srv.proc.pid
    a = srv.raw_login(ALICE)  # an open session across every reload below
    log = lambda: srv.stderr_path.read_text()

    # 1. A good config: limit 2 per address, a new user, log level warn.
    srv.add_user("bob@example.com", DEFAULT_PASSWORD)
    good = copy.deepcopy(srv.config)
    good["server"]["max_connections_per_ip"] = 2
    good["log"]["level"] = "warn"
    write_toml(srv.cfg_path, good)
    hup_and_wait(srv, mport, "success")
    assert "users=2 max_connections=1000 max_connections_per_ip=2" in log() and "log_level=warn" in log()
    assert srv.proc.pid == pid and srv.running()
    assert a.cmd("STAT").startswith(b"+OK"), "the open session was dropped by the reload"
    b = srv.raw_login("bob@example.com")          # the new user: 2nd connection from 127.0.0.1
    c = srv.raw()                                   # the 3rd: over the new limit
    assert c.greeting.rstrip() == BUSY, c.greeting
    c.close()
    sessions_logged = log().count("pop3 session")
    b.quit()
    assert log().count("pop3 session") == sessions_logged, "info lines still logged at level warn"

    # 2. A config that does not parse: refused, file:line named, the old one stays (limit 2).
    broken = srv.cfg_path.read_text() + "\n[server]\nmax_connections_per_ip = \"lots\"\n"
    srv.cfg_path.write_text(broken)
    hup_and_wait(srv, mport, "failure")
    line = [l for l in log().splitlines() if "reload refused" in l][-1]
    assert f"{srv.cfg_path}:" in line and "the running configuration stays in force" in line, line
    assert srv.running() and srv.proc.pid == pid
    b = srv.raw_login("bob@example.com")
    c = srv.raw()
    assert c.greeting.rstrip() == BUSY, "the limit from the refused config (or none) applies"
    c.close()
    b.close()
    assert a.cmd("NOOP").startswith(b"+OK")

    # 3. A valid config whose users file is broken: refused as a whole (limit unchanged, users kept).
    loose = copy.deepcopy(good)
    loose["server"]["max_connections_per_ip"] = 50
    write_toml(srv.cfg_path, loose)
    good_passwd = srv.passwd.read_text()
    srv.passwd.write_text(good_passwd + "broken line without colons\n")
    hup_and_wait(srv, mport, "failure")
    assert "reload refused: users:" in log()
    b = srv.raw_login("bob@example.com")
    c = srv.raw()
    assert c.greeting.rstrip() == BUSY, "part of a refused reload was applied"
    c.close()
    b.close()

    # 4. Fixed: applied; the limit is lifted, the metrics count one success per good reload.
    srv.passwd.write_text(good_passwd)
    hup_and_wait(srv, mport, "success")
    extra = [srv.raw() for _ in range(3)]
    assert all(x.greeting.startswith(b"+OK") for x in extra)
    for x in extra:
        x.close()
    m = scrape(mport)
    assert value(m, "buzon_config_reloads_total", result="success") == 2
    assert value(m, "buzon_config_reloads_total", result="failure") == 2
    assert a.cmd("STAT").startswith(b"+OK")
    a.quit()
