"""Writers: rows as a table, JSON lines or CSV; the statistics as tables or JSON.

Every writer streams: it holds at most one block of rows, so a capture of any size
prints in flat memory. The table is drawn by tabulate block by block, with column widths
carried from block to block so the columns stay aligned as long as values fit.
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import io
import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from hbtools.dissectors.corosync_stats import render as render_corosync
from hbtools.dissectors.knet_links import render as render_links
from hbtools.dissectors.records import Record
from tabulate import tabulate

from hbtools import escape
from hbtools.corosync import describe as describe_corosync

__all__ = ["CsvWriter", "JsonWriter", "TableWriter", "Writer", "render_stats", "writer_for"]

FORMATS = ("table", "json", "csv")


class Writer:
    """Base: collects rows and writes them in blocks.

    ``live`` (input from a pipe, e.g. ``tcpdump -U -w - | hbtool decode -``): every row
    is written and flushed as soon as it is decoded, so it appears while the capture is
    still running; from a file, rows go out in blocks, which is what makes them fast.
    """

    block = 2048

    def __init__(self, out: TextIO, live: bool = False, show_file: bool = False) -> None:
        self.out = out
        self.live = live
        #: several captures read: every row says which file it came from
        self.show_file = show_file

    def write(self, records: Iterable[Record]) -> int:
        """Write every record; rows decoded before a capture error are still printed."""
        size = 1 if self.live else self.block
        block: list[Record] = []
        count = 0
        try:
            for record in records:
                block.append(record)
                if len(block) >= size:
                    self._write_block(block)
                    count += len(block)
                    block = []
                    if self.live:
                        self.out.flush()
        finally:
            if block:
                self._write_block(block)
                count += len(block)
        return count

    def _write_block(self, block: list[Record]) -> None:
        raise NotImplementedError

    def write_text(self, text: str) -> None:
        """A block the hot path rendered already (`CsvRows`; the table overrides this)."""
        self.out.write(text)

    def close(self, empty_note: bool = True) -> None:
        self.out.flush()


class JsonWriter(Writer):
    """One JSON object per line with exactly the published keys."""

    def _write_block(self, block: list[Record]) -> None:
        json_text = escape.json_text
        if self.show_file:
            lines = [json_text('{"file": ' + json.dumps(r.file) + ", " + r.to_json()[1:])
                     for r in block]
        else:
            lines = [json_text(r.to_json()) for r in block]
        self.out.write("\n".join(lines) + "\n")


class CsvWriter(Writer):
    """One column per row key and one per declared field (`csv_columns`), as spreadsheets
    and ``tshark -T fields -E separator=,`` users expect, instead of a JSON cell."""

    def __init__(self, out: TextIO, live: bool = False, show_file: bool = False) -> None:
        super().__init__(out, live, show_file)
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow((("file",) if show_file else ()) + csv_columns()[0])

    def _write_block(self, block: list[Record]) -> None:
        rows = [_csv_row(record) for record in block]
        if self.show_file:
            rows = [(record.file, *row) for record, row in zip(block, rows, strict=True)]
        self.csv.writerows(rows)


#: The row keys CSV starts with (``fields`` and ``signatures`` are spread or at the end).
CSV_KEYS = ("frame", "time", "src", "dst", "sport", "dport", "proto", "type", "node", "auth",
            "error")
#: The last columns: signatures as JSON text, and the fields no column is declared for.
CSV_TAIL = ("signatures", "fields.other")


@functools.cache
def csv_columns() -> tuple[tuple[str, ...], dict[str, dict[str, int]]]:
    """CSV's header, and per protocol the column of each top-level field name.

    Columns are named as filters name the fields, with the protocol in front so Heartbeat's
    ``src`` (a node name) is ``heartbeat.src`` beside the row's ``src`` (an address):
    ``heartbeat.NAME`` for the field table (`hbtools.fields`), ``totem.NAME`` and
    ``knet.NAME`` for the codecs' layouts (the Totem inside a knet packet fills the
    ``totem.*`` columns), ``corosync.NAME`` for the mcast summary, ``arp.NAME``. A value
    that is an object or a list is its JSON text; a field outside the tables goes into
    ``fields.other`` (a JSON object), so nothing decoded is lost.
    """
    from hbtools import arp, knet, totem
    from hbtools.corosync import SUMMARY_KEYS
    from hbtools.fields import FIELDS

    def top(layouts: Any) -> list[str]:
        names = ["type_name"]
        for layout in layouts.values():
            names += [path for path, _f in layout.walk() if "." not in path]
        return list(dict.fromkeys(names))

    groups = {"heartbeat": list(FIELDS), "totem": [*top(totem.LAYOUTS), "endian", "totempg"],
              "knet": [n for n in top(knet.LAYOUTS) if n != "totem"]
              + ["encrypted", "size", "totem_error", "crypto"],
              "corosync": list(SUMMARY_KEYS), "arp": list(arp.FIELDS)}
    header = list(CSV_KEYS)
    index: dict[str, dict[str, int]] = {}
    for proto, names in groups.items():
        index[proto] = {}
        for name in dict.fromkeys(names):
            index[proto][name] = len(header)
            header.append(f"{proto}.{name}")
    header += CSV_TAIL
    return tuple(header), index


def _csv_value(value: Any) -> str:
    """A field's cell: text escaped, numbers and booleans as JSON writes them, objects and
    lists as JSON text. By type first: json.dumps of a plain int was most of CSV's time."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str:
        return escape.text(value)
    if kind is bool:
        return "true" if value else "false"
    return escape.json_text(json.dumps(value))


def _csv_row(record: Record) -> list[Any]:
    header, index = csv_columns()
    row: list[Any] = [""] * len(header)
    row[:len(CSV_KEYS)] = (record.frame, repr(record.time), record.src, record.dst,
                           "" if record.sport is None else record.sport,
                           "" if record.dport is None else record.dport, record.proto,
                           _cell(record.type), _cell(record.node), record.auth,
                           _cell(record.error))
    fields = record.get_fields() if record.fields_json is not None or record.fields else {}
    other: dict[str, Any] = {}
    proto = record.proto
    own = index.get(proto, {})
    for name, value in fields.items():
        if name == "corosync":
            _spread(value, index["corosync"], row, other, name)
        elif proto == "knet" and name == "totem" and isinstance(value, dict):
            _spread(value, index["totem"], row, other, name)
        else:
            column = own.get(name)
            if column is None:
                other[name] = value
            elif value is not None:
                row[column] = _csv_value(value)
    if record.signatures is not None:
        row[-2] = json.dumps(record.signatures)
    if other:
        row[-1] = escape.json_text(json.dumps(other))
    return row


def _spread(value: Any, columns: dict[str, int], row: list[Any], other: dict[str, Any],
            name: str) -> None:
    """A nested object's fields into their own columns (knet's Totem, the corosync summary)."""
    if not isinstance(value, dict):
        other[name] = value
        return
    for key, item in value.items():
        column = columns.get(key)
        if column is None:
            other.setdefault(name, {})[key] = item
        elif item is not None:
            row[column] = _csv_value(item)


def _cell(value: Any) -> str:
    """A cell that may hold wire text: escaped (`hbtools.escape`), so ESC/BEL, a newline or a
    byte that was not UTF-8 cannot reach the terminal, split a row or crash a strict stdout."""
    return "" if value is None else escape.text(str(value))


def format_time(epoch: float) -> str:
    """UTC wall-clock time to the microsecond: captures come from other machines' clocks.

    The seconds part is formatted once per second of capture (strftime was a fifth of
    the table's time); the microseconds are appended.
    """
    try:
        moment = _dt.datetime.fromtimestamp(epoch, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        return repr(epoch)
    return _second(moment.replace(microsecond=0)) + f".{moment.microsecond:06d}"


@functools.lru_cache(maxsize=256)
def _second(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


#: ``-t`` as in tshark: a absolute local time, ad with the date, u/ud the same in UTC,
#: e epoch seconds, r seconds since the first row, d since the previous row.
TIME_FORMATS = ("ud", "u", "a", "ad", "e", "r", "d")
_TIME_HEADERS = {"ud": "time (UTC)", "u": "time (UTC)", "a": "time", "ad": "time",
                 "e": "epoch", "r": "relative", "d": "delta"}


class TimeFormat:
    """Renders row times for one ``-t`` mode; r and d keep the reference time."""

    def __init__(self, mode: str = "ud") -> None:
        if mode not in TIME_FORMATS:
            raise ValueError(f"time format {mode!r}: one of {', '.join(TIME_FORMATS)}")
        self.mode = mode
        self.header = _TIME_HEADERS[mode]
        #: after a time in running text: the zone, or what the number counts from
        self.suffix = {"ud": " UTC", "u": " UTC", "a": "", "ad": ""}.get(mode, f" ({self.header})")
        self.first: float | None = None
        self.previous: float | None = None

    def __call__(self, epoch: float) -> str:
        mode = self.mode
        if mode == "ud":
            return format_time(epoch)
        if mode == "u":
            return format_time(epoch)[11:]
        if mode in ("a", "ad"):
            try:
                moment = _dt.datetime.fromtimestamp(epoch)
            except (OverflowError, OSError, ValueError):
                return repr(epoch)
            text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
            return text if mode == "ad" else text[11:]
        if mode == "e":
            return f"{epoch:.6f}"
        if self.first is None:
            self.first = epoch
        base = self.first if mode == "r" else (self.previous if self.previous is not None
                                               else epoch)
        self.previous = epoch
        return f"{epoch - base:.6f}"


TABLE_HEADERS = ("frame", "time (UTC)", "source", "destination", "proto", "type", "node",
                 "seq", "status", "auth", "error")

#: Column widths a live table starts with (typical values fit, so rows arriving one by
#: one stay aligned): frame, time, source, destination, proto, type, node, seq, status.
LIVE_WIDTHS = (6, 26, 21, 21, 9, 13, 8, 8, 14, 4, 5)


def _table_row(record: Record, show_file: bool,
               time_text: Callable[[float], str] = format_time) -> list[str]:
    fields = record.get_fields() if record.error is None or record.fields else {}
    seq: Any = None
    status: Any = None
    if record.proto == "heartbeat":
        seq = fields.get("seq")
        status = fields.get("st")
    elif record.proto == "arp":
        status = ("gratuitous " if fields.get("gratuitous") else "") + str(fields.get("sender_mac"))
    else:
        inner = fields.get("totem") if record.proto == "knet" else fields
        if isinstance(inner, dict):
            seq = inner.get("seq")
            ring = inner.get("ring_id")
            if isinstance(ring, dict):
                rep = ring.get("rep")
                if isinstance(rep, dict):
                    rep = rep.get("nodeid")
                if isinstance(ring.get("seq"), int):
                    status = f"ring {rep}.{ring['seq']:x}"
            if record.proto == "knet" and inner.get("type_name"):
                status = f"{inner['type_name']} {status or ''}".strip()
        above = fields.get("corosync")
        if above:
            status = f"{status or ''} {describe_corosync(above)}".strip()
    frame = f"{record.file}:{record.frame}" if show_file else str(record.frame)
    return [
        frame,
        time_text(record.time),
        record.src if record.sport is None else f"{record.src}:{record.sport}",
        record.dst if record.dport is None else f"{record.dst}:{record.dport}",
        record.proto,
        _cell(record.type),
        _cell(record.node),
        _cell(seq),
        _cell(status),
        record.auth,
        _cell(record.error),
    ]


def table_cells(block: list[Record], show_file: bool, time: TimeFormat) -> list[list[str]]:
    """The table's cells of some rows, before padding: what a worker can do on its own."""
    time_text = time.__call__ if time.mode != "ud" else format_time
    return [_table_row(record, show_file, time_text) for record in block]


#: ``-t`` modes whose text depends on one row alone (r and d need the rows before it).
STATELESS_TIMES = ("ud", "u", "a", "ad", "e")
#: Between cells of a row, and between rows, when a block of cells crosses processes:
#: neither can be in a cell (`hbtools.escape` writes control characters as text).
_CELL, _ROW = "\x1f", "\x1e"


class TableCells:
    """A worker's renderer for the table: cells of a block as one string (`HotPath` rows)."""

    separator = _ROW

    def __init__(self, time_format: str = "ud") -> None:
        self.time = TimeFormat(time_format)

    def __call__(self, block: list[Record]) -> str:
        return _ROW.join(_CELL.join(row) for row in table_cells(block, False, self.time))


def cells_of(text: str) -> list[list[str]]:
    """`TableCells` text back into rows of cells (in the main process, which pads them)."""
    return [row.split(_CELL) for row in text.split(_ROW)] if text else []


class CsvRows:
    """A worker's renderer for CSV: the block's lines, exactly as `CsvWriter` writes them."""

    def __call__(self, block: list[Record]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([_csv_row(r) for r in block])
        return buf.getvalue()


class TableWriter(Writer):
    """Columns as tabulate's ``simple`` format draws them, block by block.

    Formatted here with plain string padding (tabulate costs more than the decoding):
    two spaces between columns, left-aligned, a dashed rule under the header. Widths
    only grow, carried from block to block, so the columns stay aligned as long as
    values fit; trailing spaces are stripped as tabulate's output was.
    """

    block = 500

    def __init__(self, out: TextIO, show_file: bool = False, live: bool = False,
                 time_format: str = "ud") -> None:
        super().__init__(out, live)
        self.show_file = show_file
        self.time = TimeFormat(time_format)
        self.headers = (TABLE_HEADERS[0], self.time.header, *TABLE_HEADERS[2:])
        self.widths = [len(h) for h in self.headers]
        if live:
            self.widths = [max(w, m) for w, m in zip(self.widths, LIVE_WIDTHS, strict=True)]
        self.started = False

    def _write_block(self, block: list[Record]) -> None:
        self.write_cells(table_cells(block, self.show_file, self.time))

    def write_text(self, text: str) -> None:
        self.write_cells(cells_of(text))

    def write_cells(self, rows: list[list[str]]) -> None:
        """Pad and write rows already cut into cells (`table_cells`, maybe in a worker)."""
        if not rows:
            return
        widths = self.widths
        for i, column in enumerate(zip(*rows, strict=True)):
            longest = max(map(len, column))
            if longest > widths[i]:
                widths[i] = longest
        lines: list[str] = []
        if not self.started:
            lines.append(_pad(self.headers, widths))
            lines.append("  ".join("-" * w for w in widths))
            self.started = True
        # one format call per row: the padding was a third of the table's time
        line = "  ".join(f"{{:<{w}}}" for w in widths).format
        lines.extend([line(*row).rstrip() for row in rows])
        self.out.write("\n".join(lines) + "\n")

    def close(self, empty_note: bool = True) -> None:
        if not self.started and empty_note:
            self.out.write("(no cluster messages)\n")
        super().close()


def _pad(cells: Iterable[str], widths: list[int]) -> str:
    return "  ".join([cell.ljust(w) for cell, w in zip(cells, widths, strict=True)]).rstrip()


def _shown(value: Any) -> str:
    """A value for the detail view: text escaped as every row is (`hbtools.escape`)."""
    if isinstance(value, str):
        return escape.text(value)
    return escape.text(json.dumps(value))


def _tree(value: Any, indent: int, lines: list[str]) -> None:
    """Nested fields one per line, indented like tshark -V; lists of scalars on one line."""
    pad = "    " * indent
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        name = f"[{key}]" if isinstance(key, int) else _shown(key) if not str(key).isprintable() \
            else str(key)
        nested = isinstance(item, dict) or (
            isinstance(item, list) and any(isinstance(x, dict | list) for x in item))
        if nested and item:
            lines.append(f"{pad}{name}:")
            _tree(item, indent + 1, lines)
        else:
            lines.append(f"{pad}{name}: {_shown(item)}")


def hexdump(data: bytes, indent: str = "    ") -> list[str]:
    """tshark -x style: offset, 16 bytes in hex, the printable ASCII beside them."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{indent}{off:04x}  {hexpart:<47}  {text}")
    return lines


class DetailWriter(Writer):
    """``-V`` (every field as a tree) and/or ``-x`` (the UDP payload in hex), row by row."""

    block = 64

    def __init__(self, out: TextIO, show_file: bool = False, live: bool = False,
                 time_format: str = "ud", fields: bool = True, hex_bytes: bool = False) -> None:
        super().__init__(out, live)
        self.show_file = show_file
        self.time = TimeFormat(time_format)
        self.fields = fields
        self.hex = hex_bytes

    def _write_block(self, block: list[Record]) -> None:
        lines: list[str] = []
        for r in block:
            where = f" ({r.file})" if self.show_file else ""
            lines.append(f"Frame {r.frame}{where}: {self.time(r.time)}{self.time.suffix}, "
                         f"{r.src}:{r.sport} -> {r.dst}:{r.dport}, {r.proto} "
                         f"{_shown(r.type) if r.type is not None else '-'} node "
                         f"{_shown(r.node) if r.node is not None else '-'}, auth {r.auth}")
            if r.error is not None:
                lines.append(f"    error: {_shown(r.error)}")
            if self.fields:
                fields = r.get_fields()
                if fields:
                    lines.append("    fields:")
                    _tree(fields, 2, lines)
                if r.signatures is not None:
                    lines.append("    signatures:")
                    _tree(r.signatures, 2, lines)
            if self.hex and r.payload is not None:
                lines.append(f"    UDP payload ({len(r.payload)} bytes):")
                lines.extend(hexdump(r.payload, "        "))
            lines.append("")
        self.out.write("\n".join(lines) + "\n")


def writer_for(fmt: str, out: TextIO, show_file: bool = False, live: bool = False,
               time_format: str = "ud", detail: bool = False, hex_bytes: bool = False) -> Writer:
    if detail or hex_bytes:
        return DetailWriter(out, show_file, live, time_format, fields=detail, hex_bytes=hex_bytes)
    if fmt == "json":
        return JsonWriter(out, live, show_file)
    if fmt == "csv":
        return CsvWriter(out, live, show_file)
    return TableWriter(out, show_file, live, time_format)


# -- statistics ----------------------------------------------------------------------


def _failover_rows(failovers: list[dict[str, Any]]) -> list[list[str]]:
    """Each failover as its steps, one row each, with the time since the step before."""
    rows = []
    for f in failovers:
        rows.append([_t(f["last_heartbeat"]), f["node"], "last heartbeat", ""])
        if f["declared_dead"] is not None:
            rows.append([_t(f["declared_dead"]), f["node"], "declared dead",
                         f"by {f['declared_by']} ({f['how']}), {_ms(f['dead_after_ms'])} ms "
                         "after the last heartbeat"])
        if f["garp"] is not None:
            after = (f"{_ms(f['garp_after_dead_ms'])} ms after declared dead, "
                     if f["garp_after_dead_ms"] is not None else "")
            rows.append([_t(f["garp"]), f["node"], "first GARP",
                         f"{f['address']} from {f['new_owner']} ({f['new_owner_mac']}), {after}"
                         f"{_ms(f['takeover_ms'])} ms after the last heartbeat"])
    return rows


def _ms(value: float | None) -> str:
    """A value already in milliseconds (the stats' *_ms summaries)."""
    return "-" if value is None else f"{value:.1f}"


def _t(value: float | None) -> str:
    return "-" if value is None else format_time(value)


def _types(by_type: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in by_type.items())


def _over_deadtime(e: dict[str, Any]) -> str:
    tail = " (silent until the end of the capture)" if e.get("until_capture_end") else ""
    return f"{e['interval_ms']} ms without a heartbeat (deadtime {e['deadtime_ms']} ms){tail}"


#: Heartbeat stats event lists in the order the table shows them: key, label, text.
_HEARTBEAT_EVENTS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("status_changes", "status", lambda e: f"{e['old'] or '(first seen)'} -> {e['new']}"),
    ("generation_changes", "restart", lambda e: f"generation {e['old']} -> {e['new']}"),
    ("gaps_over_deadtime", "over deadtime", _over_deadtime),
    ("late_heartbeats", "late", lambda e: f"{e['interval_ms']} ms (warntime {e['warntime_ms']} ms)"),
    ("seq_gaps", "seq gap", lambda e: f"{e['missing']} missing after seq {e['after']}"),
    ("rexmit_requests", "rexmit request",
     lambda e: f"to {e['dest']}: {e['firstseq']}..{e['lastseq']}"),
    ("naks", "nak", lambda e: f"to {e['dest']}: {e['firstseq']} ({e['info']})"),
)


#: The text statistics fit a terminal of this many columns (issue 14).
STATS_WIDTH = 100
#: A free-text cell (types, details) wider than this is wrapped.
_WRAP = 34


def fit_table(rows: list[list[Any]], headers: list[str], **kwargs: Any) -> str:
    """tabulate's table, made to fit STATS_WIDTH columns.

    Long free-text cells are wrapped first; a table still too wide is cut into several
    with the same first (key) column, so every line fits and nothing is lost.
    """
    kwargs.setdefault("tablefmt", "simple")
    kwargs.setdefault("disable_numparse", True)
    text = tabulate(rows, headers=headers, **kwargs)
    if _width(text) <= STATS_WIDTH or not rows:
        return text
    widths = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    wrap = [_WRAP if w > _WRAP else None for w in widths]
    text = tabulate(rows, headers=headers, maxcolwidths=wrap, **kwargs)
    if _width(text) <= STATS_WIDTH:
        return text

    def part(cols: list[int]) -> str:
        return tabulate([[r[i] for i in cols] for r in rows], headers=[headers[i] for i in cols],
                        maxcolwidths=[wrap[i] for i in cols], **kwargs)

    parts: list[str] = []
    cols = [0]
    for i in range(1, len(headers)):
        if len(cols) > 1 and _width(part([*cols, i])) > STATS_WIDTH:
            parts.append(part(cols))
            cols = [0]
        cols.append(i)
    parts.append(part(cols))
    return "\n\n".join(parts)


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def csv_table(rows: list[list[Any]], headers: list[str], **_kwargs: Any) -> str:
    """The same table as CSV (``--stats -f csv``): one header line, one line per row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue().rstrip("\n")


def render_stats(summary: dict[str, Any], fmt: str) -> str:
    """The statistics as text tables (100 columns), CSV tables, or one JSON line.

    JSON carries the same units as the tables: intervals and rotations in ms
    (``*_ms``), times as epoch seconds.
    """
    if fmt == "json":
        return escape.json_text(json.dumps({"stats": summary})) + "\n"
    summary = escape.deep(summary)  # node names, types and event details are wire text
    table = csv_table if fmt == "csv" else fit_table
    parts: list[str] = []
    parts.append(
        f"{summary['records']} cluster messages "
        f"({', '.join(f'{k} {v}' for k, v in summary['by_proto'].items()) or 'none'}), "
        f"{sum(summary['errors'].values())} malformed;\n"
        f"from {_t(summary['first'])} to {_t(summary['last'])} UTC"
    )
    hb = summary["heartbeat"]["nodes"]
    if hb:
        rows = []
        for n in hb:
            iv = n["heartbeat_interval_ms"]
            rows.append([
                n["node"], n["messages"], n["deadtime_ms"] if n["deadtime_ms"] is not None else "-",
                iv["count"], _ms(iv["min"]), _ms(iv["median"]), _ms(iv["p99"]), _ms(iv["max"]),
                n["late_heartbeats"]["count"], n["gaps_over_deadtime"]["count"],
                f"{n['seq_gaps']['count']} ({n['missing_seqs']})", n["late_seqs"], n["repeated_seqs"],
                n["rexmit_requests"]["count"], n["naks"]["count"],
                n["generation_changes"]["count"], n["auth_failures"], n["errors"],
            ])
        parts.append("\nHeartbeat nodes (intervals between status messages, ms)\n" + table(
            rows,
            headers=["node", "msgs", "deadtime", "beats", "min", "median", "p99", "max",
                     "late", ">deadtime", "seq gaps (still missing)", "late seqs", "repeats", "rexmit req",
                     "naks", "restarts", "auth bad", "errors"],
            tablefmt="simple", disable_numparse=True))
        type_rows = [[n["node"], _types(n["by_type"])] for n in hb]
        parts.append("\nHeartbeat messages by type\n" + table(
            type_rows, headers=["node", "types"], tablefmt="simple"))
        events = []
        for n in hb:
            for key, label, describe in _HEARTBEAT_EVENTS:
                for e in n[key]["events"]:
                    events.append([_t(e["time"]), n["node"], label, describe(e)])
        if events:
            events.sort(key=lambda row: row[0])
            parts.append("\nHeartbeat events\n" + table(
                events, headers=["time (UTC)", "node", "event", "detail"], tablefmt="simple",
                disable_numparse=True))
    failovers = summary["heartbeat"].get("failovers")
    if failovers:
        parts.append("\nFailovers (last heartbeat -> declared dead -> first gratuitous ARP of the "
                     "new owner)\n" + table(_failover_rows(failovers),
                                            headers=["time (UTC)", "node", "step", "detail"]))
    totem = summary["totem"]
    if totem["rings"]:
        rows = []
        for r in totem["rings"]:
            rot = r["token_rotation_ms"]
            rows.append([
                r["ring"], _t(r["first"]), _t(r["last"]), r["messages"],
                " ".join(str(m) for m in r["members"]) if r["members"] is not None else "?",
                rot["count"], _ms(rot["min"]), _ms(rot["median"]), _ms(rot["p99"]),
                _ms(rot["max"]), r["token_repeats"],
                f"{r['rtr_list_entries']} (max {r['rtr_list_max']})",
            ])
        parts.append("\nTotem rings (token rotation, ms)\n" + table(
            rows,
            headers=["ring", "first seen", "last seen", "msgs", "members", "rotations", "min",
                     "median", "p99", "max", "token repeats", "rtr entries"],
            tablefmt="simple", disable_numparse=True))
    if totem["nodes"]:
        rows = [[n["nodeid"], n["messages"], " ".join(n["addresses"]), _types(n["by_type"]),
                 _types(n["knet_by_type"]) or "-", " ".join(n["rings"]), n["memb_joins"],
                 n["errors"]]
                for n in totem["nodes"]]
        parts.append("\nTotem nodes\n" + table(
            rows, headers=["node", "msgs", "addresses", "totem types", "knet types", "rings",
                           "joins", "errors"], tablefmt="simple", disable_numparse=True))
    if summary.get("corosync"):
        parts.append(render_corosync(summary["corosync"], tabulate, _t))
    if summary.get("knet_links"):
        parts.append(render_links(summary["knet_links"], tabulate, _t))
    return "\n".join(p for p in parts if p) + "\n"
