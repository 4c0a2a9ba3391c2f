"""Issue 12 against the node: nothing from the network ends it, floods do not flood the log,
wire text is escaped, state files are not written through planted symlinks, memory is bounded.

Expected values come from the issue's reproducers and from Heartbeat's limits in
shared/PROTOCOL-NOTES.md (256 KiB on the wire, 2 MiB uncompressed), not from the node.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from pathlib import Path

import pytest
from node_sim import CRC_KEYS, ha_cf, make_config

from hbtools import heartbeat
from hbtools.auth import AuthKeys
from hbtools.heartbeat import Message
from hbtools.node.core import Event, Node
from hbtools.node.runner import EventLog, RunnerError, load_identity

KEYS = AuthKeys.parse(CRC_KEYS)
NOW = 1000.0


def started_node() -> Node:
    node = Node(make_config(ha_cf()), "node2", uuid=b"2" * 16, generation=7)
    node.start(NOW)
    return node


def status_from(src: str, seq: int = 1, generation: int = 5, **extra: str) -> Message:
    msg = Message.build([("t", "status"), ("st", "active"), ("dt", "1388"), ("protocol", "1"),
                         ("src", src), ("seq", format(seq, "x")), ("hg", format(generation, "x")),
                         ("ts", "6b05fb98"), *extra.items(), ("ttl", "3")])
    return msg


def events(outputs: list[object], kind: str | None = None) -> list[Event]:
    return [o for o in outputs if isinstance(o, Event) and (kind is None or o.kind == kind)]


# ----------------------------------------------------------------------------- issue 12 #1


def test_the_issues_one_packet_reproducer_is_dropped_not_raised():
    """104 bytes with `1 crc` used to raise out of Node.receive (and out of the daemon)."""
    node = started_node()
    envelope = Message()
    envelope.add("_compressed_payload", zlib.compress(b"x"))
    out = node.receive(heartbeat.encode(envelope, KEYS), ("198.18.0.1", 694), NOW + 1)
    dropped = events(out, "dropped")
    assert len(dropped) == 1 and dropped[0].data["reason"] == "bad_compression"
    # and the node goes on: a real peer's status is still taken
    out = node.receive(heartbeat.encode(status_from("node1"), KEYS), ("198.18.0.1", 694), NOW + 2)
    assert [e.data["status"] for e in events(out, "peer_status")] == ["active"]


@pytest.mark.parametrize("payload", [b"not zlib at all", zlib.compress(b"x" * 100)[:-4],
                                     zlib.compress(b"\x00" * (3 * 1024 * 1024))])
def test_bad_compressed_payloads_are_dropped(payload):
    """Garbage, a truncated stream, and a bomb past Heartbeat's 2 MiB limit."""
    node = started_node()
    envelope = Message()
    envelope.add("_compressed_payload", payload)
    out = node.receive(heartbeat.encode(envelope, KEYS), ("198.18.0.1", 694), NOW + 1)
    assert [e.data["reason"] for e in events(out, "dropped")] == ["bad_compression"]


def test_a_compressed_message_between_256_kib_and_2_mib_is_accepted():
    """Heartbeat compresses big messages; the inner one may be up to 2 MiB uncompressed."""
    node = started_node()
    big = status_from("node1", pad="y" * (600 * 1024))
    envelope = heartbeat.compress(big, keys=KEYS)
    data = heartbeat.encode(envelope, KEYS)
    assert len(data) < heartbeat.MAX_WIRE_MESSAGE < len(heartbeat.encode(big, KEYS))
    out = node.receive(data, ("198.18.0.1", 694), NOW + 1)
    assert events(out, "dropped") == []
    assert [e.data["status"] for e in events(out, "peer_status")] == ["active"]


# ----------------------------------------------------------------------------- issue 12 #2, #9


def test_a_flood_of_bad_auth_is_one_line_then_one_summary_per_window():
    node = started_node()
    bad = heartbeat.encode(status_from("node1"), AuthKeys.parse("auth 1\n1 sha1 wrong\n"))
    lines: list[Event] = []
    for i in range(5000):
        lines += events(node.receive(bad, ("198.18.0.66", 40000 + i % 100), NOW + i * 0.001))
    assert [e.data["reason"] for e in lines] == ["auth", "quarantined"]
    assert lines[0].text.startswith("authentication failed for a message from node1 at 198.18.0.66:")
    assert lines[1].text.startswith("ignoring datagrams from 198.18.0.66 unread")
    timer = node.next_timer()
    assert timer is not None and timer <= NOW + 10.0 + 1e-9
    summary = events(node.tick(NOW + 10.0), "dropped_summary")
    assert [e.text for e in summary] == [
        "199 datagrams dropped for bad auth from 198.18.0.66 in the last 10 s",
        "4799 datagrams dropped for an address that sent over 200 bad ones (not read) from 198.18.0.66 "
        "in the last 10 s"]
    assert node.counters["auth"] == 200 and node.counters["quarantined"] == 4800
    assert events(node.tick(NOW + 25.0), "dropped_summary") == []
    # a new window: the address is read again
    out = node.receive(heartbeat.encode(status_from("node1"), KEYS), ("198.18.0.66", 694), NOW + 26)
    assert [e.data["status"] for e in events(out, "peer_status")] == ["active"]


def test_the_real_peers_address_is_never_quarantined():
    """Forged datagrams with the real peer's source address must not silence the peer."""
    node = started_node()
    good = heartbeat.encode(status_from("node1"), KEYS)
    node.receive(good, ("198.18.0.1", 694), NOW)
    for i in range(1000):
        node.receive(b"garbage", ("198.18.0.1", 694), NOW + i * 0.001)
    assert "quarantined" not in node.counters
    out = node.receive(heartbeat.encode(status_from("node1", seq=2), KEYS), ("198.18.0.1", 694), NOW + 2)
    assert events(out, "dropped") == [] and node.peers["node1"].last_heard == NOW + 2


def test_distinct_sender_names_do_not_grow_memory_or_the_log():
    """50k signed datagrams, each from a different made-up node name (issue 12 #9)."""
    node = started_node()
    lines: list[Event] = []
    for i in range(50_000):
        msg = status_from(f"made-up-{i}")
        if i % 2:
            msg = Message.build([("t", f"type-{i}"), ("src", "node1"), ("hg", "5"), ("seq", format(i, "x"))])
        out = node.receive(heartbeat.encode(msg, KEYS), (f"198.18.{i % 200}.{i % 250}", 694), NOW)
        lines += [e for e in events(out) if e.kind in ("dropped", "dropped_summary")]
    assert len(node.counters) <= 130
    assert len(node.drops.counts) <= 64
    assert len(lines) <= 64
    summary = events(node.tick(NOW + 11), "dropped_summary")
    assert sum(e.data["count"] for e in summary) + len(lines) == 25_000


# ----------------------------------------------------------------------------- issue 12 #5


def test_a_forged_src_cannot_forge_log_lines_or_send_escapes():
    node = started_node()
    forged = "x at 1.2.3.4\n12:00:00.000 hbtool daemon[node2]: node node1: is dead\x1b[2J\x07"
    msg = Message.build([("t", "status"), ("src", forged), ("hg", "1"), ("auth", "1 00000000")])
    out = node.receive(heartbeat.encode(msg), ("198.18.0.9", 694), NOW)
    (line,) = events(out, "dropped")
    assert "\n" not in line.text and "\x1b" not in line.text and "\x07" not in line.text
    assert "\\x0a12:00:00.000" in line.text and "\\x1b[2J" in line.text
    stream = io.StringIO()
    EventLog("node2", None, stream, 0.0).write(Event(NOW, "x", "a\nb\x1bc\u202ed"))
    assert stream.getvalue().count("\n") == 1 and "\x1b" not in stream.getvalue()
    assert "\u202e" not in stream.getvalue()


# ----------------------------------------------------------------------------- issue 12 #2 (log writes)


def test_log_writes_to_a_full_device_or_a_closed_pipe_never_raise(tmp_path):
    r, w = os.pipe()
    os.close(r)
    broken = os.fdopen(w, "w")
    log = EventLog("node2", Path("/dev/full"), broken, 0.0)
    for _ in range(3):
        log.write(Event(NOW, "x", "line"))
    assert log.lost == 4  # three file lines, one stderr line (then stderr is dropped)
    log.close()
    with pytest.raises(OSError):
        broken.close()


def test_events_file_symlink_is_not_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "events.jsonl"
    link.symlink_to(target)
    with pytest.raises(RunnerError, match="symlink"):
        EventLog("node2", link, None, 0.0)
    assert target.read_text() == "keep\n"


# ----------------------------------------------------------------------------- issue 12 #6


def private_dir_and_victim(tmp_path: Path, content: str) -> tuple[Path, Path]:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text(content)
    return state, victim


def test_load_identity_does_not_write_through_planted_symlinks(tmp_path):
    state, victim = private_dir_and_victim(tmp_path, "root's file\n")
    (state / "hb_generation.tmp").symlink_to(victim)
    (state / "hb_uuid.tmp").symlink_to(victim)
    uuid, generation = load_identity(state, 1_700_000_000.5)
    assert victim.read_text() == "root's file\n"
    assert len(uuid) == 16 and generation == 1_700_000_000
    assert (state / "hb_generation").read_text() == "1700000000\n"
    assert not (state / "hb_generation").is_symlink()
    assert load_identity(state, 0)[1] == 1_700_000_001


def test_load_identity_refuses_a_symlinked_generation_file(tmp_path):
    state, victim = private_dir_and_victim(tmp_path, "12\n")
    (state / "hb_generation").symlink_to(victim)
    with pytest.raises(RunnerError, match="symlink"):
        load_identity(state, 1.0)
    assert victim.read_text() == "12\n"


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o722])
def test_load_identity_refuses_group_or_world_writable_state_dirs(tmp_path, mode):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    with pytest.raises(RunnerError, match="writable by group or others"):
        load_identity(state, 1.0)
    assert list(state.iterdir()) == []
    assert stat.S_IMODE(state.stat().st_mode) == mode
