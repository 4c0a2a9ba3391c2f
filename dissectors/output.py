"""Writers: rows as a table, JSON lines or CSV; the statistics as tables or JSON.

Every writer streams: it holds at most one block of rows, so a capture of any size
prints in flat memory. The table is drawn by tabulate block by block, with column widths
carried from block to block so the columns stay aligned as long as values fit.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from tabulate import tabulate

from dissectors.records import JSON_KEYS, Record
from hbtools import escape

__all__ = ["CsvWriter", "JsonWriter", "TableWriter", "Writer", "render_stats", "writer_for"]

FORMATS = ("table", "json", "csv")
_BLOCK = 500


class Writer:
    """Base: collects rows and writes them in blocks."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, records: Iterable[Record]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        self.out.flush()


class JsonWriter(Writer):
    """One JSON object per line with exactly the published keys."""

    def write(self, records: Iterable[Record]) -> int:
        out = self.out
        lines: list[str] = []
        count = 0
        try:
            for record in records:
                lines.append(escape.json_text(record.to_json()))
                if len(lines) >= 2048:
                    out.write("\n".join(lines) + "\n")
                    count += len(lines)
                    lines = []
        finally:
            # Rows decoded before a capture error are still printed.
            if lines:
                out.write("\n".join(lines) + "\n")
                count += len(lines)
        return count


class CsvWriter(Writer):
    """The JSON keys as columns; ``fields`` is its JSON text in one cell."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(JSON_KEYS)

    def write(self, records: Iterable[Record]) -> int:
        count = 0
        writerow = self.csv.writerow
        for record in records:
            writerow((
                record.frame, repr(record.time), record.src, record.dst, record.sport,
                record.dport, record.proto, _cell(record.type), _cell(record.node),
                escape.json_text(record.fields_json if record.fields_json is not None
                                 else json.dumps(record.fields or {})),
                record.auth, _cell(record.error),
            ))
            count += 1
        return count


def _cell(value: Any) -> str:
    """A cell that may hold wire text: escaped (`hbtools.escape`), so ESC/BEL, a newline or a
    byte that was not UTF-8 cannot reach the terminal, split a row or crash a strict stdout."""
    return "" if value is None else escape.text(str(value))


def format_time(epoch: float) -> str:
    """UTC wall-clock time to the microsecond: captures come from other machines' clocks."""
    try:
        moment = _dt.datetime.fromtimestamp(epoch, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        return repr(epoch)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


TABLE_HEADERS = ("frame", "time (UTC)", "source", "destination", "proto", "type", "node",
                 "seq", "status", "auth", "error")


def _table_row(record: Record, show_file: bool) -> list[str]:
    fields = record.get_fields() if record.error is None or record.fields else {}
    seq: Any = None
    status: Any = None
    if record.proto == "heartbeat":
        seq = fields.get("seq")
        status = fields.get("st")
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
    frame = f"{record.file}:{record.frame}" if show_file else str(record.frame)
    return [
        frame,
        format_time(record.time),
        f"{record.src}:{record.sport}",
        f"{record.dst}:{record.dport}",
        record.proto,
        _cell(record.type),
        _cell(record.node),
        _cell(seq),
        _cell(status),
        record.auth,
        _cell(record.error),
    ]


class TableWriter(Writer):
    """tabulate's ``simple`` format, block by block, widths kept across blocks."""

    def __init__(self, out: TextIO, show_file: bool = False) -> None:
        super().__init__(out)
        self.show_file = show_file
        self.widths = [len(h) for h in TABLE_HEADERS]
        self.started = False

    def write(self, records: Iterable[Record]) -> int:
        block: list[list[str]] = []
        count = 0
        try:
            for record in records:
                block.append(_table_row(record, self.show_file))
                count += 1
                if len(block) >= _BLOCK:
                    self._flush(block)
                    block = []
        finally:
            if block:
                self._flush(block)
        return count

    def _flush(self, block: list[list[str]]) -> None:
        # A first row of spaces as wide as every column so far keeps the block aligned
        # with the ones before; it is dropped from the output.
        guard = [" " * w for w in self.widths]
        text = tabulate([guard, *block], headers=TABLE_HEADERS, tablefmt="simple",
                        disable_numparse=True)
        lines = text.split("\n")
        # lines: header, rule, guard, rows...
        self.widths = [len(part) for part in lines[1].split("  ")]
        keep = lines[:2] + lines[3:] if not self.started else lines[3:]
        self.started = True
        self.out.write("\n".join(line.rstrip() for line in keep) + "\n")

    def close(self) -> None:
        if not self.started:
            self.out.write("(no cluster messages)\n")
        super().close()


def writer_for(fmt: str, out: TextIO, show_file: bool = False) -> Writer:
    if fmt == "json":
        return JsonWriter(out)
    if fmt == "csv":
        return CsvWriter(out)
    return TableWriter(out, show_file)


# -- statistics ----------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


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
    ("generation_changes", "restart", lambda e: f"generation {e['old']:x} -> {e['new']:x}"),
    ("gaps_over_deadtime", "over deadtime", _over_deadtime),
    ("late_heartbeats", "late", lambda e: f"{e['interval_ms']} ms (warntime {e['warntime_ms']} ms)"),
    ("seq_gaps", "seq gap", lambda e: f"{e['missing']} missing after seq {e['after']:x}"),
    ("rexmit_requests", "rexmit request",
     lambda e: f"to {e['dest']}: {e['firstseq']}..{e['lastseq']}"),
    ("naks", "nak", lambda e: f"to {e['dest']}: {e['firstseq']} ({e['info']})"),
)


def render_stats(summary: dict[str, Any], fmt: str) -> str:
    """The statistics as text tables, or as one JSON line ``{"stats": ...}``."""
    if fmt == "json":
        return escape.json_text(json.dumps({"stats": summary})) + "\n"
    summary = escape.deep(summary)  # node names, types and event details are wire text
    parts: list[str] = []
    parts.append(
        f"{summary['records']} cluster messages "
        f"({', '.join(f'{k} {v}' for k, v in summary['by_proto'].items()) or 'none'}), "
        f"{sum(summary['errors'].values())} malformed; "
        f"from {_t(summary['first'])} to {_t(summary['last'])} UTC"
    )
    hb = summary["heartbeat"]["nodes"]
    if hb:
        rows = []
        for n in hb:
            iv = n["heartbeat_interval"]
            rows.append([
                n["node"], n["messages"], n["deadtime_ms"] if n["deadtime_ms"] is not None else "-",
                iv["count"], _ms(iv["min"]), _ms(iv["median"]), _ms(iv["p99"]), _ms(iv["max"]),
                n["late_heartbeats"]["count"], n["gaps_over_deadtime"]["count"],
                f"{n['seq_gaps']['count']} ({n['missing_seqs']})", n["late_seqs"], n["repeated_seqs"],
                n["rexmit_requests"]["count"], n["naks"]["count"],
                n["generation_changes"]["count"], n["auth_failures"], n["errors"],
            ])
        parts.append("\nHeartbeat nodes (intervals between status messages, ms)\n" + tabulate(
            rows,
            headers=["node", "msgs", "deadtime", "beats", "min", "median", "p99", "max",
                     "late", ">deadtime", "seq gaps (still missing)", "late seqs", "repeats", "rexmit req",
                     "naks", "restarts", "auth bad", "errors"],
            tablefmt="simple", disable_numparse=True))
        type_rows = [[n["node"], _types(n["by_type"])] for n in hb]
        parts.append("\nHeartbeat messages by type\n" + tabulate(
            type_rows, headers=["node", "types"], tablefmt="simple"))
        events = []
        for n in hb:
            for key, label, describe in _HEARTBEAT_EVENTS:
                for e in n[key]["events"]:
                    events.append([_t(e["time"]), n["node"], label, describe(e)])
        if events:
            events.sort(key=lambda row: row[0])
            parts.append("\nHeartbeat events\n" + tabulate(
                events, headers=["time (UTC)", "node", "event", "detail"], tablefmt="simple",
                disable_numparse=True))
    totem = summary["totem"]
    if totem["rings"]:
        rows = []
        for r in totem["rings"]:
            rot = r["token_rotation"]
            rows.append([
                r["ring"], _t(r["first"]), _t(r["last"]), r["messages"],
                " ".join(str(m) for m in r["members"]) if r["members"] is not None else "?",
                rot["count"], _ms(rot["min"]), _ms(rot["median"]), _ms(rot["p99"]),
                _ms(rot["max"]), r["token_repeats"],
                f"{r['rtr_list_entries']} (max {r['rtr_list_max']})",
            ])
        parts.append("\nTotem rings (token rotation, ms)\n" + tabulate(
            rows,
            headers=["ring", "first seen", "last seen", "msgs", "members", "rotations", "min",
                     "median", "p99", "max", "token repeats", "rtr entries"],
            tablefmt="simple", disable_numparse=True))
    if totem["nodes"]:
        rows = [[n["nodeid"], n["messages"], " ".join(n["addresses"]), _types(n["by_type"]),
                 _types(n["knet_by_type"]) or "-", " ".join(n["rings"]), n["memb_joins"],
                 n["errors"]]
                for n in totem["nodes"]]
        parts.append("\nTotem nodes\n" + tabulate(
            rows, headers=["node", "msgs", "addresses", "totem types", "knet types", "rings",
                           "joins", "errors"], tablefmt="simple", disable_numparse=True))
    return "\n".join(parts) + "\n"
