"""A deterministic in-memory cluster for driving `hbtools.node.core.Node` with a fake clock.

Datagrams take ``latency`` seconds; a crashed node neither sends nor receives; a cut link drops
everything. Nothing here decides protocol behaviour: it only delivers and records.
"""

from __future__ import annotations

import heapq
import random
import uuid as uuidlib
from dataclasses import dataclass, field

from hbtools.auth import AuthKeys
from hbtools.node.config import ClusterConfig, parse_ha_cf, parse_haresources
from hbtools.node.core import Event, Fence, Node, ReleaseResource, Restart, Send, SendPing, TakeResource

CRC_KEYS = "auth 1\n1 crc\n"


def make_config(ha_cf: str, haresources: str = "", authkeys: str = CRC_KEYS) -> ClusterConfig:
    ha = parse_ha_cf(ha_cf)
    return ClusterConfig(ha, AuthKeys.parse(authkeys), parse_haresources(haresources, ha.nodes))


def ha_cf(*extra: str, keepalive: str = "1", deadtime: str = "5", warntime: str = "3",
          initdead: str = "10", auto_failback: str = "off", nodes: str = "node1 node2") -> str:
    return "\n".join([f"keepalive {keepalive}", f"deadtime {deadtime}", f"warntime {warntime}",
                      f"initdead {initdead}", f"auto_failback {auto_failback}", "bcast eth0",
                      f"node {nodes}", *extra]) + "\n"


@dataclass
class Record:
    at: float
    node: str
    item: object


@dataclass
class Sim:
    config: ClusterConfig
    latency: float = 0.001
    seed: int = 1
    fencing: bool = False
    fence_ok: bool = True
    now: float = 1000.0
    nodes: dict[str, Node] = field(default_factory=dict)
    crashed: set[str] = field(default_factory=set)
    cut: bool = False
    deaf: set[tuple[str, str]] = field(default_factory=set)  # (receiver, sender): one-way partition
    ping_reachable: dict[str, bool] = field(default_factory=dict)
    log: list[Record] = field(default_factory=list)
    generations: dict[str, int] = field(default_factory=dict)
    _queue: list[tuple[float, int, str, bytes, str]] = field(default_factory=list)
    _n: int = 0

    def start(self, name: str) -> Node:
        gen = self.generations.get(name, 0x6B05FB98) + 1
        self.generations[name] = gen
        node = Node(self.config, name, uuid=uuidlib.uuid5(uuidlib.NAMESPACE_DNS, name).bytes,
                    generation=gen, rng=random.Random(self.seed), fencing=self.fencing)
        self.nodes[name] = node
        self.crashed.discard(name)
        self._handle(name, node.start(self.now))
        return node

    def crash(self, name: str) -> None:
        self.crashed.add(name)

    def stop(self, name: str) -> None:
        self._handle(name, self.nodes[name].shutdown(self.now))
        self.crashed.add(name)

    def inject(self, to: str, data: bytes) -> list[object]:
        out = self.nodes[to].receive(data, ("198.18.0.99", 694), self.now)
        self._handle(to, out)
        return out

    def _handle(self, name: str, outputs: list[object]) -> None:
        for item in outputs:
            self.log.append(Record(self.now, name, item))
            if isinstance(item, Send) and name not in self.crashed and not self.cut:
                for other in self.nodes:
                    if other != name:
                        self._n += 1
                        heapq.heappush(self._queue, (self.now + self.latency, self._n, other, item.data,
                                                     name))
            elif isinstance(item, Fence):
                node = self.nodes[name]
                self._handle(name, node.fence_result(item.node, self.fence_ok, self.now))
            elif isinstance(item, Restart):
                self.start(name)  # a new incarnation, generation + 1, as the runner does
            elif isinstance(item, SendPing) and self.ping_reachable.get(name, True):
                self._handle(name, self.nodes[name].ping_reply(item.address, self.now))

    def run_until(self, t: float) -> None:
        for _ in range(1_000_000):
            timers = [(n.next_timer(), name) for name, n in self.nodes.items() if name not in self.crashed]
            timers = [(tt, name) for tt, name in timers if tt is not None]
            next_timer = min(timers) if timers else None
            next_packet = self._queue[0][0] if self._queue else None
            candidates = [x for x in (next_timer[0] if next_timer else None, next_packet) if x is not None]
            if not candidates or min(candidates) > t:
                self.now = t
                return
            if next_packet is not None and (next_timer is None or next_packet <= next_timer[0]):
                at, _, to, data, sender = heapq.heappop(self._queue)
                self.now = max(self.now, at)
                if to not in self.crashed and not self.cut and (to, sender) not in self.deaf:
                    self._handle(to, self.nodes[to].receive(data, ("198.18.0.1", 694), self.now))
            else:
                assert next_timer is not None
                self.now = max(self.now, next_timer[0])
                name = next_timer[1]
                self._handle(name, self.nodes[name].tick(self.now))
        raise AssertionError("simulation did not converge")

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    # -- views

    def events(self, node: str | None = None, kind: str | None = None) -> list[Event]:
        return [r.item for r in self.log if isinstance(r.item, Event)
                and (node is None or r.node == node) and (kind is None or r.item.kind == kind)]

    def actions(self, node: str, kind: type) -> list[Record]:
        return [r for r in self.log if r.node == node and isinstance(r.item, kind)]

    def takes(self, node: str) -> list[Record]:
        return self.actions(node, TakeResource)

    def releases(self, node: str) -> list[Record]:
        return self.actions(node, ReleaseResource)

    def sent(self, node: str) -> list[Record]:
        return self.actions(node, Send)
