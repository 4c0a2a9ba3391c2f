"""The verdict engine: a queued packet in, verdicts out; time is always the caller's ``now``.

Why sans-I/O: delay, reorder and timelines are all about time, and a test with a fake clock
can prove "released exactly 200 ms later" where a real clock could only prove "roughly".
The NFQUEUE shell (`faults.nfq`) feeds `Engine.receive` with each packet and calls
`Engine.tick` when `Engine.next_timer` is due; it turns `Verdict` into an accept/drop of
the kernel's packet and `Copy` into a raw send.

Rules are tried in order and compose: rewrite and corrupt change the bytes and go on,
delays add up, duplicate adds copies, reorder puts the packet in that rule's window
(reorder wins over delay), and drop, a partition cut or an exceeded rate limit end it.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from hbtools.faults import packet as ipv4
from hbtools.faults.rules import (
    Corrupt,
    Delay,
    Drop,
    Duplicate,
    Partition,
    RateLimit,
    Reorder,
    Rewrite,
    Rule,
    RuleError,
    layout_value,
)

from hbtools import corosync, heartbeat, knet, knetcrypto, match, totem
from hbtools.fields import spec_for
from hbtools.recognition import AUTO, DEFAULT_PORTS, HEARTBEAT, KNET, TOTEM, Detector

#: Queued packets are judged as `hbtool decode` judges them with its default options.
DEFAULT_DETECTOR = Detector()


def detector_for(ports: Iterable[int | tuple[int, str]] = ()) -> Detector:
    """The detector for a proxy that queues `ports` (ints, or ``(port, proto)`` pairs).

    The default cluster ports keep their protocol; another queued port is judged by
    content (AUTO), as ``hbtool decode -p PORT`` does; content recognition stays on for
    every other port, as in decode's default.
    """
    table = dict(DEFAULT_PORTS)
    for entry in ports:
        port, proto = entry if isinstance(entry, tuple) else (entry, None)
        table[port] = proto or table.get(port, AUTO)
    return Detector(table.items())


#: Packets held by delay rules at once; beyond, a packet passes undelayed (counted in
#: `Engine.overflowed`). At 10k/s a 60 s delay would hold 600,000 packets: memory driven by
#: the network, which the proxy never allows (issue 12). Reorder windows are bounded per rule.
MAX_HELD = 100_000


class Signer(Protocol):
    def sign(self, data: bytes) -> str: ...


@dataclass(frozen=True)
class Verdict:
    """Accept (with new bytes when ``payload`` is set: the whole IP datagram) or drop."""

    packet_id: int
    accept: bool
    payload: bytes | None = None


@dataclass(frozen=True)
class Copy:
    """An extra copy to send (a whole IP datagram); it must bypass the queue."""

    payload: bytes
    direction: str


Output = Verdict | Copy


@dataclass
class RuleStats:
    rule: str
    seen: int = 0
    matched: int = 0
    dropped: int = 0
    delayed: int = 0
    duplicated: int = 0
    reordered: int = 0
    rewritten: int = 0
    corrupted: int = 0
    #: Matched a rewrite rule but could not be rewritten (see `Engine._rewrite`): passed on.
    unrewritable: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COUNTERS = ("seen", "matched", "dropped", "delayed", "duplicated", "reordered", "rewritten",
            "corrupted", "unrewritable")


# ----------------------------------------------------------------------------- the packet


class PacketView:
    """A queued datagram and, decoded only when a rule asks, what its payload says.

    The protocol is the one `hbtool decode` gives the same datagram: the detector of
    `hbtools.recognition` (the cluster ports first, then the codecs' own recognisers), so
    ``proto=knet`` matches a knet packet on any port decode calls knet. A payload that is
    recognised but does not decode keeps its protocol (decode shows it as a malformed row
    of that protocol); its `heartbeat`/`totem`/`knet` are then None.
    """

    __slots__ = ("dgram", "direction", "detector", "state", "_proto", "_hb", "_totem",
                 "_knet", "_hb_fields", "_reading", "_summary", "_inherit")

    def __init__(self, dgram: ipv4.Datagram, direction: str,
                 detector: Detector = DEFAULT_DETECTOR, state: CorosyncState | None = None,
                 inherit: PacketView | None = None) -> None:
        self.dgram = dgram
        self.direction = direction
        self.detector = detector
        #: Keys and per-run Corosync state; None: no keys, no corosync.* names.
        self.state = state
        self._proto: str | None = None
        self._hb: heartbeat.Message | None = None
        self._totem: totem.Message | None = None
        self._knet: knet.Packet | None = None
        self._hb_fields: dict[str, Any] | None = None
        self._reading: knetcrypto.Reading | None = None
        self._summary: dict[str, list[Any]] = {}
        #: The view this one re-frames (after a rewrite/corrupt): its Corosync reading is
        #: kept rather than fed to the run's reassembly state a second time.
        self._inherit = inherit

    def values(self, key: str) -> list[Any]:
        """Candidate values for a match name (`hbtools.match`), as decode shows them."""
        d = self.dgram
        if key == "dir":
            return [self.direction]
        if key == "proto":
            return [self.proto, "totem"] if self.proto == "knet" and self.totem is not None \
                else [self.proto]
        if key == "type":
            found = [self.type_name]
            if self.knet is not None and self.totem is not None:
                found.append(str(self.totem.type_name))
            return found
        if key in ("ip.src", "ip.dst", "ip"):
            return {"ip.src": [d.src], "ip.dst": [d.dst], "ip": [d.src, d.dst]}[key]
        if key == "port":
            return [d.sport, d.dport]
        if key in ("sport", "dport"):
            return [getattr(d, key)]
        if key == "node":
            if self.heartbeat is not None:
                return [self.heartbeat.src]
            if self.knet is not None:
                return [] if self.knet.encrypted else [int(self.knet.node)]
            return [int(self.totem.nodeid)] if self.totem is not None else []
        if key.startswith("totem."):
            return match.field_values(self.totem.to_dict(), key[6:]) if self.totem is not None \
                else []
        if key.startswith("knet."):
            return match.field_values(self.knet.to_dict(), key[5:]) if self.knet is not None \
                else []
        if key.startswith("corosync."):
            # The same summary decode's rows carry (`hbtools.corosync.summary`), by name.
            return match.field_values({"corosync": self.corosync}, key) \
                if self.proto in (TOTEM, KNET) else []
        path = key[6:] if key.startswith("field.") else key
        if self.heartbeat is not None:
            if self._hb_fields is None:
                self._hb_fields = self.heartbeat.to_json_fields()
            return match.field_values(self._hb_fields, path)
        found: list[Any] = []
        for inner in (self.knet, self.totem):
            if inner is not None:
                found += match.field_values(inner.to_dict(), path)
        return found

    @property
    def payload(self) -> bytes:
        return self.dgram.payload

    @property
    def proto(self) -> str:
        if self._proto is None:
            self._proto = self._detect()
        return self._proto

    def _detect(self) -> str:
        dgram = self.dgram
        if not dgram.is_udp:
            return "other"
        assert dgram.sport is not None and dgram.dport is not None
        data = dgram.payload
        proto = self.detector(dgram.sport, dgram.dport, data)
        if proto == HEARTBEAT:
            with contextlib.suppress(heartbeat.DecodeError):
                self._hb = heartbeat.decode(data)
        elif proto == TOTEM:
            with contextlib.suppress(totem.DecodeError):
                self._totem = totem.decode(data)
                self._above()
        elif proto == KNET:
            state = self.state
            with contextlib.suppress(knet.DecodeError):
                self._reading = knetcrypto.read(data, state.ring if state is not None else None)
                self._knet = self._reading.packet
                self._totem = self._knet.totem
                self._above()
        return proto or "udp"

    def _above(self) -> None:
        """What the Totem message carries, read as decode reads it (`hbtools.corosync`),
        when the run keeps that state: knet fragments joined, the totempg/CPG summary."""
        state = self.state
        if state is None or state.stack is None:
            return
        packet = self._knet
        fragment = (packet is not None and not packet.encrypted
                    and packet.type_name == "data" and packet.frag_num > 1)
        if self._inherit is not None:
            # Still readable after the rewrite: what it carries is what it carried (rewrites
            # never touch totempg); corrupted past reading: it carries nothing visible.
            if fragment:
                self._totem = self._inherit._totem
                self._summary = self._inherit._summary
            elif self._totem is not None:
                self._summary = self._inherit._summary
            return
        if fragment:
            assert packet is not None
            try:
                self._totem = state.reassembler.totem(packet, (self.dgram.src, self.dgram.sport))
            except (knet.DecodeError, totem.DecodeError):
                self._totem = None
        message = self._totem
        if message is not None and message.type_name == "mcast":
            self._summary = corosync.summary(state.stack.mcast(message))

    @property
    def reading(self) -> knetcrypto.Reading | None:
        """How the knet packet was read: opened by which key and suite, or not."""
        return self._reading if self.proto == KNET else None

    @property
    def undecryptable(self) -> bool:
        """An encrypted knet packet that no ``--corosync-authkey`` opens."""
        reading = self.reading
        return (reading is not None and reading.packet.encrypted and self.state is not None
                and self.state.ring is not None)

    @property
    def corosync(self) -> dict[str, list[Any]]:
        """The row summary decode shows under ``corosync`` (empty: not an mcast, or the run
        keeps no Corosync state because no rule names ``corosync.*``)."""
        return self._summary if self.proto in (TOTEM, KNET) else {}

    @property
    def heartbeat(self) -> heartbeat.Message | None:
        return self._hb if self.proto == HEARTBEAT else None

    @property
    def totem(self) -> totem.Message | None:
        return self._totem if self.proto in (TOTEM, KNET) else None

    @property
    def knet(self) -> knet.Packet | None:
        return self._knet if self.proto == KNET else None

    @property
    def type_name(self) -> str | None:
        if self.heartbeat is not None:
            return self.heartbeat.type
        if self.knet is not None:
            return str(self.knet.type_name)
        if self.totem is not None:
            return str(self.totem.type_name)
        return None


class CorosyncState:
    """What the engine keeps to read Corosync as ``hbtool decode`` does, bounded.

    `ring`: the ``--corosync-authkey`` keys (None: encrypted knet stays opaque). `above`:
    whether to join knet fragments and run the totempg/CPG/Pacemaker stack, which only
    rules naming ``corosync.*`` need (decoding Pacemaker's XML per mcast costs time the
    proxy's other rules should not pay). Both keep fixed-size state (`knet.Reassembler`
    64 pending packets, `corosync.Stack` its reassembly and `corosync.SEEN_MAX`).
    """

    def __init__(self, ring: knetcrypto.KeyRing | None, above: bool) -> None:
        self.ring = ring
        self.reassembler = knet.Reassembler()
        self.stack = corosync.Stack() if above else None


class Unrewritable(Exception):
    """A packet a knet/Totem rewrite cannot express; it passes as it came (counted)."""


# ----------------------------------------------------------------------------- matching

Predicate = Callable[[PacketView], bool]


def compile_match(rule: Rule, nodes: Mapping[str, str]) -> Predicate:
    """The rule's match (`hbtools.match`, shared with decode --filter) as one predicate;
    node names in ``ip.src``/``ip.dst`` (``from``/``to``) become their addresses."""
    try:
        test = match.compile_expr(rule.match.expr, nodes)
    except match.MatchError as exc:
        raise RuleError(f"{rule.text!r}: {exc}") from None
    return test  # type: ignore[return-value]


# ----------------------------------------------------------------------------- held packets


@dataclass(order=True)
class _Held:
    release_at: float
    order: int
    packet_id: int = field(compare=False)
    payload: bytes | None = field(compare=False)
    copies: tuple[bytes, ...] = field(compare=False, default=())
    direction: str = field(compare=False, default="out")

    def outputs(self) -> list[Output]:
        out: list[Output] = [Verdict(self.packet_id, True, self.payload)]
        out.extend(Copy(c, self.direction) for c in self.copies)
        return out


@dataclass
class _Window:
    timeout_at: float
    packets: list[_Held]


# ----------------------------------------------------------------------------- the engine


class Engine:
    """Applies rules to queued packets; holds delayed and reordered ones until their time."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        seed: int | None = None,
        keys: Signer | None = None,
        nodes: Mapping[str, str] | None = None,
        local_addresses: Iterable[str] = (),
        start: float = 0.0,
        ports: Iterable[int | tuple[int, str]] = (),
        corosync_keys: knetcrypto.KeyRing | None = None,
    ) -> None:
        self.rules = list(rules)
        #: How a queued payload's protocol is told: the same rules as `hbtool decode`.
        self.detector = detector_for(ports)
        self.nodes = dict(nodes or {})
        self.keys = keys
        self.start = start
        self.local_addresses = set(local_addresses)
        self._by_address = {addr: name for name, addr in self.nodes.items()}
        self.stats = [RuleStats(r.label or r.text) for r in self.rules]
        self.passed = 0
        #: Packets passed at once because `MAX_HELD` were already held by delays.
        self.overflowed = 0
        self.total = 0
        #: Encrypted knet packets no ``--corosync-authkey`` opened (counted only with keys).
        #: They still go through the rules, seen as decode shows them with ``auth`` bad:
        #: addresses, ports, ``proto=knet``, ``type=encrypted``; no knet/Totem/corosync
        #: field matches them and a rewrite passes them unchanged (``unrewritable``).
        self.undecryptable = 0
        self.corosync_keys = corosync_keys
        above = any(c.key.startswith("corosync.") for r in self.rules for c in r.match.conditions)
        self._state = CorosyncState(corosync_keys, above) \
            if corosync_keys is not None or above else None
        self._seal_keys = {k.name: k for k in corosync_keys.keys} if corosync_keys else {}
        base = random.Random(seed).getrandbits(64) if seed is not None else None
        # One generator per rule, so adding a rule does not change another rule's draws.
        self._rngs = [random.Random(f"{base}:{i}") if base is not None else random.Random()
                      for i in range(len(self.rules))]
        self._predicates: list[Predicate] = []
        for rule in self.rules:
            action = rule.action
            if isinstance(action, Rewrite) and not action.corosync and action.sign == "resign" \
                    and keys is None:
                raise RuleError(f"{rule.text!r}: sign=resign needs --authkeys "
                                "(or say sign=stale to keep the old signature)")
            if isinstance(action, Rewrite) and action.key is not None \
                    and action.key not in self._seal_keys:
                have = ", ".join(self._seal_keys) or "none given"
                raise RuleError(f"{rule.text!r}: key={action.key} is not a --corosync-authkey "
                                f"file name ({have})")
            self._predicates.append(compile_match(rule, self.nodes))
        self._tokens: dict[int, tuple[float, float]] = {}
        self._held: list[_Held] = []
        self._windows: dict[int, _Window] = {}
        self._order = 0

    # -- what the shell calls

    def receive(self, packet_id: int, data: bytes, direction: str, now: float) -> list[Output]:
        """Decide about one queued packet; [] means it is held (see `tick`)."""
        self.total += 1
        try:
            dgram = ipv4.parse(data)
        except ipv4.PacketError:
            self.passed += 1
            return [Verdict(packet_id, True)]
        view = PacketView(dgram, direction, self.detector, self._state)
        if self._state is not None:
            # Read now, whatever the rules ask first: fragments and mcasts must reach the
            # run's Corosync state once each and in order, as they reach decode's.
            if view.proto == KNET and view.undecryptable:
                self.undecryptable += 1
        elapsed = now - self.start
        delay = 0.0
        copies = 0
        changed = False
        reorder_at: int | None = None
        for index, rule in enumerate(self.rules):
            if not rule.active(elapsed) or direction not in rule.directions:
                continue
            stats = self.stats[index]
            stats.seen += 1
            if not self._predicates[index](view):
                continue
            action = rule.action
            if isinstance(action, Partition) and not self._cut(action, view):
                continue
            if isinstance(action, Rewrite) and not _rewrites(action, view):
                continue
            stats.matched += 1
            rng = self._rngs[index]
            if rule.probability < 1.0 and rng.random() >= rule.probability:
                continue
            if isinstance(action, (Drop, Partition)):
                stats.dropped += 1
                return [Verdict(packet_id, False)]
            if isinstance(action, RateLimit):
                if self._over_rate(index, action, now):
                    stats.dropped += 1
                    return [Verdict(packet_id, False)]
            elif isinstance(action, Delay):
                delay += self._sample_delay(action, rng)
                stats.delayed += 1
            elif isinstance(action, Duplicate):
                copies += action.copies
                stats.duplicated += action.copies
            elif isinstance(action, Reorder):
                if reorder_at is None:
                    reorder_at = index
                    stats.reordered += 1
            elif isinstance(action, Corrupt):
                new = _corrupt(view.dgram.payload, action, rng)
                if new != view.dgram.payload:
                    view = _reframe(view, new)
                    changed = True
                    stats.corrupted += 1
            elif isinstance(action, Rewrite):
                try:
                    new = self._rewrite_corosync(view, action) if action.corosync \
                        else self._rewrite(view, action)
                except (heartbeat.EncodeError, heartbeat.DecodeError, Unrewritable):
                    # The stated rule (issue 12): a packet this rewrite cannot express (a
                    # relative value on a non-number, a byte the signature text cannot hold,
                    # knet no key opens) goes on as it came, counted; the proxy never dies
                    # of a peer's bytes.
                    stats.unrewritable += 1
                    view = PacketView(view.dgram, view.direction, view.detector, view.state,
                                      view)  # undo half-set fields
                    continue
                if new is not None:
                    view = _reframe(view, new)
                    changed = True
                    stats.rewritten += 1
        payload = view.dgram.raw if changed else None
        copy_bytes = (payload or data,) * copies
        held = _Held(now + delay, self._next_order(), packet_id, payload, copy_bytes, direction)
        if reorder_at is not None:
            return self._into_window(reorder_at, held, now)
        if delay > 0:
            if len(self._held) < MAX_HELD:
                heapq.heappush(self._held, held)
                return []
            self.overflowed += 1  # fail-open: a flood must not grow what the proxy holds
        self.passed += 1
        return held.outputs()

    def next_timer(self) -> float | None:
        """When `tick` next has something to release (None: nothing held)."""
        times = [w.timeout_at for w in self._windows.values()]
        if self._held:
            times.append(self._held[0].release_at)
        return min(times) if times else None

    def tick(self, now: float) -> list[Output]:
        """Release every held packet whose time has come, in release order."""
        out: list[Output] = []
        for index in [i for i, w in self._windows.items() if w.timeout_at <= now]:
            out.extend(self._flush_window(index))
        while self._held and self._held[0].release_at <= now:
            out.extend(heapq.heappop(self._held).outputs())
        return out

    def flush(self) -> list[Output]:
        """Release everything still held (at shutdown: a held packet must not be lost)."""
        out: list[Output] = []
        for index in list(self._windows):
            out.extend(self._flush_window(index))
        while self._held:
            out.extend(heapq.heappop(self._held).outputs())
        return out

    @property
    def held(self) -> int:
        return len(self._held) + sum(len(w.packets) for w in self._windows.values())

    # -- actions

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _sample_delay(self, action: Delay, rng: random.Random) -> float:
        if action.jitter <= 0:
            return action.delay
        if action.distribution == "normal":
            value = rng.gauss(action.delay, action.jitter)
        elif action.distribution == "exponential":
            value = action.delay + rng.expovariate(1.0 / action.jitter)
        else:
            value = action.delay + rng.uniform(-action.jitter, action.jitter)
        return max(0.0, value)

    def _over_rate(self, index: int, action: RateLimit, now: float) -> bool:
        """Token bucket: ``burst`` tokens, refilled at ``rate`` per second."""
        tokens, last = self._tokens.get(index, (float(action.burst), now))
        tokens = min(float(action.burst), tokens + (now - last) * action.rate)
        if tokens >= 1.0:
            self._tokens[index] = (tokens - 1.0, now)
            return False
        self._tokens[index] = (tokens, now)
        return True

    def _into_window(self, index: int, held: _Held, now: float) -> list[Output]:
        action = self.rules[index].action
        assert isinstance(action, Reorder)
        window = self._windows.get(index)
        if window is None:
            window = self._windows[index] = _Window(now + action.timeout, [])
        window.packets.append(held)
        if len(window.packets) >= action.window:
            return self._flush_window(index)
        return []

    def _flush_window(self, index: int) -> list[Output]:
        """Release a reorder window shuffled, never in the order the packets came."""
        window = self._windows.pop(index)
        packets = list(window.packets)
        if len(packets) > 1:
            original = list(packets)
            self._rngs[index].shuffle(packets)
            if packets == original:
                packets.reverse()
        out: list[Output] = []
        for held in packets:
            out.extend(held.outputs())
        return out

    def _rewrite(self, view: PacketView, action: Rewrite) -> bytes | None:
        msg = view.heartbeat
        if msg is None or "_compressed_payload" in msg:
            return None
        for a in action.assignments:
            value = a.value
            if a.relative is not None:
                kind = spec_for(a.name).kind_in(msg.type).value
                current = msg.number(a.name) if a.name in msg else 0
                number = max(0, (current or 0) + a.relative)
                value = f"{number:x}" if kind == "hex" else str(number)
            msg.set(a.name, value)
        keys = self.keys if action.sign == "resign" else None
        return heartbeat.encode(msg, keys)

    def _rewrite_corosync(self, view: PacketView, action: Rewrite) -> bytes:
        """Set knet/Totem layout fields and encode with the codecs; an encrypted knet
        packet is sealed again with the suite (cipher and hash) that opened it, by its own
        key or the one ``key=`` names (``sign=stale``: the old HMAC is kept, so a receiver
        must refuse it). Raises `Unrewritable` for what cannot be expressed."""
        packet = view.knet
        message = view.totem if packet is None else packet.totem  # not a reassembled one
        if packet is not None and packet.encrypted:
            raise Unrewritable("no --corosync-authkey opens this packet")
        changes: dict[str, dict[str, Any]] = {"knet": {}, "totem": {}}
        for a in action.assignments:
            layer, _, name = a.name.partition(".")
            record = packet if layer == "knet" else message
            if record is None:
                raise Unrewritable(f"no {layer} message to set {name} in")
            try:
                f = record.layout.field(name)
            except KeyError:
                raise Unrewritable(f"a {record.layout.name} has no {name}") from None
            if f not in record.layout.stored:
                raise Unrewritable(f"{name} is not stored in a {record.layout.name}")
            if a.relative is not None:
                current = changes[layer].get(name, getattr(record, name))
                if not isinstance(current, int):
                    raise Unrewritable(f"{name} is not a number here")
                value: Any = current + a.relative
                if not isinstance(f.fmt, str) or not f.fmt[-1].islower():
                    value = max(0, value)  # unsigned: clamp as Heartbeat's relative values do
            else:
                try:
                    value = layout_value(f, a.value, a.name)
                except RuleError as exc:
                    raise Unrewritable(str(exc)) from None
            changes[layer][name] = value
        try:
            if changes["totem"]:
                assert message is not None
                data = totem.encode(message.replace(**changes["totem"]))  # type: ignore[arg-type]
                if packet is None:
                    return data
                if packet.compress:
                    raise Unrewritable("compressed knet user data is not compressed again")
                changes["knet"]["userdata"] = data
            if packet is None:
                raise Unrewritable("nothing to rewrite")
            plain = knet.encode(packet.replace(**changes["knet"]))  # type: ignore[arg-type]
        except (ValueError, TypeError, struct.error) as exc:  # a value the field cannot hold
            raise Unrewritable(str(exc)) from None
        opened = view.reading.opened if view.reading is not None else None
        if opened is None:
            return plain
        key = self._seal_keys[action.key] if action.key is not None else opened.key
        sealed = knetcrypto.seal(plain, key, opened.suite)
        if action.sign == "stale":
            size = knetcrypto.HASHES[opened.suite.hash]
            sealed = sealed[:-size] + view.payload[-size:]
        return sealed

    def _cut(self, action: Partition, view: PacketView) -> bool:
        """Whether this packet crosses a cut link (every receiver it is for is cut off)."""
        sender = self._sender(view)
        if sender is None:
            return False
        receivers = self._receivers(view, sender)
        return bool(receivers) and all(action.blocks(sender, r) for r in receivers)

    def _sender(self, view: PacketView) -> str | None:
        msg = view.heartbeat
        if msg is not None and msg.src in self.nodes:
            return msg.src
        return self._by_address.get(view.dgram.src)

    def _receivers(self, view: PacketView, sender: str) -> list[str]:
        msg = view.heartbeat
        if msg is not None and msg.dest in self.nodes:
            return [msg.dest]  # type: ignore[list-item]
        if view.dgram.dst in self._by_address:
            return [self._by_address[view.dgram.dst]]
        if view.direction == "in":
            return [n for n, a in self.nodes.items() if a in self.local_addresses]
        return [n for n in self.nodes if n != sender]


def _rewrites(action: Rewrite, view: PacketView) -> bool:
    """Whether a rewrite applies to this packet: Heartbeat fields to Heartbeat, knet/Totem
    fields to knet (encrypted too: it then counts as unrewritable) and bare Totem."""
    if action.corosync:
        return view.knet is not None or view.totem is not None
    return view.heartbeat is not None


def _reframe(view: PacketView, payload: bytes) -> PacketView:
    """A view of the same datagram with a new payload (lengths and checksums fixed)."""
    raw = ipv4.with_payload(view.dgram, payload)
    return PacketView(ipv4.parse(raw), view.direction, view.detector, view.state, view)


def _corrupt(payload: bytes, action: Corrupt, rng: random.Random) -> bytes:
    """Flip ``bits`` random bits and replace ``bytes`` random bytes with different values.

    Never more draws than the payload has bits (or bytes): the work per packet is bounded by
    its size as well as by the rule's parse-time bound, whatever the rule asks.
    """
    if not payload:
        return payload
    data = bytearray(payload)
    for _ in range(min(action.bits, len(data) * 8)):
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 0x80 >> (bit % 8)
    for _ in range(min(action.bytes, len(data))):
        pos = rng.randrange(len(data))
        data[pos] ^= rng.randrange(1, 256)
    return bytes(data)
