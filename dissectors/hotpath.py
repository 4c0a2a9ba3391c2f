"""The JSON hot path: pcap records straight to JSON lines, and its parallel driver.

``hbtool decode --format json`` with no filter and no statistics is the benchmark's
job and the bulk-export use case, so it gets a path of its own. For the usual frame
(Ethernet, IPv4 without options or fragmentation, UDP) the headers are read in place in
the capture buffer, the flow's addresses and ports are rendered to JSON once and
cached, the payload goes through the fast decoders (`dissectors.fast`) and the line is
one string format. Every other frame takes the general path (`UdpLayers`, `Decoders`,
`Record.to_json`), so the output is the same text either way; tests compare the two.

Parallelism: per-packet work is stateless except IP and knet fragment reassembly. The
main process cuts the capture into chunks at record boundaries and hands them to worker
processes, which return their JSON text with fragments left out (deferred); the main
process feeds those, in capture order, to its own reassemblers and splices the
results in, so the output is identical to a single-process run.
"""

from __future__ import annotations

import multiprocessing
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from hbtools.dissectors.capture import (
    CaptureError,
    CaptureReader,
    Frame,
    PcapChunk,
)
from hbtools.dissectors.decoders import arp_record
from hbtools.dissectors.detect import CLUSTER, HEARTBEAT, KNET, TOTEM, Detector, corosync_kind
from hbtools.dissectors.fast import FastDecoders, stateful
from hbtools.dissectors.layers import LINKTYPE_ETHERNET, UdpLayers
from hbtools.dissectors.records import UNCHECKED_TAIL, Record, flow_head, row, type_node

from hbtools import knet, totem
from hbtools.escape import json_bytes

__all__ = ["Deferred", "HotPath", "json_lines"]

_PROTO_INDEX = {HEARTBEAT: 1, TOTEM: 2, KNET: 3}

#: Bytes of capture per chunk handed to a worker: big enough that the per-chunk cost
#: (a pickle, a pipe write, a result) disappears, small enough to keep memory flat.
PARALLEL_CHUNK = 2 << 20

# A frame a worker leaves to the main process: (frame number, time, link type, bytes).
Deferred = tuple[int, float, int, bytes]
# What a chunk becomes: runs of JSON text (each ending in a newline) and deferred frames.
Piece = str | Record | Deferred


class _Defer(Exception):
    """The frame needs state kept across chunks (a fragment): the main process takes it."""


class _DeferringLayers(UdpLayers):
    """UdpLayers for a worker: a fragment is handed back instead of being buffered."""

    def __init__(self) -> None:
        super().__init__()
        self.reasm.add = self._refuse  # type: ignore[method-assign]

    @staticmethod
    def _refuse(*_args: Any, **_kwargs: Any) -> bytes | None:
        raise _Defer


@dataclass
class PcapContext:
    """What a worker needs to read a chunk of pcap records."""

    endian: str
    divisor: float
    header_length: int
    linktype: int


class HotPath:
    """Turns frames into JSON text. One per process (and per capture file)."""

    def __init__(self, detector: Detector, keys: Any, name: str, worker: bool,
                 rows: bool = False) -> None:
        self.detector = detector
        #: rows mode (table, CSV): pieces are `Record` objects for a renderer, not JSON text
        self.rows = rows
        self.ports = detector.ports
        self.heuristics = detector.heuristics
        self.name = name
        self.worker = worker
        self.layers: UdpLayers = _DeferringLayers() if worker else UdpLayers()
        self.decoders = FastDecoders(keys)
        self.keys = keys
        self.hb_fast = self.decoders.hb_fast if keys is None else None
        self.flows: dict[Any, list[Any]] = {}
        self.type_node: dict[tuple[Any, Any], str] = {}

    # -- one frame, general path ---------------------------------------------------------

    def general(self, frame: int, ts: float, linktype: int, data: bytes, out: list[Piece]
                ) -> None:
        """Any frame: the layers, then the same decoding as the fast loop."""
        layers = self.layers
        try:
            dg = layers.datagram(linktype, data, ts, frame)
        except _Defer:
            out.append((frame, ts, linktype, data))
            return
        if layers.reasm.given_up:
            for record in self._incomplete():
                out.append(self._piece(record))
        if dg is None:
            arp = arp_record(frame, ts, linktype, data, self.name)
            if arp is not None:
                out.append(self._piece(arp))
            return
        src, dst, sport, dport, payload, error = dg
        proto = self.detector(sport, dport, payload)
        if proto is None:
            return
        if error is not None:
            record = Record(frame, ts, src, dst, sport, dport, proto, file=self.name)
            record.error = error
            record.fields = {}
            out.append(self._piece(record))
            return
        if self.worker and stateful(proto, payload):
            out.append((frame, ts, linktype, data))  # the main process keeps the state
            return
        key = (src, dst, sport, dport)
        flow = self.flows.get(key)
        if flow is None:
            flow = self._flow(key, src, dst, sport, dport)
        out.append(self._line(frame, ts, flow, proto, payload, src, dst, sport, dport))

    def _piece(self, record: Record) -> Piece:
        return record if self.rows else record.to_json() + "\n"

    def _incomplete(self) -> Iterator[Record]:
        from hbtools.dissectors.pipeline import _incomplete

        return _incomplete(self.layers, self.detector, self.name)

    def finish(self) -> list[Piece]:
        """End of capture: datagrams still under reassembly are reported."""
        self.layers.reasm.flush()
        return [self._piece(record) for record in self._incomplete()]

    # -- the fast loop -------------------------------------------------------------------

    def _flow(self, key: Any, src: str, dst: str, sport: int, dport: int) -> list[Any]:
        ports = self.ports
        hint = ports.get(dport) or ports.get(sport)
        head = flow_head(src, dst, sport, dport)
        flow = [hint, head + '"heartbeat", ', head + '"totem", ', head + '"knet", ',
                src, dst, sport, dport]
        if len(self.flows) >= 65536:
            self.flows.clear()
        self.flows[key] = flow
        return flow

    def _line(self, frame: int, ts: float, flow: list[Any], proto: str, payload: bytes,
              src: str, dst: str, sport: int, dport: int) -> Piece:
        """One JSON line for a datagram already known to be ``proto``."""
        found = self.fast(proto, payload)
        if found is None:
            record = Record(frame, ts, src, dst, sport, dport, proto, file=self.name)
            return self._piece(self.decoders.decode(record, payload))
        kind, node, fields = found
        if self.rows:
            return Record(frame, ts, src, dst, sport, dport, proto, kind, node, fields_json=fields,
                          file=self.name)
        tn = self.type_node.get((kind, node))
        if tn is None:
            tn = self._type_node(kind, node)
        return row(frame, ts, flow[_PROTO_INDEX[proto]], tn, fields, UNCHECKED_TAIL) + "\n"

    def fast(self, proto: str, payload: bytes) -> tuple[str | None, Any, str] | None:
        """(type, node, fields JSON) from the fast decoders, or None: the codec path
        decides (malformed, keys to check, state kept across packets: knet fragments,
        Totem mcasts for totempg)."""
        if proto == TOTEM:
            return totem.decode_json(payload, mcast=False)
        if proto == KNET:
            return None if knet.is_fragment(payload) else knet.decode_json(payload, mcast=False)
        hb_fast = self.hb_fast
        if hb_fast is None:
            return None
        try:
            return hb_fast(payload)
        except Exception:  # noqa: BLE001 - any refusal: the codec decides
            return None

    def _type_node(self, kind: Any, node: Any) -> str:
        text = type_node(kind, node)
        if len(self.type_node) >= 65536:
            self.type_node.clear()
        self.type_node[(kind, node)] = text
        return text

    def pcap_records(self, buf: bytes, pos: int, end: int, frame: int, ctx: PcapContext
                     ) -> tuple[list[Piece], int]:
        """Records in ``buf[pos:end]`` (whole records only); returns pieces, last frame."""
        out: list[Piece] = []
        append = out.append
        unpack = struct.Struct(ctx.endian + "IIII").unpack_from
        # Ethernet type, IP version/length, total length, flags/offset, protocol, UDP
        # length: everything the fast test needs, in one call
        headers = struct.Struct("!12xHBxH2xHxB2x8x4xH").unpack_from
        divisor = ctx.divisor
        hdr_len = ctx.header_length
        linktype = ctx.linktype
        ethernet = linktype == LINKTYPE_ETHERNET
        flows = self.flows
        type_node = self.type_node
        fast = self.fast
        detector = self.detector
        general = self.general
        addr = self.layers.addr
        rows = self.rows
        name = self.name
        while pos < end:
            sec, frac, incl, _orig = unpack(buf, pos)
            start = pos + hdr_len
            pos = start + incl
            frame += 1
            ts = sec + frac / divisor
            # Ethernet II, IPv4 with a 20-byte header, not a fragment, UDP, all captured
            if not ethernet or incl < 42:
                general(frame, ts, linktype, buf[start:pos], out)
                continue
            etype, vihl, total, frag, proto_num, ulen = headers(buf, start)
            if (etype != 0x0800 or vihl != 0x45 or proto_num != 17 or frag & 0x3FFF
                    or start + 14 + total > pos or ulen < 8 or ulen > total - 20):
                general(frame, ts, linktype, buf[start:pos], out)
                continue
            ip = start + 14
            udp = ip + 20
            key = buf[ip + 12 : ip + 24]
            flow = flows.get(key)
            if flow is None:
                sport, dport = struct.unpack_from("!HH", buf, udp)
                flow = self._flow(key, addr(buf[ip + 12 : ip + 16]), addr(buf[ip + 16 : ip + 20]),
                                  sport, dport)
            payload = buf[udp + 8 : udp + ulen]
            hint = flow[0]
            if hint == HEARTBEAT:
                proto = HEARTBEAT
            elif hint == CLUSTER:
                proto = corosync_kind(payload)
            elif hint is None and not self.heuristics:
                continue
            else:
                proto = detector(flow[6], flow[7], payload)
                if proto is None:
                    continue
            found = fast(proto, payload)
            if found is None:
                general(frame, ts, linktype, buf[start:pos], out)
                continue
            kind, node, fields = found
            if rows:
                append(Record(frame, ts, flow[4], flow[5], flow[6], flow[7], proto, kind, node,
                              fields_json=fields, file=name))
                continue
            tn = type_node.get((kind, node))
            if tn is None:
                tn = self._type_node(kind, node)
            append(row(frame, ts, flow[_PROTO_INDEX[proto]], tn, fields, UNCHECKED_TAIL) + "\n")
        return out, frame

    def frames(self, frames: Iterable[Frame], frame: int) -> tuple[list[Piece], int]:
        """Any capture format: frames already read (pcapng, or a non-pcap fallback)."""
        out: list[Piece] = []
        general = self.general
        for ts, linktype, data, _orig in frames:
            frame += 1
            general(frame, ts, linktype, data, out)
        return out, frame


#: Renders a run of records (rows mode) to its text: `dissectors.output.CsvRows`/`TableCells`.
Render = Callable[[list[Record]], str]
#: A block of output: ASCII JSON bytes, or a renderer's text in rows mode.
Block = bytes | str


def _run_text(run: list[Any], render: Render | None) -> Block:
    """One run of pieces as output: JSON text (ASCII, as `hbtools.escape.json_bytes` makes
    it: a byte that was not UTF-8 is ``\\xNN`` text, never a lone surrogate) or rendered rows."""
    if render is None:
        return json_bytes("".join(run).encode("ascii"))
    return render(run)


def _squash(pieces: list[Piece], render: Render | None = None) -> list[Block | Deferred]:
    """Join runs of output into one block each, so a chunk crosses the process boundary as few
    objects; done in the worker, which spares the main process."""
    out: list[Block | Deferred] = []
    run: list[Any] = []
    for piece in pieces:
        if isinstance(piece, tuple):
            if run:
                out.append(_run_text(run, render))
                run = []
            out.append(piece)
        else:
            run.append(piece)
    if run:
        out.append(_run_text(run, render))
    return out


def _text(pieces: list[Piece], render: Render | None = None) -> Block:
    """All output of pieces with no deferred frame left in them."""
    return _run_text([p for p in pieces if not isinstance(p, tuple)], render)


# -- chunking --------------------------------------------------------------------------


def _pcap_chunks(reader: CaptureReader, chunk_size: int = PARALLEL_CHUNK
                 ) -> Iterator[tuple[PcapContext, PcapChunk, int]]:
    """The capture reader's chunks of whole records (`CaptureReader.pcap_chunks`, which
    makes every check of the file), each with what a worker needs to walk it."""
    ctx: PcapContext | None = None
    for chunk in reader.pcap_chunks(chunk_size):
        if ctx is None:
            header = reader.header
            assert header is not None
            ctx = PcapContext(header.endian, header.divisor, header.header_length,
                              header.linktype)
        yield ctx, chunk, chunk.first_frame


def _frame_batches(reader: CaptureReader, size: int = 4096
                   ) -> Iterator[tuple[None, list[Frame], int]]:
    batch: list[Frame] = []
    frame = 0
    for item in reader:
        batch.append(item)
        if len(batch) >= size:
            yield None, batch, frame
            frame += len(batch)
            batch = []
    if batch:
        yield None, batch, frame


# -- worker processes ----------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(detector: Detector, keys: Any, name: str, render: Render | None = None
                 ) -> None:
    _WORKER["hot"] = HotPath(detector, keys, name, worker=True, rows=render is not None)
    _WORKER["render"] = render


def _work_pcap(ctx: PcapContext, buf: bytes, end: int, first_frame: int
               ) -> list[Block | Deferred]:
    pieces, _frame = _WORKER["hot"].pcap_records(buf, 0, end, first_frame, ctx)
    return _squash(pieces, _WORKER["render"])


def _work_frames(frames: list[Frame], first_frame: int) -> list[Block | Deferred]:
    pieces, _frame = _WORKER["hot"].frames(frames, first_frame)
    return _squash(pieces, _WORKER["render"])


def default_jobs() -> int:
    """Worker processes: one per CPU beyond the main process's share, at least 2 CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus >= 2 else 1


def json_lines(
    stream: BinaryIO,
    name: str,
    detector: Detector,
    keys: Any,
    jobs: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """JSON text of every cluster message of one capture, in frame order.

    Yields blocks of lines, as ASCII bytes. Raises CaptureError like `pipeline.decode_stream`, after the
    blocks that precede the problem.
    """
    return blocks(stream, name, detector, keys, jobs, None, progress)  # type: ignore[return-value]


def row_blocks(stream: BinaryIO, name: str, detector: Detector, keys: Any, jobs: int,
               render: Render, progress: Callable[[int], None] | None = None) -> Iterator[str]:
    """The same rows in another format (table cells, CSV lines): `render` turns each run of
    records into text where the records were made, in the workers, as JSON lines are."""
    return blocks(stream, name, detector, keys, jobs, render, progress)  # type: ignore[return-value]


def blocks(stream: BinaryIO, name: str, detector: Detector, keys: Any, jobs: int,
           render: Render | None, progress: Callable[[int], None] | None = None
           ) -> Iterator[Block]:
    """JSON (`render` None) or rendered rows of one capture, in frame order, from `jobs`
    processes (1: this one)."""
    reader = CaptureReader(stream, name)
    main = HotPath(detector, keys, name, worker=False, rows=render is not None)
    last = [0]

    def tick() -> None:
        if progress is not None:
            progress(reader.bytes_read - last[0])
            last[0] = reader.bytes_read

    source: Iterator[Any]
    if reader.format == "pcap":
        source = _pcap_chunks(reader, PARALLEL_CHUNK if jobs > 1 else PARALLEL_CHUNK // 2)
    else:
        source = _frame_batches(reader)
    if jobs <= 1:
        for ctx, item, first in source:
            if ctx is None:
                pieces, _ = main.frames(item, first)
            else:
                pieces, _ = main.pcap_records(item.buf, 0, item.end, first, ctx)
            yield _text(pieces, render)
            tick()
        yield _text(main.finish(), render)
        tick()
        return
    yield from _parallel(source, main, detector, keys, name, jobs, tick, render)


def _parallel(source: Iterator[Any], main: HotPath, detector: Detector, keys: Any, name: str,
              jobs: int, tick: Callable[[], None], render: Render | None = None
              ) -> Iterator[Block]:
    """Chunks to a pool, results back in order, a bounded number in flight."""
    context = multiprocessing.get_context("fork" if "fork" in
                                          multiprocessing.get_all_start_methods() else None)
    pool = context.Pool(jobs, initializer=_worker_init, initargs=(detector, keys, name, render))
    pending: deque[Any] = deque()
    window = jobs * 2
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    ctx, item, first = next(source)
                except StopIteration:
                    exhausted = True
                    break
                except CaptureError as exc:
                    pending.append(exc)
                    exhausted = True
                    break
                if ctx is None:
                    pending.append(pool.apply_async(_work_frames, (item, first)))
                else:
                    pending.append(pool.apply_async(_work_pcap, (ctx, item.buf, item.end, first)))
            if not pending:
                break
            head = pending.popleft()
            if isinstance(head, CaptureError):
                yield _text(main.finish(), render)
                raise head
            pieces = head.get()
            yield _resolve(pieces, main, render)
            tick()
        yield _text(main.finish(), render)
        tick()
    finally:
        pool.terminate()
        pool.join()


def _resolve(pieces: list[Block | Deferred], main: HotPath, render: Render | None = None
             ) -> Block:
    """Splice in the deferred frames, decoded in order by the main process's state."""
    if len(pieces) == 1 and not isinstance(pieces[0], tuple):
        return pieces[0]
    out: list[Any] = []
    for piece in pieces:
        if not isinstance(piece, tuple):
            out.append(piece)
        else:
            frame, ts, linktype, data = piece
            done: list[Piece] = []
            main.general(frame, ts, linktype, data, done)
            out.append(_text(done, render))
    if render is None:
        return b"".join(out)
    return _join_rendered(out, render)


def _join_rendered(texts: list[str], render: Render) -> str:
    """Rendered texts of consecutive runs as one: CSV lines concatenate; table cells
    (`TableCells`) are joined with its row separator."""
    sep = getattr(render, "separator", "")
    return sep.join(t for t in texts if t) if sep else "".join(texts)
