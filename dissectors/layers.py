"""Link, IP and UDP layers: from a captured frame to a UDP datagram.

Only UDP matters to the cluster protocols, so this peels exactly what is needed to reach
it (Ethernet with VLAN tags, Linux cooked v1/v2, raw IP, BSD loopback; IPv4 with fragment
reassembly, IPv6 with its extension headers and fragments) and leaves everything else
alone. It is the hot loop of the dissector, hence the flat code and the address cache.
"""

from __future__ import annotations

import socket
import struct

from hbtools.dissectors.reassembly import Incomplete, Reassembler

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "Datagram",
    "UdpLayers",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW as written by some platforms' libpcap (12 on most, 14 on OpenBSD)
_RAW_ALIASES = (12, 14)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
# IPv6 extension headers that can sit between the fixed header and UDP
_V6_SKIP = (0, 43, 60)  # hop-by-hop, routing, destination options
_V6_FRAGMENT = 44
_UDP = 17

# (src, dst, sport, dport, payload, error): error is None or why the datagram is damaged
Datagram = tuple[str, str, int, int, bytes, str | None]

_u16 = struct.Struct("!H").unpack_from
_v4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_udp = struct.Struct("!HHH").unpack_from
_v6 = struct.Struct("!IHBB16s16s").unpack_from
_frag6 = struct.Struct("!BBHI").unpack_from

_ADDR_CACHE_MAX = 1 << 14


class UdpLayers:
    """Turn frames into UDP datagrams, reassembling IP fragments on the way.

    One instance per capture file: fragment state must not leak between files.
    """

    def __init__(self, reassembler: Reassembler | None = None) -> None:
        self.reasm = reassembler if reassembler is not None else Reassembler()
        self._addr: dict[bytes, str] = {}
        self.unknown_linktypes: set[int] = set()

    def addr(self, raw: bytes) -> str:
        """Text form of a 4- or 16-byte address, cached: a cluster has few addresses."""
        text = self._addr.get(raw)
        if text is None:
            if len(self._addr) >= _ADDR_CACHE_MAX:
                self._addr.clear()
            text = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
            self._addr[raw] = text
        return text

    def datagram(self, linktype: int, data: bytes, time: float, frame: int) -> Datagram | None:
        """The UDP datagram in this frame, or None when there is none (yet)."""
        if linktype == LINKTYPE_ETHERNET:
            if len(data) < 14:
                return None
            etype = (data[12] << 8) | data[13]
            off = 14
            while etype in _VLAN_TPIDS and len(data) >= off + 4:
                etype = (data[off + 2] << 8) | data[off + 3]
                off += 4
        elif linktype == LINKTYPE_LINUX_SLL:
            if len(data) < 16:
                return None
            etype = (data[14] << 8) | data[15]
            off = 16
        elif linktype == LINKTYPE_LINUX_SLL2:
            if len(data) < 20:
                return None
            etype = (data[0] << 8) | data[1]
            off = 20
        elif linktype == LINKTYPE_RAW or linktype in _RAW_ALIASES:
            if not data:
                return None
            version = data[0] >> 4
            etype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
            off = 0
        elif linktype == LINKTYPE_IPV4:
            etype, off = ETH_IPV4, 0
        elif linktype == LINKTYPE_IPV6:
            etype, off = ETH_IPV6, 0
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if len(data) < 4:
                return None
            # NULL carries the family in the capturing host's byte order, LOOP in network
            # order; the families differ per OS for IPv6 (10 Linux, 24/28/30 BSDs).
            family = int.from_bytes(data[:4], "little")
            if family > 0xFFFF:
                family = int.from_bytes(data[:4], "big")
            etype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in (10, 24, 28, 30) else 0
            off = 4
        else:
            self.unknown_linktypes.add(linktype)
            return None
        if etype == ETH_IPV4:
            return self._ipv4(data, off, time, frame)
        if etype == ETH_IPV6:
            return self._ipv6(data, off, time, frame)
        return None

    # -- IP --------------------------------------------------------------------------

    def _ipv4(self, data: bytes, off: int, time: float, frame: int) -> Datagram | None:
        if len(data) < off + 20:
            return None
        vihl, _tos, total, ident, frag, _ttl, proto, _csum, src, dst = _v4(data, off)
        if vihl >> 4 != 4 or proto != _UDP:
            return None
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or total < ihl:
            return None
        end = off + total
        start = off + ihl
        cut = end > len(data)
        if frag & 0x3FFF:  # MF set or a non-zero offset: a fragment
            if cut:
                return None  # a cut fragment cannot be reassembled; the timeout reports it
            key = (src, dst, proto, ident)
            whole = self.reasm.add(
                key, (frag & 0x1FFF) * 8, bool(frag & 0x2000), data[start:end], time, frame
            )
            if whole is None:
                return None
            return self._udp(whole, 0, len(whole), src, dst, None)
        return self._udp(data, start, min(end, len(data)), src, dst,
                         "IPv4 packet cut short by the capture's snaplen" if cut else None)

    def _ipv6(self, data: bytes, off: int, time: float, frame: int) -> Datagram | None:
        if len(data) < off + 40:
            return None
        vtc, plen, nxt, _hops, src, dst = _v6(data, off)
        if vtc >> 28 != 6:
            return None
        start = off + 40
        end = start + plen
        cut = end > len(data)
        fragment: tuple[int, bool, int] | None = None
        while nxt != _UDP:
            if nxt in _V6_SKIP:
                if len(data) < start + 8:
                    return None
                nxt, hlen = data[start], (data[start + 1] + 1) * 8
                start += hlen
            elif nxt == _V6_FRAGMENT:
                if len(data) < start + 8:
                    return None
                nxt, _res, offmf, ident = _frag6(data, start)
                fragment = ((offmf >> 3) * 8, bool(offmf & 1), ident)
                start += 8
            else:
                return None
            if start > len(data):
                return None
        if fragment is not None:
            offset, more, ident = fragment
            if not more and offset == 0:
                fragment = None  # an atomic fragment: the whole datagram
            else:
                if cut:
                    return None
                whole = self.reasm.add(
                    (src, dst, _UDP, ident), offset, more, data[start:end], time, frame
                )
                if whole is None:
                    return None
                return self._udp(whole, 0, len(whole), src, dst, None)
        return self._udp(data, start, min(end, len(data)), src, dst,
                         "IPv6 packet cut short by the capture's snaplen" if cut else None)

    # -- UDP -------------------------------------------------------------------------

    def _udp(
        self, data: bytes, start: int, end: int, src: bytes, dst: bytes, error: str | None
    ) -> Datagram | None:
        if end - start < 8:
            return None
        sport, dport, ulen = _udp(data, start)
        if ulen < 8:
            error = error or f"UDP length {ulen} is shorter than the UDP header"
            ulen = end - start
        elif start + ulen > end:
            error = error or (
                f"UDP length {ulen} exceeds the {end - start} bytes the IP packet carries"
            )
            ulen = end - start
        return (
            self.addr(src),
            self.addr(dst),
            sport,
            dport,
            data[start + 8 : start + ulen],
            error,
        )

    def incomplete(self) -> list[tuple[Incomplete, Datagram | None]]:
        """Drain the datagrams given up by the reassembler, with what the head tells.

        The second item is the UDP header read from the first fragment (payload is only
        the part that arrived) when the first fragment was seen, else None.
        """
        out: list[tuple[Incomplete, Datagram | None]] = []
        for lost in self.reasm.given_up:
            src, dst = lost.key[0], lost.key[1]
            info: Datagram | None = None
            head = lost.head
            if len(head) >= 8 and isinstance(src, bytes) and isinstance(dst, bytes):
                sport, dport, _ulen = _udp(head, 0)
                info = (self.addr(src), self.addr(dst), sport, dport, head[8:], lost.reason)
            out.append((lost, info))
        self.reasm.given_up.clear()
        return out
