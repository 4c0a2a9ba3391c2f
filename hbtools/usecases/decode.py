"""Decode a capture: the one entry point `hbtool decode`, tests and notebooks share.

Two paths give the same text: the general one (`dissectors.pipeline`: records, filters,
statistics, any output format) and the JSON hot path (`dissectors.hotpath`: JSON lines
straight from the capture buffer, in worker processes). Which one runs is decided here,
once (`hot_path_applies`), not in the command; the command only parses options, opens
a progress bar and prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from hbtools.dissectors.hotpath import default_jobs, json_lines, row_blocks
from hbtools.dissectors.output import STATELESS_TIMES, CsvRows, TableCells
from hbtools.dissectors.pipeline import Options, decode_stream, filtered, open_input
from hbtools.dissectors.records import Record
from hbtools.dissectors.stats import Stats

__all__ = ["Options", "Source", "hot_path_applies", "json_blocks", "open_source", "records",
           "rows", "text_blocks"]

Progress = Callable[[int], None]


@dataclass
class Source:
    """An opened capture: its stream, the name shown for it, its size when known."""

    stream: BinaryIO
    name: str
    size: int | None

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def open_source(path: str) -> Source:
    """Open ``path`` (``-`` is stdin); CaptureError with the OS's reason if it cannot be."""
    return Source(*open_input(path))


def hot_path_applies(fmt: str, options: Options, stats: Stats | None,
                     time_format: str = "ud") -> bool:
    """Rows without a filter, statistics, ``--codec-only`` or Corosync keys (packets are
    opened on the codec side): the hot path's job, in every format (table and CSV with a
    time format that needs no row before it)."""
    return (fmt in ("json", "table", "csv") and not options.filter and stats is None
            and options.fast and options.corosync_keys is None
            and (fmt != "table" or time_format in STATELESS_TIMES))


def rows(source: Source, options: Options, stats: Stats | None = None,
         progress: Progress | None = None) -> Iterator[Record]:
    """The records of one capture that pass the filter, each counted into `stats` too.

    Closes the source at the end. Raises CaptureError after the records before the problem.
    """
    try:
        out = filtered(decode_stream(source.stream, source.name, options, progress=progress),
                       options.filter)
        if stats is None:
            yield from out
            return
        add = stats.add
        for record in out:
            add(record)
            yield record
    finally:
        source.close()


def json_blocks(source: Source, options: Options, jobs: int | None = None,
                progress: Progress | None = None) -> Iterator[bytes]:
    """JSON lines of one capture as ASCII blocks, from `jobs` workers (None or 0: one per
    CPU; 1: this process). Closes the source at the end."""
    workers = default_jobs() if not jobs else jobs
    try:
        yield from json_lines(source.stream, source.name, options.detector, options.keys,
                              workers, progress=progress)
    finally:
        source.close()


def text_blocks(source: Source, options: Options, fmt: str, time_format: str = "ud",
                jobs: int | None = None, progress: Progress | None = None) -> Iterator[str]:
    """The hot path for the table (cells per block: `dissectors.output.cells_of`, padded by
    `TableWriter.write_cells`) and CSV (lines as `CsvWriter` writes them). Closes the source."""
    workers = default_jobs() if not jobs else jobs
    render = TableCells(time_format) if fmt == "table" else CsvRows()
    try:
        yield from row_blocks(source.stream, source.name, options.detector, options.keys,
                              workers, render, progress=progress)
    finally:
        source.close()


def records(path: str, options: Options | None = None) -> Iterator[Record]:
    """Every record of the capture at `path` (the general path), for a Python caller."""
    return rows(open_source(path), options or Options())
