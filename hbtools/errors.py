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
