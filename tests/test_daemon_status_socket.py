"""The status socket of `hbtool daemon` (issue 14, "a daemon you can ask"), made as root.

The runner owns the socket (the core only builds the report): it must not follow or remove a
planted symlink or file at its name, must replace only a dead socket, must be born mode 0600,
and the asking side must be bounded in bytes and in time whatever answers there. The daemon's
answers themselves are checked against `ip addr` and the real Heartbeat's cl_status in
tests/netns (test_daemon_hardening, test_daemon_interop).
"""

from __future__ import annotations

import os
import selectors
import socket
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hbtools.node.runner import STATUS_MAX, Runner, RunnerError, ask_status, load_identity


def _open(state: Path) -> SimpleNamespace:
    """Runner._open_status_socket on just what it uses (no config, no interfaces)."""
    runner = SimpleNamespace(options=SimpleNamespace(state_dir=state), sel=selectors.DefaultSelector(),
                             status_sock=None)
    Runner._open_status_socket(runner)  # type: ignore[arg-type]
    return runner


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_a_planted_name_is_refused_and_left_alone(state, tmp_path, planted):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    if planted == "symlink":
        (state / "hbtool.sock").symlink_to(victim)
    else:
        (state / "hbtool.sock").write_text("x")
    with pytest.raises(RunnerError, match="exists and is not a socket; remove it"):
        _open(state)
    assert victim.read_text() == "root's file\n"
    assert (state / "hbtool.sock").is_symlink() == (planted == "symlink")


def test_a_dead_socket_is_replaced_a_live_one_refused_and_the_new_one_is_0600(state):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(state / "hbtool.sock"))
    dead.close()  # a crashed run: the name stays, nobody listens
    runner = _open(state)
    try:
        info = os.lstat(state / "hbtool.sock")
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        with pytest.raises(RunnerError, match="another daemon answers on .*already running"):
            _open(state)
    finally:
        runner.status_sock.close()


def _serve(state: Path, answer: bytes, hold: float) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(state / "hbtool.sock"))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        try:
            conn.sendall(answer)
            time.sleep(hold)  # and never closes before that
        except OSError:
            pass  # the asking side gave up, as it should
        finally:
            conn.close()
            server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_asking_is_bounded_in_time_and_size(state):
    thread = _serve(state, b'{"node": "n', hold=3.0)
    start = time.monotonic()
    with pytest.raises(RunnerError, match="no daemon answers on .*: (timed out|no complete answer in time)"):
        ask_status(state, timeout=0.3)
    assert time.monotonic() - start < 2.0
    thread.join(5)
    (state / "hbtool.sock").unlink()
    thread = _serve(state, b" " * (STATUS_MAX + 70_000), hold=0.0)
    with pytest.raises(RunnerError, match="over 4194304 bytes"):
        ask_status(state, timeout=5)
    thread.join(5)


def test_a_state_dir_of_another_owner_is_refused(state, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: os.lstat(state).st_uid + 1)
    with pytest.raises(RunnerError, match="belongs to uid"):
        load_identity(state, 1.0)
    assert list(state.iterdir()) == []
