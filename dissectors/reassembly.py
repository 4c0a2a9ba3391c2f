"""IP fragment reassembly with bounded memory.

Heartbeat sends big messages (tested up to ~17 KB) as one UDP datagram with DF set and
lets the kernel fragment them, so the dissector must put fragments back together. A
capture can hold fragments that never complete (loss, a cut capture, an attack), so
everything here is capped: a timeout in capture time, a maximum number of datagrams
under construction and a maximum number of buffered bytes. A datagram given up on is
reported (not silently dropped) so that the caller can show an error row when the
first fragment says it was ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Incomplete", "Reassembler"]

# Linux's ipfrag_time default: after this long a partial datagram is given up.
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_DATAGRAMS = 1024
DEFAULT_MAX_BYTES = 64 << 20
MAX_DATAGRAM = 65535 + 65535  # IPv6 payload length plus a generous margin for jumbo-less v6


@dataclass(slots=True)
class _Partial:
    first_time: float
    first_frame: int
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None  # known once the last fragment (MF=0) arrives
    size: int = 0  # bytes buffered


@dataclass(slots=True, frozen=True)
class Incomplete:
    """A datagram whose fragments never all arrived.

    ``head`` is the first fragment's payload when it was seen (it holds the UDP header,
    so the caller can tell whether the datagram was one of ours), else ``b""``.
    """

    key: tuple[object, ...]
    first_frame: int
    first_time: float
    received: int
    total: int | None
    head: bytes
    reason: str


class Reassembler:
    """Collect fragments keyed by (src, dst, protocol, identification)."""

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self._partials: dict[tuple[object, ...], _Partial] = {}
        self._bytes = 0
        self._oldest = float("inf")
        self.given_up: list[Incomplete] = []
        #: Pieces stored plus pieces visited when assembling: a measure of the work, linear in
        #: the fragments (issue 12: a re-sort per fragment made 8,190 tiny ones take 30 s).
        self.work = 0

    def __len__(self) -> int:
        return len(self._partials)

    def add(
        self,
        key: tuple[object, ...],
        offset: int,
        more: bool,
        data: bytes,
        now: float,
        frame: int,
    ) -> bytes | None:
        """Add one fragment; return the whole payload when this one completes it.

        Datagrams that time out or are evicted for space are appended to
        ``given_up``, which the caller drains.
        """
        if now - self._oldest > self.timeout:
            self._expire(now)
        partial = self._partials.get(key)
        if partial is None:
            if len(self._partials) >= self.max_datagrams:
                self._evict_oldest("too many datagrams under reassembly")
            partial = _Partial(now, frame)
            self._partials[key] = partial
            if now < self._oldest:
                self._oldest = now
        end = offset + len(data)
        if end > MAX_DATAGRAM:
            self._drop(key, partial, f"fragment ends at byte {end}, beyond any datagram")
            return None
        if not more:
            if partial.total is not None and partial.total != end:
                self._drop(key, partial, "two last fragments disagree on the length")
                return None
            partial.total = end
        old = partial.pieces.get(offset)
        if old is not None:
            if old == data:
                return None  # an exact duplicate (a retransmission): ignored, like Linux
            self._drop(key, partial, "overlapping fragments")
            return None
        if partial.total is not None and end > partial.total:
            self._drop(key, partial, "fragment beyond the last fragment's end")
            return None
        partial.pieces[offset] = data
        partial.size += len(data)
        self._bytes += len(data)
        self.work += 1
        while self._bytes > self.max_bytes and self._partials:
            self._evict_oldest("reassembly buffer full")
            if key not in self._partials:
                return None
        # Linear: nothing is sorted until the bytes held reach the length. Overlapping
        # fragments drop the datagram (as Linux does since 4.19, after FragmentSmack), so
        # from then on the pieces either tile [0, total) exactly, or some overlap: one sort
        # and one pass per datagram decide which.
        if partial.total is None or partial.size < partial.total:
            return None
        out = bytearray(partial.total)
        covered = 0
        for off in sorted(partial.pieces):
            self.work += 1
            if off != covered:
                self._drop(key, partial, "overlapping fragments")
                return None
            piece = partial.pieces[off]
            out[off : off + len(piece)] = piece
            covered = off + len(piece)
        del self._partials[key]
        self._bytes -= partial.size
        return bytes(out)

    def flush(self) -> None:
        """Give up on everything still open (end of capture)."""
        for key in list(self._partials):
            self._drop(key, self._partials[key], "capture ended before the last fragment")

    # -- internals -------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        oldest = float("inf")
        for key in list(self._partials):
            partial = self._partials[key]
            if now - partial.first_time > self.timeout:
                self._drop(key, partial, f"fragments timed out after {self.timeout:g} s")
            elif partial.first_time < oldest:
                oldest = partial.first_time
        self._oldest = oldest

    def _evict_oldest(self, reason: str) -> None:
        # dicts keep insertion order, and the first inserted is the oldest started
        key = next(iter(self._partials))
        self._drop(key, self._partials[key], reason)

    def _drop(self, key: tuple[object, ...], partial: _Partial, reason: str) -> None:
        self._partials.pop(key, None)
        self._bytes -= partial.size
        self.given_up.append(
            Incomplete(
                key=key,
                first_frame=partial.first_frame,
                first_time=partial.first_time,
                received=partial.size,
                total=partial.total,
                head=partial.pieces.get(0, b""),
                reason=reason,
            )
        )
        if not self._partials:
            self._oldest = float("inf")
