"""Helpers for the operations tests (test_ops_*.py, issue 7): scraping the metrics endpoint, a
strict checker of the Prometheus text exposition format, and small process helpers.

The checker follows the exposition format spec (text format 0.0.4, as promtool's parser and
`promtool check metrics` enforce it) so the tests need no prometheus package (~100 MB):
  - every line is a comment (`# HELP name text`, `# TYPE name type`, other `# ...`) or a sample
    `name{label="value",...} value [timestamp]`; the text ends with a newline, is valid UTF-8;
  - names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (no __ prefix), label
    values use only the escapes \\\\ \\" \\n; no label name twice in one sample;
  - HELP and TYPE at most once per family, TYPE before the family's first sample, the samples of a
    family contiguous; no series (name + label set) twice;
  - values are Go floats (also +Inf, -Inf, NaN); counters are >= 0, non-NaN, and named *_total
    (the lint promtool applies); histograms have _bucket series with `le`, cumulative counts that
    never decrease, a +Inf bucket equal to _count, and a _sum, per label set.
"""
from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import time

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ExpositionError(AssertionError):
    pass


def _float(text: str, where: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)", text):
        raise ExpositionError(f"{where}: bad value {text!r}")
    return float(text)


def _parse_sample(line: str, where: str):
    m = NAME.match(line)
    if not m:
        raise ExpositionError(f"{where}: bad metric name in {line!r}")
    name, i = m.group(0), m.end()
    labels: dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            if line[i] == "}":
                i += 1
                break
            lm = LABEL.match(line, i)
            if not lm or lm.group(0).startswith("__"):
                raise ExpositionError(f"{where}: bad label name in {line!r}")
            lname = lm.group(0)
            i = lm.end()
            if line[i:i + 2] != '="':
                raise ExpositionError(f'{where}: expected =" after label {lname} in {line!r}')
            i += 2
            val = []
            while True:
                if i >= len(line):
                    raise ExpositionError(f"{where}: unterminated label value in {line!r}")
                c = line[i]
                if c == "\\":
                    nxt = line[i + 1:i + 2]
                    if nxt not in ("\\", '"', "n"):
                        raise ExpositionError(f"{where}: bad escape \\{nxt} in {line!r}")
                    val.append("\n" if nxt == "n" else nxt)
                    i += 2
                elif c == '"':
                    i += 1
                    break
                elif c == "\n":
                    raise ExpositionError(f"{where}: raw newline in label value")
                else:
                    val.append(c)
                    i += 1
            if lname in labels:
                raise ExpositionError(f"{where}: label {lname} twice in {line!r}")
            labels[lname] = "".join(val)
            if line[i] == ",":
                i += 1
            elif line[i] != "}":
                raise ExpositionError(f"{where}: expected , or }} in {line!r}")
    if i >= len(line) or line[i] != " ":
        raise ExpositionError(f"{where}: expected a space before the value in {line!r}")
    rest = line[i + 1:].split(" ")
    if len(rest) not in (1, 2) or rest[0] == "":
        raise ExpositionError(f"{where}: expected 'value [timestamp]' in {line!r}")
    value = _float(rest[0], where)
    if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
        raise ExpositionError(f"{where}: bad timestamp in {line!r}")
    return name, labels, value


def _family_of(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return name[: -len(suffix)]
    return name


def parse_exposition(text: str) -> dict[str, dict]:
    """Parses and checks `text`; returns {family: {"type", "help", "samples": [(name, labels, value)]}}.
    Raises ExpositionError naming the line for any violation."""
    if not text.endswith("\n"):
        raise ExpositionError("exposition does not end with a newline")
    families: dict[str, dict] = {}
    types: dict[str, str] = {}
    seen_series: set = set()
    finished: set[str] = set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                if not NAME.fullmatch(fam):
                    raise ExpositionError(f"{where}: bad name in {line!r}")
                f = families.setdefault(fam, {"type": None, "help": None, "samples": []})
                if fam in finished or (f["samples"] and parts[1] == "TYPE"):
                    raise ExpositionError(f"{where}: {parts[1]} for {fam} after its samples")
                if parts[1] == "HELP":
                    if f["help"] is not None:
                        raise ExpositionError(f"{where}: second HELP for {fam}")
                    f["help"] = parts[3] if len(parts) > 3 else ""
                else:
                    if f["type"] is not None:
                        raise ExpositionError(f"{where}: second TYPE for {fam}")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ExpositionError(f"{where}: bad TYPE line {line!r}")
                    f["type"] = parts[3]
                    types[fam] = parts[3]
                if current is not None and current != fam:
                    finished.add(current)
                current = fam
            continue
        name, labels, value = _parse_sample(line, where)
        fam = _family_of(name, types)
        if current is not None and current != fam:
            finished.add(current)
        if fam in finished:
            raise ExpositionError(f"{where}: samples of {fam} are not contiguous")
        current = fam
        f = families.setdefault(fam, {"type": None, "help": None, "samples": []})
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ExpositionError(f"{where}: series {name}{labels} appears twice")
        seen_series.add(key)
        f["samples"].append((name, labels, value))
    for fam, f in families.items():
        t = f["type"] or "untyped"
        if t == "counter":
            if not fam.endswith("_total"):
                raise ExpositionError(f"counter {fam} should be named *_total")
            for name, labels, v in f["samples"]:
                if math.isnan(v) or v < 0:
                    raise ExpositionError(f"counter {name}{labels} = {v}")
        if t == "histogram":
            groups: dict = {}
            for name, labels, v in f["samples"]:
                rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
                g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
                if name == fam + "_bucket":
                    if "le" not in labels:
                        raise ExpositionError(f"{name}{labels} has no le label")
                    g["buckets"].append((_float(labels["le"], name), v))
                elif name == fam + "_sum":
                    g["sum"] = v
                elif name == fam + "_count":
                    g["count"] = v
                else:
                    raise ExpositionError(f"{name} in histogram {fam}")
            for rest, g in groups.items():
                bs = g["buckets"]
                if not bs or not math.isinf(bs[-1][0]):
                    raise ExpositionError(f"histogram {fam}{dict(rest)} has no +Inf bucket last")
                if [b[0] for b in bs] != sorted(b[0] for b in bs):
                    raise ExpositionError(f"histogram {fam}{dict(rest)} buckets out of order")
                if any(b2[1] < b1[1] for b1, b2 in zip(bs, bs[1:])):
                    raise ExpositionError(f"histogram {fam}{dict(rest)} buckets not cumulative")
                if g["sum"] is None or g["count"] is None or g["count"] != bs[-1][1]:
                    raise ExpositionError(f"histogram {fam}{dict(rest)}: _sum/_count missing or +Inf != _count")
    return families


def value(families: dict, name: str, **labels) -> float | None:
    """The value of one series (labels must match exactly), or None."""
    fam = families.get(name) or families.get(_family_of(name, {k: v["type"] for k, v in families.items()}))
    if not fam:
        return None
    for n, l, v in fam["samples"]:
        if n == name and l == labels:
            return v
    return None


def http_get(port: int, path: str = "/metrics", method: str = "GET", raw: bytes | None = None,
             timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a fresh connection; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw if raw is not None else f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def scrape(port: int) -> dict:
    status, headers, body = http_get(port)
    assert status == 200, (status, body[:300])
    assert headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8", headers
    assert int(headers["content-length"]) == len(body)
    return parse_exposition(body.decode("utf-8"))


def wait_for(pred, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = pred()
        if r:
            return r
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_port(port: int, timeout: float = 10) -> None:
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    wait_for(up, timeout, f"127.0.0.1:{port} to accept")


def proc_status(pid: int, task: int | None = None) -> dict[str, str]:
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    out = {}
    with open(path) as fh:
        for line in fh:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def stop(proc: subprocess.Popen, grace: float = 8) -> int:
    """SIGTERM to this process (by its pid), then SIGKILL after `grace`; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def read(path) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def have(tool: str) -> bool:
    from shutil import which
    return which(tool) is not None or os.path.exists(f"/usr/sbin/{tool}")
