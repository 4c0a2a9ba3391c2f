"""Which UDP datagrams are cluster traffic, and which protocol each one speaks.

Every reader asks this module: the dissector (`dissectors.detect` re-exports it), the
JSON hot path, the fault engine's packet view and the Lua export's port table. The
facts themselves (magic numbers, openings, offsets, limits) are declared next to each
codec, in `heartbeat.looks`, `totem.claims`/`totem.looks` and `knet.looks_clear`/
`knet.looks`; this module only says how ports and content combine, once.

Ports decide first (694 Heartbeat, 5404/5405 Corosync), because a datagram to a cluster
port that does not parse is exactly the malformed packet a user wants to see. On any
other port the payload must look like one of the protocols by its own markers, so that
clusters on non-standard ports are found without drowning the output in other
applications' traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from hbtools import heartbeat, knet, totem

__all__ = [
    "AUTO",
    "CLUSTER",
    "DEFAULT_PORTS",
    "HEARTBEAT",
    "KNET",
    "PROTOCOLS",
    "TOTEM",
    "Detector",
    "by_content",
    "corosync_kind",
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

DEFAULT_PORTS: Mapping[int, str] = MappingProxyType(
    {heartbeat.PORT: HEARTBEAT, **{port: CLUSTER for port in totem.PORTS}})


def corosync_kind(payload: bytes) -> str:
    """Totem or kronosnet, for a datagram on a Corosync port (see `totem.claims`)."""
    return TOTEM if totem.claims(payload) else KNET


def by_content(payload: bytes) -> str | None:
    """The protocol a payload on a port of no known protocol shows itself to be, or None."""
    if heartbeat.looks(payload):
        return HEARTBEAT
    if totem.looks(payload):
        return TOTEM
    if knet.looks(payload):
        return KNET
    return None


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
            return by_content(payload)
        if hint == CLUSTER:
            return corosync_kind(payload)
        if hint == AUTO:
            return by_content(payload)
        return hint

    by_content = staticmethod(by_content)
