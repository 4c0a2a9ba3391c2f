"""IPv4 + UDP framing of a queued packet: what NFQUEUE hands us is the IP datagram itself.

The proxy rewrites UDP payloads; a rewritten payload changes the IP total length and both
checksums, and a receiving kernel silently drops a datagram whose UDP checksum is wrong,
so a "corrupted" Heartbeat message would never reach the daemon we want to test. Hence
every rebuilt packet gets fresh lengths and checksums here (RFC 791, RFC 768, RFC 1071).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

IPPROTO_UDP = 17


class PacketError(ValueError):
    """The bytes are not an IPv4 datagram we can take apart."""


@dataclass(frozen=True)
class Datagram:
    """An IPv4 datagram carrying (or not) a UDP header; `payload` is the UDP payload."""

    raw: bytes
    header_len: int
    src: str
    dst: str
    protocol: int
    #: A fragment (MF set or an offset): not matched by content, never rebuilt, because the
    #: UDP payload and its checksum span fragments the proxy does not hold together.
    fragment: bool
    sport: int | None = None
    dport: int | None = None
    payload: bytes = b""

    @property
    def is_udp(self) -> bool:
        return self.protocol == IPPROTO_UDP and self.sport is not None


def parse(raw: bytes) -> Datagram:
    """Split an IPv4 datagram into its header facts and its UDP payload (if any)."""
    if len(raw) < 20 or raw[0] >> 4 != 4:
        raise PacketError("not an IPv4 datagram")
    ihl = (raw[0] & 0x0F) * 4
    if ihl < 20 or len(raw) < ihl:
        raise PacketError(f"bad IPv4 header length {ihl}")
    total = struct.unpack_from("!H", raw, 2)[0]
    frag = struct.unpack_from("!H", raw, 6)[0]
    protocol = raw[9]
    src = socket.inet_ntoa(raw[12:16])
    dst = socket.inet_ntoa(raw[16:20])
    fragment = (frag & 0x3FFF) != 0
    end = min(total, len(raw)) if total >= ihl else len(raw)
    if protocol != IPPROTO_UDP or fragment or end - ihl < 8:
        return Datagram(raw, ihl, src, dst, protocol, fragment)
    sport, dport = struct.unpack_from("!HH", raw, ihl)
    return Datagram(raw, ihl, src, dst, protocol, fragment, sport, dport, raw[ihl + 8 : end])


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_payload(dgram: Datagram, payload: bytes) -> bytes:
    """The same datagram with a new UDP payload, lengths and both checksums recomputed.

    Only whole datagrams have a payload (see `Datagram.fragment`), so only they get here.
    """
    if not dgram.is_udp:
        raise PacketError("only a whole UDP datagram can get a new payload")
    ihl = dgram.header_len
    header = bytearray(dgram.raw[:ihl])
    udp_len = 8 + len(payload)
    struct.pack_into("!H", header, 2, ihl + udp_len)
    struct.pack_into("!H", header, 10, 0)
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    udp = bytearray(struct.pack("!HHHH", dgram.sport, dgram.dport, udp_len, 0)) + payload
    pseudo = header[12:20] + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
    csum = checksum(bytes(pseudo) + bytes(udp)) or 0xFFFF  # 0 means "no checksum" in UDP
    struct.pack_into("!H", udp, 6, csum)
    return bytes(header) + bytes(udp)
