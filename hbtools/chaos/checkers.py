"""Checkers: verdicts from what was observed, never from a daemon's own opinion.

Inputs are plain data, so the checkers are pure and unit-tested with hand-made timelines:

* samples — ``(t, owners, client_mac)``: which nodes had the VIP on a live interface (read in
  every node's namespace) and which MAC the client's ARP cache held for it, ≥ 10 times a second;
* fault windows — ``(label, start, end)`` of every nemesis step (``end`` None: never healed);
* wire events from the bridge capture (:mod:`hbtools.chaos.wire`): gratuitous ARPs and cluster
  messages (heartbeats) per sender.

Rules (all times relative to the run's start):

* *Exactly one owner* at every sample outside the allowed windows. For a ``failure`` scenario a
  window is ``[start, end + grace]`` (``grace``: time to detect, take over and resolve after a
  heal; an unhealed fault allows ``grace`` after its start). A ``benign`` scenario (loss, delay,
  a cut medium, a flood) allows nothing: the cluster must ride it out.
* *Owner after heal*: the last samples have one owner, and the client's ARP entry names its MAC.
* *Reachable after the heal* (failure scenarios whose faults all end): from the last heal on,
  the time without exactly one owner *and* the client's ARP entry on it may not exceed
  ``heal_budget`` (default: grace). A stack that settles on one owner but leaves clients
  pointing at a node that gave the VIP up is unavailable all the same.
* *False failovers* (benign scenarios): every change of the single owner counts.
* One sample of disagreement (``TOLERANCE_S``) is allowed: a hand-over seen mid-way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hbtools.failover import first_takeover_garp

Sample = tuple[float, tuple[str, ...], str | None]
Window = tuple[str, float, float | None]

TOLERANCE_S = 0.15
"""Split brain or no owner shorter than this (one or two samples) is a hand-over in flight."""


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]
    split_brain_s: float
    split_brain_outside_s: float
    no_owner_outside_s: float
    owner_changes: int
    false_failovers: int
    final_owners: tuple[str, ...]
    client_ok: bool
    disrupted_after_heal_s: float | None = None
    detection_ms: float | None = None
    takeover_ms: float | None = None
    new_owner: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"


def allowed_windows(windows: Sequence[Window], kind: str, grace: float) -> list[tuple[float, float]]:
    if kind == "benign":
        return []
    out = []
    for _label, start, end in windows:
        out.append((start, (end if end is not None else start) + grace))
    return out


def _inside(t: float, spans: Sequence[tuple[float, float]]) -> bool:
    return any(a <= t <= b for a, b in spans)


def _durations(samples: Sequence[Sample], end: float) -> list[tuple[Sample, float]]:
    """Each sample with the time until the next (the last one counts until ``end``)."""
    out = []
    for i, s in enumerate(samples):
        nxt = samples[i + 1][0] if i + 1 < len(samples) else end
        out.append((s, max(0.0, nxt - s[0])))
    return out


def owner_changes(samples: Sequence[Sample]) -> list[tuple[float, str, str]]:
    """(t, from, to) each time the single owner became another single owner (gaps skipped)."""
    changes = []
    current: str | None = None
    for t, owners, _mac in samples:
        if len(owners) != 1:
            continue
        if current is not None and owners[0] != current:
            changes.append((t, current, owners[0]))
        current = owners[0]
    return changes


def disrupted_after(samples: Sequence[Sample], since: float, macs: Mapping[str, str],
                    end: float) -> float:
    """Seconds after ``since`` without one owner that the client's ARP entry points at."""
    total = 0.0
    for (t, owners, mac), dt in _durations(samples, end):
        if t >= since and not (len(owners) == 1 and mac == macs.get(owners[0])):
            total += dt
    return total


def check(samples: Sequence[Sample], windows: Sequence[Window], *, kind: str, grace: float,
          macs: Mapping[str, str], end: float, tail: float = 0.5,
          heal_budget: float | None = None) -> Verdict:
    """The verdict of one run; ``macs`` maps node names to their interface MACs."""
    reasons: list[str] = []
    if not samples:
        return Verdict(False, ["no samples"], 0, 0, 0, 0, 0, (), False)
    spans = allowed_windows(windows, kind, grace)
    split = split_out = none_out = 0.0
    for (t, owners, _mac), dt in _durations(samples, end):
        if len(owners) > 1:
            split += dt
            if not _inside(t, spans):
                split_out += dt
        elif not owners and not _inside(t, spans):
            none_out += dt
    if split_out > TOLERANCE_S:
        reasons.append(f"split brain for {split_out:.1f} s outside the fault windows")
    if none_out > TOLERANCE_S:
        reasons.append(f"no owner for {none_out:.1f} s outside the fault windows")
    final = [s for s in samples if s[0] >= end - tail] or [samples[-1]]
    final_owners = final[-1][1]
    if any(len(s[1]) != 1 for s in final):
        reasons.append(f"owners at the end: {', '.join(final_owners) or 'none'}")
    client_mac = final[-1][2]
    client_ok = len(final_owners) == 1 and client_mac == macs.get(final_owners[0])
    if len(final_owners) == 1 and not client_ok:
        holder = next((n for n, m in macs.items() if m == client_mac), client_mac or "nothing")
        reasons.append(f"client's ARP entry points at {holder}, not the owner {final_owners[0]}")
    disrupted = None
    if kind == "failure" and windows and all(w[2] is not None for w in windows):
        healed = max(w[2] for w in windows if w[2] is not None)
        disrupted = round(disrupted_after(samples, healed, macs, end), 2)
        budget = grace if heal_budget is None else heal_budget
        if disrupted > budget:
            reasons.append(f"VIP unreachable for the client {disrupted:.1f} s after the heal "
                           f"(budget {budget:g} s)")
    changes = owner_changes(samples)
    false = len(changes) if kind == "benign" else 0
    if false:
        reasons.append(f"{false} false failover(s)")
    return Verdict(not reasons, reasons, round(split, 2), round(split_out, 2), round(none_out, 2),
                   len(changes), false, tuple(final_owners), client_ok, disrupted)


def takeover_times(garps: Sequence[tuple[float, str]], heartbeats: Mapping[str, Sequence[float]],
                   *, fault_start: float, victim: str, macs: Mapping[str, str]
                   ) -> tuple[float | None, float | None, str | None]:
    """(detection ms, takeover ms, new owner) from the wire.

    takeover: fault start → first gratuitous ARP for the VIP from another node's MAC
    (`hbtools.failover.first_takeover_garp`, the one ``decode --stats`` reads failovers with);
    detection: the victim's last heartbeat at or before the fault start → that same GARP
    (what the survivor's failure detector waited, plus its takeover).
    """
    by_mac = {m: n for n, m in macs.items()}
    first = first_takeover_garp([(t, mac, "") for t, mac in garps], fault_start, victim, by_mac)
    if first is None:
        return None, None, None
    t_garp, owner = first[0], by_mac[first[1]]
    takeover = (t_garp - fault_start) * 1000
    before = [t for t in heartbeats.get(victim, ()) if t <= fault_start + 0.001]
    detection = (t_garp - before[-1]) * 1000 if before else None
    return (round(detection) if detection is not None else None, round(takeover), owner)


def service_moved(samples: Sequence[Sample], *, fault_start: float, victim: str, bound: float,
                  page: str, new_owner_check_failed: bool) -> tuple[float | None, list[str]]:
    """The service scenarios (issue 17): the group left the victim for another node within
    ``bound`` s of the fault (interval × failures + a check's phase + takeover), that node's own
    check had not failed (it must pass before it may take the group), and the client got the
    new owner's page from the VIP. Returns (seconds to the move, reasons it failed)."""
    reasons: list[str] = []
    moved = next((t for t, old, new in owner_changes(samples)
                  if t >= fault_start and old == victim and new != victim), None)
    if moved is None:
        reasons.append(f"the group never left {victim} after its service failed")
        return None, reasons
    after = moved - fault_start
    if after > bound:
        reasons.append(f"the group moved {after:.1f} s after the service failed, over the "
                       f"{bound:.1f} s that interval x failures + takeover allow")
    final = next((o for _t, owners, _m in reversed(samples) if len(owners) == 1 for o in owners),
                 None)
    if final is not None and page != f"served by {final}":
        reasons.append(f"the client got {page!r} from the VIP, not {final}'s page")
    if new_owner_check_failed:
        reasons.append(f"{final} took the group while its own check was failing")
    return round(after, 3), reasons
