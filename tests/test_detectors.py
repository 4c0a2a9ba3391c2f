"""Failure detectors: the protocols' properties, the counterexamples, φ against independent values.

Expected values come from hand computation (written out next to each check), from standard
normal tables, from Akka's published test table, and from the real Heartbeat 3.0.6 log of the
bundled capture — never from the code under test.
"""

from __future__ import annotations

import heapq
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtools.cli import cli
from hbtools.detectors import (
    BEAT,
    JOIN,
    REPLY,
    Binary,
    Dynamic,
    Expanding,
    FixedDeadtime,
    Participant,
    PhiAccrual,
    Send,
    Static,
    akka,
    cassandra,
)
from hbtools.detectors.phi import akka_logistic_phi, phi_normal
from hbtools.detectors.qos import accuracy, detection_time
from hbtools.detectors.simulate import replay
from hbtools.detectors.traces import Scenario, bundled, one_way

ROOT = Path(__file__).resolve().parent.parent
TMIN, TMAX = 1.0, 8.0
# Hand: tmax/tmin = 8, a power of two. After the participant's last prompt reply the root may be
# at the start of a tmax round: 8 (that round) + 8 + 4 + 2 + 1 (halving rounds), then t = 0.5 < 1.
ROOT_BOUND = 23.0
WAIT = 3 * TMAX - TMIN  # the participants' waiting time (documented default): 23


# -- a tiny event loop for the protocol checks (zero or given delays, no randomness) ----------
def run(root, parts, until, delay=lambda kind, src, dst, t: 0.0, crash=None, leave=None):
    """Drive a root and participants; ``delay`` returns None to lose a message. Returns when
    each process went inactive (None: still active)."""
    crash = crash or {}
    leave = leave or {}
    heap: list = []
    n = 0

    def post(t, what, msg=None):
        nonlocal n
        n += 1
        heapq.heappush(heap, (t, n, what, msg))

    def ship(t, msg):
        d = delay(msg.kind, msg.src, msg.dst, t)
        if d is not None:
            post(t + d, "deliver", msg)

    root.start(0.0)
    post(root.next_deadline(0.0), "root")
    for p in parts.values():
        for m in p.start(0.0, join=root.joins):
            ship(0.0, m)
        post(p.next_deadline(0.0), ("part", p.pid))
    for pid, t in crash.items():
        post(t, ("crash", pid))
    for pid, t in leave.items():
        post(t, ("leave", pid))
    crashed = {"root": False, **{pid: False for pid in parts}}
    while heap:
        t, _, what, msg = heapq.heappop(heap)
        if t > until:
            break
        if what == "root":
            if crashed["root"] or root.next_deadline(t) != t:
                continue
            for m in root.tick(t):
                ship(t, m)
            if root.next_deadline(t) is not None:
                post(root.next_deadline(t), "root")
        elif what == "deliver":
            if msg.dst == 0:
                if not crashed["root"]:
                    root.tick(t)
                    root.receive(t, msg)
            else:
                p = parts[msg.dst]
                if not crashed[msg.dst]:
                    for m in p.receive(t, msg):
                        ship(t, m)
                    if p.next_deadline(t) is not None:
                        post(p.next_deadline(t), ("part", p.pid))
        elif what[0] == "part":
            p = parts[what[1]]
            if not crashed[p.pid] and p.next_deadline(t) == t:
                p.tick(t)
        elif what[0] == "crash":
            crashed[what[1]] = True
            if what[1] == "root":
                root.active = False  # a crash, not an inactivation: no inactive_at
        elif what[0] == "leave":
            for m in parts[what[1]].leave(t):
                ship(t, m)
    return root.inactive_at, {pid: p.inactive_at for pid, p in parts.items()}


def parts_for(n, variant):
    return {i: Participant(i, TMIN, TMAX, variant=variant) for i in range(1, n + 1)}


VARIANTS = ["original", "fixed"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["binary", "static", "expanding", "dynamic"])
def test_no_loss_no_delay_nobody_goes_inactive(kind, variant):
    n = 1 if kind == "binary" else 3
    root = {"binary": lambda: Binary(TMIN, TMAX, variant),
            "static": lambda: Static(TMIN, TMAX, 3, variant),
            "expanding": lambda: Expanding(TMIN, TMAX, variant),
            "dynamic": lambda: Dynamic(TMIN, TMAX, variant)}[kind]()
    r, ps = run(root, parts_for(n, variant), until=500.0)
    assert r is None and all(v is None for v in ps.values())
    if kind in ("expanding", "dynamic"):
        assert sorted(root.current_members) == [1, 2, 3]  # the joins were taken


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("crash_at", [8.0, 8.001, 11.0, 15.999, 16.0, 100.5])
def test_after_a_participant_crash_everyone_goes_inactive_within_the_bound(variant, crash_at):
    root = Static(TMIN, TMAX, 3, variant)
    r, ps = run(root, parts_for(3, variant), until=500.0, crash={1: crash_at})
    assert r is not None and crash_at < r <= crash_at + ROOT_BOUND
    # The others stop hearing beats when the root stops: within their wait after that.
    for pid in (2, 3):
        assert ps[pid] is not None and ps[pid] <= r + WAIT


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("crash_at", [8.0, 12.5, 40.0])
def test_after_the_root_crashes_every_participant_goes_inactive_within_its_wait(variant, crash_at):
    root = Static(TMIN, TMAX, 2, variant)
    _, ps = run(root, parts_for(2, variant), until=500.0, crash={"root": crash_at})
    for v in ps.values():
        assert v is not None and crash_at < v <= crash_at + WAIT


def _stale_reply_run(variant):
    """Counterexample 1, timeline by hand (tmax 8, tmin 1): beats at 8 (answered at once) and at
    16; the reply to the beat of 16 is delayed 8.5 s, just past the timeout at 24 that halves t,
    and p[1] crashes at 16.1. The late reply lands at 24.5, inside the round opened at 24."""
    root = Binary(TMIN, TMAX, variant)
    p1 = Participant(1, TMIN, TMAX, variant=variant)
    root.start(0.0)
    p1.start(0.0)
    (b1,) = root.tick(8.0)
    (r1,) = p1.receive(8.0, b1)
    root.receive(8.0, r1)
    (b2,) = root.tick(16.0)
    (r2,) = p1.receive(16.0, b2)  # p[1]'s last act: it crashes at 16.1
    root.tick(24.0)
    root.tick(24.5)
    root.receive(24.5, r2)
    root.tick(100.0)
    return root.inactive_at


def test_counterexample_stale_reply_breaks_the_bound_in_the_original():
    # Original, by hand: 24 no reply → t=4; 24.5 the stale reply sets rcvd; 28 → t := 8;
    # 36 → 4; 40 → 2; 42 → 1; 43 → 0.5 < 1: inactive at 43, i.e. 26.9 s after the crash > 23.
    assert _stale_reply_run("original") == 43.0
    assert 43.0 - 16.1 > ROOT_BOUND


def test_counterexample_stale_reply_is_fixed_by_round_numbers():
    # Fixed: the reply echoes round 2 while round 3 is open, so it is ignored:
    # 24 → 4; 28 → 2; 30 → 1; 31 → 0.5 < 1: inactive at 31, 14.9 s after the crash.
    assert _stale_reply_run("fixed") == 31.0
    assert 31.0 - 16.1 <= ROOT_BOUND


def _resurrection(variant):
    """Counterexample 2: p[2] answers the beat of 8 with a reply delayed 3 s and leaves at 9;
    its leave (prompt) overtakes the reply, which lands at 11. Nobody crashes, nothing is lost."""
    def delay(kind, src, dst, t):
        return 3.0 if (kind == REPLY and src == 2 and t == 8.0) else 0.0

    root = Dynamic(TMIN, TMAX, variant)
    return run(root, parts_for(2, variant), until=300.0, delay=delay, leave={2: 9.0})[0]


def test_counterexample_dynamic_resurrection_in_the_original():
    # By hand: 11 the reply = beat(true) = a join: p[2] is back with rcvd set; 16 t stays 8,
    # beat; 24 → 4; 28 → 2; 30 → 1; 31 → 0.5 < 1: the root goes inactive at 31.
    assert _resurrection("original") == 31.0


def test_counterexample_dynamic_resurrection_fixed():
    assert _resurrection("fixed") is None


def test_fixed_variant_ignores_replies_from_non_members_but_takes_joins():
    root = Expanding(TMIN, TMAX, "fixed")
    root.start(0.0)
    root.receive(0.5, Send(REPLY, 7, 0, 0))
    assert root.current_members == ()
    root.receive(0.6, Send(JOIN, 7, 0, None))
    assert root.current_members == (7,)
    (beat,) = root.tick(8.0)
    assert beat == Send(BEAT, 0, 7, 1)


# -- φ accrual -------------------------------------------------------------------------------
@pytest.mark.parametrize(("x", "cdf"), [  # Akka's test table = standard normal CDF values
    (0, 0.5), (6, 0.7257), (15, 0.9332), (20, 0.97725), (25, 0.99379), (35, 0.99977)])
def test_phi_normal_against_normal_cdf_values(x, cdf):
    # Akka checks 1 − 10^−φ(x; mean 0, std 10) against the normal CDF at x/10.
    assert 1 - 10 ** -phi_normal(x, 0.0, 10.0) == pytest.approx(cdf, abs=0.001)


def test_phi_normal_hand_values():
    # Q(1) = 0.158655, Q(2) = 0.0227501, Q(3) = 0.00134990 (normal tables); φ = −log10 Q.
    assert phi_normal(1.0, 0.0, 1.0) == pytest.approx(0.79955, abs=1e-4)
    assert phi_normal(2.0, 0.0, 1.0) == pytest.approx(1.64302, abs=1e-4)
    assert phi_normal(3.0, 0.0, 1.0) == pytest.approx(2.86970, abs=1e-4)
    assert phi_normal(0.0, 0.0, 1.0) == pytest.approx(math.log10(2), abs=1e-9)


@pytest.mark.parametrize(("dt", "phi"), [(0, 0.0), (500, 0.1), (1000, 0.3), (1200, 1.6),
                                         (1400, 4.7), (1600, 10.8), (1700, 15.3)])
def test_akka_logistic_matches_akka_published_table(dt, phi):
    assert akka_logistic_phi(dt, 1000.0, 100.0) == pytest.approx(phi, abs=0.1)


def test_akka_one_heartbeat_guess():
    # Akka: first heartbeat seeds the window with 750 and 1250 ms (mean 1 s, std 0.25 s);
    # with no acceptable pause φ(1 s) = log10 2 ≈ 0.30, φ(2 s) = −log10 Q(4) = 4.50, φ(3 s) > 15.
    fd = PhiAccrual(acceptable_pause=0.0)
    fd.arrival(0.0)
    assert fd.level(1.0) == pytest.approx(0.30103, abs=1e-4)
    assert fd.level(2.0) == pytest.approx(4.4993, abs=1e-3)
    assert fd.level(3.0) > 15.0


def test_akka_dead_after_missed_heartbeats_and_acceptable_pause():
    # Akka's spec, threshold 3: heartbeats at 0, 1, 1.1 s: available at 1.2, not at 8.2.
    fd = PhiAccrual(threshold=3.0, acceptable_pause=0.0)
    for t in (0.0, 1.0, 1.1):
        fd.arrival(t)
    assert not fd.suspect(1.2) and fd.suspect(8.2)
    # Akka's spec, 3 s acceptable pause: a 4 s gap among 1 s beats is accepted.
    fd = PhiAccrual(acceptable_pause=3.0)
    for t in (0.0, 1.0, 2.0, 3.0, 7.0):
        assert not fd.suspect(t)
        fd.arrival(t)
    assert not fd.suspect(8.0)


def test_phi_deadline_is_where_the_verdict_flips():
    fd = akka(8.0)
    for t in (0.0, 1.0, 2.1, 2.9, 4.0, 5.2):
        fd.arrival(t)
    d = fd.next_deadline(5.2)
    assert not fd.suspect(d - 1e-6) and fd.suspect(d + 1e-6)


def test_cassandra_convicts_at_threshold_times_ln10_mean():
    # Cassandra: φ = Δt/mean · 1/ln 10 > 8 ⇔ Δt > 8 · ln 10 · mean = 18.4207 s for mean 1 s.
    fd = cassandra(8.0)
    for t in range(0, 50):
        fd.arrival(float(t))  # seed 2 s + 49 intervals of 1 s: mean = 51/50 = 1.02 s
    assert fd.next_deadline(49.0) == pytest.approx(49.0 + 8 * math.log(10) * 1.02)
    assert not fd.suspect(49.0 + 18.0) and fd.suspect(49.0 + 19.0)
    fd.arrival(49.0 + 5.0)  # longer than 2 s: Cassandra does not record it
    assert fd.mean == pytest.approx(1.02)


# -- Heartbeat's fixed deadtime ---------------------------------------------------------------
def test_fixed_deadtime_uses_the_peers_dt_and_warntime():
    fd = FixedDeadtime(deadtime=30.0)
    fd.arrival(10.0, dt_ms=0x1388)  # dt=1388 hex = 5000 ms
    assert fd.next_deadline(10.0) == 15.0
    assert not fd.late(12.5) and fd.late(12.6)  # warntime = deadtime/2 = 2.5 s
    assert not fd.suspect(15.0) and fd.suspect(15.01)


def test_bundled_trace_fixed_deadtime_agrees_with_the_real_daemons_log():
    """node2's ha-log (Heartbeat 3.0.6, 1 s resolution) says 'node node1: is dead' at 21:10:59;
    node1 advertised dt=1388 (5 s). Our rule must declare within that logged second (allowing
    Heartbeat's own check period of up to ~1 s after the deadline)."""
    tr = bundled()
    iv = replay(FixedDeadtime(deadtime=30.0), tr)
    assert len(iv) == 1
    meta = json.loads((ROOT / "captures/hb-failover/meta.json").read_text())
    start = float(meta["capture"]["start"])  # 21:10:37.782538 UTC (recorded_at)
    logged = start - 37.782538 + 59.0  # 21:10:59.000 as epoch seconds
    assert logged - 1.0 <= iv[0][0] <= logged + 1.0
    assert iv[0][0] == pytest.approx(tr.arrivals[-1] + 5.0)


# -- QoS ------------------------------------------------------------------------------------
def test_qos_metrics_by_hand():
    iv = [(10.0, 12.0), (40.0, 41.0), (90.0, 100.0)]
    acc = accuracy(iv, 0.0, 100.0, crash=85.0)
    # Two mistakes before the crash (3 s suspected) over 85 s observed.
    assert (acc.mistakes, acc.suspected, acc.observed) == (2, 3.0, 85.0)
    assert acc.p_a == pytest.approx(1 - 3 / 85)
    assert acc.t_mr == pytest.approx(42.5) and acc.t_m == pytest.approx(1.5)
    assert detection_time(iv, 100.0, 85.0) == 5.0
    assert detection_time(iv[:2], 100.0, 85.0) == math.inf


def test_generated_trace_is_seeded_and_loses_what_it_says():
    sc = Scenario("x", duration=2000.0, loss=0.3, jitter=0.2, seed=4)
    a, b = one_way(sc), one_way(sc)
    assert a.arrivals == b.arrivals
    # 2000 sends at 30 % loss: binomial sd ≈ 20.5; 6 sd is a bound that cannot flake.
    assert abs(len(a.arrivals) - 1400) < 125


# -- the command -----------------------------------------------------------------------------
def test_evaluate_prints_the_table_and_writes_the_png(tmp_path):
    png = tmp_path / "q.png"
    res = CliRunner().invoke(cli, ["detectors", "evaluate", "-s", "loss30-j200", "--duration",
                                   "300", "--trials", "2", "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "hb-failover:node1" in res.output and "phi-akka" in res.output
    assert "heartbeat-dt" in res.output and "loss30-j200" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_bad_trace_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(cli, ["detectors", "evaluate", "--no-generated", "-t", str(bad)])
    assert res.exit_code == 2
    assert "t.json: not a trace file" in res.output and "Traceback" not in res.output


# -- the daemon seam -------------------------------------------------------------------------
def test_parse_detector_directive():
    from hbtools.detectors.adapter import parse_detector

    spec = parse_detector(["phi", "threshold=10", "pause=0.5"])
    assert (spec.kind, spec.threshold, spec.acceptable_pause) == ("phi", 10.0, 0.5)
    for bad in ([], ["swim"], ["phi", "threshold"], ["phi", "threshold=x"], ["phi", "nope=1"],
                ["phi", "threshold=-1"], ["phi", "window=0"]):
        with pytest.raises(ValueError):
            parse_detector(bad)


def test_peerwatch_phi_is_never_slower_than_dt_nor_sooner_than_two_keepalives():
    from hbtools.detectors.adapter import PeerWatch, parse_detector

    w = PeerWatch(parse_detector(["phi", "pause=0", "threshold=1"]), keepalive=1.0, deadtime=30.0)
    for t in range(0, 30):
        w.heard("node1", float(t), dt_ms=5000)
    # steady 1 s beats: φ=1 would fire ~1.1 s after the last; the floor holds it to 2 s.
    assert w.deadline("node1", 29.0) == 31.0
    assert not w.dead("node1", 30.9) and w.dead("node1", 31.0)
    slow = PeerWatch(parse_detector(["phi", "threshold=16", "pause=5"]), keepalive=1.0, deadtime=30.0)
    for t in range(0, 30):
        slow.heard("n", float(t), dt_ms=5000)
    assert slow.deadline("n", 29.0) == 34.0  # φ: 29 + 1 + 5 + ~0.8 s; the dt cap (5 s) wins
    assert w.deadline("unknown", 1.0) is None


def test_bundled_trace_is_what_the_decoder_reads_from_the_capture():
    """The shipped JSON must not drift from captures/hb-failover (one arrival per seq: the
    start-up burst seq 1-3 is one frame-time apart and counts three times, repeats none)."""
    from hbtools.detectors.traces import from_capture

    got = from_capture(str(ROOT / "captures/hb-failover/capture.pcap"))
    shipped = bundled()
    assert (got.arrivals, got.crash, got.end, got.dt_ms) == (
        shipped.arrivals, shipped.crash, shipped.end, shipped.dt_ms)
    # node1 advertises dt = deadtime + 2 s (7000) while it starts, then 5000 (PROTOCOL-NOTES §1).
    assert shipped.dt_ms[0] == 7000 and shipped.dt_ms[-1] == 5000


def test_evaluate_over_a_directory_of_recordings_skips_corosync_ones(tmp_path):
    res = CliRunner().invoke(cli, ["detectors", "evaluate", "--no-generated", "--png", "",
                                   "-t", str(ROOT / "captures")])
    assert res.exit_code == 0, res.output
    assert "hb-ucast-md5:node1" in res.output and "totem-knet" in res.output  # the skip line
    rows = [line.split() for line in res.output.splitlines()]
    assert sum(1 for r in rows if r[:2] == ["hb-failover:node1", "heartbeat-dt"]) == 1


# -- the properties again, over random crash times and small delays ---------------------------
@settings(max_examples=40, deadline=None)
@given(variant=st.sampled_from(VARIANTS), crash_at=st.floats(0.0, 120.0),
       rnd=st.randoms(use_true_random=False), delta=st.floats(0.0, 0.45))
def test_properties_hold_with_delays_below_half_tmin(variant, crash_at, rnd, delta):
    """Delays up to δ < tmin/2 (round trip < tmin, so no reply can miss its round): the
    participant's crash is found within 23 s + 2δ, nobody goes inactive before it, and the
    surviving participant follows the root within its wait (plus δ)."""
    def delay(kind, src, dst, t):
        return rnd.uniform(0.0, delta)

    root = Static(TMIN, TMAX, 2, variant)
    r, ps = run(root, parts_for(2, variant), until=400.0, delay=delay, crash={1: crash_at})
    assert r is not None and crash_at < r <= crash_at + ROOT_BOUND + 2 * delta
    assert ps[2] is not None and r < ps[2] <= r + WAIT + delta


@settings(max_examples=25, deadline=None)
@given(variant=st.sampled_from(VARIANTS), rnd=st.randoms(use_true_random=False),
       delta=st.floats(0.0, 0.45), kind=st.sampled_from(["static", "expanding", "dynamic"]))
def test_without_crash_or_loss_nobody_goes_inactive_despite_small_delays(variant, rnd, delta, kind):
    def delay(k, src, dst, t):
        return rnd.uniform(0.0, delta)

    root = {"static": lambda: Static(TMIN, TMAX, 3, variant),
            "expanding": lambda: Expanding(TMIN, TMAX, variant),
            "dynamic": lambda: Dynamic(TMIN, TMAX, variant)}[kind]()
    r, ps = run(root, parts_for(3, variant), until=300.0, delay=delay)
    assert r is None and all(v is None for v in ps.values())
