"""auto_failback against what real Heartbeat 3.0.6 nodes did (captures/hb-failback).

The capture holds two real nodes: node2 (home of the VIP) is killed, node1 takes the VIP, node2
restarts and node1 gives it back with ``ask_resources`` ``info=me`` → ``other`` → ``done`` (read
in heartbeat/hb_resource.c: PerformAutoFailback, ask_for_resources, go_standby). Here our node
takes one real node's place: the other real node's datagrams are replayed at their recorded
times, and our node must answer as the real node it replaces did, in the same order.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hbtools import heartbeat
from hbtools.heartbeat import Message
from hbtools.node.config import load_config
from hbtools.node.core import Node, Output, ReleaseResource, Send, TakeResource

CAPTURE = Path(__file__).resolve().parent.parent / "captures" / "hb-failback"
WATCHED = ("starting", "resource", "ask_resources")


def datagrams() -> list[tuple[float, Message, bytes]]:
    rdpcap = pytest.importorskip("scapy.all").rdpcap
    from scapy.layers.inet import UDP

    found = []
    for packet in rdpcap(str(CAPTURE / "capture.pcap")):
        if UDP in packet and packet[UDP].dport == 694:
            data = bytes(packet[UDP].payload)
            found.append((float(packet.time), heartbeat.decode(data), data))
    return found


def summary(msg: Message) -> tuple:
    return (msg.type, msg.get("rsc_hold"), msg.get("isstable"), msg.get("info"))


def collapse(items: list[tuple]) -> list[tuple]:
    """Drop repeats in a row (3.0.6 often sends the same resource message twice)."""
    return [x for i, x in enumerate(items) if i == 0 or items[i - 1] != x]


def drive(node: Node, frames: list[tuple[float, Message, bytes]], until: float | None = None,
          *, start: float | None = None) -> list[tuple]:
    """Feed ``frames`` to ``node`` at their times, running its timers in between (and up to
    ``until``); return what it did, each tagged with what caused it."""
    done: list[tuple] = []

    def record(outputs: list[Output], cause: str) -> None:
        for o in outputs:
            if isinstance(o, Send):
                done.append(("send", *summary(heartbeat.decode(o.data)), cause))
            elif isinstance(o, (TakeResource, ReleaseResource)):
                done.append((type(o).__name__, cause))

    def ticks_until(at: float) -> None:
        while (due := node.next_timer()) is not None and due <= at:
            record(node.tick(due), "tick")

    if start is not None:
        record(node.start(start), "start")
    for at, msg, data in frames:
        ticks_until(at)
        record(node.receive(data, ("198.18.0.9", 694), at), f"{msg.type}:{msg.get('info')}")
    if until is not None:
        ticks_until(until)
    return done


def real_sent(frames, node: str, generation: int) -> list[tuple]:
    mine = [(m.seq, summary(m)) for _, m, _ in frames
            if m.src == node and m.generation == generation and m.type in WATCHED]
    return collapse([s for _, s in sorted(mine)])


def test_restarting_home_node_gets_its_vip_back_like_real_node2():
    frames = datagrams()
    gens = sorted({m.generation for _, m, _ in frames if m.src == "node2"})
    assert len(gens) == 2, "node2 starts twice in the capture"
    restart = next(i for i, (_, m, _) in enumerate(frames)
                   if m.src == "node2" and m.generation == gens[1])
    t0 = frames[restart][0]
    uuid = frames[restart][1]["srcuuid"]
    node = Node(load_config(CAPTURE), "node2", uuid=uuid, generation=gens[1], rng=random.Random(3),
                wall_offset=0.0)
    peer_frames = [f for f in frames[restart:] if f[1].src == "node1"]
    done = drive(node, peer_frames, start=t0)

    ours = collapse([d[1:5] for d in done if d[0] == "send" and d[1] in WATCHED])
    assert ours == real_sent(frames, "node2", gens[1])
    # the VIP is taken once, only after node1 said it released it (its info=done)
    takes = [d for d in done if d[0] == "TakeResource"]
    assert takes == [("TakeResource", "ask_resources:done")]
    after_take = [d[1:5] for d in done[done.index(takes[0]) + 1:] if d[0] == "send" and d[1] in WATCHED]
    assert after_take[:2] == [("ask_resources", "foreign", None, "done"), ("resource", "local", "1", None)]


def test_holder_offers_the_vip_back_like_real_node1():
    frames = datagrams()
    gens = sorted({m.generation for _, m, _ in frames if m.src == "node2"})
    restart = next(i for i, (_, m, _) in enumerate(frames)
                   if m.src == "node2" and m.generation == gens[1])
    t0 = frames[restart][0]
    config = load_config(CAPTURE)
    node = Node(config, "node1", uuid=bytes(16), generation=1, rng=random.Random(3))
    # node1 alone until initdead: node2 never spoke, so node1 takes node2's VIP (as mach_down)
    done = drive(node, [], t0 - 0.5, start=t0 - config.ha.effective_initdead_ms / 1000 - 1)
    assert [d for d in done if d[0] == "TakeResource"] == [("TakeResource", "tick")]
    done = drive(node, [f for f in frames[restart:] if f[1].src == "node2"])

    ours = [d for d in done if d[0] != "send" or d[1] in WATCHED]
    me = ours.index(("send", "ask_resources", "foreign", None, "me", "resource:None"))
    # asked right after node2 said it is stable (its resource isstable=1), as real node1 did:
    # first our own resource state (stable), then the offer
    assert ours[me - 1][:2] == ("send", "resource") and ours[me - 1][3] == "1"
    # node2 agreed (its info=other): our "standby" resource message, the release, then done
    agreed = [d[:5] if d[0] == "send" else d[:1] for d in ours if d[-1] == "ask_resources:other"]
    assert [(d[0], d[1], d[3], d[4]) if d[0] == "send" else d for d in agreed] == [
        ("send", "resource", "0", "standby"),
        ("ReleaseResource",),
        ("send", "ask_resources", None, "done"),
    ]
    assert agreed[2][2] == "foreign"
    # the real node1 said the same (its rsc_hold words differ: it counts an empty local set)
    real_gen = next(m.generation for _, m, _ in frames if m.src == "node1")
    real = real_sent(frames, "node1", real_gen)
    assert real.index(("ask_resources", "foreign", None, "me")) < real.index(
        ("resource", "local", "0", "standby")) < real.index(("ask_resources", "foreign", None, "done"))
    # node2 took them (its done): we are stable again and hold nothing
    finished = [d for d in ours if d[-1] == "ask_resources:done"]
    assert finished and finished[0][1] == "resource" and finished[0][3] == "1"
    assert not node.held and node.standby.value == "not"
