"""The one shape of "this file is wrong here": every config-like input error carries it.

authkeys, ha.cf/haresources and fault scenarios all report a problem the same way, so
the CLI can print one line ``file:line: problem`` and exit 2 for any of them.
"""

from __future__ import annotations


class SourceError(ValueError):
    """A problem in a named input (file, or ``<string>``) at a line, when one is known."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


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
