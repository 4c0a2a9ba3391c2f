"""How the accelerated protocols' beats and replies travel between hbtools nodes: declared once.

Each is an ordinary, signed Heartbeat datagram whose type starts with ``NS_`` — the prefix
Heartbeat itself uses for messages outside the sequenced stream (``NS_ackmsg``, ``NS_rexmit``), so
it carries no ``seq`` and a real 3.0.6 node neither acks it nor asks for its retransmission. A
3.0.6 node has no handler for these types; the netns test ``tests/netns/test_detector_wire.py``
shows it takes them without a log line of complaint and without changing any node's status.
``round`` is hex like every Heartbeat counter; ``dest`` names the addressed node.
"""

from __future__ import annotations

from hbtools.detectors.base import BEAT, JOIN, LEAVE, REPLY, Send

#: protocol kind -> Heartbeat message type on the wire
WIRE_TYPES: dict[str, str] = {
    BEAT: "NS_hbtools_beat",
    REPLY: "NS_hbtools_reply",
    JOIN: "NS_hbtools_join",
    LEAVE: "NS_hbtools_leave",
}
KINDS_BY_TYPE = {v: k for k, v in WIRE_TYPES.items()}
ROUND_FIELD = "round"


def body_fields(msg: Send, dest: str) -> list[tuple[str, str]]:
    """The type-specific fields (before Heartbeat's common src/srcuuid/hg/ts/ttl/auth)."""
    out = [("t", WIRE_TYPES[msg.kind]), ("dest", dest)]
    if msg.round is not None:
        out.append((ROUND_FIELD, format(msg.round, "x")))
    return out


def parse_round(text: str | None) -> int | None:
    """The ``round`` field back to a number; None when absent or not hex (never raises)."""
    if text is None or not 0 < len(text) <= 16:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None
