"""Which UDP datagrams are cluster traffic, and which protocol each one speaks.

Ports decide first (694 Heartbeat, 5404/5405 Corosync), because a datagram to a
cluster port that does not parse is exactly the malformed packet a user wants to see.
On any other port the payload must look like one of the protocols by its own
markers, so that clusters on non-standard ports are found without drowning the output
in other applications' traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "CLUSTER",
    "DEFAULT_PORTS",
    "HEARTBEAT",
    "KNET",
    "PROTOCOLS",
    "TOTEM",
    "Detector",
    "parse_port",
]

HEARTBEAT = "heartbeat"
TOTEM = "totem"
KNET = "knet"
PROTOCOLS = (HEARTBEAT, TOTEM, KNET)
#: A Corosync port: Totem (udp/udpu) or kronosnet, told apart by the first bytes.
CLUSTER = "corosync"
#: A port given without a protocol: every protocol is tried by content.
AUTO = "auto"

DEFAULT_PORTS: Mapping[int, str] = {694: HEARTBEAT, 5404: CLUSTER, 5405: CLUSTER}

_HB_OPENINGS = (b"###\n", b">>>\n")
_TOTEM_MAGICS = (b"\x70\xc0", b"\xc0\x70")
_KNET_TYPES = frozenset((0x00, 0x01, 0x81, 0x82, 0x83, 0x84))


def looks_totem(payload: bytes) -> bool:
    """Corosync 3 magic and version, or the 1.x/2.x endian detector."""
    if len(payload) < 13:
        return False
    if payload[:2] in _TOTEM_MAGICS:
        return payload[2] == 3 and payload[3] <= 5
    return payload[2:4] in (b"\x22\xff", b"\xff\x22") and payload[0] <= 5


def looks_knet(payload: bytes) -> bool:
    """A cleartext kronosnet header whose contents are consistent.

    Off the Corosync ports only data packets that carry Totem in clear, and pings and
    pongs of the exact size, are accepted: the 6-byte header alone is too weak a mark.
    """
    if len(payload) < 6 or payload[0] != 1 or payload[4] or payload[5]:
        return False
    kind = payload[1]
    if kind not in _KNET_TYPES:
        return False
    if kind == 0x00:
        if len(payload) < 14 or payload[9] != 0 or payload[10] > 1:
            return False
        frag_num, frag_seq = payload[11], payload[12]
        if frag_num == 1:
            return looks_totem(payload[14:])
        return 1 <= frag_seq <= frag_num
    if kind in (0x81, 0x82):
        return len(payload) == 26 and payload[25] <= 1
    return kind in (0x83, 0x84) and len(payload) >= 9


def corosync_kind(payload: bytes) -> str:
    """Totem or kronosnet, for a datagram on a Corosync port.

    Magic and version decide: a Totem message with a bad type or length is a malformed
    Totem row, not an "encrypted" knet packet (ciphertext matches these three bytes once
    in 2^23 packets).
    """
    if payload[:2] in _TOTEM_MAGICS and payload[2:3] == b"\x03":
        return TOTEM
    if payload[2:4] in (b"\x22\xff", b"\xff\x22") and payload[:1] < b"\x06" \
            and payload[1:2] < b"\x03":
        return TOTEM
    return KNET


def parse_port(text: str) -> tuple[int, str]:
    """``PORT`` or ``PORT=PROTO`` (PROTO: heartbeat, totem, knet, corosync, auto)."""
    port_text, _, proto = text.partition("=")
    proto = proto.strip().lower() or AUTO
    if proto not in (*PROTOCOLS, CLUSTER, AUTO):
        raise ValueError(
            f"{text!r}: protocol must be one of {', '.join((*PROTOCOLS, CLUSTER, AUTO))}"
        )
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: expected PORT or PORT=PROTO") from None
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port must be 1..65535")
    return port, proto


class Detector:
    """Decide the protocol of a datagram: by port table first, then by content."""

    def __init__(self, ports: Iterable[tuple[int, str]] | None = None,
                 heuristics: bool = True) -> None:
        self.ports: dict[int, str] = dict(DEFAULT_PORTS if ports is None else ports)
        self.heuristics = heuristics

    def __call__(self, sport: int, dport: int, payload: bytes) -> str | None:
        ports = self.ports
        hint = ports.get(dport) or ports.get(sport)
        if hint is None:
            if not self.heuristics:
                return None
            return self.by_content(payload)
        if hint == CLUSTER:
            return corosync_kind(payload)
        if hint == AUTO:
            return self.by_content(payload)
        return hint

    @staticmethod
    def by_content(payload: bytes) -> str | None:
        if payload[:4] in _HB_OPENINGS:
            return HEARTBEAT
        if looks_totem(payload):
            return TOTEM
        if looks_knet(payload):
            return KNET
        return None
