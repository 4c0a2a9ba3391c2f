"""The one way wire text is made safe to show: every output that prints bytes from the network
(daemon log lines and events, ``hbtool decode`` tables, CSV, statistics, JSON) goes through here.

Why one module: an escape written twice drifts (one forgets BEL, the other non-UTF-8), and the
attacker needs only the weaker one. The rules:

* control, format and separator characters (ESC, BEL, CR, LF, U+2028, U+200E…) become
  ``\\xNN``/``\\uNNNN`` text, so a value cannot start a line, move the cursor or recolour a terminal;
* bytes that were not UTF-8 (decoded with ``surrogateescape`` into U+DC80–U+DCFF) become
  ``\\xNN`` of the original byte, so a strict UTF-8 stdout can write them and JSON never carries
  a lone surrogate;
* printable text, the common case, is returned as it is (one ``isprintable`` check).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["deep", "json_bytes", "json_text", "shown", "text"]


def _one(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def text(value: str) -> str:
    """``value`` with every character that is not printable as an escape (no length limit)."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else _one(c) for c in value)


def shown(value: object, limit: int = 80) -> str:
    """Wire text for a log line: escaped, cut after ``limit`` characters; None is ``?``.

    A forged ``src`` must not start a new log line or send terminal escapes; long values are cut
    so one datagram cannot make a screenful.
    """
    if value is None:
        return "?"
    raw = value if isinstance(value, str) else str(value)
    if len(raw) > limit:
        raw = raw[:limit] + "..."
    return text(raw)


def deep(value: Any, escape: Callable[[str], str] = text) -> Any:
    """``value`` with every string in it (dict keys too) escaped: for tables built from a
    nested summary, where each cell may hold wire text."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {deep(k, escape): deep(v, escape) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(deep(v, escape) for v in value)
    return value


# A \uXXXX escape in JSON text preceded by an even number of backslashes (so it is an escape,
# not an escaped backslash followed by the letters "uXXXX").
_JSON_SURROGATE = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})(?:\\u(d[c-f][0-9a-f]{2}))?"
                             r"|(?<!\\)((?:\\\\)*)\\u(d[c-f][0-9a-f]{2})")


def _fix_surrogate(m: re.Match[str]) -> str:
    if m.group(2) is not None:  # a high surrogate: fine when a low one follows (a real pair)
        if m.group(3) is not None:
            return m.group(0)
        return m.group(1) + "\\\\u" + m.group(2)
    code = int(m.group(5), 16)
    escaped = f"x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"u{m.group(5)}"
    return m.group(4) + "\\\\" + escaped


def json_text(line: str) -> str:
    """ASCII JSON text (``ensure_ascii``) with each lone surrogate replaced by the same ``\\xNN``
    text `text` shows: valid UTF-8 for any strict parser. One substring test when clean."""
    if "\\ud" not in line:
        return line
    return _JSON_SURROGATE.sub(_fix_surrogate, line)


def json_bytes(block: bytes) -> bytes:
    """`json_text` for a block of ASCII JSON lines as bytes (the dissector's hot path)."""
    if b"\\ud" not in block:
        return block
    return json_text(block.decode("ascii")).encode("ascii")
