"""The rule language of ``hbtool fault``: one line = an action, its options, and a match.

    ACTION [ARGS…] [MATCH…] [p=PROBABILITY]

Examples::

    drop type=NS_ackmsg p=0.5
    drop all in                    (every packet: a bare `drop` is refused)
    delay 200ms jitter=50ms dist=normal out src=node1 t=status
    duplicate 2 out
    reorder window=4 timeout=300ms
    corrupt bytes=3 type=status
    rewrite st:=dead seq:=+5 sign=stale src=node2
    ratelimit 5/s burst=2 t=status
    partition node1>node2          (one way: node1's messages never reach node2)
    partition node1<>node2         (two way)
    isolate node2 | halves | bridge node2     (Jepsen's presets over the --node list)

The match part is an expression of `hbtools.match`, the language ``hbtool decode --filter``
uses too (same parser, same names, values compared as decode shows them: numbers in
decimal; ``key=a,b``, ``key!=v``, ``seq>10``, ``and``/``or``/``not``, the bare words
``in``/``out`` for the direction). An unknown name is an error, so a typo cannot silently
turn a rule into "match everything".

Pure: parsing builds frozen objects, nothing here reads a clock or touches the network.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hbtools import match
from hbtools.fields import FIELDS
from hbtools.layout import Field
from hbtools.match import Condition

DIRECTIONS = ("in", "out")
PROTOCOLS = ("heartbeat", "totem", "knet", "udp")
DISTRIBUTIONS = ("uniform", "normal", "exponential")
SIGNING = ("resign", "stale")

#: Heartbeat fields whose rewrite value may be relative (``seq:=+5``), with their radix.
_RADIX = {"hex": 16, "decimal": 10}

#: Match keys that are not Heartbeat fields.
MATCH_KEYS = (
    "dir", "from", "to", "sport", "dport", "port", "proto", "type",
    "totem.type", "totem.nodeid", "knet.type", "knet.node",
)


class RuleError(ValueError):
    """A rule that cannot be understood; the message says which word and why."""


# Upper bounds, checked when a rule is parsed (issue 12): every value below is paid per packet
# (a loop in the NFQUEUE callback) or in memory (packets held), so an absurd one would stall
# the queue or eat the host rather than fault the cluster. Each is far above any useful fault.
MAX_CORRUPT = 1024          # bits flipped / bytes replaced per packet
MAX_COPIES = 100            # duplicate N
MAX_WINDOW = 10_000         # reorder window (packets held at once per rule)
MAX_HOLD = 60.0             # seconds: delay, jitter, reorder timeout
MAX_RATE = 1_000_000.0      # ratelimit, packets per second
MAX_BURST = 1_000_000


# ----------------------------------------------------------------------------- values


_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(us|µs|ms|s|m)?$")
_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from ``200ms``, ``1.5s``, ``500us``, ``2m``; a bare number only when it is 0.

    ``delay 300`` read as seconds holds a cluster's traffic for five minutes, and as
    milliseconds it would be a different rule: the unit must be written (issue 14).
    """
    m = _DURATION.match(text.strip())
    if not m:
        raise RuleError(f"bad {what} {text!r} (write e.g. 200ms, 1.5s, 500us, 2m)")
    if m.group(2) is None and float(m.group(1)) != 0:
        raise RuleError(f"{what} {text!r} needs a unit: {text}ms or {text}s (also us, m)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _parse_int(text: str, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise RuleError(f"bad {what} {text!r}: not an integer") from None
    if value < minimum:
        raise RuleError(f"bad {what} {text!r}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise RuleError(f"bad {what} {text!r}: must be at most {maximum}")
    return value


def _bounded(value: float, what: str, maximum: float, unit: str = "") -> float:
    """``value`` if it is a finite number not above ``maximum`` (inf and NaN never are)."""
    if not math.isfinite(value):
        raise RuleError(f"bad {what}: must be a finite number")
    if value > maximum:
        raise RuleError(f"bad {what} {value:g}{unit}: must be at most {maximum:g}{unit}")
    return value


def _hold(text: str, what: str) -> float:
    """A duration a packet may be held for (delay, jitter, timeout): at most `MAX_HOLD`."""
    return _bounded(parse_duration(text, what), what, MAX_HOLD, " s")


def _parse_rate(text: str) -> float:
    """Packets per second from ``10/s``, ``600/m``, ``100ms`` (one per interval) or ``10``."""
    num, slash, unit = text.partition("/")
    try:
        if slash:
            return float(num) / parse_duration("1" + unit if unit in ("s", "m", "ms") else unit,
                                               "rate unit")
        return float(num)
    except (ValueError, RuleError):
        raise RuleError(f"bad rate {text!r} (write e.g. 10/s or 600/m)") from None


# ----------------------------------------------------------------------------- match


@dataclass(frozen=True)
class Match:
    """The match part of a rule: an expression of `hbtools.match` (None: every packet)."""

    expr: match.Expr | None = None

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every term, wherever it stands in the expression."""
        return tuple(match.conditions(self.expr))

    @property
    def directions(self) -> tuple[str, ...]:
        """The hooks this match can fire on (both unless a top-level ``dir`` term narrows it).

        A ``dir`` term under ``or``/``not`` does not narrow the hooks: the expression
        itself still tests the direction of every packet.
        """
        allowed = set(DIRECTIONS)
        top = self.expr.items if isinstance(self.expr, match.And) else (self.expr,)
        for c in top:
            if isinstance(c, Condition) and c.key == "dir":
                allowed = allowed - set(c.values) if c.negate else allowed & set(c.values)
        return tuple(d for d in DIRECTIONS if d in allowed)

    def keys(self) -> set[str]:
        return {c.key for c in self.conditions}

    def __str__(self) -> str:
        return "" if self.expr is None else str(self.expr)


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Drop:
    pass


@dataclass(frozen=True)
class Delay:
    delay: float
    jitter: float = 0.0
    distribution: str = "uniform"


@dataclass(frozen=True)
class Duplicate:
    copies: int = 1


@dataclass(frozen=True)
class Reorder:
    window: int = 4
    timeout: float = 0.5


@dataclass(frozen=True)
class Corrupt:
    bits: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Assignment:
    """``name:=value``: literal wire text, or ``+N``/``-N`` added in the field's own radix."""

    name: str
    value: str
    relative: int | None = None


@dataclass(frozen=True)
class Rewrite:
    """Set fields and sign again. Heartbeat fields by wire name (signed with ``--authkeys``),
    or Corosync layout fields ``knet.NAME`` / ``totem.NAME`` (an encrypted knet packet is
    opened with ``--corosync-authkey`` and sealed again with its own cipher and hash, by the
    key that opened it or the one ``key=`` names); one rule does not mix the two."""

    assignments: tuple[Assignment, ...]
    sign: str = "resign"
    #: For knet: seal with this key of ``--corosync-authkey`` (its file name), not the
    #: packet's own (a node with another key, as in a key change gone wrong).
    key: str | None = None

    @property
    def corosync(self) -> bool:
        """Whether this rewrites knet/Totem layout fields (else Heartbeat fields)."""
        return any(a.name.startswith(LAYOUT_PREFIXES) for a in self.assignments)


@dataclass(frozen=True)
class RateLimit:
    rate: float
    burst: int = 1


@dataclass(frozen=True)
class Partition:
    """Messages whose sender is in ``cut[receiver]`` never reach that receiver."""

    cut: tuple[tuple[str, str], ...]  # (sender, receiver) pairs
    label: str = ""

    def blocks(self, sender: str, receiver: str) -> bool:
        return (sender, receiver) in self.cut


Action = Drop | Delay | Duplicate | Reorder | Corrupt | Rewrite | RateLimit | Partition


@dataclass(frozen=True)
class Rule:
    text: str
    action: Action
    match: Match = field(default_factory=Match)
    probability: float = 1.0
    #: Activation windows in seconds since the run started; None means always.
    windows: tuple[tuple[float, float], ...] | None = None
    label: str = ""

    @property
    def verb(self) -> str:
        return self.text.split(None, 1)[0] if self.text else type(self.action).__name__.lower()

    #: The windows merged and sorted, as parallel start/end lists for `bisect` (built once).
    _starts: list[float] = field(init=False, repr=False, compare=False, default_factory=list)
    _ends: list[float] = field(init=False, repr=False, compare=False, default_factory=list)

    def __post_init__(self) -> None:
        merged: list[list[float]] = []
        for start, end in sorted(self.windows or ()):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        object.__setattr__(self, "_starts", [w[0] for w in merged])
        object.__setattr__(self, "_ends", [w[1] for w in merged])

    def active(self, elapsed: float) -> bool:
        """Whether ``elapsed`` is in a window: a binary search of the merged windows, so a
        flapping scenario of a day of windows costs each packet O(log n), not a scan."""
        if self.windows is None:
            return True
        i = bisect.bisect_right(self._starts, elapsed) - 1
        return i >= 0 and elapsed < self._ends[i]

    @property
    def directions(self) -> tuple[str, ...]:
        return self.match.directions


# ----------------------------------------------------------------------------- parsing

_ACTION_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "drop": (),
    "delay": ("delay", "jitter", "dist"),
    "duplicate": ("copies",),
    "reorder": ("window", "timeout"),
    "corrupt": ("bits", "bytes"),
    "rewrite": ("sign", "key"),
    "ratelimit": ("rate", "burst"),
    "partition": (),
    "isolate": (),
    "halves": (),
    "bridge": (),
}
_ALIASES = {"dup": "duplicate", "rate-limit": "ratelimit", "rate": "ratelimit", "delete": "drop"}
_PRESETS = ("partition", "isolate", "halves", "bridge")


def parse_rule(text: str, *, nodes: Sequence[str] = (), label: str = "") -> Rule:
    """Parse one rule line; ``nodes`` is the cluster's node list (needed by partitions)."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError as exc:
        raise RuleError(f"cannot split rule {text!r}: {exc}") from None
    if not words:
        raise RuleError("empty rule")
    verb = _ALIASES.get(words[0].lower(), words[0].lower())
    if verb not in _ACTION_OPTIONS:
        raise RuleError(
            f"unknown action {words[0]!r} (one of {', '.join(sorted(_ACTION_OPTIONS))})"
        )
    options: dict[str, str] = {}
    assignments: list[Assignment] = []
    positional: list[str] = []
    match_words: list[str] = []
    probability = 1.0
    for word in words[1:]:
        if ":=" in word:
            if verb != "rewrite":
                raise RuleError(f"{word!r}: an assignment NAME:=VALUE belongs to a rewrite rule")
            assignments.append(_parse_assignment(word))
            continue
        key, eq, value = word.partition("=")
        if eq and key == "p":
            probability = _parse_probability(value)
        elif eq and key in _ACTION_OPTIONS[verb]:
            options[key] = value
        elif verb in _PRESETS and not match_words and "=" not in word and word not in DIRECTIONS:
            positional.append(word)  # partition n1>n2: nodes, not a comparison
        elif word in DIRECTIONS or _is_match_word(word):
            match_words.append(word)
        else:
            if match_words or options:
                raise RuleError(f"{word!r}: expected KEY=VALUE after the options")
            positional.append(word)
    try:
        expr = match.parse_words(match_words, match.FAULT)
        match.compile_expr(expr, _ANY_NODE)  # every value checked now, not at the first packet
    except match.MatchError as exc:
        raise RuleError(f"rule {text!r}: {exc}") from None
    action = _build_action(verb, positional, options, assignments, nodes)
    matched = Match(expr)
    if isinstance(action, Duplicate):
        dirs = matched.directions
        if "out" not in dirs:
            raise RuleError("duplicate works on outgoing packets only: NFQUEUE cannot clone a "
                            "received packet (run the proxy on the sender, with `out`)")
        if "in" in dirs:
            out_only = Condition("dir", ("out",))
            matched = Match(out_only if expr is None else match.And((expr, out_only)))
    if not matched.directions:
        raise RuleError(f"rule {text!r} can never match: its dir terms exclude both in and out")
    if isinstance(action, Drop) and "all" not in positional and not any(
            c.key != "dir" for c in matched.conditions):
        raise RuleError(f"rule {text!r} drops every cluster packet"
                        f"{'' if expr is not None else ' both ways'}: give a match "
                        "(e.g. drop type=NS_ackmsg) or write `drop all` if that is meant")
    return Rule(text.strip(), action, matched, probability, label=label)


class _AnyNode(dict[str, str]):
    """For checking a rule before the node list is known: any name passes as a node."""

    def get(self, key: str, default: object = None) -> str:  # type: ignore[override]
        return key if "." in key or ":" in key or "/" in key else "0.0.0.0"


_ANY_NODE = _AnyNode()


def _is_match_word(word: str) -> bool:
    """A word of the match expression: a term, a keyword or a parenthesis."""
    bare = word.lstrip("(!").rstrip(")")
    return (bool(match.TERM.match(bare)) or word.lower() in match.KEYWORDS
            or word[:1] in "(!" or word.endswith(")"))


def _parse_probability(value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        raise RuleError(f"bad probability p={value!r}: not a number") from None
    if not 0.0 <= p <= 1.0:
        raise RuleError(f"bad probability p={value}: must be between 0 and 1")
    return p


#: Rewrite names of Corosync layout fields (the codecs' own field names).
LAYOUT_PREFIXES = ("knet.", "totem.")
#: Layout fields a rewrite does not set: the type picks the layout, the rest are payloads.
_NOT_REWRITABLE = frozenset({"type", "userdata", "payload", "ciphertext", "pmtud_data"})
_INTEGER = re.compile(r"^[<>]?[bBhHiIlLqQ]$")


@cache
def layout_fields() -> Mapping[str, tuple[Field, ...]]:
    """``knet.NAME``/``totem.NAME`` -> that field in every layout that has it (so a value
    can be checked when the rule is parsed, before any packet says which layout it is)."""
    from hbtools import knet, totem

    out: dict[str, tuple[Field, ...]] = {}
    for prefix, layouts in (("knet.", knet.LAYOUTS), ("totem.", totem.LAYOUTS)):
        for layout in layouts.values():
            for f in layout.stored:
                if f.name not in _NOT_REWRITABLE:
                    out[prefix + f.name] = (*out.get(prefix + f.name, ()), f)
    return out


def is_integer_field(f: Field) -> bool:
    return isinstance(f.fmt, str) and bool(_INTEGER.match(f.fmt)) and not f.is_array


def layout_value(f: Field, text: str, word: str) -> Any:
    """A rewrite value as the codec's field holds it, written as ``hbtool inject -f`` takes
    it (decimal or 0x, ``hex:…`` bytes, ring id ``rep.seq``); RuleError when it is not."""
    from hbtools import inject, totem

    try:
        return inject.layout_value(f, text, word, totem.RingId)
    except inject.InjectError as exc:
        raise RuleError(f"{word!r}: {exc}") from None


def _parse_layout_assignment(word: str, name: str, value: str) -> Assignment:
    found = layout_fields().get(name)
    if found is None:
        prefix = name.split(".", 1)[0] + "."
        known = sorted(k[len(prefix):] for k in layout_fields() if k.startswith(prefix))
        raise RuleError(f"{word!r}: {prefix[:-1]} has no field a rewrite can set "
                        f"({', '.join(known)})")
    if re.fullmatch(r"[+-]\d+", value):
        if not all(is_integer_field(f) for f in found):
            raise RuleError(f"{word!r}: a relative value needs a numeric field")
        return Assignment(name, value, int(value))
    for f in found:
        layout_value(f, value, word)
    return Assignment(name, value)


def _parse_assignment(word: str) -> Assignment:
    name, _, value = word.partition(":=")
    if not name:
        raise RuleError(f"{word!r}: no field name before :=")
    if name in ("auth",):
        raise RuleError("auth cannot be rewritten: use sign=resign or sign=stale")
    if name.startswith(LAYOUT_PREFIXES):
        return _parse_layout_assignment(word, name, value)
    spec = FIELDS.get(name)
    relative: int | None = None
    if re.fullmatch(r"[+-]\d+", value):
        if spec is None or spec.kind.value not in _RADIX:
            raise RuleError(f"{word!r}: a relative value needs a numeric field (seq, hg, ts, ttl…)")
        relative = int(value)
    return Assignment(name, value, relative)


def _build_action(verb: str, positional: list[str], options: dict[str, str],
                  assignments: list[Assignment], nodes: Sequence[str]) -> Action:
    if verb in _PRESETS:
        return _partition(verb, positional, nodes)
    extra = 1 if verb in ("delay", "duplicate", "reorder", "ratelimit", "drop") else 0
    if len(positional) > extra:
        raise RuleError(f"{verb}: unexpected word {positional[extra]!r} "
                        f"(matches are KEY=VALUE, options {', '.join(_ACTION_OPTIONS[verb])})")
    first = positional[0] if positional else None
    if verb == "drop":
        if first not in (None, "all"):
            raise RuleError(f"drop: unexpected word {first!r} (matches are KEY=VALUE; "
                            "`drop all` for every packet)")
        return Drop()
    if verb == "delay":
        amount = first or options.get("delay")
        if amount is None:
            raise RuleError("delay needs an amount (delay 200ms)")
        dist = options.get("dist", "uniform")
        if dist not in DISTRIBUTIONS:
            raise RuleError(f"bad dist={dist!r} (one of {', '.join(DISTRIBUTIONS)})")
        return Delay(_hold(amount, "delay"), _hold(options.get("jitter", "0"), "jitter"), dist)
    if verb == "duplicate":
        return Duplicate(_parse_int(first or options.get("copies", "1"), "copies", 1, MAX_COPIES))
    if verb == "reorder":
        window = _parse_int(first or options.get("window", "4"), "window", 2, MAX_WINDOW)
        return Reorder(window, _hold(options.get("timeout", "500ms"), "timeout"))
    if verb == "corrupt":
        bits = _parse_int(options.get("bits", "0"), "bits", 0, MAX_CORRUPT)
        nbytes = _parse_int(options.get("bytes", "0"), "bytes", 0, MAX_CORRUPT)
        if not bits and not nbytes:
            bits = 1
        return Corrupt(bits, nbytes)
    if verb == "rewrite":
        if not assignments:
            raise RuleError("rewrite needs at least one NAME:=VALUE (e.g. st:=dead, seq:=+5)")
        sign = options.get("sign", "resign")
        if sign not in SIGNING:
            raise RuleError(f"bad sign={sign!r} (resign: with --authkeys; stale: keep the old one)")
        rewrite = Rewrite(tuple(assignments), sign, options.get("key"))
        layered = [a.name.startswith(LAYOUT_PREFIXES) for a in assignments]
        if any(layered) and not all(layered):
            raise RuleError("a rewrite sets either Heartbeat fields or knet./totem. fields, "
                            "not both (write two rules)")
        if rewrite.key is not None and not rewrite.corosync:
            raise RuleError("key= names a --corosync-authkey file: it is for knet./totem. "
                            "rewrites")
        if rewrite.key == "":
            raise RuleError("key= needs the name of a --corosync-authkey file")
        return rewrite
    if verb == "ratelimit":
        rate_text = first or options.get("rate")
        if rate_text is None:
            raise RuleError("ratelimit needs a rate (ratelimit 10/s)")
        rate = _bounded(_parse_rate(rate_text), f"rate {rate_text!r}", MAX_RATE, "/s")
        if rate <= 0:
            raise RuleError(f"bad rate {rate_text!r}: must be positive")
        return RateLimit(rate, _parse_int(options.get("burst", "1"), "burst", 1, MAX_BURST))
    raise AssertionError(verb)


def _partition(verb: str, args: list[str], nodes: Sequence[str]) -> Partition:
    """Turn a partition or a Jepsen preset into the set of cut (sender, receiver) links."""
    known = list(nodes)

    def need(name: str) -> str:
        if name not in known:
            listed = ", ".join(known) if known else "none declared"
            raise RuleError(f"unknown node {name!r} (nodes: {listed}; declare them with "
                            "--node NAME=ADDRESS or [nodes] in a scenario)")
        return name

    def group(text: str) -> list[str]:
        return [need(n) for n in text.split(",") if n]

    cut: set[tuple[str, str]] = set()
    if verb == "partition":
        spec = "".join(args)
        m = re.fullmatch(r"([^<>]+)(<>|>|<)([^<>]+)", spec)
        if not m:
            raise RuleError("partition needs A>B (one way), A<B or A<>B (two way); "
                            "A and B are node names or comma lists")
        left, arrow, right = group(m.group(1)), m.group(2), group(m.group(3))
        for a in left:
            for b in right:
                if arrow in (">", "<>"):
                    cut.add((a, b))
                if arrow in ("<", "<>"):
                    cut.add((b, a))
        label = spec
    else:
        if len(known) < 2:
            raise RuleError(f"{verb} needs the node list (at least two --node NAME=ADDRESS)")
        if verb == "halves":
            if args:
                raise RuleError("halves takes no argument")
            half = len(known) // 2
            sides = [known[:half], known[half:]]
        else:
            if len(args) != 1:
                raise RuleError(f"{verb} needs one node name ({verb} NODE)")
            node = need(args[0])
            others = [n for n in known if n != node]
            if verb == "isolate":
                sides = [[node], others]
            else:  # bridge: two halves, the bridge node in both (Jepsen's "bridge")
                half = len(others) // 2
                if half == 0:
                    raise RuleError("bridge needs at least three nodes")
                sides = [others[:half] + [node], others[half:] + [node]]
        a_side, b_side = sides
        shared = set(a_side) & set(b_side)
        for a in a_side:
            for b in b_side:
                if a not in shared and b not in shared:
                    cut.add((a, b))
                    cut.add((b, a))
        label = f"{verb} {' '.join(args)}".strip()
    return Partition(tuple(sorted(cut)), label)


def parse_node(text: str) -> tuple[str, str]:
    """``NAME=ADDRESS`` for --node, the address checked as IPv4."""
    name, eq, address = text.partition("=")
    if not eq or not name:
        raise RuleError(f"bad node {text!r} (write NAME=ADDRESS, e.g. node1=198.18.0.1)")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise RuleError(f"bad node {text!r}: {address!r} is not an IPv4 address") from None
    return name, address
