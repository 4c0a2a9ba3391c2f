"""The dissector end to end: capture files in, records out, one generator deep.

    bytes -> CaptureReader -> UdpLayers (+ IP reassembly) -> Detector -> Decoders
          -> Record -> Filter -> (Stats) -> Writer

Nothing is held beyond the current record, a reassembly buffer with caps and the
statistics' bounded structures, so memory does not grow with the capture.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from dissectors.capture import CaptureError, CaptureReader
from dissectors.decoders import Decoders
from dissectors.detect import Detector
from dissectors.filters import Filter
from dissectors.layers import UdpLayers
from dissectors.records import Record

__all__ = ["Options", "decode_stream", "open_input"]

#: Frames between two progress updates: rare enough to cost nothing.
PROGRESS_EVERY = 8192


@dataclass
class Options:
    detector: Detector = field(default_factory=Detector)
    keys: Any = None
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
                continue
            src, dst, sport, dport, payload, error = dg
            proto = detect(sport, dport, payload)
            if proto is None:
                continue
            record = Record(frame, ts, src, dst, sport, dport, proto, file=name)
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
        from dissectors.fast import FastDecoders

        return FastDecoders(options.keys)
    return Decoders(options.keys)


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


def filtered(records: Iterable[Record], flt: Filter | None) -> Iterator[Record]:
    if not flt:
        yield from records
        return
    for record in records:
        if flt(record):
            yield record
