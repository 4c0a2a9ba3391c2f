"""``--filter``: choose rows with the match language `hbtools.match` (shared with fault rules).

``--filter`` options are joined with ``and``; inside one, terms side by side are ``and``
too, ``a,b`` is either value, ``or``/``not``/parentheses combine, ``seq>10`` compares
numbers. This module only says what a decoded row's values are for each name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hbtools.dissectors.records import Record

from hbtools import match

__all__ = ["Filter", "FilterError", "parse_filter"]


class FilterError(ValueError):
    """A filter that cannot be understood."""


class RecordSubject:
    """A decoded row as `hbtools.match` sees it (decoded values: numbers in decimal)."""

    __slots__ = ("record",)

    def __init__(self, record: Record) -> None:
        self.record = record

    def _inner(self) -> Any:
        """The Totem message a knet packet carries, if any."""
        r = self.record
        if r.proto != "knet":
            return None
        inner = r.get_fields().get("totem")
        return inner if isinstance(inner, dict) else None

    def values(self, key: str) -> list[Any]:
        r = self.record
        if key == "proto":
            return [r.proto, "totem"] if self._inner() is not None else [r.proto]
        if key == "type":
            inner = self._inner()
            return [r.type, inner.get("type_name")] if inner is not None else [r.type]
        if key == "node":
            return [r.node]
        if key == "ip.src":
            return [r.src]
        if key == "ip.dst":
            return [r.dst]
        if key == "ip":
            return [r.src, r.dst]
        if key == "port":
            return [r.sport, r.dport]
        if key in ("sport", "dport", "frame", "auth", "error"):
            return [getattr(r, key)]
        fields = r.get_fields()
        if key.startswith("totem."):
            if r.proto == "totem":
                return match.field_values(fields, key[6:])
            inner = self._inner()
            return match.field_values(inner, key[6:]) if inner is not None else []
        if key.startswith("arp."):
            return match.field_values(fields, key[4:]) if r.proto == "arp" else []
        if key.startswith("knet."):
            return match.field_values(fields, key[5:]) if r.proto == "knet" else []
        path = key[6:] if key.startswith("field.") else key
        if r.proto == "heartbeat":
            return match.field_values(fields, path)
        found = match.field_values(fields, path)
        inner = self._inner()
        if inner is not None:
            found += match.field_values(inner, path)
        return found


class Filter:
    """All ``--filter`` options, compiled into one predicate over rows."""

    def __init__(self, expr: match.Expr | None) -> None:
        self.expr = expr
        self._test = match.compile_expr(expr)
        # Kept for callers that pre-select by protocol; no pre-selection is made now.
        self.protos: frozenset[str] | None = None

    def __bool__(self) -> bool:
        return self.expr is not None

    def __call__(self, record: Record) -> bool:
        return self._test(RecordSubject(record))

    def __str__(self) -> str:
        return "" if self.expr is None else str(self.expr)


def parse_filter(texts: Iterable[str]) -> Filter:
    """Parse ``--filter`` texts; several options must all hold."""
    parts: list[match.Expr] = []
    try:
        for text in texts:
            expr = match.parse(text, match.DECODE)
            if expr is not None:
                parts.append(expr)
        if parts:
            whole: match.Expr = parts[0] if len(parts) == 1 else match.And(tuple(parts))
            return Filter(whole)  # compiling checks addresses and networks
    except match.MatchError as exc:
        raise FilterError(str(exc)) from None
    return Filter(None)
