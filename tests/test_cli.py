"""What every verb shares: output that cannot be written is one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "captures" / "hb-bcast-crc" / "capture.pcap"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [
    ["decode", str(CAPTURE)],
    ["decode", str(CAPTURE), "--format", "json", "--jobs", "1"],
    ["decode", str(CAPTURE), "--stats"],
    ["wireshark", "export"],
])
def test_full_disk_on_stdout_is_one_line(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()", *args],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    # /dev/full answers every write with ENOSPC (see null(4)); strerror(ENOSPC) is fixed text.
    assert done.returncode == 2
    assert done.stderr == "hbtool: output not written: No space left on device\n"
