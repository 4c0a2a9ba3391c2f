"""What the bridge capture says: gratuitous ARPs and cluster messages per sender.

Cluster messages are read with the project's own decoder (the ``hbtool decode`` pipeline), so a
heartbeat is whatever the dissector calls a Heartbeat ``status`` message or, for Corosync, any
knet/Totem datagram (knet pings are its heartbeats); ARP frames with sender IP = target IP are
gratuitous (:func:`hbtools.arp.gratuitous`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hbtools.arp import gratuitous as gratuitous_arp
from hbtools.dissectors.capture import CaptureError, CaptureReader
from hbtools.dissectors.pipeline import Options, decode_stream

LINKTYPE_ETHERNET = 1


@dataclass
class Wire:
    garps: list[tuple[float, str]] = field(default_factory=list)
    """(time, sender MAC) of every gratuitous ARP for the VIP."""
    heartbeats: dict[str, list[float]] = field(default_factory=dict)
    """node name → times of the cluster messages it sent (Heartbeat status; any knet/Totem)."""
    messages: int = 0
    error: str | None = None


def read(pcap: Path, vip: str, addresses: Mapping[str, str]) -> Wire:
    """Read one capture; ``addresses`` maps node names to their (first) IPv4 address."""
    wire = Wire(heartbeats={n: [] for n in addresses})
    by_ip = {a: n for n, a in addresses.items()}
    try:
        with open(pcap, "rb") as fh:
            for ts, linktype, data, _orig in CaptureReader(fh, str(pcap)):
                if linktype != LINKTYPE_ETHERNET:
                    continue
                garp = gratuitous_arp(data)
                if garp is not None and garp[1] == vip:
                    wire.garps.append((ts, garp[0]))
        with open(pcap, "rb") as fh:
            for record in decode_stream(fh, str(pcap), Options()):
                node = by_ip.get(record.src)
                if node is None or record.error:
                    continue
                wire.messages += 1
                if record.proto != "heartbeat" or record.type == "status":
                    wire.heartbeats[node].append(record.time)
    except (OSError, CaptureError) as exc:
        wire.error = str(exc)
    return wire
