"""The accelerated heartbeat protocols of Gouda & McGuire (ICDCS 1998): binary, static, expanding,
dynamic — each in its ORIGINAL form and in a CORRECTED form.

Sources and what they gave. The ICDCS paper itself and Atif & Mousavi's report (TU/e CSR-09-04,
2009) were NOT readable through the search tool: only their abstracts, the CADP case-study page and
a slide deck summarising the report (root p[0] with tmax/tmin; static: per-participant waiting
times tm[i], next round waits min(tm[i]); expanding: a process joins by sending a beat; dynamic:
join = beat(true), leave = beat(false)). The root's rule below is the pseudo-code of issue 16;
everything else is reconstructed from those summaries and SAID so here:

* Root p[0] (original, issue pseudo-code): at every timeout, ``t := tmax`` if a reply came in the
  round, else ``t := t/2``; ``t < tmin`` → inactive, else beat again. A reply counts for whatever
  round is open when it ARRIVES — nothing on the wire ties it to a beat.
* Participant p[i]: answers every beat and goes inactive after ``wait`` without one. The paper's
  value is not available to us; we default to ``3·tmax − tmin``, the longest silence a live root can
  leave (it keeps beating, halving, for up to 3·tmax − tmin after its last answered beat), so a
  participant never gives up on a root that has not given up on it.
* Bound used by the checks: with prompt delivery a root goes inactive at most ``3·tmax − tmin``
  after a participant crashes (tmax/tmin a power of two: tmax + tmax + tmax/2 + … + tmin), and a
  participant at most ``wait`` after the root stops.

Counterexamples (our reconstruction of the pattern the issue names, "a delay just past a halved
timeout"; not copied from the report, whose traces we could not read):

1. Stale reply (binary/static/expanding/dynamic, original): a reply delayed just past the timeout
   that halves t arrives in the NEXT round and counts for it, so the root resets to tmax although
   the participant may already be dead: detection exceeds 3·tmax − tmin.
2. Resurrection (dynamic, original): a delayed reply overtaken by the participant's leave is a
   beat(true), i.e. a join, so the root re-adds the departed process, waits for answers that never
   come, and goes inactive with no crash and no loss.

Correction (``variant="fixed"``, in the spirit of Atif & Mousavi's fixes): beats carry their round
number and replies echo it; the root counts a reply only for the round it answers, and only from a
current member; joining is an explicit JOIN, so no reply can (re)admit anyone.

``sticky=True`` is the protocol: inactive is final. ``sticky=False`` makes the root a failure
detector for evaluation (Chen et al. need mistakes that end): where it would go inactive it
suspects the participant instead, keeps probing at tmax, and trusts again on an accepted reply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hbtools.detectors.base import BEAT, JOIN, LEAVE, REPLY, Send

VARIANTS = ("original", "fixed")
MAX_CATCHUP = 256  # timeouts run at once after a stall (the halving chain from tmax to tmin is
#                    log2(tmax/tmin) + 2 of them; MIN tmin 10 ms and tmax 60 s give 15)


def root_bound(tmin: float, tmax: float) -> float:
    """Worst-case time from a participant's crash to the root's inactivation, prompt delivery."""
    total, t = tmax, tmax
    while t >= tmin:
        total += t
        t /= 2
    return total


@dataclass
class Root:
    """Process p[0]. ``members`` fixed (binary: one; static: n); ``joins``/``leaves`` widen it."""

    tmin: float
    tmax: float
    members: tuple[int, ...] = (1,)
    variant: str = "original"
    joins: bool = False
    leaves: bool = False
    sticky: bool = True
    name: str = "binary"
    active: bool = field(default=True, init=False)
    inactive_at: float | None = field(default=None, init=False)
    round: int = field(default=0, init=False)
    beats_sent: int = field(default=0, init=False)
    _tm: dict[int, float] = field(default_factory=dict, init=False)
    _rcvd: dict[int, bool] = field(default_factory=dict, init=False)
    _suspected: set[int] = field(default_factory=set, init=False)
    _next: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.tmin <= self.tmax:
            raise ValueError("need 0 < tmin <= tmax")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        for m in self.members:
            self._admit(m)

    def _admit(self, pid: int) -> None:
        self._tm[pid] = self.tmax
        self._rcvd[pid] = True

    @property
    def current_members(self) -> tuple[int, ...]:
        return tuple(self._tm)

    @property
    def suspected(self) -> frozenset[int]:
        """Members the root has given up on (``sticky=False``) and not heard from since."""
        return frozenset(self._suspected)

    def admit(self, pid: int) -> None:
        """Start watching ``pid`` (as at the protocol's start: rcvd, t = tmax), whatever the
        variant's join rule: the daemon's binary/static roots admit a peer when it announces it
        runs the protocol, since a peer that does not must never be watched by it."""
        if pid not in self._tm:
            self._admit(pid)

    def forget(self, pid: int) -> None:
        """Stop watching ``pid`` (declared dead or restarted elsewhere)."""
        self._forget(pid)

    def halvings(self, pid: int) -> float:
        """log2(tmax / t) for one member: 0 while it answers, +1 per missed round."""
        t = self._tm.get(pid)
        return 0.0 if t is None else math.log2(self.tmax / t)

    def start(self, now: float) -> list[Send]:
        """Initially rcvd = true and t = tmax: the first beat goes out at the first timeout."""
        self._next = now + self.tmax
        return []

    def tick(self, now: float) -> list[Send]:
        """Run every timeout due by ``now``; returns the beats to send (in order).

        After a stall of the caller (SIGSTOP, a suspended machine) at most ``MAX_CATCHUP``
        missed timeouts run — far more than the whole halving chain needs, so every verdict
        they would reach is reached — and the rounds then resume from ``now``.
        """
        sends: list[Send] = []
        for _ in range(MAX_CATCHUP):
            if not (self.active and self._next is not None and self._next <= now):
                return sends
            sends.extend(self._timeout(self._next))
        if self.active and self._next is not None and self._next <= now:
            self._next = now
        return sends

    def _timeout(self, at: float) -> list[Send]:
        if not self._tm:
            self._next = at + self.tmax
            return []
        for pid in self._tm:
            self._tm[pid] = self.tmax if self._rcvd[pid] else self._tm[pid] / 2
        low = [pid for pid, t in self._tm.items() if t < self.tmin]
        if low:
            if self.sticky:
                self.active = False
                self.inactive_at = at
                self._next = None
                return []
            for pid in low:
                self._suspected.add(pid)
                self._tm[pid] = self.tmax
        self.round += 1
        sends = []
        for pid in self._tm:
            self._rcvd[pid] = False
            sends.append(Send(BEAT, 0, pid, self.round))
        self.beats_sent += len(sends)
        self._next = at + min(self._tm.values())
        return sends

    def receive(self, now: float, msg: Send) -> None:
        """A message from a participant, heard at ``now`` (after ``tick(now)``)."""
        if not self.active:
            return
        pid = msg.src
        if self.variant == "original":
            if msg.kind == LEAVE:
                if self.leaves:
                    self._forget(pid)
                return
            # REPLY and JOIN are the same thing on the original wire: a beat (true).
            if pid in self._tm:
                self._accept(pid)
            elif self.joins:
                self._admit(pid)
            return
        if msg.kind == JOIN:
            if self.joins and pid not in self._tm:
                self._admit(pid)
        elif msg.kind == LEAVE:
            if self.leaves:
                self._forget(pid)
        elif msg.kind == REPLY and pid in self._tm and msg.round == self.round:
            self._accept(pid)

    def _accept(self, pid: int) -> None:
        self._rcvd[pid] = True
        if pid in self._suspected:
            self._suspected.discard(pid)

    def _forget(self, pid: int) -> None:
        self._tm.pop(pid, None)
        self._rcvd.pop(pid, None)
        self._suspected.discard(pid)

    # -- the Detector interface (the root watching its participants) -------------------------
    def arrival(self, now: float) -> None:
        """A prompt reply from the first member (for callers that only know 'heard it')."""
        pid = next(iter(self._tm), None)
        if pid is not None:
            self.receive(now, Send(REPLY, pid, 0, self.round))

    def suspect(self, now: float) -> bool:
        return not self.active or bool(self._suspected)

    def level(self, now: float) -> float:
        """Halvings so far (0 = every participant answered); inf once inactive."""
        if not self.active:
            return math.inf
        if not self._tm:
            return 0.0
        return math.log2(self.tmax / min(self._tm.values()))

    def next_deadline(self, now: float) -> float | None:
        return self._next if self.active else None


@dataclass
class Participant:
    """Process p[i]: answers beats; inactive after ``wait`` without one (default 3·tmax − tmin)."""

    pid: int
    tmin: float
    tmax: float
    wait: float | None = None
    variant: str = "original"
    sticky: bool = True
    active: bool = field(default=True, init=False)
    inactive_at: float | None = field(default=None, init=False)
    replies_sent: int = field(default=0, init=False)
    _deadline: float | None = field(default=None, init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.wait is None:
            self.wait = 3 * self.tmax - self.tmin
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")

    def start(self, now: float, join: bool = False) -> list[Send]:
        assert self.wait is not None
        self._deadline = now + self.wait
        self._last = now
        if join:
            kind = JOIN if self.variant == "fixed" else REPLY
            return [Send(kind, self.pid, 0, None)]
        return []

    def receive(self, now: float, msg: Send) -> list[Send]:
        if not self.active or msg.kind != BEAT:
            return []
        assert self.wait is not None
        self._last = now
        self._deadline = now + self.wait
        self.replies_sent += 1
        echo = msg.round if self.variant == "fixed" else None
        return [Send(REPLY, self.pid, 0, echo)]

    def tick(self, now: float) -> list[Send]:
        if self.active and self._deadline is not None and now >= self._deadline:
            if self.sticky:
                self.active = False
            self.inactive_at = self._deadline
        return []

    def leave(self, now: float) -> list[Send]:
        self.active = False
        return [Send(LEAVE, self.pid, 0, None)]

    def arrival(self, now: float) -> None:
        self.receive(now, Send(BEAT, 0, self.pid, None))

    def suspect(self, now: float) -> bool:
        return self._deadline is not None and now >= self._deadline

    def level(self, now: float) -> float:
        assert self.wait is not None
        return 0.0 if self._last is None else max(0.0, now - self._last) / self.wait

    def next_deadline(self, now: float) -> float | None:
        return self._deadline if self.active else None


class Binary(Root):
    """Binary protocol: one root, one participant (p[1]).

    ``variant="original"``: Gouda & McGuire as issue 16 gives it; ``"fixed"``: round numbers
    echoed, explicit joins (our reconstruction of Atif & Mousavi's correction; see the module
    docstring)."""

    def __init__(self, tmin: float, tmax: float, variant: str = "original", sticky: bool = True) -> None:
        super().__init__(tmin, tmax, (1,), variant, sticky=sticky, name=f"binary-{variant}")


class Static(Root):
    """Static protocol: one root, ``n`` participants known in advance; a round waits min(tm[i]).

    ``variant="original"``: Gouda & McGuire as issue 16 gives it; ``"fixed"``: round numbers
    echoed, explicit joins (our reconstruction of Atif & Mousavi's correction; see the module
    docstring)."""

    def __init__(self, tmin: float, tmax: float, n: int, variant: str = "original",
                 sticky: bool = True) -> None:
        super().__init__(tmin, tmax, tuple(range(1, n + 1)), variant, sticky=sticky,
                         name=f"static-{variant}")


class Expanding(Root):
    """Expanding protocol: participants join (original: by sending a beat; fixed: a JOIN).

    ``variant="original"``: Gouda & McGuire as issue 16 gives it; ``"fixed"``: round numbers
    echoed, explicit joins (our reconstruction of Atif & Mousavi's correction; see the module
    docstring)."""

    def __init__(self, tmin: float, tmax: float, variant: str = "original", sticky: bool = True,
                 members: tuple[int, ...] = ()) -> None:
        super().__init__(tmin, tmax, members, variant, joins=True, sticky=sticky,
                         name=f"expanding-{variant}")


class Dynamic(Root):
    """Dynamic protocol: participants join and leave (original: beat(true) / beat(false)).

    ``variant="original"``: Gouda & McGuire as issue 16 gives it; ``"fixed"``: round numbers
    echoed, explicit joins (our reconstruction of Atif & Mousavi's correction; see the module
    docstring)."""

    def __init__(self, tmin: float, tmax: float, variant: str = "original", sticky: bool = True,
                 members: tuple[int, ...] = ()) -> None:
        super().__init__(tmin, tmax, members, variant, joins=True, leaves=True, sticky=sticky,
                         name=f"dynamic-{variant}")
