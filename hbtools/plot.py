"""Timeline pictures: one lane per node over time, the same look for every producer.

``hbtool decode --plot`` (what a capture shows) and the chaos engine (what a run did) both
build a :class:`Timeline` and hand it to :func:`render`, so a person comparing a decoded
capture with a chaos run reads the same marks in the same places. The model is small on
purpose: lanes (nodes), point events of a known kind, intervals a lane holds something
(a VIP), shaded fault windows (as Jepsen shades nemesis time) and optional numeric series
(token rotation time) drawn in a panel under the lanes.

The picture size is a pure function of the model (:func:`figure_size`), so tests and
callers know the PNG's pixel size before drawing. matplotlib is imported only inside
:func:`render`, with the Agg backend, so importing this module costs nothing and works
without a display.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "KINDS",
    "Event",
    "EventKind",
    "Interval",
    "PlotError",
    "Rendered",
    "Series",
    "Timeline",
    "Window",
    "figure_size",
    "lane_label",
    "lanes_of",
    "render",
]


class PlotError(ValueError):
    """A timeline that cannot be drawn (unknown kind, unknown lane) or a path not writable."""


@dataclass(frozen=True)
class EventKind:
    """How one kind of point event looks: marker, colour, place inside the lane, legend text."""

    name: str
    marker: str
    color: str
    #: Vertical place inside the lane, -0.4 (bottom) .. +0.4 (top): kinds do not hide each other.
    offset: float
    size: float
    legend: str


#: Every kind of point event a timeline may carry, declared once for all producers.
KINDS: dict[str, EventKind] = {k.name: k for k in (
    EventKind("heartbeat", "|", "#4c72b0", 0.0, 40, "heartbeat seen"),
    EventKind("message", ".", "#8c8c8c", -0.15, 20, "other message"),
    EventKind("late", "v", "#dd8452", 0.28, 40, "late heartbeat (over warntime)"),
    EventKind("gap", "X", "#c44e52", 0.28, 60, "gap past deadtime"),
    EventKind("seq_gap", "x", "#937860", -0.28, 30, "sequence numbers missing"),
    EventKind("status", "D", "#55a868", -0.28, 40, "status change"),
    EventKind("generation", "*", "#8172b3", 0.28, 90, "generation change (restart)"),
    EventKind("rexmit", "<", "#da8bc3", -0.28, 40, "retransmission request"),
    EventKind("garp", "^", "#000000", -0.35, 60, "gratuitous ARP"),
    EventKind("ring", "s", "#64b5cd", 0.28, 50, "ring change"),
    EventKind("crash", "P", "#c44e52", 0.0, 90, "crash / stop"),
    EventKind("note", "o", "#ccb974", -0.15, 30, "note"),
)}


@dataclass(frozen=True)
class Event:
    """Something seen at one moment on one lane; ``label`` is an optional short annotation."""

    time: float
    lane: str
    kind: str
    label: str = ""


@dataclass(frozen=True)
class Interval:
    """A lane holds something from ``start`` to ``end`` (e.g. owns the VIP): a bar behind it."""

    lane: str
    start: float
    end: float
    label: str = "owner"
    color: str = "#55a868"


@dataclass(frozen=True)
class Window:
    """A shaded span over all lanes: fault (nemesis) time, or any window worth seeing."""

    start: float
    end: float
    label: str = "fault"
    color: str = "#c44e52"


@dataclass(frozen=True)
class Series:
    """Numeric values over time for the panel under the lanes (e.g. token rotation ms)."""

    name: str
    unit: str
    points: tuple[tuple[float, float], ...]


@dataclass
class Timeline:
    """What to draw. Times are seconds (epoch or relative); ``origin`` is time zero on the axis.

    Lanes appear top to bottom in the order given; an event on a lane not listed is an error
    (a silently added lane would hide a producer's bug about which nodes exist).
    """

    lanes: list[str]
    events: list[Event] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    title: str = ""
    origin: float | None = None

    def start(self) -> float:
        """Time zero of the axis: ``origin``, else the earliest time anything happens."""
        if self.origin is not None:
            return self.origin
        times = [e.time for e in self.events] + [i.start for i in self.intervals]
        times += [w.start for w in self.windows] + [t for s in self.series for t, _ in s.points]
        return min(times) if times else 0.0


@dataclass(frozen=True)
class Rendered:
    """What :func:`render` drew, read back from the figure (not from the model)."""

    path: str
    width: int
    height: int
    #: Lane labels as drawn on the y axis, top to bottom.
    lanes: tuple[str, ...]
    #: Points drawn per event kind.
    kinds: dict[str, int]
    intervals: int
    windows: int
    series: tuple[str, ...]


DPI = 100
WIDTH_PX = 1400
_HEADER_PX = 110  # title, legend
_FOOTER_PX = 70  # time axis label
_LANE_PX = 56
_SERIES_PX = 170
_MAX_LABEL = 24
_WINDOW_ALPHA = 0.15  # fault windows and intervals: the same alpha in the picture and legend
_INTERVAL_ALPHA = 0.22


def figure_size(lanes: int, with_series: bool = False) -> tuple[int, int]:
    """Pixel size of the PNG for ``lanes`` lanes (and the series panel): known before drawing."""
    height = _HEADER_PX + _FOOTER_PX + _LANE_PX * max(1, lanes)
    if with_series:
        height += _SERIES_PX
    return WIDTH_PX, height


def lane_label(name: str, limit: int = _MAX_LABEL) -> str:
    """A lane name safe to draw: wire text is escaped (control bytes as \\xNN), ``$`` does not
    start mathtext, and an overlong name is cut with an ellipsis."""
    out = []
    for ch in name:
        if ch == "$":
            out.append(r"\$")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check(timeline: Timeline) -> None:
    lanes = set(timeline.lanes)
    if len(lanes) != len(timeline.lanes):
        raise PlotError("lanes: a name is listed twice")
    for ev in timeline.events:
        if ev.kind not in KINDS:
            raise PlotError(f"event kind {ev.kind!r} unknown (known: {', '.join(KINDS)})")
        if ev.lane not in lanes:
            raise PlotError(f"event on lane {ev.lane!r}, which is not in the lanes")
    for iv in timeline.intervals:
        if iv.lane not in lanes:
            raise PlotError(f"interval on lane {iv.lane!r}, which is not in the lanes")


def _write_png(path: str, data: bytes) -> None:
    """Create or replace ``path`` without following a symlink planted at it (we may be root)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise PlotError(f"{path}: {exc.strerror}") from None
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def render(timeline: Timeline, path: str) -> Rendered:
    """Draw ``timeline`` as a PNG at ``path``; return what was drawn, read from the figure."""
    _check(timeline)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure registry to leak into

    with_series = bool(timeline.series)
    width, height = figure_size(len(timeline.lanes), with_series)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    lanes_px = _LANE_PX * max(1, len(timeline.lanes))
    series_px = _SERIES_PX if with_series else 0
    bottom_px = _FOOTER_PX + series_px
    left, right = 0.12, 0.98
    ax = fig.add_axes((left, bottom_px / height, right - left, (lanes_px - 6) / height))
    t0 = timeline.start()
    n = len(timeline.lanes)
    row = {name: n - 1 - i for i, name in enumerate(timeline.lanes)}  # first lane on top

    for w in timeline.windows:
        ax.axvspan(w.start - t0, w.end - t0, color=w.color, alpha=_WINDOW_ALPHA, lw=0)
    for iv in timeline.intervals:
        y = row[iv.lane]
        ax.broken_barh([(iv.start - t0, max(iv.end - iv.start, 1e-6))], (y - 0.42, 0.84),
                       facecolors=iv.color, alpha=_INTERVAL_ALPHA, lw=0)
    kinds: dict[str, int] = {}
    for name, kind in KINDS.items():
        xs = [e.time - t0 for e in timeline.events if e.kind == name]
        if not xs:
            continue
        ys = [row[e.lane] + kind.offset for e in timeline.events if e.kind == name]
        ax.scatter(xs, ys, marker=kind.marker, c=kind.color, s=kind.size, lw=1.2,
                   label=kind.legend, zorder=3)
        kinds[name] = len(xs)
    for ev in timeline.events:
        if ev.label:
            ax.annotate(lane_label(ev.label), (ev.time - t0, row[ev.lane] + KINDS[ev.kind].offset),
                        xytext=(3, 3), textcoords="offset points", fontsize=7, zorder=4)
    ax.set_yticks(range(n), [lane_label(name) for name in reversed(timeline.lanes)])
    ax.set_ylim(-0.5, max(n, 1) - 0.5)
    if not n:
        ax.text(0.5, 0.5, "nothing to draw: no node seen", transform=ax.transAxes, ha="center",
                va="center", color="#8c8c8c")
    for y in range(n - 1):
        ax.axhline(y + 0.5, color="#dddddd", lw=0.8)
    ax.grid(True, axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    from matplotlib.patches import Patch

    # One legend entry per label of the shaded spans, in the colour of its first span and
    # the alpha it is drawn with (windows first, then intervals).
    spans: list[tuple[Sequence[Window | Interval], float]] = [
        (timeline.windows, _WINDOW_ALPHA), (timeline.intervals, _INTERVAL_ALPHA)]
    for drawn_spans, alpha in spans:
        first_color: dict[str, str] = {}
        for span in drawn_spans:
            first_color.setdefault(span.label, span.color)
        for label, color in first_color.items():
            handles.append(Patch(color=color, alpha=alpha))
            labels.append(lane_label(label))
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(6, len(handles)), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 1 - 28 / height))
    if timeline.title:
        fig.suptitle(lane_label(timeline.title) if len(timeline.title) <= _MAX_LABEL
                     else timeline.title.replace("$", r"\$")[:200], y=1 - 4 / height, fontsize=11)
    axis_label = f"seconds since {_when(t0)}"
    if with_series:
        ax.tick_params(labelbottom=False)
        sax = fig.add_axes((left, _FOOTER_PX / height, right - left, (series_px - 16) / height),
                           sharex=ax)
        for s in timeline.series:
            pts = sorted(s.points)
            sax.plot([t - t0 for t, _ in pts], [v for _, v in pts], marker=".", ms=3, lw=0.8,
                     label=lane_label(f"{s.name} ({s.unit})", limit=60))
        sax.legend(fontsize=7, loc="upper right")
        sax.grid(True, alpha=0.3)
        sax.set_xlabel(axis_label)
    else:
        ax.set_xlabel(axis_label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    drawn = tuple(t.get_text() for t in reversed(ax.get_yticklabels()))
    got_w, got_h = (int(round(v)) for v in fig.get_size_inches() * DPI)
    _write_png(path, buf.getvalue())
    return Rendered(
        path=path, width=got_w, height=got_h, lanes=drawn, kinds=kinds,
        intervals=len(timeline.intervals), windows=len(timeline.windows),
        series=tuple(s.name for s in timeline.series),
    )


def _when(t0: float) -> str:
    """Time zero as people read it: a UTC timestamp when it looks like epoch seconds."""
    if t0 > 1e8:
        return _dt.datetime.fromtimestamp(t0, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return f"{t0:g} s"


def lanes_of(events: Iterable[Event], first: Sequence[str] = ()) -> list[str]:
    """Lane names in order of first appearance (``first`` ahead): a helper for producers."""
    out = list(dict.fromkeys(first))
    seen = set(out)
    for ev in events:
        if ev.lane not in seen:
            seen.add(ev.lane)
            out.append(ev.lane)
    return out
