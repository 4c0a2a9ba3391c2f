"""The dissector end to end: capture files in, records out, one generator deep.

    bytes -> CaptureReader -> UdpLayers (+ IP reassembly) -> Detector -> Decoders
          -> Record -> Filter -> (Stats) -> Writer

Nothing is held beyond the current record, a reassembly buffer with caps and the
statistics' bounded structures, so memory does not grow with the capture.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from hbtools.dissectors.capture import CaptureError, CaptureReader
from hbtools.dissectors.decoders import Decoders, arp_record
from hbtools.dissectors.detect import Detector
from hbtools.dissectors.filters import Filter
from hbtools.dissectors.layers import UdpLayers
from hbtools.dissectors.records import Record

__all__ = ["Options", "PcapWriter", "RowBudget", "decode_stream", "is_live", "limited", "open_input",
           "tee_pcap"]

#: Link types whose frames can carry ARP (Ethernet, Linux cooked v1 and v2).
_ARP_LINKTYPES = frozenset({1, 113, 276})
#: Frames between two progress updates: rare enough to cost nothing.
PROGRESS_EVERY = 8192


@dataclass
class Options:
    detector: Detector = field(default_factory=Detector)
    keys: Any = None
    #: `hbtools.knetcrypto.KeyRing` for knet crypto (``--corosync-authkey``), or None.
    corosync_keys: Any = None
    filter: Filter | None = None
    fast: bool = True


def open_input(path: str) -> tuple[BinaryIO, str, int | None]:
    """The stream for a path (``-`` is stdin), its display name and size if known.

    Raises CaptureError with the OS's reason, so the caller prints one line.
    """
    if path == "-":
        return sys.stdin.buffer, "<stdin>", None
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise CaptureError(path, exc.strerror or str(exc)) from None
    try:
        size: int | None = os.fstat(stream.fileno()).st_size
        if os.path.isdir(path):
            raise CaptureError(path, "is a directory")
    except OSError:
        size = None
    return stream, path, size


def is_live(path: str) -> bool:
    """True when the input is a pipe, FIFO or terminal rather than a regular file.

    Live input is decoded row by row and each row flushed as it comes (``tcpdump -U -w -
    | hbtool decode -``); a regular file, even on stdin, takes the block-wise fast paths.
    """
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if path == "-" else os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def decode_stream(
    stream: BinaryIO,
    name: str,
    options: Options,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Record]:
    """Every cluster message of one capture, in frame order.

    Raises CaptureError (before or after yielding rows) for a file that is not a capture
    or is cut short; the rows already yielded stay valid.
    """
    reader = CaptureReader(stream, name)
    layers = UdpLayers()
    detect = options.detector
    decoders = _make_decoders(options)
    decode = decoders.decode
    datagram = layers.datagram
    reasm = layers.reasm
    frame = 0
    last_bytes = 0
    try:
        for ts, linktype, data, _orig in reader:
            frame += 1
            if progress is not None and not frame % PROGRESS_EVERY:
                progress(reader.bytes_read - last_bytes)
                last_bytes = reader.bytes_read
            dg = datagram(linktype, data, ts, frame)
            if reasm.given_up:
                yield from _incomplete(layers, detect, name)
            if dg is None:
                if linktype in _ARP_LINKTYPES:
                    arp = arp_record(frame, ts, linktype, data, name)
                    if arp is not None:
                        yield arp
                continue
            src, dst, sport, dport, payload, error = dg
            proto = detect(sport, dport, payload)
            if proto is None:
                continue
            record = Record(frame, ts, src, dst, sport, dport, proto, file=name, raw=data,
                            linktype=linktype, payload=payload)
            if error is not None:
                record.error = error
                record.fields = {}
                yield record
            else:
                yield decode(record, payload)
        # The capture was read to its end: what is still under reassembly never will be.
        reasm.flush()
        yield from _incomplete(layers, detect, name)
    finally:
        if progress is not None:
            progress(reader.bytes_read - last_bytes)


def _make_decoders(options: Options) -> Any:
    """The fast decoders when allowed, else the codec-only ones (``--codec-only``)."""
    if options.fast:
        from hbtools.dissectors.fast import FastDecoders

        return FastDecoders(options.keys, options.corosync_keys)
    return Decoders(options.keys, options.corosync_keys)


def _incomplete(layers: UdpLayers, detect: Detector, name: str) -> Iterator[Record]:
    """Rows for fragmented datagrams given up on, when the first fragment was ours."""
    for lost, info in layers.incomplete():
        if info is None:
            continue
        src, dst, sport, dport, head, reason = info
        proto = detect(sport, dport, head)
        if proto is None:
            continue
        got = f"{lost.received} bytes" + (f" of {lost.total}" if lost.total else "")
        record = Record(lost.first_frame, lost.first_time, src, dst, sport, dport, proto,
                        file=name)
        record.error = f"incomplete IP datagram: {reason} ({got} received)"
        record.fields = {}
        yield record


@dataclass
class RowBudget:
    """``-c N`` across several captures: how many rows may still be shown (None: any)."""

    left: int | None = None

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0


def limited(records: Iterable[Record], budget: RowBudget) -> Iterator[Record]:
    """Rows until the budget is spent (tshark's ``-c``), then stop reading at once, so a
    live pipe is left without waiting for one more packet."""
    if budget.left is None:
        yield from records
        return
    if budget.left <= 0:
        return
    for record in records:
        budget.left -= 1
        yield record
        if budget.left <= 0:
            return


class PcapWriter:
    """``-w FILE``: the matched packets as a pcap (microseconds, the first row's link type).

    Created with O_EXCL|O_NOFOLLOW unless it already is a regular file we may replace:
    root must not follow a planted link. Rows of another link type are counted, not written.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.linktype: int | None = None
        self.skipped = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise CaptureError(path, f"cannot write: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CaptureError(path, "cannot write: not a regular file")
        self.out = os.fdopen(fd, "wb")

    def write(self, record: Record) -> None:
        if record.raw is None:
            return
        if self.linktype is None:
            self.linktype = record.linktype
            self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144,
                                       record.linktype))
        if record.linktype != self.linktype:
            self.skipped += 1
            return
        sec = int(record.time)
        usec = min(999_999, round((record.time - sec) * 1e6))
        self.out.write(struct.pack("<IIII", sec, usec, len(record.raw), len(record.raw)))
        self.out.write(record.raw)

    def close(self) -> None:
        if self.linktype is None:  # no packet: still a valid (empty) capture
            self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.out.close()


def tee_pcap(records: Iterable[Record], writer: PcapWriter | None) -> Iterator[Record]:
    if writer is None:
        yield from records
        return
    for record in records:
        writer.write(record)
        yield record


def filtered(records: Iterable[Record], flt: Filter | None) -> Iterator[Record]:
    if not flt:
        yield from records
        return
    for record in records:
        if flt(record):
            yield record
