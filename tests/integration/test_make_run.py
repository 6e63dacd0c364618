"""`make run`'s demo as a newcomer meets it: scripts/run-demo creates ./var (config, user demo/demo,
three demo messages), prints how to connect, and serves POP3 on 127.0.0.1:1110; the printed curl
command then lists and downloads the messages. Run in a temp VAR so the developer's ./var is untouched.
"""
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import stop_process, wait_for_greeting

SRC = pathlib.Path(os.environ.get("BUZON_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
BIN = os.path.abspath(os.environ.get("BUZON_BIN", str(SRC / "build" / "buzon")))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_run_demo_serves_demo_mail_with_curl(tmp_path):
    if not port_free(1110):
        pytest.skip("127.0.0.1:1110 is in use (a `make run` of the developer?)")
    var = tmp_path / "var"
    env = dict(os.environ, VAR=str(var))
    log = open(tmp_path / "run-demo.log", "wb")
    proc = subprocess.Popen(["bash", str(SRC / "scripts" / "run-demo"), BIN], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_greeting(1110, proc, 15, "run-demo")
        printed = (tmp_path / "run-demo.log").read_bytes().decode()
        assert "curl pop3://demo:demo@127.0.0.1:1110/" in printed, printed
        assert (var / "buzon.toml").is_file()
        assert (var / "passwd").is_file()
        listing = subprocess.run(["curl", "-sS", "--max-time", "10", "pop3://demo:demo@127.0.0.1:1110/"],
                                 capture_output=True, check=True).stdout.decode()
        sizes = [int(m.group(2)) for m in re.finditer(r"^(\d+) (\d+)\r?$", listing, re.M)]
        assert len(sizes) == 3, listing
        for n, size in enumerate(sizes, 1):
            body = subprocess.run(["curl", "-sS", "--max-time", "10", f"pop3://demo:demo@127.0.0.1:1110/{n}"],
                                  capture_output=True, check=True).stdout
            assert b"served by buzon" in body
            assert len(body) == size, (n, len(body), size)
        # A second run keeps the state it made (idempotent): same user, same three messages.
    finally:
        stop_process(proc)
        log.close()
    proc2 = subprocess.Popen(["bash", str(SRC / "scripts" / "run-demo"), BIN], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_for_greeting(1110, proc2, 15, "run-demo again")
        listing = subprocess.run(["curl", "-sS", "--max-time", "10", "pop3://demo:demo@127.0.0.1:1110/"],
                                 capture_output=True, check=True).stdout.decode()
        assert len(re.findall(r"^\d+ \d+\r?$", listing, re.M)) == 3, listing
    finally:
        stop_process(proc2)
