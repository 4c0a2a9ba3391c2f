"""Inject and replay sessions: the state file that keeps a forged node believable.

A Heartbeat peer drops messages whose generation goes back or whose seq repeats, so an
injector that pretends to be a node across several runs must remember, per node, the
generation and the next seq. `InjectSession` owns that file: it reads it once, hands
out the state to send with, and writes it back atomically after sending (an interrupted
run never leaves half a file). `hbtool inject`/`replay` only parse options and print;
a test or the chaos engine uses the same session without a subprocess.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hbtools import inject as inj

__all__ = ["InjectSession"]


class InjectSession:
    """The injector's per-node state, backed by the file at `state_path` (None: memory)."""

    def __init__(self, state_path: str | None) -> None:
        self.state_path = state_path
        self.book = self._load()

    def _load(self) -> inj.StateBook:
        path = self.state_path
        if path is None or not os.path.exists(path):
            return inj.StateBook()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise inj.InjectError(f"{path}: cannot read state file: {exc.strerror}") from None
        return inj.StateBook.parse(text, source=path)

    def node_state(self, node: str, now: float, node_uuid: bytes | None = None, *,
                   new_generation: bool = False, generation: int | None = None,
                   first_seq: int | None = None) -> inj.NodeState:
        """The state to send as `node` with: remembered, or fresh; adjusted as asked."""
        state = self.book.get(node, now, node_uuid)
        if new_generation:
            state = state.restarted()
        if generation is not None:
            state = inj.NodeState(state.node, state.uuid, generation, state.next_seq)
        if first_seq is not None:
            state = state.after(first_seq - state.next_seq)
        return state

    def sent(self, node: str, state: inj.NodeState, count: int, sequenced: bool) -> None:
        """`count` messages went out as `node`: remember where its seq is, and save."""
        if count:
            self.book.nodes[node] = state.after(count) if sequenced else state
            self.save()

    def save(self) -> None:
        """Atomic replace of the state file (nothing to do without one)."""
        if self.state_path is None:
            return
        target = Path(self.state_path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".hbtool-state-",
                                       dir=str(target.parent or Path(".")))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.book.dump())
            os.replace(tmp, target)
        except OSError as exc:
            raise inj.InjectError(
                f"{self.state_path}: cannot write state file: {exc.strerror}") from None
