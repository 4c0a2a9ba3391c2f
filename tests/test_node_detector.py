"""The ha.cf ``detector`` directive in the sans-I/O node, with a fake clock.

Independent expectations: φ's deadline is computed here from the arrival times with Python's
``statistics`` (mean, population std-dev, the normal quantile), following Hayashibara et al. and
Akka's published rule (mean + acceptable pause + y·max(std, min_std), y the standard-normal point
whose tail is 10^-threshold), not read from the detector; the accelerated bound is the sum
tmax + tmax + tmax/2 + … + tmin of Gouda & McGuire's halving rule, written out by hand; the peer
playing a real 3.0.6 node sends datagrams built with the codec in the field order of a capture
(``peer_msg``), never with the node's own sender.
"""

from __future__ import annotations

import random
import statistics

import pytest
from node_sim import Sim, ha_cf, make_config
from test_node_core import REAL_UUID, peer_msg

from hbtools import heartbeat
from hbtools.node.config import ConfigError, parse_ha_cf
from hbtools.node.core import DeadEvent, Node, Send


def _dead(outputs: list) -> list[DeadEvent]:
    return [o for o in outputs if isinstance(o, DeadEvent)]


def drive(node: Node, arrivals: list[tuple[float, bytes]], until: float) -> list[tuple[float, object]]:
    """What a runner does: deliver each datagram at its time, tick at every timer in between."""
    log: list[tuple[float, object]] = []
    queue = sorted(arrivals, key=lambda a: a[0])
    for _ in range(100_000):
        timer = node.next_timer()
        nxt = queue[0][0] if queue else None
        if nxt is not None and (timer is None or nxt <= timer) and nxt <= until:
            at, data = queue.pop(0)
            log.extend((at, o) for o in node.receive(data, ("198.18.0.2", 694), at))
        elif timer is not None and timer <= until:
            log.extend((timer, o) for o in node.tick(timer))
        else:
            return log
    raise AssertionError("did not converge")


def real_peer_statuses(times: list[float], dt_ms: int = 10000) -> list[tuple[float, bytes]]:
    """node2 as a 3.0.6 node: one status per arrival, seq 1, 2, ... (nothing else)."""
    return [(t, peer_msg("status", seq, dt=dt_ms)) for seq, t in enumerate(times, start=1)]


def phi_node(*extra: str) -> Node:
    cfg = make_config(ha_cf(*extra, keepalive="1", deadtime="10", warntime="5", initdead="20"))
    node = Node(cfg, "node1", uuid=REAL_UUID, generation=1, rng=random.Random(1))
    node.start(1000.0)
    return node


# -- parsing -----------------------------------------------------------------------------------
def test_directive_parses_and_defaults_to_fixed():
    base = "node a b\nbcast eth0\n"
    assert parse_ha_cf(base).detector.kind == "fixed"
    spec = parse_ha_cf(base + "detector phi threshold=6 min_std=0.2 pause=1\n").detector
    assert (spec.kind, spec.threshold, spec.min_std, spec.acceptable_pause) == ("phi", 6.0, 0.2, 1.0)
    spec = parse_ha_cf(base + "detector DYNAMIC tmin=0.1 tmax=0.8 variant=original\n").detector
    assert (spec.kind, spec.tmin, spec.tmax, spec.variant) == ("dynamic", 0.1, 0.8, "original")


@pytest.mark.parametrize(("line", "problem"), [
    ("detector", "ha.cf:3: 'detector' needs a kind"),
    ("detector swim", "ha.cf:3: unknown detector 'swim'"),
    ("detector phi threshold=abc", "ha.cf:3: detector option threshold needs a number"),
    ("detector phi threshold=" + "9" * 5000, "ha.cf:3: detector option threshold needs a number"),
    ("detector phi tmax=1", "ha.cf:3: bad detector option 'tmax=1'"),
    ("detector binary threshold=8", "ha.cf:3: bad detector option 'threshold=8'"),
    ("detector binary tmax=0.001", "ha.cf:3: detector tmax=0.001 must be 0.01 to 60 s"),
    ("detector binary tmin=0.5 tmax=0.25", "ha.cf:3: detector tmin=0.5 is more than tmax=0.25"),
    ("detector static tmin=2", "ha.cf:3: detector tmin=2 is more than tmax=1"),  # tmax = keepalive
    ("detector binary variant=new", "ha.cf:3: detector variant must be one of"),
    ("detector fixed\ndetector phi", "ha.cf:4: 'detector' set twice (first on line 3)"),
])
def test_bad_directive_is_one_clear_error(line, problem):
    with pytest.raises(ConfigError) as info:
        parse_ha_cf(f"node a b\nbcast eth0\n{line}\n")
    assert str(info.value).startswith(problem), str(info.value)
    assert len(str(info.value)) < 200


def test_daemon_check_validates_the_directive(tmp_path):
    from test_node_config import _check_dir, _one_line_exit_2

    _one_line_exit_2(_check_dir(tmp_path, "node n1 n2\nbcast lo\ndetector phi pause=-1\n"),
                     "ha.cf:3: detector option pause=-1 is out of range")
    res = _check_dir(tmp_path, "node n1 n2\nbcast lo\ndetector binary tmax=0.5\n")
    assert res.returncode == 0, res.stderr
    assert "detector binary" in res.stdout


# -- φ next to a real 3.0.6 peer (it only watches arrival times) --------------------------------
def akka_deadline(arrivals: list[float], first: float = 1.0, pause: float = 3.0, min_std: float = 0.1,
                  threshold: float = 8.0) -> float:
    """Akka's rule by hand: the window is seeded with first ± first/4, then every interval."""
    samples = [first - first / 4, first + first / 4]
    samples += [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    y = statistics.NormalDist().inv_cdf(1 - 10 ** -threshold)
    std = max(statistics.pstdev(samples), min_std)
    return arrivals[-1] + statistics.fmean(samples) + pause + y * std


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_phi_declares_a_silent_real_peer_dead_at_akkas_deadline(jitter):
    times = [1000.5 + i + (jitter if i % 2 else -jitter) * (i > 0) for i in range(30)]
    times = sorted(times)
    log = drive(phi_node("detector phi"), real_peer_statuses(times), until=times[-1] + 30)
    dead = [(t, o) for t, o in log if isinstance(o, DeadEvent)]
    assert len(dead) == 1
    at, event = dead[0]
    assert at == pytest.approx(akka_deadline(times), abs=1e-6)
    assert event.data["detector"] == "phi" and event.data["reason"] == "deadtime_expired"
    # the same silence under Heartbeat's rule: the peer's dt (10 s) after its last status
    fixed = drive(phi_node(), real_peer_statuses(times), until=times[-1] + 30)
    (f_at, f_event), = [(t, o) for t, o in fixed if isinstance(o, DeadEvent)]
    assert f_at == pytest.approx(times[-1] + 10.0, abs=1e-6)
    assert "detector" not in f_event.data or f_event.data["detector"] == "fixed"


def test_phi_never_waits_longer_than_the_peers_dt_nor_sends_anything_new():
    # a threshold so high that φ alone would wait minutes: the peer's dt (6 s) still decides
    times = [1000.5 + i for i in range(20)]
    log = drive(phi_node("detector phi threshold=300"), real_peer_statuses(times, dt_ms=6000),
                until=times[-1] + 30)
    dead = [(t, o) for t, o in log if isinstance(o, DeadEvent)]
    assert [round(t - times[-1], 6) for t, _ in dead] == [6.0]
    assert dead[0][1].data["detector"] == "fixed"
    types = {heartbeat.decode(o.data).type for _, o in log if isinstance(o, Send)}
    assert not {t for t in types if t and t.startswith("NS_hbtools")}


# -- accelerated detectors between hbtools nodes -------------------------------------------------
BOUND_1S = 1 + 1 + 1 / 2 + 1 / 4 + 1 / 8 + 1 / 16  # tmax=1, tmin=1/16: Gouda & McGuire's halvings


def accel_sim(kind: str, nodes: str = "node1 node2", **kw) -> Sim:
    cfg = make_config(ha_cf(f"detector {kind} tmax=1 tmin=0.0625", keepalive="1", deadtime="10",
                            warntime="5", initdead="20", nodes=nodes, **kw))
    sim = Sim(cfg, latency=0.002)
    for name in nodes.split():
        sim.start(name)
    return sim


def _types_sent(sim: Sim, node: str) -> list[str]:
    return [heartbeat.decode(r.item.data).type for r in sim.sent(node)]


@pytest.mark.parametrize("kind", ["binary", "static", "expanding", "dynamic"])
@pytest.mark.parametrize("phase", [0.01, 0.37, 0.99])
def test_accelerated_crash_found_within_the_bound_and_no_false_death(kind, phase):
    sim = accel_sim(kind)
    sim.run_for(60.0)
    assert sim.events(kind="dead") == []  # a minute with no loss: nobody suspected
    beats = _types_sent(sim, "node1").count("NS_hbtools_beat")
    assert 55 <= beats <= 61  # one per tmax while every reply comes
    sim.run_for(phase)
    crash = sim.now
    sim.crash("node2")
    sim.run_for(15.0)
    dead = [e for e in sim.events("node1", "dead")]
    assert len(dead) == 1 and dead[0].data["detector"] == kind
    assert 0 < dead[0].at - crash <= BOUND_1S + 0.01, dead[0].at - crash


def test_a_peer_that_never_joins_is_left_to_the_fixed_deadtime():
    # node2 is a 3.0.6 node: statuses only. node1 (binary) asks it to join, never beats it,
    # and declares it dead by its dt, not by the protocol.
    times = [1000.5 + i for i in range(40)]
    node = phi_node("detector binary tmax=1 tmin=0.0625")
    log = drive(node, real_peer_statuses(times), until=times[-1] + 20)
    sent = [heartbeat.decode(o.data) for _, o in log if isinstance(o, Send)]
    ours = [m.type for m in sent if (m.type or "").startswith("NS_hbtools")]
    assert "NS_hbtools_beat" not in ours and ours.count("NS_hbtools_join") >= 1
    dead = [(t, o) for t, o in log if isinstance(o, DeadEvent)]
    assert [(round(t - times[-1], 6), o.data["detector"]) for t, o in dead] == [(10.0, "fixed")]


def test_static_three_nodes_everyone_finds_the_crash():
    sim = accel_sim("static", nodes="node1 node2 node3")
    sim.run_for(40.0)
    assert sim.events(kind="dead") == []
    crash = sim.now
    sim.crash("node3")
    sim.run_for(12.0)
    for watcher in ("node1", "node2"):
        dead = sim.events(watcher, "dead")
        assert [e.data["node"] for e in dead] == ["node3"]
        assert 0 < dead[0].at - crash <= BOUND_1S + 0.01


def test_dynamic_clean_stop_leaves_before_shutdone():
    sim = accel_sim("dynamic")
    sim.run_for(30.0)
    sim.stop("node2")
    sim.run_for(10.0)
    types = _types_sent(sim, "node2")
    assert types.index("NS_hbtools_leave") < types.index("shutdone")
    dead = sim.events("node1", "dead")
    assert [e.data["reason"] for e in dead] == ["shutdone"]


def test_restarted_peer_joins_again_and_is_watched():
    sim = accel_sim("binary")
    sim.run_for(30.0)
    sim.crash("node2")
    sim.run_for(5.0)
    sim.start("node2")  # new generation
    sim.run_for(30.0)
    assert len(sim.events("node1", "dead")) == 1
    crash = sim.now
    sim.crash("node2")
    sim.run_for(10.0)
    dead = sim.events("node1", "dead")
    assert len(dead) == 2 and dead[1].data["detector"] == "binary"
    assert dead[1].at - crash <= BOUND_1S + 0.01


def test_fixed_cluster_sends_no_detector_message():
    cfg = make_config(ha_cf(keepalive="1", deadtime="5"))
    sim = Sim(cfg)
    sim.start("node1")
    sim.start("node2")
    sim.run_for(20.0)
    assert not [t for t in _types_sent(sim, "node1") if t.startswith("NS_hbtools")]


def test_report_names_the_detector_and_each_peers_level():
    sim = accel_sim("binary")
    sim.run_for(10.0)
    report = sim.nodes["node1"].report(sim.now)
    assert report["detector"] == "binary"
    assert report["peers"]["node2"]["detector_level"] == 0.0


def test_a_long_stall_sends_one_beat_per_peer_not_a_burst():
    """A node stopped for an hour (SIGSTOP) wakes with thousands of missed 1 s rounds due: it
    may send one beat per peer, not one per missed round, and it must answer at once."""
    sim = accel_sim("binary")
    sim.run_for(20.0)
    node = sim.nodes["node1"]
    out = node.tick(sim.now + 3600.0)
    beats = [o for o in out if isinstance(o, Send) and heartbeat.decode(o.data).type == "NS_hbtools_beat"]
    assert len(beats) == 1
    assert node.next_timer() is not None and node.next_timer() <= sim.now + 3600.0 + 1.0
