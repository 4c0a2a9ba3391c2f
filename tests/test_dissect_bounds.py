"""Issue 12, item 8: the dissector's memory and work are bounded by what it keeps, not by what
the input chooses. Measured as memory (tracemalloc) and counted work, never wall-clock time.
"""

from __future__ import annotations

import gc
import tracemalloc

from hbtools.dissectors.fast import HeartbeatFast
from hbtools.dissectors.reassembly import Reassembler

from tests.dissect_vectors import netstring


def _message(unique: int, size: int) -> bytes:
    big = b"(0)blob%d=" % unique + (b"%08d" % unique) * (size // 8)  # unique name and value
    items = [b"(0)t=status", b"(0)src=node1", b"(0)seq=%x" % unique, big]
    return b"###\n" + b"".join(netstring(i) for i in items) + b"%%%\n"


def test_fast_path_caches_are_bounded_by_bytes_not_entries():
    """1,000 messages, each with a unique 60 KB field (the issue's reproducer: 571 MiB)."""
    fast = HeartbeatFast()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            fast(_message(i, 60_000))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert kept < 32 << 20, f"{kept / 2**20:.0f} MiB kept by the fast path's caches"


def test_fast_path_still_caches_small_repeated_items():
    fast = HeartbeatFast()
    for _ in range(10):
        fast(_message(7, 64))
    assert b"12:(0)src=node1" in fast.items  # the common, small items stay cached


def _fragments(total: int, size: int) -> list[tuple[int, bool, bytes]]:
    data = bytes(range(256)) * (total // 256 + 1)
    return [(off, off + size < total, data[off:off + size]) for off in range(0, total, size)]


def test_ipv4_reassembly_work_is_linear_in_the_fragments():
    """8,190 tiny fragments, last one first (the issue's worst case): every piece is looked at
    a bounded number of times, not once per later fragment."""
    frags = _fragments(8190 * 8, 8)
    assert len(frags) == 8190
    r = Reassembler()
    whole = None
    for frame, (off, more, data) in enumerate(reversed(frags)):
        whole = r.add(("a", "b", 17, 1), off, more, data, 0.0, frame)
    assert whole == b"".join(d for _, _, d in frags)
    assert r.work <= 4 * len(frags), r.work


def test_overlapping_fragments_drop_the_datagram_like_linux():
    """Linux (since 4.19, after FragmentSmack) discards an IPv4 datagram with overlapping
    fragments; an exact duplicate is ignored."""
    r = Reassembler()
    key = ("a", "b", 17, 2)
    assert r.add(key, 0, True, b"A" * 16, 0.0, 1) is None
    assert r.add(key, 0, True, b"A" * 16, 0.0, 2) is None  # exact duplicate: ignored
    assert r.add(key, 8, True, b"B" * 16, 0.0, 3) is None  # overlaps [8, 16)
    assert r.add(key, 24, False, b"C" * 8, 0.0, 4) is None
    assert [g.reason for g in r.given_up] == ["overlapping fragments"]
    assert len(r) <= 1  # the late last fragment may start a new (incomplete) datagram
