"""One match language for ``hbtool decode --filter`` and ``hbtool fault --rule`` (issue 14).

    expr  := or
    or    := and ("or" and)*                 also ||
    and   := unary (["and"] unary)*          also &&; terms side by side are "and"
    unary := "not" unary | "(" expr ")" | term      also !
    term  := NAME OP VALUE[,VALUE…]          OP: = == != < <= > >=

``a,b`` is any of the values (``!=``: none of them). ``<``/``>`` compare numbers. Values
are compared with what decode shows: numbers in decimal (``seq>10``, ``dt=7000``), text as
text; ``0x1f`` is accepted as an explicit hex number. Addresses match networks
(``ip.src=198.18.0.0/24``), and in a fault rule node names declared with ``--node``.

Names (the same in both verbs; `NAMES` lists them, an unknown name is an error):
``proto`` (heartbeat, totem, knet; a knet packet carrying Totem is also ``totem``),
``type`` (Heartbeat ``t``, the Totem type or the knet type; for knet also the Totem type
inside, so ``type=orf_token`` finds tokens in a knet capture), ``node``, ``ip``,
``ip.src``, ``ip.dst`` (aliases ``ip.addr``, ``from``, ``to``), ``port``, ``sport``,
``dport`` (aliases ``udp.port``, ``udp.srcport``, ``udp.dstport``), every Heartbeat
field by its wire name (`hbtools.fields.FIELDS`), ``totem.NAME`` and ``knet.NAME`` for
the Totem and knet layout fields (dotted: ``totem.ring_id.rep``), bare Totem/knet field
names, and ``field.NAME`` for any field the tables do not know. Only in decode:
``auth``, ``error``, ``frame``, ``arp.NAME`` (`hbtools.arp.FIELDS`: ``arp.gratuitous=true``;
``proto=arp``); only in fault: ``dir`` (and the bare words ``in``/``out``).

Pure: parsing builds frozen objects; evaluating asks a `Subject` for candidate values.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from hbtools.fields import FIELDS

__all__ = [
    "And", "Condition", "Expr", "MatchError", "Not", "Or", "Subject", "compile_expr",
    "conditions", "field_values", "parse", "parse_words",
]

DECODE = "decode"
FAULT = "fault"

#: Names that are not fields, and the contexts they are valid in.
BASE_NAMES: Mapping[str, tuple[str, ...]] = {
    "proto": (DECODE, FAULT), "type": (DECODE, FAULT), "node": (DECODE, FAULT),
    "ip": (DECODE, FAULT), "ip.src": (DECODE, FAULT), "ip.dst": (DECODE, FAULT),
    "port": (DECODE, FAULT), "sport": (DECODE, FAULT), "dport": (DECODE, FAULT),
    "auth": (DECODE,), "error": (DECODE,), "frame": (DECODE,), "dir": (FAULT,),
}
ALIASES = {
    "from": "ip.src", "to": "ip.dst", "ip.addr": "ip", "udp.port": "port",
    "udp.srcport": "sport", "udp.dstport": "dport", "t": "t",
}
ADDRESS_NAMES = frozenset({"ip", "ip.src", "ip.dst"})
OPERATORS = ("==", "!=", "<=", ">=", "=", "<", ">")
TERM = re.compile(r"^([A-Za-z_][\w.\-]*)(==|!=|<=|>=|=|<|>)(.*)$")
KEYWORDS = {"and": "and", "&&": "and", "or": "or", "||": "or", "not": "not", "!": "not"}
_INT = re.compile(r"^[+-]?(?:\d+|0[xX][0-9a-fA-F]+)$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


class MatchError(ValueError):
    """A match expression that cannot be understood; says which word and why."""


@cache
def layout_names() -> tuple[frozenset[str], frozenset[str]]:
    """Every Totem and knet field path the codecs' layouts declare (plus ``type_name``)."""
    from hbtools import knet, totem

    extra = {"type_name", "endian"}
    t = {path for layout in totem.LAYOUTS.values() for path, _ in layout.walk()} | extra
    k = {path for layout in knet.LAYOUTS.values() for path, _ in layout.walk()} | extra
    return frozenset(t), frozenset(k)


def canonical(name: str, context: str) -> str:
    """The name as evaluated; raises MatchError for a name neither verb knows."""
    name = ALIASES.get(name, name)
    if name in BASE_NAMES:
        if context not in BASE_NAMES[name]:
            where = " and ".join(BASE_NAMES[name])
            raise MatchError(f"{name!r} can be matched only in {where}")
        return name
    if name.startswith("field."):
        if len(name) == len("field."):
            raise MatchError("field. needs a field name (field.NAME=VALUE)")
        return name
    if name in FIELDS:
        return name
    if name.startswith("arp."):
        from hbtools.arp import FIELDS as ARP_FIELDS  # ARP rows of decode (not UDP: no fault)

        if context != DECODE:
            raise MatchError(f"{name!r} can be matched only in decode (ARP is not UDP)")
        if name[len("arp."):] in ARP_FIELDS:
            return name
        raise MatchError(f"unknown field {name!r}: arp has {', '.join(ARP_FIELDS)}")
    if name.startswith("corosync."):
        from hbtools.corosync import SUMMARY_KEYS  # a decoded row's summary of an mcast

        if name[len("corosync."):] in SUMMARY_KEYS:
            return name
        raise MatchError(f"unknown field {name!r}: corosync has {', '.join(SUMMARY_KEYS)}")
    totem_names, knet_names = layout_names()
    for prefix, known in (("totem.", totem_names), ("knet.", knet_names)):
        if name.startswith(prefix):
            if name[len(prefix):] in known:
                return name
            raise MatchError(f"unknown field {name!r}: {prefix[:-1]} has "
                             f"{', '.join(sorted(known))}")
    if name in totem_names or name in knet_names:
        return name
    raise MatchError(
        f"unknown field {name!r} (one of "
        f"{', '.join(sorted(n for n, ctx in BASE_NAMES.items() if context in ctx))}, a Heartbeat field "
        "of hbtools.fields, totem.NAME, knet.NAME, or field.NAME for a field the tables "
        "do not know)")


# ----------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Condition:
    """One term: ``key`` compared by ``op`` with (any of) ``values``."""

    key: str
    values: tuple[str, ...]
    negate: bool = False
    op: str = "="

    def __str__(self) -> str:
        op = "!=" if self.negate else self.op
        return f"{self.key}{op}{','.join(self.values)}"


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return " and ".join(_wrap(i) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return " or ".join(_wrap(i) for i in self.items)


@dataclass(frozen=True)
class Not:
    item: Expr

    def __str__(self) -> str:
        return f"not {_wrap(self.item)}"


Expr = Condition | And | Or | Not


def _wrap(expr: Expr) -> str:
    return f"({expr})" if isinstance(expr, And | Or) else str(expr)


def conditions(expr: Expr | None) -> Iterator[Condition]:
    """Every term of an expression, wherever it stands."""
    if expr is None:
        return
    if isinstance(expr, Condition):
        yield expr
    elif isinstance(expr, Not):
        yield from conditions(expr.item)
    else:
        for item in expr.items:
            yield from conditions(item)


# ----------------------------------------------------------------------------- parsing


def parse(text: str, context: str = DECODE) -> Expr | None:
    """Parse a whole expression (None when it is empty)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise MatchError(f"cannot split {text!r}: {exc}") from None
    return parse_words(words, context)


def parse_words(words: Sequence[str], context: str = DECODE) -> Expr | None:
    """Parse words already split (a fault rule's match part, a filter's words)."""
    tokens = _tokens(words)
    if not tokens:
        return None
    parser = _Parser(tokens, context)
    expr = parser.expr()
    if parser.pos != len(tokens):
        raise MatchError(f"unexpected {tokens[parser.pos]!r}")
    return expr


def _tokens(words: Iterable[str]) -> list[str]:
    """Split parentheses and ``!`` off words, and join ``seq > 10`` written with spaces."""
    out: list[str] = []
    for word in words:
        while word[:1] == "(" or (word[:1] == "!" and word[:2] != "!="):
            out.append(word[0])
            word = word[1:]
        closing = 0
        while word.endswith(")") and "(" not in word:
            closing += 1
            word = word[:-1]
        if word:
            out.append(word)
        out.extend([")"] * closing)
    joined: list[str] = []
    i = 0
    while i < len(out):
        if i + 2 < len(out) and out[i + 1] in OPERATORS and _is_name(out[i]):
            joined.append(out[i] + out[i + 1] + out[i + 2])
            i += 3
        else:
            joined.append(out[i])
            i += 1
    return joined


def _is_name(word: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][\w.\-]*", word)) and word.lower() not in KEYWORDS


class _Parser:
    def __init__(self, tokens: list[str], context: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.context = context

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def keyword(self) -> str | None:
        word = self.peek()
        return KEYWORDS.get(word.lower()) if word is not None else None

    def expr(self) -> Expr:
        items = [self.conjunction()]
        while self.keyword() == "or":
            self.pos += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Expr:
        items = [self.unary()]
        while True:
            word = self.peek()
            if word is None or word == ")" or self.keyword() == "or":
                break
            if self.keyword() == "and":
                self.pos += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Expr:
        word = self.peek()
        if word is None:
            raise MatchError("expression ends where a term was expected")
        if self.keyword() == "not":
            self.pos += 1
            return Not(self.unary())
        if word == "(":
            self.pos += 1
            inner = self.expr()
            if self.peek() != ")":
                raise MatchError("missing ')'")
            self.pos += 1
            return inner
        if self.keyword() in ("and", "or") or word == ")":
            raise MatchError(f"unexpected {word!r} where a term was expected")
        self.pos += 1
        return self.term(word)

    def term(self, word: str) -> Condition:
        if self.context == FAULT and word in ("in", "out"):
            return Condition("dir", (word,))
        m = TERM.match(word)
        if not m:
            raise MatchError(f"term {word!r}: expected NAME=VALUE, NAME!=VALUE or NAME>VALUE "
                             "(e.g. type=status, seq>10, ip.src=198.18.0.0/24)")
        name, op, value = m.group(1), m.group(2), m.group(3)
        key = canonical(name, self.context)
        op = "=" if op == "==" else op
        values = tuple(value.split(",")) if value else ("",)
        if op in ("<", "<=", ">", ">="):
            if len(values) != 1 or not _NUMBER.match(values[0]) and not _INT.match(values[0]):
                raise MatchError(f"term {word!r}: {op} needs one number")
        if key == "dir":
            bad = [v for v in values if v not in ("in", "out")]
            if bad:
                raise MatchError(f"bad direction {bad[0]!r} (in or out)")
        if key == "proto":
            known = ("heartbeat", "totem", "knet", "udp") + (("arp",) if self.context == DECODE
                                                             else ())
            bad = [v for v in values if v not in known]
            if bad:
                raise MatchError(f"bad protocol {bad[0]!r} ({', '.join(known[:-1])} or "
                                 f"{known[-1]})")
        if key in ("sport", "dport", "port", "frame"):
            for v in values:
                if not _INT.match(v):
                    raise MatchError(f"bad {key} {v!r}: not a number")
        if op == "!=":
            return Condition(key, values, True)
        return Condition(key, values, False, op)


# ----------------------------------------------------------------------------- evaluation


class Subject(Protocol):
    """What a match is evaluated against: a decoded row, or a queued packet."""

    def values(self, key: str) -> list[Any]:
        """The candidate values of ``key`` (empty: the message has no such thing)."""
        ...


Predicate = Callable[[Subject], bool]


def field_values(fields: Any, path: str) -> list[Any]:
    """Values at a dotted path in decoded fields; lists are searched element by element.

    For a path ending in ``type`` the sibling ``type_name`` is a candidate too, so
    ``totem.type=3`` and ``totem.type=orf_token`` both work.
    """
    found: list[Any] = []
    _walk(fields, path.split("."), found)
    return found


def _walk(current: Any, parts: list[str], found: list[Any]) -> None:
    for i, part in enumerate(parts):
        if isinstance(current, list):
            for item in current:
                _walk(item, parts[i:], found)
            return
        if not isinstance(current, dict) or part not in current:
            return
        if i == len(parts) - 1 and part == "type" and "type_name" in current:
            found.append(current["type_name"])
        current = current[part]
    if isinstance(current, list):
        found.extend(current)
    else:
        found.append(current)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _number(text: str) -> float | None:
    if _INT.match(text):
        return float(int(text, 0))
    if _NUMBER.match(text):
        return float(text)
    return None


def _compile_condition(cond: Condition, addresses: Mapping[str, str]) -> Predicate:
    key = cond.key
    values = cond.values
    op = cond.op
    test: Predicate
    if key in ADDRESS_NAMES:
        nets = []
        for v in values:
            try:
                nets.append(ipaddress.ip_network(addresses.get(v, v), strict=False))
            except ValueError:
                raise MatchError(f"{key}={v}: neither an IP address or network"
                                 + (" nor a declared node" if addresses else "")) from None

        def test(s: Subject) -> bool:
            for addr in s.values(key):
                try:
                    ip = ipaddress.ip_address(addr)
                except ValueError:
                    continue
                if any(ip in n for n in nets):
                    return True
            return False
    elif key == "error":
        def test(s: Subject) -> bool:
            errors = [e for e in s.values("error") if e is not None]
            for v in values:
                if v in ("yes", "true", "1", "any"):
                    if errors:
                        return True
                elif v in ("no", "false", "0", "none"):
                    if not errors:
                        return True
                elif any(v in e for e in errors):
                    return True
            return False
    elif op in ("<", "<=", ">", ">="):
        bound = _number(values[0])
        assert bound is not None
        compare = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__,
                   ">=": float.__ge__}[op]

        def test(s: Subject) -> bool:
            for v in s.values(key):
                if isinstance(v, bool) or not isinstance(v, int | float):
                    continue
                if compare(float(v), bound):
                    return True
            return False
    else:
        texts = frozenset(values)
        numbers = frozenset(n for n in map(_number, values) if n is not None)

        def test(s: Subject) -> bool:
            for v in s.values(key):
                if isinstance(v, int | float) and not isinstance(v, bool) and numbers:
                    if float(v) in numbers:
                        return True
                if _text(v) in texts:
                    return True
            return False

    if cond.negate:
        return lambda s: not test(s)
    return test


def compile_expr(expr: Expr | None, addresses: Mapping[str, str] | None = None) -> Predicate:
    """A predicate for the whole expression; ``addresses`` maps node names to addresses."""
    nodes = addresses if addresses is not None else {}
    if expr is None:
        return lambda s: True
    if isinstance(expr, Condition):
        return _compile_condition(expr, nodes)
    if isinstance(expr, Not):
        inner = compile_expr(expr.item, nodes)
        return lambda s: not inner(s)
    parts = [compile_expr(i, nodes) for i in expr.items]
    if isinstance(expr, And):
        return lambda s: all(p(s) for p in parts)
    return lambda s: any(p(s) for p in parts)
