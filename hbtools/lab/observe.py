"""Cheap observation of lab namespaces over rtnetlink: addresses, link state, ARP entries.

The chaos checkers sample "who holds the VIP" in every node at 10 Hz or more and the client's ARP
entry as often. Running ``ip -j addr`` per node per sample would cost dozens of processes a second
on a 2-core machine and distort the very timings we measure; an rtnetlink dump is a few hundred
bytes over a socket. A netlink socket belongs to the network namespace it was created in, so a
short-lived thread enters each namespace (``setns`` moves only that thread), opens the socket and
leaves; the sampler then reads every namespace from its own thread without switching.

The layouts are the kernel's uapi (``linux/netlink.h``, ``linux/rtnetlink.h``,
``linux/if_addr.h``, ``linux/neighbour.h``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
IFA_LOCAL = 2
IFLA_IFNAME = 3
NDA_DST, NDA_LLADDR = 1, 2
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
_NLMSG = struct.Struct("=IHHII")
_RTA = struct.Struct("=HH")
MAX_DUMP_BYTES = 1 << 20
"""A lab namespace has a handful of addresses; a dump bigger than this is not ours to read."""


class ObserveError(RuntimeError):
    pass


def _socket_in(netns: str) -> socket.socket:
    """An rtnetlink socket of ``netns`` (created by a thread that entered it)."""
    out: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(Path("/run/netns") / netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise ObserveError(f"cannot enter {netns}: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            s.settimeout(2.0)
            out.append(s)
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=work, name=f"netlink-{netns}", daemon=True)
    t.start()
    t.join(5.0)
    if not out:
        raise ObserveError(f"entering {netns} timed out")
    if isinstance(out[0], BaseException):
        raise ObserveError(f"no netlink socket in {netns}: {out[0]}")
    return out[0]


def _attrs(buf: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    pos = start
    while pos + 4 <= end:
        length, kind = _RTA.unpack_from(buf, pos)
        if length < 4:
            break
        attrs.setdefault(kind & 0x3FFF, buf[pos + 4 : pos + length])
        pos += (length + 3) & ~3
    return attrs


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    up: bool
    carrier: bool


class Netns:
    """One namespace's rtnetlink socket: dump addresses, links and neighbours."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.sock = _socket_in(netns)
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _dump(self, msg_type: int, body: bytes, want: int) -> list[tuple[bytes, int, int]]:
        """(buffer, payload start, payload end) of every ``want`` message of one dump."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            req = _NLMSG.pack(_NLMSG.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq,
                              0) + body
            self.sock.send(req)
            out: list[tuple[bytes, int, int]] = []
            total = 0
            for _ in range(1000):
                data = self.sock.recv(65536)
                total += len(data)
                if total > MAX_DUMP_BYTES:
                    raise ObserveError(f"netlink dump of {self.netns} too large")
                pos = 0
                while pos + _NLMSG.size <= len(data):
                    length, kind, _flags, mseq, _pid = _NLMSG.unpack_from(data, pos)
                    if length < _NLMSG.size:
                        return out
                    if mseq == seq:
                        if kind == NLMSG_DONE:
                            return out
                        if kind == NLMSG_ERROR:
                            raise ObserveError(f"netlink error in {self.netns}")
                        if kind == want:
                            out.append((data, pos + _NLMSG.size, pos + length))
                    pos += (length + 3) & ~3
            return out

    def links(self) -> dict[int, Link]:
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
        links = {}
        for buf, start, end in self._dump(RTM_GETLINK, body, RTM_NEWLINK):
            _fam, _type, index, flags, _change = struct.unpack_from("=BxHiII", buf, start)
            attrs = _attrs(buf, start + 16, end)
            name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
            links[index] = Link(index, name, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))
        return links

    def addresses(self) -> list[tuple[str, int]]:
        """(IPv4 address, interface index) of every address in the namespace."""
        body = struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0)
        out = []
        for buf, start, end in self._dump(RTM_GETADDR, body, RTM_NEWADDR):
            family, _plen, _flags, _scope, index = struct.unpack_from("=BBBBI", buf, start)
            if family != socket.AF_INET:
                continue
            local = _attrs(buf, start + 8, end).get(IFA_LOCAL)
            if local and len(local) == 4:
                out.append((socket.inet_ntoa(local), index))
        return out

    def reachable_addresses(self, ifname: str = "eth0") -> set[str]:
        """Addresses on ``ifname`` while it is administratively up with carrier: what the
        network can reach (a powered-off machine's address answers nobody)."""
        links = self.links()
        ok = {i for i, link in links.items() if link.name == ifname and link.up and link.carrier}
        return {addr for addr, index in self.addresses() if index in ok}

    def neighbour(self, ip: str) -> str | None:
        """The MAC this namespace's ARP cache holds for ``ip`` (None if absent or failed)."""
        body = struct.pack("=BxxxiHBB", socket.AF_INET, 0, 0, 0, 0)
        for buf, start, end in self._dump(RTM_GETNEIGH, body, RTM_NEWNEIGH):
            _fam, _index, state, _flags, _type = struct.unpack_from("=BxxxiHBB", buf, start)
            attrs = _attrs(buf, start + 12, end)
            dst, mac = attrs.get(NDA_DST), attrs.get(NDA_LLADDR)
            if dst and len(dst) == 4 and socket.inet_ntoa(dst) == ip:
                if state & (NUD_INCOMPLETE | NUD_FAILED) or not mac:
                    return None
                return ":".join(f"{b:02x}" for b in mac)
        return None
