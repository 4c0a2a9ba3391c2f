"""Issue 12, item 11: a second proxy must not silently shadow the first, and the host's
ruleset ends exactly as found, also when ``table ip filter`` existed before (compared with
``nft list ruleset`` and ``iptables-save`` before and after)."""

from __future__ import annotations

import subprocess

import pytest
from netns_helpers import hbtool, host_env
from test_fault_proxy import Proxy, _require, _ruleset

pytestmark = pytest.mark.netns


def test_a_second_proxy_that_would_shadow_the_first_is_refused(lab) -> None:
    _require()
    n1 = lab.add_node("node1")
    before = _ruleset(n1)
    first = Proxy(n1.netns, "--rule", "drop t=NS_ackmsg", "--status-interval", "0")
    try:
        during = _ruleset(n1)
        second = subprocess.run(hbtool("fault", "--netns", n1.netns, "--queue", "6941",
                                        "--rule", "drop t=status", "--duration", "2s"),
                                env=host_env(), capture_output=True, text=True, timeout=60)
        if "HBTFAULT" in during:  # the iptables backend: one table, a verdict ends it
            assert second.returncode == 2, second.stderr
            assert second.stderr.count("\n") == 1 and "queue 6940" in second.stderr
            assert _ruleset(n1) == during  # the refused one touched nothing
        else:  # nft: a table each, both see every packet
            assert second.returncode == 0, second.stderr
        assert first.stop() == 0, first.stderr
    finally:
        if first.proc.poll() is None:
            first.kill()
    assert _ruleset(n1) == before


def test_an_existing_filter_table_is_left_exactly_as_found(lab) -> None:
    _require()
    n1 = lab.add_node("node1")
    n1.run(["nft", "add", "table", "ip", "filter"])
    n1.run(["nft", "add", "chain", "ip", "filter", "INPUT",
            "{ type filter hook input priority 0; }"])
    before = _ruleset(n1)
    p = Proxy(n1.netns, "--rule", "drop t=NS_ackmsg", "--status-interval", "0")
    try:
        assert p.stop() == 0, p.stderr
    finally:
        if p.proc.poll() is None:
            p.kill()
    assert _ruleset(n1) == before  # no empty OUTPUT base chain left behind
