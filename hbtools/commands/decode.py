"""``hbtool decode``: read captures, print every cluster message (or statistics).

Only option parsing and error reporting live here; the work is in ``dissectors``.
Every problem with an input file is one line on stderr and exit status 2, never a
traceback, and the other files are still decoded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn, TextIO, TypeVar

import click

from hbtools.commands import EXIT_USAGE, load_corosync_keys, load_keys
from hbtools.dissectors.capture import CaptureError
from hbtools.dissectors.detect import DEFAULT_PORTS, Detector, parse_port
from hbtools.dissectors.filters import FilterError, parse_filter
from hbtools.dissectors.output import FORMATS, TIME_FORMATS, render_stats, writer_for
from hbtools.dissectors.pipeline import Options, PcapWriter, RowBudget, is_live, limited, tee_pcap
from hbtools.dissectors.records import Record
from hbtools.dissectors.stats import Stats
from hbtools.usecases import decode as uc

log = logging.getLogger("hbtools.decode")


def _err(message: str) -> None:
    click.echo(f"hbtool decode: {message}", err=True)


def _fail(message: str) -> NoReturn:
    _err(message)
    sys.exit(EXIT_USAGE)


def _load_keys(path: str) -> object:
    return load_keys(path, _fail, _err)


def _load_corosync_keys(paths: tuple[str, ...]) -> object:
    return load_corosync_keys(paths, _fail)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="Rows as a table, JSON lines or CSV.")
@click.option("-a", "--authkeys", type=str, default=None,
              help="Heartbeat authkeys file: check every signature (auth ok/bad).")
@click.option("--corosync-authkey", "corosync_authkeys", multiple=True,
              type=click.Path(dir_okay=False), metavar="FILE",
              help="Corosync /etc/corosync/authkey: decrypt and authenticate knet (auth "
                   "ok/bad); repeat for several keys (a key change).")
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help="Keep rows matching EXPR, the language of fault rules (hbtools/match.py): "
                   "'type=status node=node1', 'st=up,active', 'seq>10 or type=NS_rexmit', "
                   "'ip.src=198.18.0.0/24', 'udp.port=694', 'not proto=heartbeat'. Names: "
                   "proto, type, node, ip, ip.src, ip.dst, port, sport, dport, auth, error, "
                   "frame, any Heartbeat field, totem.NAME, knet.NAME, arp.NAME (proto=arp: ARP "
                   "rows), field.NAME; an unknown "
                   "name is an error. Several --filter: all must hold.")
@click.option("-p", "--port", "ports", multiple=True, metavar="PORT[=PROTO]",
              help="Cluster ports, replacing 694=heartbeat 5404,5405=corosync. PROTO: "
                   "heartbeat, totem, knet, corosync (totem or knet by content), auto "
                   "(default: by content).")
@click.option("--no-heuristics", is_flag=True,
              help="Only the cluster ports: do not look for the protocols on other ports.")
@click.option("-s", "--stats", is_flag=True,
              help="Print per-node and per-ring statistics instead of the rows.")
@click.option("--rows", is_flag=True, help="With --stats: print the rows too, then the stats.")
@click.option("--warntime", type=click.IntRange(min=1), default=None, metavar="MS",
              help="Warntime for late heartbeats in --stats (default: half the deadtime "
                   "each node announces in dt).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal); never when "
                   "the rows go to that same terminal.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=None, metavar="N",
              help="Worker processes for reading a file without --filter/--stats, in "
                   "every format (default: one per CPU; 1 decodes in this process).")
@click.option("-c", "--count", "max_rows", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after N rows (after --filter), as tshark -c; a live pipe is left too.")
@click.option("-w", "--write", "write_pcap", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Also write the packets of the rows shown as a pcap file.")
@click.option("-t", "--time-format", type=click.Choice(TIME_FORMATS), default="ud",
              show_default=True,
              help="Table time as tshark -t: a/ad local time (with date), u/ud UTC, e epoch, "
                   "r since the first row, d since the previous one.")
@click.option("-V", "--detail", is_flag=True,
              help="Every field of every row as a tree (tshark -V); with -c 1 or "
                   "--filter frame=N for one packet.")
@click.option("-x", "--hex", "hex_bytes", is_flag=True,
              help="The UDP payload of every row in hex and ASCII (tshark -x).")
@click.option("--plot", "plot_png", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="Draw one lane per node over time into FILE.png (heartbeats, late ones, gaps "
                   "past deadtime, status/generation changes, retransmission requests, "
                   "gratuitous ARPs, ring changes, token rotation) instead of printing rows.")
@click.option("--codec-only", is_flag=True, hidden=True,
              help="Decode through the codecs only, without the fast paths (for checks).")
def decode(
    captures: tuple[str, ...],
    fmt: str,
    authkeys: str | None,
    corosync_authkeys: tuple[str, ...],
    filters: tuple[str, ...],
    ports: tuple[str, ...],
    no_heuristics: bool,
    stats: bool,
    rows: bool,
    warntime: int | None,
    progress: bool | None,
    jobs: int | None,
    max_rows: int | None,
    write_pcap: str | None,
    time_format: str,
    detail: bool,
    hex_bytes: bool,
    plot_png: str | None,
    codec_only: bool,
) -> None:
    """Decode Heartbeat, Totem and kronosnet messages in pcap/pcapng captures.

    CAPTURE is a pcap or pcapng file, or - for standard input. Several captures are read
    one after the other. Malformed messages are rows with an error; a file that is not a
    readable capture is reported on stderr (exit status 2) and the others still run.

    \b
    Examples:
      hbtool decode capture.pcap --authkeys authkeys
      hbtool decode -f json capture.pcapng --filter 'type=status node=node1'
      tcpdump -w - -i eth0 udp | hbtool decode -
      hbtool decode --stats capture.pcap
    """
    try:
        port_table = [parse_port(p) for p in ports] if ports else list(DEFAULT_PORTS.items())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--port") from None
    try:
        flt = parse_filter(filters)
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from None
    keys = _load_keys(authkeys) if authkeys else None
    corosync_keys = _load_corosync_keys(corosync_authkeys) if corosync_authkeys else None
    options = Options(
        detector=Detector(port_table, heuristics=not no_heuristics),
        keys=keys,
        corosync_keys=corosync_keys,
        filter=flt,
        fast=not codec_only,
    )
    if plot_png is not None:
        _plot(captures, plot_png, options, warntime)
    show_progress = progress_wanted(progress, sys.stdout, sys.stderr)
    print_rows = rows or not stats
    summary = Stats(warntime_ms=warntime) if stats else None
    out = sys.stdout
    live = any(is_live(path) for path in captures)
    several = len(captures) > 1
    writer = writer_for(fmt, out, show_file=several, live=live, time_format=time_format,
                        detail=detail, hex_bytes=hex_bytes) if print_rows else None
    status = 0
    hot = (uc.hot_path_applies(fmt, options, summary, time_format) and not live
           and max_rows is None
           and write_pcap is None and not several and not detail and not hex_bytes)
    log.debug("decode %d capture(s): %s path, format %s, live %s, filter %r", len(captures),
              "hot" if hot else "general", fmt, live, str(flt))
    pcap_out = None
    if write_pcap is not None:
        try:
            pcap_out = PcapWriter(write_pcap)
        except CaptureError as exc:
            _err(str(exc))
            sys.exit(EXIT_USAGE)
    budget = RowBudget(max_rows)
    failed = 0
    try:
        for path in captures:
            try:
                if hot and writer is not None and fmt != "json":
                    for text in _text_blocks(path, options, show_progress, jobs, fmt,
                                             time_format):
                        writer.write_text(text)
                    continue
                if hot:
                    out.flush()
                    for block in _json_blocks(path, options, show_progress, jobs):
                        out.buffer.write(block)
                    out.buffer.flush()
                    continue
                if budget.spent:
                    break
                records = _records(path, options, show_progress, summary)
                records = tee_pcap(limited(records, budget), pcap_out)
                if writer is not None:
                    writer.write(records)
                else:
                    for _ in records:
                        pass
            except CaptureError as exc:
                if writer is not None:
                    writer.out.flush()
                _err(str(exc))
                status = EXIT_USAGE
                failed += 1
        if writer is not None:
            # nothing readable at all: the error lines are the whole answer
            writer.close(empty_note=failed < len(captures))
        if pcap_out is not None:
            pcap_out.close()
        if summary is not None:
            if writer is not None and fmt != "json":
                out.write("\n")
            out.write(render_stats(summary.to_dict(), fmt))
            out.flush()
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(0)
    sys.exit(status)


def progress_wanted(asked: bool | None, stdout: TextIO, stderr: TextIO) -> bool:
    """Whether to draw the progress bar (on stderr).

    As tshark users expect, nothing is drawn over the rows: when stdout and stderr are the
    same terminal the bar's carriage returns would garble the table, so there is no bar even
    with ``--progress``. Otherwise the default is a bar when stderr is a terminal (``decode
    big.pcap > rows.txt`` shows its progress; ``2>log`` does not fill the log with it).
    """
    if _same_terminal(stdout, stderr):
        return False
    return _isatty(stderr) if asked is None else asked


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _same_terminal(a: TextIO, b: TextIO) -> bool:
    if not (_isatty(a) and _isatty(b)):
        return False
    try:
        sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (AttributeError, ValueError, OSError):
        return True  # terminals we cannot tell apart: assume the worst, draw nothing
    return (sa.st_rdev, sa.st_ino) == (sb.st_rdev, sb.st_ino)


def _plot(captures: tuple[str, ...], png: str, options: Options, warntime: int | None) -> None:
    """``--plot``: the work is in hbtools.decodeplot; this prints its one-line outcome."""
    from hbtools.decodeplot import plot_captures
    from hbtools.plot import PlotError

    try:
        result = plot_captures(captures, png, options, warntime_ms=warntime)
    except (CaptureError, PlotError) as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    lanes = ", ".join(result.rendered.lanes) or "none"
    click.echo(f"plot written: {png} ({result.rendered.width}x{result.rendered.height} px, "
               f"{result.records} messages, lanes: {lanes})")
    sys.exit(0)


def _records(path: str, options: Options, show_progress: bool, summary: Stats | None
             ) -> Iterator[Record]:
    """Rows of one capture (`hbtools.usecases.decode.rows`), with a progress bar when asked."""
    return _with_progress(path, show_progress,
                          lambda src, tick: uc.rows(src, options, summary, progress=tick))


def _json_blocks(path: str, options: Options, show_progress: bool, jobs: int | None
                 ) -> Iterator[bytes]:
    """The JSON hot path (`hbtools.usecases.decode.json_blocks`), with a progress bar."""
    return _with_progress(path, show_progress,
                          lambda src, tick: uc.json_blocks(src, options, jobs, progress=tick))


def _text_blocks(path: str, options: Options, show_progress: bool, jobs: int | None, fmt: str,
                 time_format: str) -> Iterator[str]:
    """The table/CSV hot path (`hbtools.usecases.decode.text_blocks`), with a progress bar."""
    return _with_progress(path, show_progress, lambda src, tick: uc.text_blocks(
        src, options, fmt, time_format, jobs, progress=tick))


_T = TypeVar("_T")


def _with_progress(path: str, show_progress: bool,
                   run: Callable[[uc.Source, Callable[[int], None] | None], Iterator[_T]]
                   ) -> Iterator[_T]:
    source = uc.open_source(path)
    if show_progress and source.size:
        with click.progressbar(length=source.size, label=os.path.basename(source.name),
                               file=_stderr()) as bar:
            yield from run(source, bar.update)
    else:
        yield from run(source, None)


def _stderr() -> TextIO:
    return sys.stderr


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the exit flush stays silent."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
