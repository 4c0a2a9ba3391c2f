"""Issue 12, the proxy side: nothing a peer sends may end the fault engine, and rule values
and scenarios that would spin or eat memory are refused when parsed.

The hostile payloads are written out by hand (netstrings and classic lines), so the shapes come
from the Heartbeat wire format, not from the codec under test.
"""

from __future__ import annotations

import pytest
from hbtools.faults.engine import Engine, Verdict
from hbtools.faults.rules import RuleError, parse_rule
from scapy.layers.inet import IP, UDP

from hbtools import heartbeat
from hbtools.auth import AuthKeys

NODES = {"n1": "198.18.0.1", "n2": "198.18.0.2"}
KEYS = AuthKeys.parse("auth 1\n1 sha1 secret\n")


def netstring_msg(*items: bytes) -> bytes:
    return b"###\n" + b"".join(b"%d:%s," % (len(i), i) for i in items) + b"%%%\n"


def ip(payload: bytes) -> bytes:
    return bytes(IP(src="198.18.0.1", dst="198.18.0.255", id=7) / UDP(sport=694, dport=694)
                 / payload)


STATUS = (b"(0)t=status", b"(0)src=n1")
#: Each: (what, payload, rule) — payloads a rewrite cannot express or a relative rewrite
#: cannot count on (issue 12, item 3).
UNREWRITABLE = [
    ("empty list field", netstring_msg(*STATUS, b"(3)l="), "rewrite st:=dead sign=stale"),
    ("classic name opening with (", b">>>\nt=status\nsrc=n1\n(1)(x=eA==\n<<<\n",
     "rewrite st:=dead sign=stale"),
    ("byte 0x13 under resign", netstring_msg(*STATUS, b"(0)st=a\x13b", b"(0)auth=1 0"),
     "rewrite seq:=5"),
    ("non-numeric seq, relative", netstring_msg(*STATUS, b"(0)seq=zz"), "rewrite seq:=+5 sign=stale"),
    ("non-numeric ttl, relative", netstring_msg(*STATUS, b"(0)ttl=-"), "rewrite ttl:=+1 sign=stale"),
    ("struct-typed hg, relative", netstring_msg(*STATUS, b"(2)hg=" + netstring_msg(b"(0)a=1")),
     "rewrite hg:=+1 sign=stale"),
    ("non-numeric hg under resign", netstring_msg(*STATUS, b"(0)hg=x"), "rewrite hg:=-1"),
]


@pytest.mark.parametrize(("what", "payload", "rule"), UNREWRITABLE, ids=[u[0] for u in UNREWRITABLE])
def test_a_packet_the_rewrite_cannot_express_passes_and_the_engine_goes_on(what, payload, rule):
    e = Engine([parse_rule(rule, nodes=list(NODES)), parse_rule("drop t=NS_ackmsg")],
               seed=1, nodes=NODES, keys=KEYS)
    out = e.receive(1, ip(payload), "in", 0.0)
    assert out == [Verdict(1, True, None)], what  # passed unchanged: the stated rule
    # counted when it got as far as the rewrite (an undecodable one is plain UDP, unmatched)
    assert e.stats[0].unrewritable == e.stats[0].matched
    # and the next packet is still judged
    nxt = netstring_msg(b"(0)t=NS_ackmsg", b"(0)src=n1")
    assert e.receive(2, ip(nxt), "in", 0.1) == [Verdict(2, False)]


@pytest.mark.parametrize("payload", [netstring_msg(*STATUS, b"(3)l="),
                                     b">>>\nt=status\n(3)l=\n<<<\n",
                                     b">>>\nt=status\n(1)(x=eA==\n<<<\n"])
def test_decode_refuses_what_encode_refuses(payload):
    """One rule for both directions: an empty list and a classic name opening with '(' are
    not Heartbeat (encode cannot write them), so decode does not accept them either."""
    with pytest.raises(heartbeat.DecodeError):
        heartbeat.decode(payload)


def test_encode_and_decode_agree_on_an_empty_list():
    msg = heartbeat.Message()
    msg.add("t", "status")
    msg.add("l", [], heartbeat.WireType.LIST)
    with pytest.raises(heartbeat.EncodeError):
        heartbeat.encode(msg)


# ----------------------------------------------------------------------------- values bounded


@pytest.mark.parametrize("text", [
    "corrupt bits=99999999999",          # the reproducer: a 9.8 s spin per packet
    "corrupt bytes=99999999999",
    "duplicate 100000000",
    "reorder window=100000000",
    "delay 99999999999s",
    "delay " + "9" * 400 + "s",           # float() of this is inf
    "delay 10ms jitter=99999999999s",
    "reorder timeout=99999999999s",
    "ratelimit inf/s",
    "ratelimit nan/s",
    "ratelimit 1e999/s",
    "ratelimit infinity",
    "ratelimit 10/s burst=99999999999",
])
def test_rule_values_are_bounded_when_parsed(text):
    with pytest.raises(RuleError, match="at most|finite"):
        parse_rule(text, nodes=list(NODES))


def test_the_largest_allowed_corruption_stays_cheap():
    """At the bound, one packet costs a bounded number of flips (not the asked-for count)."""
    from hbtools.faults.engine import _corrupt
    from hbtools.faults.rules import MAX_CORRUPT

    rule = parse_rule(f"corrupt bits={MAX_CORRUPT} bytes={MAX_CORRUPT}")

    class CountingRng:
        calls = 0

        def randrange(self, *args):
            CountingRng.calls += 1
            return args[0] - 1 if len(args) == 1 else args[1] - 1

    _corrupt(b"abcd", rule.action, CountingRng())  # type: ignore[arg-type]
    # a 4-byte payload: no more flips than it has bits, no more replacements than bytes
    assert CountingRng.calls <= 4 * 8 + 2 * 4


# ----------------------------------------------------------------------------- scenarios

STEP = '[[step]]\nat = "1s"\nfor = "1s"\nrules = ["drop all"]\n'


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("step = [1, 2]\n", 1, "step must be"),
    ("step = [{rules = [\"drop all\"], for = \"1s\"}, 2]\n", 1, "step must be"),
    ("a = " + "[" * 3000 + "]" * 3000 + "\n", None, "nested"),
    ('[[step]]\nfor = "1s"\nevery = "2s"\nrepeat = 100000000\nrules = ["drop all"]\n', 4,
     "repeat must be at most"),
    ('[[step]]\nat = "' + "9" * 400 + 's"\nfor = "1s"\nrules = ["drop all"]\n', 2, "at most"),
    ('duration = "99999999999s"\n' + STEP, 1, "at most"),
])
def test_hostile_scenarios_are_one_error_with_a_line(text, line, problem):
    from hbtools.faults.scenario import ScenarioError
    from hbtools.faults.scenario import parse as parse_scenario

    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "x.toml")
    assert problem in str(err.value)
    assert err.value.line == line
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_scenario_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    import os

    from hbtools.faults.scenario import ScenarioError, load

    path = tmp_path / "s.toml"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)  # nobody writes it: reading would block forever
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value) == f"{path}: is not a regular file"


@pytest.mark.parametrize(("verb", "kind"), [
    (["fault", "--scenario"], "directory"), (["fault", "--scenario"], "fifo"),
    (["decode", "captures/hb-bcast-crc/capture.pcap", "--authkeys"], "directory"),
    (["decode", "captures/hb-bcast-crc/capture.pcap", "--authkeys"], "fifo"),
    (["fault", "-r", "drop", "--authkeys"], "directory"),
])
def test_a_directory_or_fifo_given_as_a_file_is_one_line_and_exit_2(tmp_path, verb, kind):
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "input"
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    done = subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()",
                           *verb, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(f"{path}: is not a regular file\n"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


# ----------------------------------------------------------------------------- bounded state


def test_rule_windows_are_looked_up_not_scanned():
    """86,400 windows (one a second for a day): a packet looks at O(log n) of them, not all."""
    from hbtools.faults.rules import Drop, Rule

    iterated = [0]

    class Counting(tuple):
        def __iter__(self):
            for item in super().__iter__():
                iterated[0] += 1
                yield item

    windows = Counting((k + 0.0, k + 0.5) for k in range(86_400))
    rule = Rule("drop", Drop(), windows=windows)
    iterated[0] = 0
    got = [rule.active(t) for t in (0.25, 0.75, 43_200.1, 43_200.6, 86_399.4, 86_400.2, -1.0)]
    assert got == [True, False, True, False, True, False, False]
    assert iterated[0] == 0  # answered from the index built once


def test_overlapping_windows_merge():
    from hbtools.faults.rules import Drop, Rule

    rule = Rule("drop", Drop(), windows=((5.0, 8.0), (0.0, 2.0), (1.0, 3.0)))
    assert [rule.active(t) for t in (0.0, 2.5, 3.0, 4.0, 5.0, 7.9, 8.0)] == [
        True, True, False, False, True, True, False]


def test_verdict_times_are_kept_in_a_bounded_reservoir():
    from hbtools.faults.nfq import LatencySample, verdict_percentiles

    sample = LatencySample(capacity=4096, seed=0)
    for ns in range(1_000_000):  # 1 ms .. in ns steps: uniform over [0, 1e6)
        sample.append(ns)
    assert len(sample.samples) == 4096  # memory does not grow with the packets
    stats = verdict_percentiles(sample)
    assert stats is not None
    assert stats["samples"] == 1_000_000
    assert stats["max_us"] == 999.999  # exact, not sampled
    # a uniform sample of 4096: the median within 25 us of 500 us (3 sigma: sd is 7.8 us)
    assert abs(stats["p50_us"] - 500.0) < 25.0


# ----------------------------------------------------------------------------- the proxy shell


def _wait_for(predicate, seconds: float) -> bool:
    import time

    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_watchdog_stops_queueing_when_beats_stall(tmp_path):
    from hbtools.faults.nfq import Watchdog

    marker = tmp_path / "stopped"
    dog = Watchdog(0.3, lambda: marker.write_text("queueing stopped"))
    dog.start()
    try:
        # no beat from here on, as in a SIGSTOPped proxy: the child acts on its own
        assert _wait_for(lambda: marker.exists(), 5.0)
        assert dog.tripped
    finally:
        dog.close()


def test_the_watchdog_stays_quiet_while_the_proxy_beats(tmp_path):
    import time

    from hbtools.faults.nfq import Watchdog

    marker = tmp_path / "stopped"
    dog = Watchdog(0.5, lambda: marker.write_text("queueing stopped"))
    dog.start()
    try:
        for _ in range(40):  # 1.2 s of beats, each well inside the bound
            dog.beat()
            time.sleep(0.03)
        assert not dog.tripped and not marker.exists()
    finally:
        dog.close()
    assert dog.pid is None  # reaped


def test_a_packet_the_engine_raises_on_is_accepted_and_the_proxy_goes_on():
    from hbtools.faults.nfq import Proxy

    class Broken:
        def receive(self, *args):
            raise RuntimeError("a bug in a rule")

    class Packet:
        id, hook = 1, 1
        verdicts: list[str] = []

        def get_payload(self):
            return ip(netstring_msg(*STATUS))

        def accept(self):
            self.verdicts.append("accept")

        def drop(self):
            self.verdicts.append("drop")

    proxy = Proxy(Broken(), 1)  # type: ignore[arg-type]
    for _ in range(3):
        proxy._on_packet(Packet())
    assert Packet.verdicts == ["accept"] * 3
    assert proxy.engine_errors == 3


def test_held_packets_are_bounded_and_the_excess_passes_at_once():
    """A delay rule under a flood must not hold packets without bound: beyond MAX_HELD a
    packet passes at once (fail-open), counted."""
    from hbtools.faults import engine as engine_mod

    e = Engine([parse_rule("delay 60s")], seed=1)
    limit = engine_mod.MAX_HELD
    payload = ip(netstring_msg(*STATUS))
    for i in range(limit):
        assert e.receive(i, payload, "out", 0.0) == []
    assert e.receive(limit, payload, "out", 0.0) == [Verdict(limit, True, None)]
    assert e.held == limit and e.overflowed == 1
