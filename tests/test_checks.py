"""Negotiate checks without servers: spec parsing, the command's exit codes, and hangs.

Expected values come from the URLs themselves (RFC 3986 parts, the protocols' registered default
ports: 80, 443, 21, 25, 143, 110, 389, 3306, 119) and from what a socket that never answers
must cause: a timeout, not a wait. The real-server side is tests/netns/test_checks_servers.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from hbtools.checks import CheckSpecError, parse_check, run_check, shown
from hbtools.usecases import check as uc

HOST = f"127.19.{os.getpid() % 200 + 1}.1"


@pytest.mark.parametrize(("url", "protocol", "port"), [
    ("http://h/", "http", 80), ("https://h/", "https", 443), ("ftp://h/", "ftp", 21),
    ("smtp://h", "smtp", 25), ("imap://h", "imap", 143), ("pop3://h", "pop", 110),
    ("ldap://h", "ldap", 389), ("mariadb://h", "mysql", 3306), ("news://h", "nntp", 119),
])
def test_default_ports(url: str, protocol: str, port: int) -> None:
    check = parse_check(url)
    assert (check.protocol, check.host, check.port) == (protocol, "h", port)


def test_url_parts_and_options() -> None:
    c = parse_check("http://198.18.0.100:8080/a/b?x=1 expect=node[12] status=204 timeout=250ms")
    assert (c.host, c.port, c.path, c.expect, c.status, c.timeout) == (
        "198.18.0.100", 8080, "/a/b?x=1", "node[12]", 204, 0.25)
    c = parse_check("mysql://probe:p%40ss@db:3307/test query='SELECT 1'")
    assert (c.user, c.password, c.path, c.query) == ("probe", "p@ss", "test", "SELECT 1")
    assert c.target == "mysql://probe@db:3307/test"  # no password when shown
    c = parse_check("ldap://h/dc=example,dc=org?(uid=x)")
    assert (c.path, c.query) == ("dc=example,dc=org", "(uid=x)")
    assert parse_check("imap://u:p@h/INBOX").path == "INBOX"


@pytest.mark.parametrize(("spec", "words"), [
    ("", "empty"),
    ("gopher://h/", "unknown scheme"),
    ("tcp://h", "needs a port"),
    ("http://h:99999/", "out of range"),
    ("http:///x", "no host"),
    ("http://h/ expect=(", "not a regular expression"),
    ("http://h/ timeout=0", "above 0"),
    ("http://h/ timeout=soon", "not a duration"),
    ("http://h/ status=99", "not an HTTP status"),
    ("ftp://h/ status=200", "does not apply to ftp"),
    ("http://h/ color=red", "unknown key"),
    ("http://h/ plain", "not key=value"),
    ("tcp://h:22/path", "no path"),
    ("ftp://h/a%0d%0aDELE%20b", "line break"),
])
def test_bad_specs(spec: str, words: str) -> None:
    with pytest.raises(CheckSpecError, match=words):
        parse_check(spec)


@pytest.fixture
def silent_port() -> int:
    """A socket that listens and never accepts: the kernel completes connects, nobody answers."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("scheme", ["http", "https", "ftp", "smtp", "imap", "pop", "ldap",
                                    "mysql", "nntp"])
def test_hang_fails_within_timeout(scheme: str, silent_port: int) -> None:
    timeout = 0.4
    start = time.monotonic()
    result = run_check(parse_check(f"{scheme}://{HOST}:{silent_port}/ timeout={timeout}"))
    took = time.monotonic() - start
    assert not result.ok
    assert f"no answer within {timeout:g} s" in result.reason, result.reason
    # it returned (a client without the timeout would wait for ever); ldap3 rounds its receive
    # timeout up to whole seconds. Generous: the point is "ends", not "how fast" (benchmarks).
    assert took < 15, took


def test_refused() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]  # bound, not listening: connects are refused
        result = run_check(parse_check(f"tcp://{HOST}:{port} timeout=1"))
    assert not result.ok and result.reason == "connection refused (nothing listening)"


def test_overrides_and_escaping() -> None:
    """Command-line overrides win over the spec's words; server text is shown on one line."""
    check = uc.build(uc.Request(words=("tcp://h:1", "expect=zzz"), timeout="1", expect="x"))
    assert (check.expect, check.timeout) == ("x", 1.0)
    assert shown("evil\x1b[2J\nline") == "evil\\x1b[2J\\nline"


def _hbtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()", *args],
                          capture_output=True,
                          text=True, timeout=60)


def test_command_exit_codes() -> None:
    bad = _hbtool("check", "gopher://h/")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown scheme" in bad.stderr
    assert "Traceback" not in bad.stderr
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
        failed = _hbtool("check", f"tcp://{HOST}:{port}", "--json")
    assert failed.returncode == 1, failed.stderr
    assert '"ok": false' in failed.stdout and "connection refused" in failed.stdout
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        ok = _hbtool("check", f"tcp://{HOST}:{listener.getsockname()[1]}")
    assert ok.returncode == 0 and ok.stdout.startswith("ok tcp://"), ok.stdout
