"""The shared timeline renderer (hbtools.plot): a real PNG of the announced size, lanes as given."""

from __future__ import annotations

import os
import struct

import pytest

from hbtools.plot import Event, Interval, PlotError, Series, Timeline, Window, lane_label, render


def png_size(path):
    """Width and height from the PNG's IHDR chunk, read by hand (PNG spec, section 11.2.2)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def sample(series=False):
    t = 1_700_000_000.0
    events = [Event(t + i, "node1", "heartbeat") for i in range(10)]
    events += [Event(t + i, "node2", "heartbeat") for i in range(5)]
    events += [Event(t + 9.5, "node2", "gap"), Event(t + 9.6, "node2", "garp", "vip"),
               Event(t + 3, "node3", "status", "active"), Event(t + 4, "node1", "late")]
    return Timeline(
        lanes=["node1", "node2", "node3"], events=events,
        intervals=[Interval("node1", t, t + 5, "VIP owner"), Interval("node2", t + 9.6, t + 10)],
        windows=[Window(t + 5, t + 9, "partition")],
        series=[Series("token rotation", "ms", ((t, 1.0), (t + 5, 3.0)))] if series else [],
        title="sample",
    )


def test_png_header_size_and_lanes(tmp_path):
    out = tmp_path / "t.png"
    info = render(sample(), str(out))
    # 3 lanes: 110 px header + 70 px axis + 3 x 56 px lanes = 348 px high, 1400 px wide.
    assert png_size(out) == (1400, 348)
    assert (info.width, info.height) == (1400, 348)
    assert info.lanes == ("node1", "node2", "node3")
    assert info.kinds == {"heartbeat": 15, "gap": 1, "garp": 1, "status": 1, "late": 1}
    assert info.windows == 1 and info.intervals == 2


def test_series_panel_adds_height(tmp_path):
    out = tmp_path / "s.png"
    info = render(sample(series=True), str(out))
    assert png_size(out) == (1400, 348 + 170)
    assert info.series == ("token rotation",)


def test_fault_window_is_shaded(tmp_path):
    """A pixel inside the partition window is tinted red."""
    from matplotlib import image

    out = tmp_path / "w.png"
    render(Timeline(lanes=["a"], windows=[Window(0, 10)], events=[Event(-10, "a", "heartbeat"),
                                                                  Event(20, "a", "heartbeat")]),
           str(out))
    img = image.imread(str(out))
    h, w = img.shape[:2]
    # The axes span x from 12% to 98% of the width; the window (0..10 of -10..20) is the middle third.
    mid = img[110 + 20, int(w * (0.12 + 0.86 * 0.5))]
    edge = img[110 + 20, int(w * (0.12 + 0.86 * 0.1))]
    assert mid[0] > mid[1] + 0.03 and mid[0] > mid[2] + 0.03  # reddish
    assert abs(edge[0] - edge[1]) < 0.02  # white/grey


def test_unknown_kind_and_lane_are_errors(tmp_path):
    with pytest.raises(PlotError, match="kind"):
        render(Timeline(lanes=["a"], events=[Event(0, "a", "bogus")]), str(tmp_path / "x.png"))
    with pytest.raises(PlotError, match="lane"):
        render(Timeline(lanes=["a"], events=[Event(0, "b", "heartbeat")]), str(tmp_path / "x.png"))
    assert not os.path.exists(tmp_path / "x.png")


def test_symlink_is_not_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    link = tmp_path / "p.png"
    link.symlink_to(target)
    with pytest.raises(PlotError):
        render(sample(), str(link))
    assert target.read_text() == "keep"


def test_wire_names_are_escaped():
    assert lane_label("a$b$") == r"a\$b\$"
    assert lane_label("n\x00\x1b") == "n\\x00\\x1b"
    assert len(lane_label("x" * 300)) == 24
