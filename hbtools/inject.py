"""Hand-made and recorded Heartbeat messages, built to look like they came from a real node.

A real Heartbeat node writes a message in two steps (heartbeat's ``ha_msg_internal.c``,
``add_control_msg_fields``): the caller adds the type and its own fields, then the sender
*modifies in place, or appends* the fields every message carries, in this order: ``src``,
``srcuuid``, ``seq``, ``hg``, ``ts``, ``ld``, ``ttl``; ``NS_*`` types get no ``seq`` and no
``ld`` and keep whatever of the rest they already have. Signing comes last (``auth``
appended, then the trailer). `build_message` follows exactly that, so an injected
message is ordered the way the daemon orders it, and a template taken from a capture
keeps its own order.

The module has two halves. The top half is pure: time is the `now` parameter, the load
average a string, the node's identity (uuid, generation, next seq) a `NodeState` value,
a replay a list of `ReplayItem`. The bottom half, marked "I/O shell", is the only code
that touches the outside (sockets, scapy raw sends, capture files, the clock, sleeping)
and holds no protocol logic.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hbtools import heartbeat
from hbtools.fields import Kind, WireType, spec_for
from hbtools.heartbeat import Message, WireFormat

__all__ = [
    "BODY_ORDER",
    "COMMON_FIELDS",
    "DEFAULT_DEADTIME_MS",
    "DEFAULT_TTL",
    "AuthMode",
    "FieldSpecError",
    "InjectError",
    "NodeState",
    "ReplayItem",
    "StateBook",
    "build_message",
    "default_uuid",
    "dry_run_text",
    "hexdump",
    "load_template",
    "parse_field_spec",
    "parse_rate",
    "plan_replay",
    "refresh_message",
    "send_times",
    "sign_message",
]

#: What the sender adds to every message, in the order it adds them (defaults[] in
#: ha_msg_internal.c, matched on the wire: t, st, dt, protocol, then these, then auth).
COMMON_FIELDS: tuple[str, ...] = ("src", "srcuuid", "seq", "hg", "ts", "ld", "ttl")
#: Flagged IS_SEQ in heartbeat: left out of messages outside the sequence space (NS_*).
SEQUENCE_ONLY_FIELDS = frozenset({"seq", "ld"})
NOSEQ_PREFIX = "NS_"

#: The order in which the sending code adds a type's own fields, where it is not simply
#: ``t`` first. Read off real 3.0.6 datagrams (captures/hb-*): ``repnodes`` is the one
#: message that starts with ``dest`` (``dest``, ``t``, ``nodelist``, ``delnodelist``,
#: ``destuuid``), while ``reqnodes`` and ``NS_ackmsg`` put ``t`` first. A ``-f`` field
#: named here is placed by this order, whatever order the options came in.
BODY_ORDER: dict[str, tuple[str, ...]] = {
    "repnodes": ("dest", "t", "nodelist", "delnodelist", "destuuid"),
    "reqnodes": ("t", "dest", "destuuid"),
    "NS_ackmsg": ("t", "dest", "ackseq", "destuuid"),
}

#: Heartbeat's default deadtime (30 s), written as the hex milliseconds of ``dt``.
DEFAULT_DEADTIME_MS = 30_000
#: ``ttl`` is hopfudge (1) + number of nodes; 3 is what a 2-node cluster sends.
DEFAULT_TTL = 3
PROTOCOL_VERSION = "1"

#: Most messages are sent bounded by this (count or capture length); a typo such as
#: ``--count 10000000`` is refused rather than flooding a lab for hours.
MAX_COUNT = 1_000_000

AuthMode = Literal["good", "bad", "none"]

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.:/")


class InjectError(ValueError):
    """Input the injector cannot use; the message is one line that says what and where."""


class FieldSpecError(InjectError):
    """A ``-f name=value`` that cannot become a Heartbeat field."""


# ---------------------------------------------------------------------------
# -f name=value
# ---------------------------------------------------------------------------


def parse_field_spec(spec: str) -> heartbeat.Field:
    """``name=value`` into a field typed by the field table.

    String fields take the value as written. Binary fields (``srcuuid``, ``destuuid``…)
    take a uuid in its usual text form, ``hex:…`` or ``base64:…``; ``(1)name=…`` forces
    the binary type for a name the table does not know.
    """
    name, sep, value = spec.partition("=")
    if not sep:
        raise FieldSpecError(f"bad field spec {spec!r}: expected name=value")
    forced: WireType | None = None
    if name.startswith("(") and len(name) >= 3 and name[2] == ")":
        try:
            forced = WireType(int(name[1]))
        except ValueError:
            raise FieldSpecError(f"bad field spec {spec!r}: unknown type {name[:3]!r}") from None
        if forced not in (WireType.STRING, WireType.BINARY):
            raise FieldSpecError(f"bad field spec {spec!r}: only (0) string and (1) binary can be given")
        name = name[3:]
    if not name:
        raise FieldSpecError(f"bad field spec {spec!r}: empty field name")
    bad = sorted({c for c in name if c not in _NAME_CHARS})
    if bad:
        raise FieldSpecError(f"bad field spec {spec!r}: character {bad[0]!r} not allowed in a field name")
    if "\n" in value:
        raise FieldSpecError(f"bad field spec {spec!r}: newline in the value")
    wire_type = forced if forced is not None else spec_for(name).wire_type
    if wire_type is WireType.BINARY:
        return heartbeat.Field(name, WireType.BINARY, _binary_value(spec, name, value))
    if wire_type is not WireType.STRING:
        raise FieldSpecError(f"bad field spec {spec!r}: {name} is a {wire_type.name.lower()} field")
    kind = spec_for(name).kind
    if value.startswith("!"):
        # raw wire text, on purpose (malformed packets are a use of an injector)
        return heartbeat.Field(name, WireType.STRING, value[1:])
    if kind in (Kind.HEX_INT, Kind.DEC_INT) and value:
        # One number convention (issue 14): a number is given as decode shows it, in
        # decimal (dt=7000 is 7 s), or as 0x… ; it is written in the field's wire radix.
        number = _number_value(value)
        if number is None:
            raise FieldSpecError(
                f"bad field spec {spec!r}: {name} is a number: give a decimal number as "
                f"decode shows it, 0x… for hex, or !TEXT to send raw wire text")
        value = format(number, "x") if kind is Kind.HEX_INT else str(number)
    return heartbeat.Field(name, WireType.STRING, value)


def _number_value(text: str) -> int | None:
    """Decimal (``7000``, ``-1``) or explicit hex (``0x1b58``); None for anything else."""
    body = text[1:] if text.startswith("-") else text
    sign = -1 if text.startswith("-") else 1
    if body.isascii() and body.isdigit():
        return sign * int(body)
    if body[:2].lower() == "0x" and body[2:] and all(c in string.hexdigits for c in body[2:]):
        return sign * int(body[2:], 16)
    return None


def _binary_value(spec: str, name: str, value: str) -> bytes:
    if value.startswith("hex:"):
        try:
            return bytes.fromhex(value[4:])
        except ValueError:
            raise FieldSpecError(f"bad field spec {spec!r}: not hex after 'hex:'") from None
    if value.startswith("base64:"):
        try:
            return base64.b64decode(value[7:], validate=True)
        except (binascii.Error, ValueError):
            raise FieldSpecError(f"bad field spec {spec!r}: not base64 after 'base64:'") from None
    try:
        return uuid.UUID(value).bytes
    except ValueError:
        raise FieldSpecError(
            f"bad field spec {spec!r}: {name} is binary: give a uuid, hex:… or base64:…"
        ) from None


# ---------------------------------------------------------------------------
# the node the messages pretend to come from
# ---------------------------------------------------------------------------


def default_uuid(node: str) -> bytes:
    """A stable uuid per node name, so invocations without a state file agree."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.hbtools.invalid").bytes


@dataclass(frozen=True)
class NodeState:
    """What makes a series of messages look like one node's life.

    `generation` is what a daemon keeps in ``hb_generation`` (epoch seconds at the first
    start, +1 per restart); `next_seq` restarts at 1 with every generation, as the
    daemon's counter does.
    """

    node: str
    uuid: bytes
    generation: int
    next_seq: int = 1

    @classmethod
    def fresh(cls, node: str, now: float, node_uuid: bytes | None = None) -> NodeState:
        return cls(node, node_uuid if node_uuid is not None else default_uuid(node), int(now), 1)

    def after(self, sent: int) -> NodeState:
        """The state once `sent` sequenced messages went out."""
        return replace(self, next_seq=self.next_seq + sent)

    def restarted(self) -> NodeState:
        """A daemon restart: next generation, sequence from 1."""
        return replace(self, generation=self.generation + 1, next_seq=1)


@dataclass
class StateBook:
    """The ``--state`` file: one `NodeState` per node name, as small JSON.

    Keyed by node name so that one file can stand for several pretend nodes; the text
    form is stable (sorted keys) so that it can be read and edited by hand.
    """

    nodes: dict[str, NodeState] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str = "<state>") -> StateBook:
        if not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InjectError(f"{source}:{exc.lineno}: state file is not JSON: {exc.msg}") from None
        nodes = raw.get("nodes") if isinstance(raw, dict) else None
        if not isinstance(nodes, dict):
            raise InjectError(f"{source}: state file has no 'nodes' object")
        book = cls()
        for name, entry in nodes.items():
            try:
                book.nodes[name] = NodeState(
                    node=name,
                    uuid=uuid.UUID(entry["uuid"]).bytes,
                    generation=int(entry["generation"]),
                    next_seq=int(entry["next_seq"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise InjectError(f"{source}: bad entry for node {name!r}: {exc}") from None
            if book.nodes[name].next_seq < 1 or book.nodes[name].generation < 0:
                raise InjectError(f"{source}: bad entry for node {name!r}: negative numbers")
        return book

    def dump(self) -> str:
        out = {
            "nodes": {
                name: {
                    "uuid": str(uuid.UUID(bytes=st.uuid)),
                    "generation": st.generation,
                    "next_seq": st.next_seq,
                }
                for name, st in sorted(self.nodes.items())
            }
        }
        return json.dumps(out, indent=2, sort_keys=True) + "\n"

    def get(self, node: str, now: float, node_uuid: bytes | None = None) -> NodeState:
        """The node's state, created on first use (generation = `now`, like a first start)."""
        state = self.nodes.get(node)
        if state is None:
            state = NodeState.fresh(node, now, node_uuid)
            self.nodes[node] = state
        elif node_uuid is not None and node_uuid != state.uuid:
            state = replace(state, uuid=node_uuid)
            self.nodes[node] = state
        return state


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------


def is_sequenced(message_type: str | None) -> bool:
    """Whether the sender numbers this type (everything but NS_*, as in heartbeat)."""
    return not (message_type or "").startswith(NOSEQ_PREFIX)


def type_defaults(message_type: str, deadtime_ms: int = DEFAULT_DEADTIME_MS) -> list[heartbeat.Field]:
    """What the sending code adds before the common fields, where we know it from the wire.

    Only ``status`` is filled in (``st``, ``dt``, ``protocol``, seen in every real status
    message); for other types the caller's own ``-f`` fields are the body.
    """
    fields = [heartbeat.Field("t", WireType.STRING, message_type)]
    if message_type == "status":
        fields += [
            heartbeat.Field("st", WireType.STRING, "active"),
            heartbeat.Field("dt", WireType.STRING, format(deadtime_ms, "x")),
            heartbeat.Field("protocol", WireType.STRING, PROTOCOL_VERSION),
        ]
    return fields


def common_values(
    state: NodeState, seq: int, now: float, load: str, ttl: int = DEFAULT_TTL
) -> dict[str, heartbeat.Field]:
    """The fields the sender adds to every message, rendered in their wire radix."""
    return {
        "src": heartbeat.Field("src", WireType.STRING, state.node),
        "srcuuid": heartbeat.Field("srcuuid", WireType.BINARY, state.uuid),
        "seq": heartbeat.Field("seq", WireType.STRING, format(seq, "x")),
        "hg": heartbeat.Field("hg", WireType.STRING, format(state.generation, "x")),
        "ts": heartbeat.Field("ts", WireType.STRING, format(int(now), "x")),
        "ld": heartbeat.Field("ld", WireType.STRING, load),
        "ttl": heartbeat.Field("ttl", WireType.STRING, str(ttl)),
    }


def build_message(
    *,
    message_type: str | None = "status",
    state: NodeState,
    seq: int,
    now: float,
    load: str,
    overrides: Sequence[heartbeat.Field] = (),
    template: Message | None = None,
    fill: bool = True,
    omit: Iterable[str] = (),
    ttl: int = DEFAULT_TTL,
    deadtime_ms: int = DEFAULT_DEADTIME_MS,
    wire_format: WireFormat = "netstring",
) -> Message:
    """One message as a real node would write it, with the caller's changes.

    Order of work, mirroring the daemon: body (template's fields, or ``t`` plus the
    type's usual fields), the caller's body fields (``-f``; a name already there is
    changed where it stands, a new one goes before the common fields and before any
    field that `BODY_ORDER` puts after it, so ``-t repnodes -f dest=…`` starts with
    ``dest``), then the common fields modified in place or appended (skipped with
    ``fill=False``), then ``-f``
    values for common fields, then ``omit``. A signature already in the body is kept
    in its place for `sign_message` to recompute, as ``ha_msg_mod`` would.
    """
    if template is not None:
        fields = list(template.fields)
        if message_type is not None:
            fields = _set(fields, heartbeat.Field("t", WireType.STRING, message_type))
    else:
        if not message_type:
            raise InjectError("no message type: give -t TYPE or a template")
        fields = type_defaults(message_type, deadtime_ms)
    msg_type = next((f.value for f in fields if f.name == "t"), None)
    if msg_type is None:
        raise InjectError("the template has no 't' field (message type): give -t TYPE")
    common = set(COMMON_FIELDS)
    order = BODY_ORDER.get(msg_type, ())
    for f in overrides:
        if f.name not in common:
            later = set(order[order.index(f.name) + 1 :]) if f.name in order else set()
            fields = _set(fields, f, before=later | common | {heartbeat.AUTH_FIELD})
    if fill:
        sequenced = is_sequenced(msg_type)
        values = common_values(state, seq, now, load, ttl)
        for name in COMMON_FIELDS:
            if not sequenced and name in SEQUENCE_ONLY_FIELDS:
                continue
            present = any(f.name == name for f in fields)
            if present and not sequenced:
                continue  # heartbeat: "Don't put in duplicate values already gotten"
            fields = _set(fields, values[name], before={heartbeat.AUTH_FIELD})
    for f in overrides:
        if f.name in common:
            fields = _set(fields, f, before={heartbeat.AUTH_FIELD})
    dropped = set(omit)
    fields = [f for f in fields if f.name not in dropped]
    return Message(fields, wire_format)


def _set(
    fields: list[heartbeat.Field], new: heartbeat.Field, before: set[str] | frozenset[str] = frozenset()
) -> list[heartbeat.Field]:
    """``ha_msg_mod``: change the first field of that name in place, else add it.

    A new field goes before the first field named in `before` (so a body field lands
    ahead of ``src…ttl`` and nothing lands after ``auth``), else last.
    """
    out = list(fields)
    for i, f in enumerate(out):
        if f.name == new.name:
            out[i] = new
            return out
    for i, f in enumerate(out):
        if f.name in before:
            out.insert(i, new)
            return out
    out.append(new)
    return out


# ---------------------------------------------------------------------------
# signing
# ---------------------------------------------------------------------------


class _WrongSigner:
    """Signs like the real keys, then changes the digest's last hex digit.

    A digest that is off by one digit is the hardest case for a receiver (right key
    number, right length, right format), so a rejection proves the digest was checked.
    """

    def __init__(self, keys: heartbeat.Signer) -> None:
        self.keys = keys

    def sign(self, data: bytes) -> str:
        number, _, digest = self.keys.sign(data).partition(" ")
        last = digest[-1]
        flipped = "0123456789abcdef"[("0123456789abcdef".index(last) + 1) % 16]
        return f"{number} {digest[:-1]}{flipped}"


def sign_message(
    msg: Message,
    keys: heartbeat.Signer | None,
    auth: AuthMode = "good",
    *,
    inline_auth: bool = True,
) -> bytes:
    """The datagram: signed as Heartbeat 3.0.6 signs (trailer + in-body ``auth``).

    ``auth="bad"`` writes both signatures with a wrong digest; ``"none"`` writes neither
    (no ``auth`` field, no trailer), which a real node rejects for lack of a trailer.
    `inline_auth=False` leaves the in-body field out of netstring messages, as a node
    with ``msgfmt netstring`` does; classic messages always carry it.
    """
    if auth == "none":
        bare = Message([f for f in msg.fields if f.name != heartbeat.AUTH_FIELD], msg.wire_format)
        return heartbeat.encode(bare)
    if keys is None:
        raise InjectError("signing needs keys: give --authkeys FILE (or --no-auth)")
    signer: heartbeat.Signer = _WrongSigner(keys) if auth == "bad" else keys
    inline = True if msg.wire_format == "classic" else inline_auth
    unsent = Message(msg.fields, msg.wire_format)
    return heartbeat.encode(unsent, signer, inline_auth=inline)


# ---------------------------------------------------------------------------
# templates
# ---------------------------------------------------------------------------


def load_template(data: bytes, source: str = "<template>") -> Message:
    """A message from a template file: classic text (``>>>``/``<<<`` optional) or netstring.

    Hand-written templates are classic text; a line of their own that starts with ``#``
    is a comment (field names never start with ``#``), blank lines are ignored.
    """
    if data.startswith(heartbeat.NETSTRING_START):
        try:
            return heartbeat.decode(data)
        except heartbeat.DecodeError as exc:
            raise InjectError(f"{source}: not a Heartbeat message: {exc}") from None
    lines: list[bytes] = []
    line_numbers: list[int] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        stripped = line.rstrip(b"\r")
        if not stripped.strip() or stripped.lstrip().startswith(b"#"):
            continue
        if stripped in (b">>>", b"<<<"):
            continue
        lines.append(stripped)
        line_numbers.append(number)
    if not lines:
        raise InjectError(f"{source}: template holds no fields")
    fields: list[heartbeat.Field] = []
    for number, line in zip(line_numbers, lines, strict=True):
        text = b">>>\n" + line + b"\n<<<\n"
        try:
            one = heartbeat.decode(text)
        except heartbeat.DecodeError as exc:
            raise InjectError(f"{source}:{number}: {exc.problem}") from None
        fields.extend(one.fields)
    return Message(fields, "classic")


# ---------------------------------------------------------------------------
# sending schedule
# ---------------------------------------------------------------------------


def parse_rate(text: str) -> float:
    """``10/s``, ``10`` or ``2/min`` into messages per second."""
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        rate = float(number)
    except ValueError:
        rate = -1.0
    if per is None or not rate > 0 or rate != rate or rate == float("inf"):
        raise InjectError(f"bad rate {text!r}: expected a positive number per second, e.g. 10/s")
    return rate / per


def send_times(count: int, interval: float, start: float = 0.0) -> list[float]:
    """When each of `count` messages goes out: bounded by construction."""
    if not 1 <= count <= MAX_COUNT:
        raise InjectError(f"count {count} out of range 1..{MAX_COUNT}")
    if not interval >= 0 or interval == float("inf"):
        raise InjectError(f"bad interval {interval!r}: expected seconds >= 0")
    return [start + i * interval for i in range(count)]


# ---------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedDatagram:
    """One UDP payload of a capture with what replay needs to know about it."""

    frame: int
    time: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


@dataclass(frozen=True)
class ReplayItem:
    """Send `payload` `delay` seconds after the replay starts."""

    delay: float
    payload: bytes
    frame: int
    dport: int
    note: str = ""


def refresh_message(
    msg: Message, state: NodeState, seq: int | None, now: float
) -> Message:
    """Make a recorded message current for its node: generation, seq and ts rewritten.

    `seq` None leaves ``seq`` alone (an ``NS_*`` message has none to rewrite). Only
    fields already present are changed, in place, so the message keeps its shape.
    """
    fields = list(msg.fields)
    changes = {"hg": format(state.generation, "x"), "ts": format(int(now), "x")}
    if seq is not None:
        changes["seq"] = format(seq, "x")
    for i, f in enumerate(fields):
        if f.name in changes and f.type is WireType.STRING:
            fields[i] = heartbeat.Field(f.name, WireType.STRING, changes.pop(f.name))
    return Message(fields, msg.wire_format, msg.trailer, msg.nul_terminated)


def plan_replay(
    datagrams: Sequence[CapturedDatagram],
    *,
    now: float,
    speed: float = 1.0,
    wait: bool = True,
    keys: heartbeat.Signer | None = None,
    refresh: StateBook | None = None,
    only_src: str | None = None,
    ports: frozenset[int] | None = None,
) -> list[ReplayItem]:
    """What to send when: original spacing divided by `speed` (or none with `wait=False`).

    With `keys` every Heartbeat message is re-signed (trailer, and the in-body ``auth``
    if it had one). With `refresh` each message's node gets a fresh generation and the
    next sequence numbers from that book (which is updated, so a state file can be saved
    afterwards): a node the book does not know continues as if it had restarted once
    after the capture (recorded generation + 1, seq from 1), which a receiver that saw
    the original accepts. Payloads that are not Heartbeat are sent unchanged unless a
    rewrite was asked for, then refused (one line naming the frame).
    """
    if not speed > 0 or speed == float("inf"):
        raise InjectError(f"bad speed {speed!r}: expected a positive number")
    if refresh is not None and keys is None:
        raise InjectError("--refresh changes signed fields: give --authkeys to re-sign")
    chosen = [d for d in datagrams if ports is None or d.dport in ports]
    if not chosen:
        return []
    first = chosen[0].time
    items: list[ReplayItem] = []
    for d in chosen:
        payload = d.payload
        note = ""
        if keys is not None or refresh is not None or only_src is not None:
            try:
                msg = heartbeat.decode(payload)
            except heartbeat.DecodeError as exc:
                if only_src is not None:
                    continue
                raise InjectError(
                    f"frame {d.frame}: not a Heartbeat message ({exc}), cannot rewrite it"
                ) from None
            if only_src is not None and msg.src != only_src:
                continue
            if refresh is not None:
                msg, note = _refreshed(msg, refresh, now + (d.time - first) / speed, d.frame)
            if keys is not None:
                payload = _resign(msg, keys)
        delay = (d.time - first) / speed if wait else 0.0
        items.append(ReplayItem(max(0.0, delay), payload, d.frame, d.dport, note))
    return items


def _refreshed(msg: Message, book: StateBook, now: float, frame: int) -> tuple[Message, str]:
    node = msg.src
    if node is None:
        raise InjectError(f"frame {frame}: message has no src, cannot refresh it")
    state = book.nodes.get(node)
    if state is None:
        recorded = msg.generation
        srcuuid = msg.get("srcuuid")
        node_uuid = srcuuid if isinstance(srcuuid, bytes) and len(srcuuid) == 16 else default_uuid(node)
        state = NodeState(node, node_uuid, (recorded + 1) if recorded is not None else int(now), 1)
    sequenced = is_sequenced(msg.type) and "seq" in msg
    seq = state.next_seq if sequenced else None
    book.nodes[node] = state.after(1) if sequenced else state
    refreshed = refresh_message(msg, state, seq, now)
    return refreshed, f"{node} hg={state.generation:x}" + (f" seq={seq:x}" if seq is not None else "")


def _resign(msg: Message, keys: heartbeat.Signer) -> bytes:
    had_inline = heartbeat.AUTH_FIELD in msg
    fresh = Message(msg.fields, msg.wire_format, None, msg.nul_terminated)
    if msg.wire_format == "classic":
        return heartbeat.encode(fresh, keys)
    return heartbeat.encode(fresh, keys, inline_auth=had_inline)


# ---------------------------------------------------------------------------
# --dry-run
# ---------------------------------------------------------------------------


def hexdump(data: bytes) -> str:
    """``offset  hex bytes  |ascii|`` lines, 16 bytes each (the ``hexdump -C`` layout)."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{off:08x}  {left:<23}  {right:<23}  |{text}|")
    return "\n".join(lines)


def printable(data: bytes) -> str:
    """The datagram as text: newlines kept, other bytes outside ASCII shown as ``\\xNN``."""
    out = []
    for b in data:
        if b == 0x0A or 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif b == 0x5C:
            out.append("\\\\")
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def dry_run_text(data: bytes, header: str) -> str:
    """What ``--dry-run`` prints for one datagram: a header, the text, the hex."""
    body = printable(data)
    if not body.endswith("\n"):
        body += "\n"
    return f"# {header}\n{body}{hexdump(data)}\n"


# ===========================================================================
# I/O shell: the clock, /proc/loadavg, capture files, sockets. No protocol here.
# ===========================================================================

HEARTBEAT_PORT = 694
MAX_UDP_PAYLOAD = 65_507


def read_loadavg(path: str = "/proc/loadavg") -> str:
    """What ``ha_msg_loadavg`` sends: the first line of /proc/loadavg, ``n/a`` if unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read(63).split("\n", 1)[0] or "n/a"
    except OSError:
        return "n/a"


def read_capture(path: str) -> list[CapturedDatagram]:
    """Every UDP datagram of a pcap/pcapng file, IPv4 fragments reassembled.

    The project's streaming reader (``dissectors``) does the reading, as for ``decode``.
    """
    from hbtools.dissectors.capture import CaptureError, open_capture
    from hbtools.dissectors.layers import UdpLayers

    out: list[CapturedDatagram] = []
    try:
        with open(path, "rb") as fh:
            layers = UdpLayers()
            for number, (ts, linktype, data, _wirelen) in enumerate(open_capture(fh, path), start=1):
                dgram = layers.datagram(linktype, data, ts, number)
                if dgram is None:
                    continue
                src, dst, sport, dport, payload, error = dgram
                if error is None:
                    out.append(CapturedDatagram(number, ts, src, dst, sport, dport, bytes(payload)))
    except OSError as exc:
        raise InjectError(f"{path}: cannot read: {exc.strerror}") from None
    except CaptureError as exc:
        raise InjectError(str(exc)) from None
    return out


def datagram_at_frame(path: str, frame: int) -> CapturedDatagram:
    """The UDP datagram that frame `frame` (1-based, as Wireshark counts) completes."""
    for d in read_capture(path):
        if d.frame == frame:
            return d
    raise InjectError(f"{path}: frame {frame} holds no complete UDP datagram")


def _is_multicast(address: str) -> bool:
    first = int(address.split(".", 1)[0])
    return 224 <= first <= 239


def check_ipv4(address: str, what: str = "address") -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        raise InjectError(f"bad {what} {address!r}: expected an IPv4 address") from None


def check_interface(iface: str) -> int:
    """The interface index, or a one-line error naming the interface."""
    import socket

    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise InjectError(f"unknown interface {iface!r} (see `ip link`)") from None


class Sender:
    """One destination: a UDP socket, or a raw socket when the source address is spoofed.

    Broadcast is always allowed (SO_BROADCAST) because Heartbeat's ``bcast`` media send to
    the subnet broadcast address; ``--iface`` pins the interface (SO_BINDTODEVICE, and
    IP_MULTICAST_IF for groups), which is how a multi-homed host picks the cluster link.
    """

    def __init__(
        self,
        to: str,
        port: int = HEARTBEAT_PORT,
        *,
        iface: str | None = None,
        spoof_src: str | None = None,
        sport: int | None = None,
        multicast_ttl: int = 1,
    ) -> None:
        import socket

        self.to = check_ipv4(to, "destination")
        if not 1 <= port <= 65535:
            raise InjectError(f"bad port {port}: expected 1..65535")
        self.port = port
        self.iface = iface
        self.spoof_src = check_ipv4(spoof_src, "--spoof-src address") if spoof_src else None
        if self.spoof_src:
            from hbtools.extras import MissingExtra, require

            try:
                require("scapy.layers.inet", "spoof", "--spoof-src")
            except MissingExtra as exc:
                raise InjectError(str(exc)) from None
        self.sport = sport if sport is not None else 0
        ifindex = check_interface(iface) if iface else 0
        try:
            if self.spoof_src:
                # IPPROTO_RAW implies IP_HDRINCL: we write the IP header, so the source is ours.
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        except PermissionError:
            raise InjectError(
                "--spoof-src needs a raw socket: CAP_NET_RAW is missing (run as root)"
            ) from None
        self.sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if iface:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
                except PermissionError:
                    raise InjectError(
                        f"--iface {iface} needs SO_BINDTODEVICE: CAP_NET_RAW is missing (run as root)"
                    ) from None
            if _is_multicast(self.to):
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, multicast_ttl)
                if ifindex:
                    mreqn = socket.inet_aton("0.0.0.0") * 2 + ifindex.to_bytes(4, "little")
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            if not self.spoof_src and sport:
                try:
                    sock.bind(("0.0.0.0", sport))
                except PermissionError:
                    raise InjectError(
                        f"source port {sport} is privileged: CAP_NET_BIND_SERVICE is missing"
                    ) from None
                except OSError as exc:
                    raise InjectError(f"cannot use source port {sport}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        self._ip_id = (id(self) >> 4) & 0xFFFF

    def send(self, payload: bytes) -> int:
        """Send one datagram; returns the number of IP packets written."""
        if len(payload) > MAX_UDP_PAYLOAD:
            raise InjectError(f"message of {len(payload)} bytes does not fit in one UDP datagram")
        try:
            if self.spoof_src:
                packets = self._raw_packets(payload)
                for p in packets:
                    self.sock.sendto(p, (self.to, 0))
                return len(packets)
            self.sock.sendto(payload, (self.to, self.port))
            return 1
        except PermissionError:
            raise InjectError(
                f"sending to {self.to} was refused (a firewall rule, or broadcast without privilege)"
            ) from None
        except OSError as exc:
            raise InjectError(f"cannot send to {self.to}:{self.port}: {exc.strerror}") from None

    def _raw_packets(self, payload: bytes) -> list[bytes]:
        """The IPv4 packets (fragmented at 1500-byte MTU) that carry the spoofed datagram."""
        from scapy.layers.inet import IP, UDP, fragment
        from scapy.packet import Raw

        self._ip_id = (self._ip_id + 1) & 0xFFFF
        sport = self.sport or 32768 + (self._ip_id % 28000)
        pkt = IP(src=self.spoof_src, dst=self.to, id=self._ip_id, ttl=64) / UDP(
            sport=sport, dport=self.port
        ) / Raw(payload)
        if len(pkt) <= 1500:
            return [bytes(pkt)]
        return [bytes(f) for f in fragment(pkt, fragsize=1480)]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_schedule(
    delays: Sequence[float],
    emit: Any,
    *,
    clock: Any = None,
    sleep: Any = None,
) -> int:
    """Call ``emit(index)`` at each delay (seconds from now); returns how many went out.

    Sleeping is against a monotonic clock, so a slow send does not push every later
    message back: the schedule keeps the original spacing as far as the host allows.
    """
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    start = clock()
    done = 0
    for index, delay in enumerate(delays):
        wait = start + delay - clock()
        if wait > 0:
            sleep(wait)
        emit(index)
        done += 1
    return done


# ===========================================================================
# Totem (pure): a Corosync 3 message from -f specs, bare or in a knet data packet
# ===========================================================================

TOTEM_PORT = 5405
#: Sent to one node (the next on the ring), so knet marks them unicast; the rest are
#: broadcast (bcast 1), as seen on the wire from corosync 3.1.7 with knet.
_TOTEM_UNICAST = frozenset({"orf_token", "memb_commit_token"})
_KNET_PREFIX = "knet."


def build_totem(message_type: str, specs: Sequence[str], *, knet: bool = False) -> bytes:
    """Bytes of one Totem message built from ``name=value`` specs (codec field names).

    Scalars take decimal or ``0x`` hex; node lists ``1,2,3``; a ring id ``rep.seq`` with
    seq in hex, as ``corosync-quorumtool`` prints it (``1.d``); bytes ``hex:…``.
    ``endian=big`` writes the other byte order. What a real node would put and the
    caller left out: ``system_from`` = ``nodeid``, and a ``memb_join`` lists its sender
    in ``proc_list``. With `knet` the message goes in an unfragmented knet data packet
    (``knet.node`` defaults to ``nodeid``, ``knet.seq_num`` to 1, ``knet.bcast`` by type);
    ``knet.<field>`` sets any knet header field.
    """
    from hbtools import knet as knet_codec
    from hbtools import totem

    layout = totem.LAYOUTS.get(message_type)
    if layout is None:
        raise InjectError(f"unknown Totem message type {message_type!r} "
                          f"({', '.join(totem.TYPES.values())})")
    endian = "little"
    values: dict[str, Any] = {}
    knet_specs: list[tuple[str, str]] = []
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not name:
            raise FieldSpecError(f"bad field spec {spec!r}: expected name=value")
        if name == "endian":
            if text not in ("little", "big"):
                raise FieldSpecError(f"bad field spec {spec!r}: endian is little or big")
            endian = text
            continue
        if name.startswith(_KNET_PREFIX):
            knet_specs.append((name[len(_KNET_PREFIX):], text))
            continue
        settable = [f.name for f in layout.stored]
        if name not in settable:
            raise FieldSpecError(f"bad field spec {spec!r}: {message_type} has no settable field "
                                 f"{name!r} ({', '.join(settable)})")
        values[name] = layout_value(layout.field(name), text, spec, totem.RingId)
    nodeid = values.get("nodeid", 0)
    if "system_from" in settable_names(layout) and "system_from" not in values:
        values["system_from"] = nodeid
    if message_type == "memb_join" and "proc_list" not in values:
        values["proc_list"] = (nodeid,)
    try:
        message = totem.Message(message_type, endian=endian, **values)
        data = totem.encode(message)
    except (ValueError, TypeError) as exc:
        raise InjectError(f"cannot build {message_type}: {exc}") from None
    if not knet:
        if knet_specs:
            raise InjectError("knet.* fields need --knet")
        return data
    header: dict[str, Any] = {"node": nodeid & 0xFFFF, "seq_num": 1,
                              "bcast": 0 if message_type in _TOTEM_UNICAST else 1}
    data_layout = knet_codec.LAYOUTS["data"]
    for name, text in knet_specs:
        known = [f.name for f in data_layout.stored if f.name != "userdata"]
        if name not in known:
            raise FieldSpecError(f"bad field spec 'knet.{name}={text}': knet data packets have "
                                 f"{', '.join(known)}")
        header[name] = layout_value(data_layout.field(name), text, f"knet.{name}={text}", None)
    try:
        return knet_codec.encode(knet_codec.Packet("data", totem=message, **header))
    except (ValueError, TypeError) as exc:
        raise InjectError(f"cannot build the knet packet: {exc}") from None


def settable_names(layout: Any) -> list[str]:
    return [f.name for f in layout.stored]


def layout_value(field_def: Any, text: str, spec: str, ring_id_type: Any) -> Any:
    """One -f value converted to what the codec's field holds (also the value of a fault
    rule's ``rewrite knet.NAME:=VALUE``: one syntax for a layout field's value)."""
    nested = field_def.nested
    if nested is not None and nested.name == "memb_ring_id" and ring_id_type is not None:
        if field_def.is_array:
            raise FieldSpecError(f"bad field spec {spec!r}: arrays of ring ids cannot be given here")
        rep, dot, seq = text.partition(".")
        try:
            return ring_id_type(rep=int(rep, 0), seq=int(seq, 16))
        except ValueError:
            raise FieldSpecError(f"bad field spec {spec!r}: a ring id is rep.seq, seq in hex "
                                 f"(e.g. 1.d)") from None
    if nested is not None:
        raise FieldSpecError(f"bad field spec {spec!r}: {field_def.name} cannot be set from "
                             f"the command line")
    if field_def.is_bytes():
        if text.startswith("hex:"):
            try:
                return bytes.fromhex(text[4:])
            except ValueError:
                raise FieldSpecError(f"bad field spec {spec!r}: not hex after 'hex:'") from None
        return text.encode()
    try:
        if field_def.is_array:
            return tuple(int(x, 0) for x in text.split(",") if x.strip())
        return int(text, 0)
    except ValueError:
        raise FieldSpecError(f"bad field spec {spec!r}: expected a number"
                             f"{' list (1,2,3)' if field_def.is_array else ''}") from None


#: knet packet types other than data, built by `build_knet` (``-t ping`` etc.).
KNET_CONTROL_TYPES = ("ping", "pong", "pmtud", "pmtud_reply")


def build_knet(kind: str, specs: Sequence[str]) -> bytes:
    """Bytes of one knet control packet (ping, pong, PMTUd) from ``name=value`` specs.

    Field names are the codec's (``node``, ``link``, ``time`` as ``hex:…``, ``seq_num``,
    ``timed``; ``size`` for PMTUd); unset fields are 0 (a ping's ``timed`` is 1).
    """
    from hbtools import knet as knet_codec

    layout = knet_codec.LAYOUTS.get(kind)
    if kind not in KNET_CONTROL_TYPES or layout is None:
        raise InjectError(f"unknown knet packet type {kind!r} ({', '.join(KNET_CONTROL_TYPES)})")
    values: dict[str, Any] = {"timed": 1} if kind in ("ping", "pong") else {}
    settable = [f.name for f in layout.stored if f.name not in ("type",)]
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.removeprefix(_KNET_PREFIX)
        if not sep or name not in settable:
            raise FieldSpecError(f"bad field spec {spec!r}: a knet {kind} has "
                                 f"{', '.join(settable)}")
        values[name] = layout_value(layout.field(name), text, spec, None)
    try:
        return knet_codec.encode(knet_codec.Packet(kind, **values))
    except (ValueError, TypeError) as exc:
        raise InjectError(f"cannot build the knet {kind}: {exc}") from None


def seal_knet(data: bytes, authkey_path: str, crypto: str = "aes256/sha256") -> bytes:
    """Encrypt and sign a cleartext knet packet as libknet does with this authkey.

    `crypto` is ``CIPHER/HASH`` as in corosync.conf (``none/sha256`` for hash only).
    """
    from hbtools import knetcrypto

    cipher, sep, hash_name = crypto.partition("/")
    try:
        suite = knetcrypto.suite_named(cipher, hash_name if sep else "")
    except ValueError as exc:
        raise InjectError(f"--crypto {crypto!r}: {exc}") from None
    try:
        key = knetcrypto.Key.load(authkey_path)
    except knetcrypto.AuthKeyError as exc:
        raise InjectError(str(exc)) from None
    return knetcrypto.seal(data, key, suite)
def check_generation_choice(node: str, *, sending: bool, signed: bool, sequenced: bool,
                            chosen: bool) -> None:
    """Refuse to impersonate a node with a generation nobody chose (issue 14).

    Without ``--state`` the generation is "now": a real peer logs ``node X restarted``,
    then drops the real X's messages as replays of an older generation and, after the
    injected deadtime, declares it dead and takes its resources: split brain from one
    packet. So a signed, sequenced message for a node needs ``--state FILE`` (continue
    its stream), ``--generation N`` or ``--new-generation`` (a restart, on purpose).
    """
    if sending and signed and sequenced and not chosen:
        raise InjectError(
            f"sending as {node} without --state: its peers would see {node} restart "
            "(a new generation), drop the real node's messages as replays and may declare it "
            "dead. Give --state FILE to continue its stream, or --new-generation / "
            "--generation N to mean a restart")
