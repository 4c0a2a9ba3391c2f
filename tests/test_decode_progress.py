"""Issue 14 item 6: the progress bar never garbles the rows on a terminal.

The command runs in this process with stdout and stderr both on one pseudo-terminal, as in
``hbtool decode capture.pcap`` typed at a shell. Everything the terminal receives must be the
table and nothing else: no bar, no carriage return (click's bar redraws with ``\\r``).
"""

from __future__ import annotations

import io
import os
import pty
import sys
from pathlib import Path

import pytest

from hbtools.commands.decode import decode

CAPTURE = Path(__file__).resolve().parent.parent / "captures" / "hb-failover" / "capture.pcap"


def _terminal_output(args: list[str], monkeypatch: pytest.MonkeyPatch) -> bytes:
    master, slave = pty.openpty()
    try:
        term = io.TextIOWrapper(io.FileIO(slave, "w", closefd=False), write_through=True)
        monkeypatch.setattr(sys, "stdout", term)
        monkeypatch.setattr(sys, "stderr", term)
        with pytest.raises(SystemExit) as done:
            decode.main(args, standalone_mode=False)
        assert done.value.code == 0
        term.flush()
        os.set_blocking(master, False)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("progress", [[], ["--progress"]])
def test_no_bar_over_rows_on_the_same_terminal(progress: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = _terminal_output([*progress, "-c", "3", str(CAPTURE)], monkeypatch)
    lines = out.replace(b"\r\n", b"\n").decode().splitlines()
    assert b"\r" not in out.replace(b"\r\n", b"")
    assert lines[0].split()[:2] == ["frame", "time"]
    assert len(lines) == 5  # header, rule, three rows: nothing else reached the terminal
