"""``--filter``: choose rows by protocol, type, node, address or any field value.

A filter is a list of ``key=value`` (or ``key!=value``) terms. Terms on different keys
must all hold; several terms on the same key are alternatives, because a row has one
type and ``type=status type=NS_ackmsg`` can only mean "either". Values compare as
text, so ``seq=26`` matches the number 26 and ``st=active`` the string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dissectors.records import Record

__all__ = ["Filter", "FilterError", "parse_filter"]


class FilterError(ValueError):
    """A filter term that cannot be understood."""


@dataclass(frozen=True)
class Term:
    key: str
    value: str
    negate: bool

    def holds(self, record: Record) -> bool:
        return self._matches(record) != self.negate

    def _matches(self, record: Record) -> bool:
        key = self.key
        value = self.value
        # Row columns first. ``src``/``dst`` are Heartbeat fields (node names), so the
        # addresses are ``ip.src``/``ip.dst``/``ip``.
        if key in ("proto", "type", "node", "auth", "sport", "dport", "frame"):
            return _text(getattr(record, key)) == value
        if key == "ip.src":
            return record.src == value
        if key == "ip.dst":
            return record.dst == value
        if key == "ip":
            return value in (record.src, record.dst)
        if key == "port":
            return value in (str(record.sport), str(record.dport))
        if key == "error":
            if value in ("yes", "true", "1", "any"):
                return record.error is not None
            if value in ("no", "false", "0", "none"):
                return record.error is None
            return record.error is not None and value in record.error
        return _field_matches(record.get_fields(), key.split("."), value)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _field_matches(fields: Any, path: list[str], value: str) -> bool:
    """Follow a dotted path into nested dicts (Totem ``ring_id.rep``) and lists (any)."""
    current = fields
    for i, part in enumerate(path):
        if isinstance(current, list):
            return any(_field_matches(item, path[i:], value) for item in current)
        if not isinstance(current, dict) or part not in current:
            return False
        current = current[part]
    if isinstance(current, list):
        return any(_text(v) == value for v in current)
    return _text(current) == value


class Filter:
    """All terms of all ``--filter`` options, grouped by key."""

    def __init__(self, terms: Iterable[Term]) -> None:
        groups: dict[str, list[Term]] = {}
        for term in terms:
            groups.setdefault(term.key, []).append(term)
        self.groups = list(groups.values())
        # Cheap pre-checks the pipeline can use to skip decoding rows that cannot match.
        protos = [t.value for t in groups.get("proto", []) if not t.negate]
        self.protos: frozenset[str] | None = frozenset(protos) if protos else None

    def __bool__(self) -> bool:
        return bool(self.groups)

    def __call__(self, record: Record) -> bool:
        for group in self.groups:
            positives = [t for t in group if not t.negate]
            negatives = [t for t in group if t.negate]
            if positives and not any(t.holds(record) for t in positives):
                return False
            if any(not t.holds(record) for t in negatives):
                return False
        return True


def parse_filter(texts: Iterable[str]) -> Filter:
    """Parse ``--filter`` texts (each may hold several space-separated terms)."""
    terms: list[Term] = []
    for text in texts:
        for word in text.split():
            negate = "!=" in word
            key, sep, value = word.partition("!=" if negate else "=")
            if not sep or not key:
                raise FilterError(f"filter term {word!r}: expected key=value or key!=value")
            terms.append(Term(key.strip(), value, negate))
    return Filter(terms)
