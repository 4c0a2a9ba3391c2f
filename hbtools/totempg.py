"""totempg: how corosync packs its messages into Totem ``mcast`` payloads, sans-I/O.

Facts from corosync 3.1 ``exec/totempg.c`` (checked on the committed captures):

* A Totem ``mcast`` payload starts with ``struct totempg_mcast``: version (i16) and type
  (i16) (both 0 in corosync 3), ``fragmented`` and ``continuation`` (u8 each), msg_count
  (u16), then msg_count u16 lengths, then the messages back to back. All in the sender's
  byte order, like the Totem header.
* Messages are packed to fill an mcast; a message too big for the rest of one is cut and
  continues at the start of the sender's next mcast. ``fragmented`` non-zero says the LAST
  message continues in the next mcast (the value is a fragment counter); ``continuation``
  non-zero says the FIRST message continues the previous one, and equals the previous
  mcast's ``fragmented``. A receiver keeps one assembly buffer per sender, in delivery
  (sequence) order; a continuation that does not match throws the message away.
* Each whole message begins with its group header: ``u16 group count``, one u16 length per
  group, the group names, then the application's bytes. corosync's services all send in
  group ``a`` (then a corosync exec header, `hbtools.cpg`), its sync protocol in ``sync``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from hbtools.layout import REST, Field, Layout

__all__ = ["GROUPS", "MCAST", "Assembler", "DecodeError", "Mcast", "split", "split_groups"]


class DecodeError(ValueError):
    """Bytes that are not a well-formed totempg mcast or group header."""


MCAST = Layout("totempg_mcast", (
    Field("version", "h", "totempg_mcast_header.version (0 in corosync 3)"),
    Field("type", "h", "totempg_mcast_header.type (0 in corosync 3)"),
    Field("fragmented", "B", "non-zero: the last message continues in the sender's next "
                             "mcast (a fragment counter)"),
    Field("continuation", "B", "non-zero: the first message continues the sender's "
                               "previous mcast (equals its fragmented)"),
    Field("msg_count", "H", "messages (or pieces) packed in this mcast"),
    Field("msg_len", "H", "length of each packed message", count="msg_count"),
    Field("data", REST, "the packed messages, back to back"),
), "corosync's packing of messages into one Totem mcast (totempg.c)")

GROUPS = Layout("totempg_groups", (
    Field("group_count", "H", "number of groups the message is sent to"),
    Field("group_len", "H", "length of each group name", count="group_count"),
    Field("names", REST, "the group names back to back, then the application's bytes"),
), "the group header in front of every totempg message")

#: Bounds against hostile input: corosync's own assembly buffer is MESSAGE_SIZE_MAX (1 MiB).
MAX_MESSAGE = 1 << 20
MAX_GROUPS = 32
MAX_SENDERS = 1024


@dataclass
class Mcast:
    """One mcast payload: its header fields and the pieces it packs (bytes each)."""

    version: int
    type: int
    fragmented: int
    continuation: int
    pieces: list[bytes]

    def header(self) -> dict[str, Any]:
        return {"version": self.version, "type": self.type, "fragmented": self.fragmented,
                "continuation": self.continuation, "msg_count": len(self.pieces),
                "msg_len": [len(p) for p in self.pieces]}


def split(payload: bytes, endian: str) -> Mcast:
    """The header and the packed pieces of an mcast payload (`endian`: the Totem header's)."""
    record, _end = MCAST.read(payload, endian, DecodeError, "totempg")
    data = record.data
    lengths = record.msg_len
    if sum(lengths) != len(data):
        raise DecodeError(f"totempg: message lengths add up to {sum(lengths)}, "
                          f"{len(data)} bytes follow")
    pieces, offset = [], 0
    for length in lengths:
        pieces.append(bytes(data[offset:offset + length]))
        offset += length
    return Mcast(record.version, record.type, record.fragmented, record.continuation, pieces)


def split_groups(message: bytes, endian: str) -> tuple[list[str], bytes]:
    """The group names a whole message is sent to, and the application's bytes after them."""
    record, _end = GROUPS.read(message, endian, DecodeError, "totempg group header")
    lengths = record.group_len
    if not lengths or len(lengths) > MAX_GROUPS:
        raise DecodeError(f"totempg group header: {len(lengths)} groups")
    rest = record.names
    if sum(lengths) > len(rest):
        raise DecodeError("totempg group header: group names run past the message")
    names, offset = [], 0
    for length in lengths:
        names.append(rest[offset:offset + length].decode("ascii", "backslashreplace"))
        offset += length
    return names, bytes(rest[offset:])


@dataclass
class _Partial:
    frag: int
    data: bytearray = field(default_factory=bytearray)


class Assembler:
    """Per-sender reassembly of messages cut across mcasts, as totempg's assembly does.

    Feed each sender's mcasts in delivery order (a capture shows each mcast once per
    receiver and again when retransmitted: pass only the first copy). `add` returns the
    whole messages this mcast completes, in order, and how many pieces were discarded
    (a continuation without its start, as corosync throws away). Memory is bounded by
    MAX_MESSAGE per sender and MAX_SENDERS senders.
    """

    def __init__(self) -> None:
        self._partial: OrderedDict[Hashable, _Partial] = OrderedDict()

    def add(self, sender: Hashable, mcast: Mcast) -> tuple[list[bytes], int]:
        pieces = list(mcast.pieces)
        done: list[bytes] = []
        dropped = 0
        partial = self._partial.pop(sender, None)
        if pieces and mcast.continuation:
            first = pieces.pop(0)
            if partial is not None and partial.frag == mcast.continuation \
                    and len(partial.data) + len(first) <= MAX_MESSAGE:
                partial.data += first
                if pieces or not mcast.fragmented:
                    done.append(bytes(partial.data))
                    partial = None
                else:  # one piece that continues again
                    partial.frag = mcast.fragmented
                    self._keep(sender, partial)
                    return done, dropped
            else:
                dropped += 1
                partial = None
        elif partial is not None:
            dropped += 1  # the previous message never got its end
        if mcast.fragmented and pieces:
            last = pieces.pop()
            self._keep(sender, _Partial(mcast.fragmented, bytearray(last)))
        done.extend(pieces)
        return done, dropped

    def _keep(self, sender: Hashable, partial: _Partial) -> None:
        self._partial[sender] = partial
        while len(self._partial) > MAX_SENDERS:
            self._partial.popitem(last=False)

    def pending(self, sender: Hashable) -> int:
        """Bytes waiting for their continuation from `sender`."""
        partial = self._partial.get(sender)
        return 0 if partial is None else len(partial.data)
