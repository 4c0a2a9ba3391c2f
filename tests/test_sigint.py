"""Ctrl-C is exit 130 in every verb, with one line and no traceback (issue 14).

click alone turns it into "Aborted!" and exit 1; hbtool's main says "interrupted" and
exits 128 + SIGINT, which is what a shell reports for a program killed by Ctrl-C.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
from dissect_vectors import ROOT

CODE = "import sys; sys.argv[0] = 'hbtool'; from hbtools.cli import main; main()"


def _interrupt(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    # A test run started in the background inherits SIGINT ignored; a user's terminal
    # does not: give the child the default disposition, as a shell's foreground job has.
    proc = subprocess.Popen([sys.executable, "-c", CODE, *args], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(3.0)  # imports done, the verb is waiting (bounded: it would wait forever)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("verb", ["decode", "inject"])
def test_sigint_exits_130_without_traceback(verb):
    if verb == "decode":
        args = ["decode", "-"]  # waits on an open, empty pipe
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = ["inject", "--no-auth", "--to", "127.0.0.1", "--port", str(port),
                "--count", "1000", "--interval", "1"]
    res = _interrupt(args)
    assert res.returncode == 130, res.stderr
    assert b"Traceback" not in res.stderr
    assert res.stderr.decode().strip().splitlines()[-1] == "interrupted"
