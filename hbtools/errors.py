"""The one shape of "this file is wrong here": every config-like input error carries it.

authkeys, ha.cf/haresources and fault scenarios all report a problem the same way, so
the CLI can print one line ``file:line: problem`` and exit 2 for any of them.
"""

from __future__ import annotations

import os
import stat


class SourceError(ValueError):
    """A problem in a named input (file, or ``<string>``) at a line, when one is known."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


def read_regular_file(path: str | os.PathLike[str], limit: int,
                      error: type[SourceError] = SourceError, what: str = "") -> tuple[bytes, int]:
    """The bytes and ``st_mode`` of a regular file of at most ``limit`` bytes, or ``error``
    with one line (``what`` names the kind of file in the "too big" message).

    Why not ``Path.read_bytes``: a FIFO would block the caller forever (nobody writes it), a
    directory or device is never a config file, and an endless file (``/dev/zero``) would eat
    memory. So: a non-blocking open, ``fstat`` says "regular file" before anything is read,
    and one read of ``limit + 1`` bytes tells "too big" from "fits".
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise error(str(path), None, "is not a regular file")
            chunks = []
            left = limit + 1
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            raw = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        raise error(str(path), None, f"cannot read: {exc.strerror}") from None
    if len(raw) > limit:
        raise error(str(path), None, f"is over {limit // 1024} KiB: {what or 'too big'}")
    return raw, mode


class CodecError(ValueError):
    """Bytes a codec refuses, or a message it cannot write: `problem`, at `offset` if known.

    One base for every codec (Heartbeat, Totem, kronosnet and the layers above), so a
    caller that reads any cluster bytes catches one type and can point at the byte where
    it went wrong. `offset` counts from the start of the bytes given to the codec; None
    when the problem is not at one byte (a field's value, a whole message's size).
    """

    def __init__(self, problem: str, offset: int | None = None, text: str | None = None) -> None:
        super().__init__(problem if text is None else text)
        self.problem = problem
        self.offset = offset


class DecodeError(CodecError):
    """The bytes are not a well-formed message of the codec that raised it."""


class EncodeError(CodecError):
    """The message cannot be written (a value does not fit its wire type or format)."""
