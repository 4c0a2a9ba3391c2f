"""The one interface every failure detector here offers, and the messages the accelerated ones ask for.

Every detector is pure: it never reads a clock, never sleeps and never sends. The caller (a replay,
a simulation, the daemon's runner) feeds what arrived with the time it arrived (``now``), asks
``suspect(now)`` / ``level(now)``, and wakes up at ``next_deadline(now)`` — the instant at which the
answer would change if nothing else arrives. That one rule is what lets the same object be replayed
over a six-hour trace in a second and also drive a live daemon: the runner's only duty is to call
back at the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Message kinds of the accelerated heartbeat protocols (Gouda & McGuire 1998).
BEAT = "beat"  # root -> participant
REPLY = "reply"  # participant -> root, answering one beat
JOIN = "join"  # participant -> root (expanding, dynamic)
LEAVE = "leave"  # participant -> root (dynamic)


@dataclass(frozen=True)
class Send:
    """A message a detector asks its runner to send now.

    ``round`` is the beat's number. The original protocols carry none on the wire (a reply is just
    "a beat"); the corrected variants echo it so a late reply cannot count for a later round.
    """

    kind: str
    src: int
    dst: int
    round: int | None = None


@runtime_checkable
class Detector(Protocol):
    """What the evaluation and the daemon adapter rely on.

    ``arrival`` is a heartbeat (or, for the accelerated root, any reply) heard at ``now``.
    ``suspect`` must be a pure query: between two calls to ``arrival``/``tick`` its answer may
    change only at ``next_deadline``; ``None`` means "never, unless something arrives".
    """

    name: str

    def arrival(self, now: float) -> None: ...

    def suspect(self, now: float) -> bool: ...

    def level(self, now: float) -> float: ...

    def next_deadline(self, now: float) -> float | None: ...
