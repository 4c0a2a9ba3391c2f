"""Streaming pcap and pcapng record readers built on ``struct``.

A capture can be far larger than memory, and the dissector has to beat tshark, so the
readers never build per-record objects beyond one small tuple: they pull the file in
large chunks and walk the record headers with precompiled ``struct`` unpackers. Every
problem with the file itself (not a capture, cut short, corrupt length) is raised as a
:class:`CaptureError`, which the CLI turns into one line on stderr.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "CaptureError",
    "CaptureReader",
    "Frame",
    "PcapChunk",
    "PcapHeader",
    "open_capture",
]

# Records are read through a window of this many bytes; large enough that the per-chunk
# bookkeeping vanishes next to the per-record work, small enough to keep memory flat.
CHUNK_SIZE = 1 << 20
# A record longer than this is not a packet but a corrupt length field. It is larger
# than any snaplen seen in the wild (tcpdump's maximum is 262144).
MAX_RECORD = 1 << 24

# One captured packet: (timestamp in epoch seconds, link type, bytes as captured,
# length on the wire). A plain tuple because millions of them are made.
Frame = tuple[float, int, bytes, int]

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_MAGIC_KUZNETZOV = 0xA1B2CD34  # tcpdump's "modified pcap": 8 more bytes per record
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D

_BT_IDB = 0x00000001
_BT_PACKET = 0x00000002  # obsolete Packet Block, still written by old tools
_BT_SPB = 0x00000003
_BT_EPB = 0x00000006


def _chunk_reader(stream: BinaryIO) -> Callable[[int], bytes]:
    """``read1`` where the stream has it, else ``read``.

    ``read(n)`` on a buffered pipe waits until n bytes came or the writer closed: behind
    ``tcpdump -U -w - | hbtool decode -`` that holds every row back for a megabyte of
    packets. ``read1(n)`` returns what one read of the pipe gives, so each record is
    decoded as soon as it arrived; on a regular file it still returns up to n bytes.
    """
    read1 = getattr(stream, "read1", None)
    return read1 if callable(read1) else stream.read


class CaptureError(Exception):
    """The file is not a readable capture; carries the file name and what was wrong."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class PcapHeader:
    """What a pcap global header says about every record that follows."""

    endian: str  # struct prefix of the record headers: "<" or ">"
    divisor: float  # 1e6 (microseconds) or 1e9 (nanosecond pcap)
    header_length: int  # record header bytes: 16, or 24 for Kuznetzov's pcap
    linktype: int
    snaplen: int
    limit: int  # the largest record length believed (snaplen, within MAX_RECORD)


@dataclass(frozen=True)
class PcapChunk:
    """Whole pcap records as read from the stream: ``buf[:end]`` holds `records` of them,
    the first being frame ``first_frame + 1``."""

    buf: bytes
    end: int
    first_frame: int
    records: int


class CaptureReader:
    """Iterate over the frames of one pcap or pcapng stream.

    ``bytes_read`` follows the position in the stream so that a progress bar can be
    drawn without a second pass or a seek (stdin cannot seek).
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.stream = stream
        self.name = name
        self.bytes_read = 0
        self.format = ""
        #: The pcap global header, once `pcap_chunks` (or iteration) has read it.
        self.header: PcapHeader | None = None
        self._head = self._read_exact_or_short(4)
        if len(self._head) < 4:
            if not self._head:
                raise CaptureError(name, "empty file, not a capture")
            raise CaptureError(name, "too short to be a capture")
        (magic_le,) = struct.unpack("<I", self._head)
        (magic_be,) = struct.unpack(">I", self._head)
        if magic_le == PCAPNG_SHB:
            self.format = "pcapng"
        elif PCAP_MAGIC_US in (magic_le, magic_be) or PCAP_MAGIC_NS in (magic_le, magic_be):
            self.format = "pcap"
        elif PCAP_MAGIC_KUZNETZOV in (magic_le, magic_be):
            self.format = "pcap"
        else:
            raise CaptureError(
                name, f"not a pcap or pcapng capture (starts with {self._head.hex()})"
            )

    def _read_exact_or_short(self, n: int) -> bytes:
        data = self.stream.read(n)
        if data is None:
            data = b""
        while len(data) < n:
            more = self.stream.read(n - len(data))
            if not more:
                break
            data += more
        self.bytes_read += len(data)
        return data

    def __iter__(self) -> Iterator[Frame]:
        if self.format == "pcapng":
            return self._pcapng()
        return self._pcap()

    # -- pcap ------------------------------------------------------------------------

    def pcap_header(self) -> PcapHeader:
        """Read a pcap file's global header (the public way in for chunk readers such as
        the JSON hot path, which cut the records themselves): once, before any record."""
        name = self.name
        rest = self._read_exact_or_short(20)
        if len(rest) < 20:
            raise CaptureError(name, "pcap global header cut short")
        head = self._head + rest
        (magic,) = struct.unpack("<I", head[:4])
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_KUZNETZOV):
            endian = "<"
        else:
            endian = ">"
            (magic,) = struct.unpack(">I", head[:4])
        _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack(
            endian + "HHiIII", head[4:]
        )
        # The top bits of the link-type word carry FCS information (pcap-linktype(7)).
        return PcapHeader(
            endian=endian,
            divisor=1e9 if magic == PCAP_MAGIC_NS else 1e6,
            header_length=24 if magic == PCAP_MAGIC_KUZNETZOV else 16,
            linktype=network & 0x0FFFFFFF,
            snaplen=snaplen,
            limit=max(snaplen, 65536) if snaplen < MAX_RECORD else MAX_RECORD,
        )

    def pcap_chunks(self, chunk_size: int = CHUNK_SIZE, prompt: bool = False
                    ) -> Iterator[PcapChunk]:
        """The records of a pcap stream in chunks of whole records, not decoded.

        The public way in for readers that walk the records themselves (the JSON hot
        path hands chunks to worker processes): the global header is read first and kept
        in `header`; each chunk is the stream's bytes as read, with `end` after its last
        whole record. Every check of the records (a corrupt length, a file cut short) is
        made here, once: `CaptureError` is raised after the last whole chunk.

        `prompt`: a chunk is what one read of the stream gives (a live pipe's records
        come out as they arrive, `_chunk_reader`) instead of `chunk_size` bytes each
        (chunks of one size: the hot path's blocks, and the table widths of each block).
        """
        name = self.name
        header = self.header = self.pcap_header()
        snaplen, limit, hdr_len = header.snaplen, header.limit, header.header_length
        u32 = struct.Struct(header.endian + "I").unpack_from
        read = _chunk_reader(self.stream) if prompt else self.stream.read
        carry = b""
        frame = 0
        while True:
            chunk = read(max(chunk_size, len(carry)) if prompt else chunk_size)
            if chunk:
                self.bytes_read += len(chunk)
            buf = carry + chunk if carry else chunk
            pos = 0
            size = len(buf)
            records = 0
            while pos + hdr_len <= size:
                (incl,) = u32(buf, pos + 8)
                if incl > limit:
                    if records:
                        yield PcapChunk(buf, pos, frame, records)
                    raise CaptureError(name, f"record {frame + records + 1} claims {incl} "
                                             f"bytes (snaplen {snaplen}): corrupt capture")
                nxt = pos + hdr_len + incl
                if nxt > size:
                    break
                pos = nxt
                records += 1
            if records:
                yield PcapChunk(buf, pos, frame, records)
                frame += records
            carry = buf[pos:]
            if not chunk:
                if carry:
                    if len(carry) < hdr_len:
                        problem = (f"cut short in the header of record {frame + 1} "
                                   f"({len(carry)} of {hdr_len} bytes)")
                    else:
                        (incl,) = u32(carry, 8)
                        problem = (f"cut short in the middle of record {frame + 1} "
                                   f"({len(carry) - hdr_len} of {incl} bytes)")
                    raise CaptureError(name, problem)
                return

    def _pcap(self) -> Iterator[Frame]:
        chunks = self.pcap_chunks(prompt=True)
        for chunk in chunks:
            header = self.header
            assert header is not None  # read by pcap_chunks before its first chunk
            unpack = struct.Struct(header.endian + "IIII").unpack_from
            divisor, hdr_len, linktype = header.divisor, header.header_length, header.linktype
            buf = chunk.buf
            pos = 0
            end = chunk.end
            while pos < end:
                sec, frac, incl, orig = unpack(buf, pos)
                start = pos + hdr_len
                pos = start + incl
                yield sec + frac / divisor, linktype, buf[start:pos], orig

    # -- pcapng ----------------------------------------------------------------------

    def _pcapng(self) -> Iterator[Frame]:
        """Walk pcapng blocks; interfaces (link type, time unit) are per section."""
        name = self.name
        read = _chunk_reader(self.stream)
        buf = self._head
        self._head = b""
        pos = 0
        endian = "<"
        epb = struct.Struct("<IIIII").unpack_from
        spb_len = struct.Struct("<I").unpack_from
        blk = struct.Struct("<II").unpack_from
        # per interface: (link type, ticks per second, offset seconds, snaplen)
        interfaces: list[tuple[int, int, int, int]] = []
        count = 0
        seen_shb = False
        while True:
            avail = len(buf) - pos
            if avail < 12:
                chunk = read(CHUNK_SIZE)
                if not chunk:
                    if avail:
                        raise CaptureError(
                            name, f"cut short in a block header after packet {count}"
                        )
                    if not seen_shb:
                        raise CaptureError(name, "pcapng section header cut short")
                    return
                self.bytes_read += len(chunk)
                buf = buf[pos:] + chunk
                pos = 0
                continue
            btype, blen = blk(buf, pos)
            if btype == PCAPNG_SHB:
                # The byte-order magic decides how this section (and its block lengths)
                # are read, so it is parsed before trusting blen.
                (bom,) = struct.unpack_from("<I", buf, pos + 8)
                if bom == PCAPNG_BOM:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    raise CaptureError(name, "pcapng section header with a bad byte-order magic")
                (blen,) = struct.unpack_from(endian + "I", buf, pos + 4)
                epb = struct.Struct(endian + "IIIII").unpack_from
                spb_len = struct.Struct(endian + "I").unpack_from
                blk = struct.Struct(endian + "II").unpack_from
                interfaces = []
                seen_shb = True
            elif not seen_shb:
                raise CaptureError(name, "pcapng file does not start with a section header")
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                raise CaptureError(
                    name, f"pcapng block of {blen} bytes after packet {count}: corrupt capture"
                )
            end = pos + blen
            if end > len(buf):
                chunk = read(max(CHUNK_SIZE, end - len(buf)))
                if not chunk:
                    raise CaptureError(
                        name,
                        f"cut short in the middle of a block after packet {count} "
                        f"({len(buf) - pos} of {blen} bytes)",
                    )
                self.bytes_read += len(chunk)
                buf = buf[pos:] + chunk
                pos = 0
                continue
            body = pos + 8
            if btype == _BT_EPB or btype == _BT_PACKET:
                if btype == _BT_EPB:
                    iface, ts_hi, ts_lo, caplen, origlen = epb(buf, body)
                    if caplen > blen - 32:
                        raise CaptureError(name, f"packet {count + 1}: captured length "
                                                 f"{caplen} exceeds its block")
                    if iface >= len(interfaces):
                        raise CaptureError(name, f"packet {count + 1} names interface "
                                                 f"{iface}, which is not defined")
                else:  # the obsolete Packet Block: a 16-bit interface and a drop count
                    iface, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                        endian + "HHIIII", buf, body
                    )
                    if iface >= len(interfaces) or caplen > blen - 32:
                        raise CaptureError(name, f"packet {count + 1}: corrupt packet block")
                linktype, tps, offset, _snap = interfaces[iface]
                count += 1
                pos = end
                # seconds + fraction, like pcap: the same instant gives the same float
                # whichever format it was stored in
                sec, frac = divmod((ts_hi << 32) | ts_lo, tps)
                yield (
                    sec + frac / tps + offset,
                    linktype,
                    buf[body + 20 : body + 20 + caplen],
                    origlen,
                )
                continue
            if btype == _BT_SPB:
                if not interfaces:
                    raise CaptureError(name, "simple packet block before any interface")
                (origlen,) = spb_len(buf, body)
                linktype, _tps, _offset, snap = interfaces[0]
                caplen = min(origlen, snap or origlen, blen - 16)
                count += 1
                pos = end
                yield 0.0, linktype, buf[body + 4 : body + 4 + caplen], origlen
                continue
            if btype == _BT_IDB:
                interfaces.append(self._idb(buf, body, end - 4, endian))
            pos = end

    def _idb(self, buf: bytes, body: int, end: int, endian: str) -> tuple[int, int, int, int]:
        """Read the interface's link type and its clock (if_tsresol, if_tsoffset)."""
        linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", buf, body)
        tps = 1_000_000
        offset = 0
        opt = body + 8
        while opt + 4 <= end:
            code, length = struct.unpack_from(endian + "HH", buf, opt)
            if code == 0:
                break
            value = buf[opt + 4 : opt + 4 + length]
            if code == 9 and length >= 1:
                res = value[0]
                tps = 2 ** (res & 0x7F) if res & 0x80 else 10**res
            elif code == 14 and length == 8:
                (offset,) = struct.unpack(endian + "q", value)
            opt += 4 + ((length + 3) & ~3)
        return linktype, tps, offset, snaplen


def open_capture(stream: BinaryIO, name: str) -> CaptureReader:
    """Recognise the capture format from its first bytes (no seek: stdin works)."""
    return CaptureReader(stream, name)
