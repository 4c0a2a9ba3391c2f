"""ha.cf / haresources / authkeys parsing for `hbtool daemon`, with Heartbeat's syntax.

Expected values come from Heartbeat's documented ha.cf syntax and the lab's real configs
(captures/record.py writes them through hbtools.lab.heartbeat_ha_cf, and real 3.0.6 accepts them).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hbtools.lab import heartbeat_ha_cf
from hbtools.node.config import (
    ConfigError,
    IPAddrResource,
    Medium,
    load_config,
    parse_ha_cf,
    parse_haresources,
    parse_time_ms,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(("text", "ms"), [("1", 1000), ("200ms", 200), ("1.5", 1500), ("2s", 2000),
                                          ("30", 30000), ("500msec", 500), ("3sec", 3000)])
def test_times(text, ms):
    assert parse_time_ms(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "5 minutes", "-1", "0", "1h"])
def test_bad_times(text):
    with pytest.raises(ValueError):
        parse_time_ms(text)


def test_lab_config_as_real_heartbeat_reads_it():
    text = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0", "mcast eth0 239.18.0.1 694 1 0",
                                                "ucast eth0 198.18.0.2"],
                           keepalive="200ms", warntime="600ms", deadtime="1", initdead="3")
    cfg = parse_ha_cf(text, "ha.cf")
    assert cfg.nodes == ["node1", "node2"]
    assert (cfg.keepalive_ms, cfg.warntime_ms, cfg.deadtime_ms, cfg.initdead_ms) == (200, 600, 1000, 3000)
    assert cfg.auto_failback is False
    assert [m.kind for m in cfg.media] == ["bcast", "mcast", "ucast"]
    assert cfg.media[1] == Medium("mcast", "eth0", "239.18.0.1", 694, 1, False, cfg.media[1].line)
    assert cfg.media[2].address == "198.18.0.2"
    # use_logd, logfile, logfacility, realtime, coredumps, crm, autojoin: 7 ignored directives
    assert len(cfg.warnings) == 7
    assert cfg.warnings[0].startswith("ha.cf:2: directive 'use_logd'")


def test_defaults_follow_heartbeat():
    cfg = parse_ha_cf("node a b\nbcast eth0\n")
    assert (cfg.keepalive_ms, cfg.deadtime_ms) == (1000, 30000)
    assert cfg.effective_warntime_ms == 15000
    assert cfg.effective_initdead_ms == 30000
    assert cfg.msgfmt == "classic" and cfg.udpport == 694 and cfg.auto_failback is True


def test_udpport_applies_to_media_declared_before_it():
    cfg = parse_ha_cf("bcast eth0\nudpport 7000\nnode a b\n")
    assert cfg.media[0].port == 7000


@pytest.mark.parametrize(("text", "line", "words"), [
    ("node a b\nbcast eth0\nkeepalive fast\n", 3, "not a time"),
    ("node a b\nbcast eth0\nauto_failback maybe\n", 3, "auto_failback"),
    ("node a b\nmcast eth0 10.0.0.1 694 1 0\n", 2, "not a multicast group"),
    ("node a b\nmcast eth0 239.0.0.1 694\n", 2, "expected 'mcast"),
    ("node a b\nucast eth0 nowhere\n", 2, "not an IPv4 address"),
    ("node a b\nbcast eth0\nkeepalive 2\ndeadtime 3\n", 4, "more than twice keepalive"),
    ("node a b\nbcast eth0\ndeadtime 10\ninitdead 5\n", 4, "initdead"),
    ("node a b\nbcast eth0\nudpport 99999\n", 3, "port"),
    ("node a b\nbcast eth0\nkeepalive 1\nkeepalive 2\n", 4, "set twice"),
    ("node a a\nbcast eth0\n", 1, "listed twice"),
    ("node a b\nbcast eth0\nmsgfmt xml\n", 3, "msgfmt"),
])
def test_wrong_values_name_file_and_line(text, line, words):
    with pytest.raises(ConfigError) as caught:
        parse_ha_cf(text, "/etc/ha.d/ha.cf")
    assert str(caught.value).startswith(f"/etc/ha.d/ha.cf:{line}: ")
    assert words in str(caught.value)


def test_missing_nodes_or_media():
    with pytest.raises(ConfigError, match="no 'node' line"):
        parse_ha_cf("bcast eth0\n")
    with pytest.raises(ConfigError, match="no communication medium"):
        parse_ha_cf("node a b\n")


def test_haresources():
    text = ("# comment\nnode1 IPaddr::198.18.0.100/24/eth0 198.18.0.101\n\n"
            "node2 \\\n  IPaddr2::198.18.0.102/24\n")
    groups = parse_haresources(text, ["node1", "node2"])
    assert [g.home for g in groups] == ["node1", "node2"]
    assert groups[0].resources == (IPAddrResource("198.18.0.100", 24, "eth0", "IPaddr::198.18.0.100/24/eth0"),
                                   IPAddrResource("198.18.0.101", None, None, "198.18.0.101"))
    assert groups[1].line == 4 and groups[1].resources[0].prefixlen == 24


@pytest.mark.parametrize(("text", "words"), [
    ("node3 IPaddr::198.18.0.100\n", "not a 'node'"),
    ("node1 ../bin/sh\n", "not a resource script name"),
    ("node1 IPaddr::nowhere\n", "expected IPaddr::"),
    ("node1 IPaddr::198.18.0.100/40\n", "prefix length"),
    ("node1\n", "no resources"),
])
def test_bad_haresources(text, words):
    with pytest.raises(ConfigError, match=words) as caught:
        parse_haresources(text, ["node1", "node2"], "haresources")
    assert str(caught.value).startswith("haresources:1: ")


def test_load_directory(tmp_path):
    (tmp_path / "ha.cf").write_text("node n1 n2\nbcast eth0\nfrobnicate yes\n")
    (tmp_path / "authkeys").write_text("auth 2\n2 sha1 secret\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text("n1 198.18.0.100\n")
    cfg = load_config(tmp_path)
    assert cfg.keys.active == 2 and cfg.groups[0].home == "n1"
    assert cfg.warnings == [f"{tmp_path / 'ha.cf'}:3: directive 'frobnicate' is unknown; ignored"]


def test_load_bad_authkeys_names_file_and_line(tmp_path):
    (tmp_path / "ha.cf").write_text("node n1 n2\nbcast eth0\n")
    (tmp_path / "authkeys").write_text("auth 1\n1 rot13\n")
    with pytest.raises(ConfigError, match=r"authkeys:2: unknown method"):
        load_config(tmp_path)


def _hbtool(*args):
    return subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT})


def test_cli_check_and_errors(tmp_path):
    (tmp_path / "ha.cf").write_text("node n1 n2\nbcast eth0\nkeepalive 1\ndeadtime 1\n")
    (tmp_path / "authkeys").write_text("auth 1\n1 crc\n")
    (tmp_path / "authkeys").chmod(0o600)
    res = _hbtool("daemon", "--config", str(tmp_path), "--node-name", "n1", "--check")
    assert res.returncode == 2
    assert res.stderr.strip() == (f"hbtool daemon: {tmp_path / 'ha.cf'}:4: deadtime (1000 ms) must be "
                                  "more than twice keepalive (1000 ms)")
    (tmp_path / "ha.cf").write_text("node n1 n2\nbcast lo\n")
    res = _hbtool("daemon", "--config", str(tmp_path), "--node-name", "n9", "--check")
    assert res.returncode == 2 and "'n9' is not a 'node'" in res.stderr and "Traceback" not in res.stderr
    res = _hbtool("daemon", "--config", str(tmp_path), "--node-name", "n2", "--check")
    assert res.returncode == 0, res.stderr
    assert "node n2, 2 nodes, 1 media, 0 resource groups" in res.stdout


# ----------------------------------------------------------------------------- issue 12 #7, #10; issue 14


def _check_dir(tmp_path, ha_cf: str, authkeys: str = "auth 1\n1 crc\n", mode: int = 0o600):
    (tmp_path / "ha.cf").write_text(ha_cf)
    keys = tmp_path / "authkeys"
    if not keys.is_fifo():
        keys.write_text(authkeys)
        keys.chmod(mode)
    return _hbtool("daemon", "--config", str(tmp_path), "--node-name", "n1", "--check")


def _one_line_exit_2(res, *words: str) -> None:
    assert res.returncode == 2, res
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    for word in words:
        assert word in res.stderr


@pytest.mark.parametrize(("line", "problem"), [
    ("keepalive " + "9" * 5000, ":3: '99999999999999999999...' is not a time"),
    ("deadtime 1" + "0" * 40 + "ms", "is not a time"),
    ("udpport \u0666\u0669\u0664", ":3: port '\u0666\u0669\u0664' is not a number"),
    ("keepalive \u0661", "is not a time"),
])
def test_huge_and_unicode_numbers_in_ha_cf_are_one_line_exit_2(tmp_path, line, problem):
    res = _check_dir(tmp_path, f"node n1 n2\nbcast lo\n{line}\n")
    _one_line_exit_2(res, problem)


@pytest.mark.parametrize(("authkeys", "problem"), [
    ("auth 1\n" + "1" * 5000 + " crc\n", "authkeys:2: expected 'auth N' or 'N method [key]'"),
    ("auth " + "1" * 5000 + "\n1 crc\n", "authkeys:1: expected 'auth N'"),
    ("auth \u0661\n1 crc\n", "authkeys:1: expected 'auth N'"),
])
def test_huge_key_numbers_are_one_line_exit_2(tmp_path, authkeys, problem):
    _one_line_exit_2(_check_dir(tmp_path, "node n1 n2\nbcast lo\n", authkeys), problem)


def test_an_authkeys_line_holding_only_the_key_does_not_echo_it(tmp_path):
    secret = "Zq8s3cr3tK3yValue"
    res = _check_dir(tmp_path, "node n1 n2\nbcast lo\n", f"auth 1\n{secret}\n")
    _one_line_exit_2(res, "authkeys:2:")
    assert secret not in res.stderr and secret[:6] not in res.stderr
    res = _check_dir(tmp_path, "node n1 n2\nbcast lo\n", f"auth 1\n1 {secret}\n")
    _one_line_exit_2(res, "authkeys:2: unknown method")
    assert secret[:6] not in res.stderr


def test_an_authkeys_fifo_does_not_hang_check(tmp_path):
    os.mkfifo(tmp_path / "authkeys")
    res = _check_dir(tmp_path, "node n1 n2\nbcast lo\n")  # _hbtool has a 60 s timeout
    _one_line_exit_2(res, "authkeys: is not a regular file")


def test_a_readable_authkeys_refuses_to_start_like_3_0_6_unless_overridden(tmp_path):
    """3.0.6: 'Bad permissions on keyfile [...], 600 recommended.' and it does not start."""
    res = _check_dir(tmp_path, "node n1 n2\nbcast lo\n", mode=0o644)
    _one_line_exit_2(res, "authkeys: group or others may read or write it")
    res = _hbtool("daemon", "--config", str(tmp_path), "--node-name", "n1", "--check", "--insecure-authkeys")
    assert res.returncode == 0 and "Bad permissions on keyfile" in res.stderr, res


def test_check_rejects_a_medium_on_an_interface_that_does_not_exist(tmp_path):
    res = _check_dir(tmp_path, "node n1 n2\nbcast lo\nbcast hbt-nosuch9\n")
    _one_line_exit_2(res, f"{tmp_path / 'ha.cf'}:3: interface hbt-nosuch9 does not exist")
