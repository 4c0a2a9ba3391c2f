"""ARP over Ethernet for IPv4 (RFC 826): the frames a takeover announces its address with.

A cluster moves a service address by bringing it up on the new owner and announcing it with
*gratuitous* ARP: a request or reply whose sender and target protocol addresses are both the
moved address (RFC 5227's announcement; Heartbeat's ``send_arp`` and `hbtools.node.runner` send
a burst of both kinds). Clients then rewrite their ARP entry to the sender MAC. So the first
gratuitous ARP of the new owner is when the address has moved for the clients, which is what
``hbtool decode --stats`` reads failovers from and what the chaos checkers time.

This is the only ARP parser and builder of the project (decode rows, the daemon's
announcements, the chaos checkers, ``--plot``); the facts are declared here once.
Sans-I/O: bytes in, values out.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["ETHERTYPE", "FIELDS", "OPCODES", "DecodeError", "Packet", "announcement_frames",
           "decode", "from_frame", "gratuitous"]

#: EtherType of ARP, and the one hardware/protocol pair a cluster uses (Ethernet, IPv4).
ETHERTYPE = 0x0806
HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
#: htype, ptype, hlen, plen, opcode; then sender MAC, sender IP, target MAC, target IP.
HEADER = struct.Struct("!HHBBH")
LENGTH = HEADER.size + 2 * (6 + 4)  # 28 bytes
OPCODES: Mapping[int, str] = MappingProxyType({1: "request", 2: "reply"})

#: The fields of a decoded ARP row (``fields`` in JSON), with their meaning; tshark names in
#: brackets, for readers coming from Wireshark.
FIELDS: Mapping[str, str] = MappingProxyType({
    "opcode": "1 request, 2 reply (arp.opcode)",
    "sender_mac": "sender hardware address (arp.src.hw_mac)",
    "sender_ip": "sender protocol address (arp.src.proto_ipv4)",
    "target_mac": "target hardware address (arp.dst.hw_mac)",
    "target_ip": "target protocol address (arp.dst.proto_ipv4)",
    "gratuitous": "sender IP = target IP: an address announcement (arp.isgratuitous)",
})

_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
_LINKTYPE_ETHERNET, _LINKTYPE_LINUX_SLL, _LINKTYPE_LINUX_SLL2 = 1, 113, 276


class DecodeError(ValueError):
    """Not an Ethernet/IPv4 ARP packet, or cut short."""


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True, slots=True)
class Packet:
    opcode: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str

    @property
    def gratuitous(self) -> bool:
        return self.sender_ip == self.target_ip

    @property
    def type_name(self) -> str:
        return OPCODES.get(self.opcode, str(self.opcode))

    def to_dict(self) -> dict[str, Any]:
        return {"opcode": self.opcode, "sender_mac": self.sender_mac,
                "sender_ip": self.sender_ip, "target_mac": self.target_mac,
                "target_ip": self.target_ip, "gratuitous": self.gratuitous}


def decode(body: bytes) -> Packet:
    """The ARP packet that starts ``body`` (what follows the EtherType); raises DecodeError."""
    if len(body) < LENGTH:
        raise DecodeError(f"ARP packet cut short ({len(body)} of {LENGTH} bytes)")
    htype, ptype, hlen, plen, opcode = HEADER.unpack_from(body)
    if (htype, ptype, hlen, plen) != (HTYPE_ETHERNET, PTYPE_IPV4, 6, 4):
        raise DecodeError(f"ARP for hardware {htype}/protocol {ptype:#06x} "
                          f"(lengths {hlen}/{plen}), not Ethernet/IPv4")
    return Packet(opcode, mac_text(body[8:14]), socket.inet_ntoa(body[14:18]),
                  mac_text(body[18:24]), socket.inet_ntoa(body[24:28]))


def arp_body(linktype: int, data: bytes) -> bytes | None:
    """The bytes after the EtherType when this frame carries ARP (Ethernet with VLAN tags,
    Linux cooked v1/v2), else None. Cheap: two byte reads for the frames that are not ARP."""
    if linktype == _LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        etype, off = (data[12] << 8) | data[13], 14
        while etype in _VLAN_TPIDS and len(data) >= off + 4:
            etype, off = (data[off + 2] << 8) | data[off + 3], off + 4
    elif linktype == _LINKTYPE_LINUX_SLL and len(data) >= 16:
        etype, off = (data[14] << 8) | data[15], 16
    elif linktype == _LINKTYPE_LINUX_SLL2 and len(data) >= 20:
        etype, off = (data[0] << 8) | data[1], 20
    else:
        return None
    return data[off:] if etype == ETHERTYPE else None


def from_frame(linktype: int, data: bytes) -> Packet | None:
    """The Ethernet/IPv4 ARP packet of a captured frame, or None (not ARP, other ARP, cut)."""
    body = arp_body(linktype, data)
    if body is None:
        return None
    try:
        return decode(body)
    except DecodeError:
        return None


def gratuitous(frame: bytes) -> tuple[str, str] | None:
    """(sender MAC, address) of an Ethernet frame that is a gratuitous ARP, else None."""
    packet = from_frame(_LINKTYPE_ETHERNET, frame)
    if packet is None or not packet.gratuitous:
        return None
    return packet.sender_mac, packet.sender_ip


def encode(opcode: int, sender_mac: bytes, sender_ip: str, target_mac: bytes,
           target_ip: str) -> bytes:
    """An ARP packet (no Ethernet header)."""
    return (HEADER.pack(HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, opcode) + sender_mac
            + socket.inet_aton(sender_ip) + target_mac + socket.inet_aton(target_ip))


def announcement_frames(mac: bytes, ip: str) -> tuple[bytes, bytes]:
    """(unsolicited reply, request for the address itself), both broadcast Ethernet frames
    with sender IP = target IP = ``ip``: the pair Heartbeat's send_arp sends per round."""
    broadcast = b"\xff" * 6
    eth = broadcast + mac + struct.pack("!H", ETHERTYPE)
    return (eth + encode(2, mac, ip, broadcast, ip), eth + encode(1, mac, ip, b"\x00" * 6, ip))
