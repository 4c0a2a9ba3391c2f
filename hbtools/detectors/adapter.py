"""The seam between the daemon core and a failure detector: one object per node, pure.

``hbtool daemon`` applies Heartbeat's rule inline (hbtools/node/core.py: ``_on_status`` sets
``peer.last_heard``; ``next_timer`` wakes at ``last_heard + _peer_deadtime``; ``_check_peer_timers``
fires ``DEADTIME_EXPIRED`` when the silence reaches it). An ha.cf ``detector`` line other than
``fixed`` adds a watch (:func:`make_watch`) whose verdict the core ORs with that rule, so the
fixed deadtime stays the upper bound whatever the detector says. Both watches offer the same
calls, all taking ``now`` and returning the detector messages to send as ``(dest, Send)``:

* ``start(now)`` when the node starts; ``tick(now)`` at every core tick; ``next_timer(now)``
  joins the core's timer list;
* ``heard(node, now, dt_ms)`` in ``_on_status`` (a status that passed the authentication and
  sequence checks: a retransmitted copy must not count as a fresh arrival);
* ``message(node, kind, round, now)`` for a beat/reply/join/leave addressed to us
  (``hbtools.detectors.wire``); ``dead(node, now)`` in ``_check_peer_timers``;
* ``forget(node)`` when the peer is declared dead, comes back or restarts (new generation), so
  a dead peer's old intervals do not shape its next life; ``stop(now)`` at a clean shutdown.

:class:`PeerWatch` (``phi``, ``phi-cassandra``) is safe against real 3.0.6 peers: φ only watches
arrival times of the ``status`` messages every 3.0.6 node sends anyway, so nothing changes on the
wire. Two guards keep the daemon within Heartbeat's contract whatever the statistics say: never
dead before ``floor`` (2 × keepalive, Heartbeat's own lower limit on deadtime), and never later
than the peer's advertised ``dt`` — so a φ node is never slower than Heartbeat, only sooner when
the link is steady. Memory is bounded: at most ``max_peers`` nodes, each with a bounded window.

:class:`AcceleratedWatch` (``binary``, ``static``, ``expanding``, ``dynamic``) runs Gouda &
McGuire's protocols between hbtools nodes: every node is a root watching its peers AND a
participant answering each peer's root. A peer is watched only after it announced that it runs
the protocol (a JOIN, or in the original variant its wire form, a reply), so a real 3.0.6 node,
which never sends one, is left to the fixed deadtime and never falsely declared dead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hbtools.detectors.accelerated import VARIANTS, Participant, Root
from hbtools.detectors.base import BEAT, JOIN, REPLY, Send
from hbtools.detectors.fixed import FixedDeadtime
from hbtools.detectors.phi import PhiAccrual

PHI_KINDS = ("phi", "phi-cassandra")
ACCELERATED_KINDS = ("binary", "static", "expanding", "dynamic")
KINDS = ("fixed", *PHI_KINDS, *ACCELERATED_KINDS)
MIN_TMIN = 0.01  # s: below this a halving root would beat faster than the loop can honour
MAX_TMAX = 60.0  # s: past this the fixed deadtime always decides first anyway

#: A detector message to send: (the addressed node, the message).
Outgoing = tuple[str, Send]


@dataclass(frozen=True)
class DetectorSpec:
    """What an ha.cf ``detector`` line asks for, e.g. ``detector phi threshold=8 pause=3``."""

    kind: str = "fixed"
    threshold: float = 8.0
    acceptable_pause: float = 3.0
    min_std: float = 0.1
    window: int = 1000
    tmin: float | None = None  # accelerated: default tmax/16 (as the evaluation's default point)
    tmax: float | None = None  # accelerated: default the keepalive (one beat per keepalive)
    variant: str = "fixed"  # accelerated: "fixed" (Atif & Mousavi) or "original" (Gouda & McGuire)

    @property
    def accelerated(self) -> bool:
        return self.kind in ACCELERATED_KINDS


_PHI_OPTIONS = {"threshold": "threshold", "pause": "acceptable_pause", "min_std": "min_std",
                "window": "window"}
_ACCELERATED_OPTIONS = {"tmin": "tmin", "tmax": "tmax", "variant": "variant"}


def parse_detector(args: list[str]) -> DetectorSpec:
    """``detector fixed``, ``detector phi|phi-cassandra [threshold=X] [pause=SECONDS]
    [min_std=SECONDS] [window=N]``, ``detector binary|static|expanding|dynamic [tmin=SECONDS]
    [tmax=SECONDS] [variant=fixed|original]``.

    Raises ValueError with a message fit for ``file:line: ...``.
    """
    if not args:
        raise ValueError(f"'detector' needs a kind ({', '.join(KINDS)})")
    kind, opts = args[0].lower(), args[1:]
    if kind not in KINDS:
        raise ValueError(f"unknown detector {args[0]!r} (known: {', '.join(KINDS)})")
    values: dict[str, Any] = {}
    names = (_ACCELERATED_OPTIONS if kind in ACCELERATED_KINDS
             else _PHI_OPTIONS if kind in PHI_KINDS else {})
    for opt in opts:
        key, eq, raw = opt.partition("=")
        if not eq or key not in names:
            shown = opt if len(opt) <= 20 else opt[:20] + "..."
            known = f"known: {', '.join(names)}" if names else f"'{kind}' takes none"
            raise ValueError(f"bad detector option {shown!r} ({known})")
        if key in {n for n, attr in names.items() if attr in values}:
            raise ValueError(f"detector option {key} given twice")
        if key == "variant":
            if raw not in VARIANTS:
                raise ValueError(f"detector variant must be one of {', '.join(VARIANTS)}")
            values["variant"] = raw
            continue
        if not 0 < len(raw) <= 20:
            raise ValueError(f"detector option {key} needs a number")
        try:
            value: float = int(raw) if key == "window" else float(raw)
        except ValueError:
            raise ValueError(f"detector option {key} needs a number, not {raw!r}") from None
        if value <= 0 and key != "pause" or value < 0 or value != value or value > 1e6:
            raise ValueError(f"detector option {key}={raw} is out of range")
        values[names[key]] = value
    spec = DetectorSpec(kind, **values)
    if spec.accelerated:
        tmax = spec.tmax if spec.tmax is not None else 1.0
        tmin = spec.tmin if spec.tmin is not None else tmax / 16
        if spec.tmax is not None and not MIN_TMIN <= tmax <= MAX_TMAX:
            raise ValueError(f"detector tmax={tmax:g} must be {MIN_TMIN:g} to {MAX_TMAX:g} s")
        if spec.tmin is not None and tmin < MIN_TMIN:
            raise ValueError(f"detector tmin={tmin:g} must be at least {MIN_TMIN:g} s")
        if spec.tmin is not None and spec.tmax is not None and tmin > tmax:
            raise ValueError(f"detector tmin={tmin:g} is more than tmax={tmax:g}")
    return spec


def accelerated_times(spec: DetectorSpec, keepalive: float) -> tuple[float, float]:
    """(tmin, tmax) in force: tmax defaults to the keepalive, tmin to tmax/16 (not below 10 ms)."""
    tmax = spec.tmax if spec.tmax is not None else keepalive
    tmin = spec.tmin if spec.tmin is not None else max(MIN_TMIN, tmax / 16)
    if tmin > tmax:
        raise ValueError(f"detector tmin={tmin:g} is more than tmax={tmax:g} (the keepalive)")
    return tmin, tmax


@dataclass
class PeerWatch:
    """φ accrual per peer over its status arrivals, within [2 × keepalive, the peer's dt]."""

    spec: DetectorSpec
    keepalive: float
    deadtime: float
    max_peers: int = 256
    _peers: dict[str, Any] = field(default_factory=dict, init=False)
    _fixed: dict[str, FixedDeadtime] = field(default_factory=dict, init=False)

    def _make(self) -> Any:
        s = self.spec
        if s.kind == "phi":
            return PhiAccrual(threshold=s.threshold, acceptable_pause=s.acceptable_pause,
                              min_std=s.min_std, window=s.window, first_interval=self.keepalive)
        if s.kind == "phi-cassandra":
            return PhiAccrual(threshold=s.threshold, model="exponential", window=s.window,
                              first_interval=2 * self.keepalive, max_interval=2 * self.keepalive)
        return None

    def heard(self, node: str, now: float, dt_ms: int | None = None) -> list[Outgoing]:
        if node not in self._fixed:
            if len(self._fixed) >= self.max_peers:
                return []
            self._fixed[node] = FixedDeadtime(deadtime=self.deadtime, keepalive=self.keepalive)
            made = self._make()
            if made is not None:
                self._peers[node] = made
        self._fixed[node].arrival(now, dt_ms)
        det = self._peers.get(node)
        if det is not None:
            det.arrival(now)
        return []

    def deadline(self, node: str, now: float) -> float | None:
        fixed = self._fixed.get(node)
        if fixed is None or fixed._last is None:
            return None
        limit = fixed.next_deadline(now)
        det = self._peers.get(node)
        if det is None or limit is None:
            return limit
        floor = fixed._last + 2 * self.keepalive
        d = det.next_deadline(now)
        return limit if d is None else max(floor, min(d, limit))

    def dead(self, node: str, now: float) -> bool:
        d = self.deadline(node, now)
        return d is not None and now >= d

    def level(self, node: str, now: float) -> float:
        det = self._peers.get(node) or self._fixed.get(node)
        return 0.0 if det is None else float(det.level(now))

    def forget(self, node: str) -> None:
        self._peers.pop(node, None)
        self._fixed.pop(node, None)

    # -- the rest of the core's interface: φ sends nothing and needs no timer of its own ----
    def start(self, now: float) -> list[Outgoing]:
        return []

    def tick(self, now: float) -> list[Outgoing]:
        return []

    def message(self, node: str, kind: str, rnd: int | None, now: float) -> list[Outgoing]:
        return []

    def stop(self, now: float) -> list[Outgoing]:
        return []

    def next_timer(self, now: float) -> float | None:
        times = [d for d in (self.deadline(n, now) for n in self._fixed) if d is not None]
        return min(times) if times else None

    def watched(self, node: str) -> bool:
        return node in self._peers


@dataclass
class AcceleratedWatch:
    """Gouda & McGuire between hbtools nodes: a root over the peers, a participant for each.

    ``binary``: one root per peer (the protocol is between two processes). ``static``,
    ``expanding``, ``dynamic``: one root for all peers, its rounds at the shortest waiting
    time. The cluster's node list is fixed by ha.cf, so joining means a configured peer
    announcing that it runs the protocol: static and binary roots admit it on its JOIN
    (original variant: on a reply from a non-member, which is a join on that wire),
    expanding and dynamic roots by their own join rule; only dynamic honours LEAVE (sent
    by :meth:`stop` at a clean shutdown). Roots are not sticky: where the protocol would
    go inactive the root suspects the member (the core declares it dead) and keeps probing.

    The participant for a peer sends a JOIN when it hears the peer's status and has had no
    beat from it for ``wait`` (3·tmax − tmin, the longest silence a live root leaves), so a
    lost JOIN or a restarted peer's empty root is joined again a few seconds later.
    """

    spec: DetectorSpec
    me: str
    nodes: list[str]
    keepalive: float
    deadtime: float
    tmin: float = field(default=0.0, init=False)
    tmax: float = field(default=0.0, init=False)
    _pid: dict[str, int] = field(default_factory=dict, init=False)
    _name: dict[int, str] = field(default_factory=dict, init=False)
    _roots: dict[str, Root] = field(default_factory=dict, init=False)  # binary: per peer; else "*"
    _part: dict[str, Participant] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.tmin, self.tmax = accelerated_times(self.spec, self.keepalive)
        peers = [n for n in self.nodes if n != self.me]
        self._pid = {n: i for i, n in enumerate(peers, start=1)}
        self._name = {i: n for n, i in self._pid.items()}

    @property
    def name(self) -> str:
        return f"{self.spec.kind}-{self.spec.variant}"

    def _new_root(self) -> Root:
        kind = self.spec.kind
        return Root(self.tmin, self.tmax, (), self.spec.variant, joins=kind in ("expanding", "dynamic"),
                    leaves=kind == "dynamic", sticky=False, name=self.name)

    def _root_of(self, node: str) -> Root | None:
        return self._roots.get(node if self.spec.kind == "binary" else "*")

    def _out(self, sends: list[Send]) -> list[Outgoing]:
        return [(self._name[s.dst], s) for s in sends if s.dst in self._name]

    def start(self, now: float) -> list[Outgoing]:
        if self.spec.kind != "binary":
            root = self._new_root()
            root.start(now)
            self._roots["*"] = root
        return []

    def heard(self, node: str, now: float, dt_ms: int | None = None) -> list[Outgoing]:
        """A status from ``node``: join its root unless its beats already reach us."""
        pid = self._pid.get(node)
        if pid is None:
            return []
        part = self._part.get(node)
        if part is not None and not part.suspect(now):
            return []
        part = Participant(0, self.tmin, self.tmax, variant=self.spec.variant, sticky=False)
        self._part[node] = part
        return [(node, s) for s in part.start(now, join=True)]

    def message(self, node: str, kind: str, rnd: int | None, now: float) -> list[Outgoing]:
        """A beat/reply/join/leave from ``node`` addressed to us."""
        pid = self._pid.get(node)
        if pid is None:
            return []
        if kind == BEAT:
            part = self._part.get(node)
            if part is None:
                part = Participant(0, self.tmin, self.tmax, variant=self.spec.variant, sticky=False)
                part.start(now)
                self._part[node] = part
            return [(node, s) for s in part.receive(now, Send(BEAT, 0, 0, rnd))]
        root = self._root_of(node)
        announces = kind == JOIN or (kind == REPLY and self.spec.variant == "original")
        if root is None and self.spec.kind == "binary" and announces:
            root = self._roots[node] = self._new_root()
            root.start(now)
        if root is None:
            return []
        if announces and not root.joins and pid not in root.current_members:
            root.admit(pid)
            return []
        root.receive(now, Send(kind, pid, 0, rnd))
        return []

    def tick(self, now: float) -> list[Outgoing]:
        """Beats due now: after a stall several rounds fall due at once, and only the latest
        beat per peer is sent (a reply to an older round would not count)."""
        latest: dict[str, Send] = {}
        for root in self._roots.values():
            for dest, beat in self._out(root.tick(now)):
                latest.pop(dest, None)
                latest[dest] = beat
        return list(latest.items())

    def next_timer(self, now: float) -> float | None:
        times = [t for t in (r.next_deadline(now) for r in self._roots.values()) if t is not None]
        return min(times) if times else None

    def dead(self, node: str, now: float) -> bool:
        root = self._root_of(node)
        return root is not None and self._pid.get(node) in root.suspected

    def watched(self, node: str) -> bool:
        root = self._root_of(node)
        return root is not None and self._pid.get(node) in root.current_members

    def level(self, node: str, now: float) -> float:
        root = self._root_of(node)
        pid = self._pid.get(node)
        return 0.0 if root is None or pid is None else root.halvings(pid)

    def forget(self, node: str) -> None:
        self._part.pop(node, None)
        if self.spec.kind == "binary":
            self._roots.pop(node, None)
        elif "*" in self._roots and node in self._pid:
            self._roots["*"].forget(self._pid[node])

    def stop(self, now: float) -> list[Outgoing]:
        """A clean stop: the dynamic protocol tells every root we joined that we leave."""
        if self.spec.kind != "dynamic":
            return []
        return [(node, s) for node, part in sorted(self._part.items()) for s in part.leave(now)]


Watch = PeerWatch | AcceleratedWatch


def make_watch(spec: DetectorSpec, me: str, nodes: list[str], keepalive: float,
               deadtime: float) -> Watch | None:
    """The core's watch for an ha.cf ``detector`` line; None for ``fixed`` (the core's own rule)."""
    if spec.kind in PHI_KINDS:
        return PeerWatch(spec, keepalive, deadtime, max_peers=max(1, len(nodes)))
    if spec.accelerated:
        return AcceleratedWatch(spec, me, list(nodes), keepalive, deadtime)
    return None


def factory(spec: DetectorSpec) -> Callable[[float, float], PeerWatch]:
    """``factory(spec)(keepalive_s, deadtime_s)``: a φ watch without the cluster's names."""
    return lambda keepalive, deadtime: PeerWatch(spec, keepalive, deadtime)
