"""One peer's message stream: which seqs arrived, which are missing, when to ask again.

Heartbeat's reliability layer from the receiving side (shared/PROTOCOL-NOTES.md, "Reliability
layer"): in order, duplicate (common with several media), or a gap, each missing seq asked for
with ``NS_rexmit`` after a random 50..250 ms and again every 250 ms, given up after
REXMIT_MAX_TRIES or a ``NS_nak_rexmit``; a jump over 250 resets tracking. Pure: `PeerStream`
takes seqs, times and a random source and returns what is due; the node builds the messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["ACK_MSG_DIV", "MAX_SEQ_GAP", "PeerStream", "Rexmit", "Seen"]

REXMIT_MIN_DELAY = 0.050  # a gap is asked for after a random 50..250 ms
REXMIT_MAX_DELAY = 0.250  # max_rexmit_delay; also the repeat interval
REXMIT_MAX_TRIES = 10  # then the gap is given up (and logged), so a loop is bounded
MAX_SEQ_GAP = 250  # a bigger jump resets tracking instead of asking for 250+ messages
ACK_MSG_DIV = 10  # a stream is acked at every seq with seq % 10 == that stream's random trigger


@dataclass
class Rexmit:
    """One missing seq: when to ask for it next, and how often we asked."""

    due: float
    tries: int = 0


class Seen(Enum):
    """What `PeerStream.track` made of one seq."""

    NEW = "new"
    DUPLICATE = "duplicate"
    RESET = "reset"  # a jump over MAX_SEQ_GAP: tracking starts again at this seq (also new)


@dataclass
class PeerStream:
    """Sequence tracking of one peer's stream."""

    last_seq: int = 0  # every seq <= last_seq has arrived (0: nothing yet)
    above: set[int] = field(default_factory=set)  # arrived beyond a gap
    missing: dict[int, Rexmit] = field(default_factory=dict)
    ack_trigger: int = 0  # its seqs with seq % ACK_MSG_DIV == ack_trigger get an NS_ackmsg

    def reset(self) -> None:
        self.last_seq = 0
        self.above.clear()
        self.missing.clear()

    def track(self, seq: int, now: float, rng: random.Random) -> tuple[Seen, bool]:
        """Record ``seq``; returns what it was and whether an ``NS_ackmsg`` is due for it
        (3.0.6 acks a seq whose last digit is the stream's trigger, unless an earlier one is
        missing). Gaps get a retransmission request time each."""
        seen = Seen.NEW
        if self.last_seq == 0 and not self.above:
            self.last_seq = seq
        elif seq <= self.last_seq or seq in self.above:
            return Seen.DUPLICATE, False
        elif seq - self.last_seq > MAX_SEQ_GAP:
            self.reset()
            self.last_seq = seq
            seen = Seen.RESET
        elif seq == self.last_seq + 1:
            self.last_seq = seq
        else:
            self.above.add(seq)
            for missing in range(self.last_seq + 1, seq):
                if missing not in self.above and missing not in self.missing:
                    self.missing[missing] = Rexmit(now + rng.uniform(REXMIT_MIN_DELAY, REXMIT_MAX_DELAY))
        self.missing.pop(seq, None)
        self._advance()
        ack = seq % ACK_MSG_DIV == self.ack_trigger and (not self.missing or seq < min(self.missing))
        return seen, ack

    def give_up(self, seq: int) -> bool:
        """Count a lost message as seen so the stream moves on (False: it was not missing)."""
        if self.missing.pop(seq, None) is None:
            return False
        self.above.add(seq)
        self._advance()
        return True

    def due(self, now: float) -> list[tuple[int, int | None]]:
        """What is due at ``now``, in seq order: (seq, attempt) for a retransmission request
        to send, (seq, None) for a seq given up after REXMIT_MAX_TRIES."""
        out: list[tuple[int, int | None]] = []
        for seq in sorted(self.missing):
            request = self.missing[seq]
            if request.due > now:
                continue
            if request.tries >= REXMIT_MAX_TRIES:
                self.give_up(seq)
                out.append((seq, None))
                continue
            request.tries += 1
            request.due = now + REXMIT_MAX_DELAY
            out.append((seq, request.tries))
        return out

    def next_due(self) -> float | None:
        return min((r.due for r in self.missing.values()), default=None)

    def _advance(self) -> None:
        while self.last_seq + 1 in self.above:
            self.last_seq += 1
            self.above.discard(self.last_seq)
