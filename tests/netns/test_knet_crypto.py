"""Encrypted knet from the injector against a REAL corosync 3.1.7 (aes256/sha256).

node1 runs corosync with crypto on and a lab key K; node2 is in its nodelist but runs no
corosync: the test speaks for node2 from 198.18.0.2:5405. What corosync itself does is
the proof:

* a knet ping built by `hbtools.inject.build_knet`, sealed with K, then opened again with
  `hbtools.knetcrypto`, its timestamp rewritten and RE-ENCRYPTED, is accepted: node1
  answers with a pong (encrypted with K) that echoes the rewritten timestamp;
* the same ping signed with another key gets no pong, and node1 logs
  ``Unable to decrypt packet from 198.18.0.2:5405``.

The fault proxy (`hbtools.usecases.fault.FaultSession`, the engine of ``hbtool fault``) does
the same on the way out of node2 (issue 15): a plain ping with a zero timestamp, sealed with
K, leaves through ``rewrite knet.time:=hex:… type=ping out`` with ``--corosync-authkey``
K; node1's pong echoing the rewritten timestamp shows corosync took the re-encrypted packet.
With ``key=other`` the proxy seals it with another key: no pong, and the log line again.
One corosync serves every test of the module (a start costs seconds).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns_helpers import corosync_conf_two_nodes, lab_with, node_env, require_fault_proxy

pytestmark = pytest.mark.netns

CONF = corosync_conf_two_nodes(transport="knet", crypto_cipher="aes256",
                               crypto_hash="sha256")

#: Runs in node2's namespace: send one datagram from :5405, print what comes back (hex).
SPEAK = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.2", 5405))
s.sendto(bytes.fromhex(sys.argv[1]), ("198.18.0.1", 5405))
s.settimeout(0.2)
end = time.monotonic() + 3.0
while time.monotonic() < end:
    try:
        data, _ = s.recvfrom(65536)
    except socket.timeout:
        continue
    print(data.hex(), flush=True)
"""


def _speak(node, packet: bytes) -> list[bytes]:
    res = node.run([sys.executable, "-c", SPEAK, packet.hex()], env=node_env(),
                   check=False, timeout=20)
    assert res.returncode == 0, res.stderr
    return [bytes.fromhex(line) for line in res.stdout.split()]


def _pongs(replies: list[bytes], key, stamp: bytes) -> list[dict]:
    from hbtools import knet, knetcrypto

    ring = knetcrypto.KeyRing([key])
    out = []
    for data in replies:
        opened = ring.open(data)
        assert opened is not None  # everything node1 sends is encrypted with K
        packet = knet.decode(opened.plain, crypto=False)
        if packet.type_name == "pong" and packet.time == stamp:
            out.append(packet.to_dict())
    return out


STAMP = bytes(range(16))
REFUSED = "Unable to decrypt packet from 198.18.0.2"


@pytest.fixture(scope="module")
def corosync1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """node1 running corosync with key K (``authkey``), node2 a bare namespace, and a
    second key (``other``) corosync does not have."""
    labmod = lab_with("corosync", "corosync-quorumtool")
    tmp_path = tmp_path_factory.mktemp("knet-crypto")
    key_path, other_path = tmp_path / "authkey", tmp_path / "other"
    key_path.write_bytes(os.urandom(256))
    other_path.write_bytes(os.urandom(256))
    with labmod.Lab() as lab:
        node1 = lab.add_corosync_node("node1", host=1)
        node2 = lab.add_node("node2", host=2)
        etc = node1.workdir / "etc-corosync"
        (etc / "corosync.conf").write_text(CONF)
        (etc / "authkey").write_bytes(key_path.read_bytes())
        (etc / "authkey").chmod(0o400)
        node1.popen(["corosync", "-f"])
        labmod.wait_until(lambda: "Members" in node1.run(
            ["corosync-quorumtool", "-s"], check=False, timeout=10).stdout,
            timeout=30, interval=0.25, what="corosync on node1 to form its ring")
        yield {"node1": node1, "node2": node2, "key_path": key_path, "other_path": other_path,
               "log": node1.workdir / "var-log-corosync" / "corosync.log"}


def _refusals(log: Path) -> int:
    return log.read_text(errors="replace").count(REFUSED)


def _wait_refused(log: Path, before: int) -> None:
    """corosync logs the refusal a moment after the packet: wait for it (5 s at most)."""
    deadline = time.monotonic() + 5
    after = before
    while time.monotonic() < deadline and after == before:
        after = _refusals(log)
        time.sleep(0.2)
    assert after > before, json.dumps(log.read_text(errors="replace").splitlines()[-5:])


def test_real_corosync_takes_a_reencrypted_ping_and_refuses_another_key(corosync1) -> None:
    from hbtools import inject, knetcrypto

    key_path, other_path, node2 = corosync1["key_path"], corosync1["other_path"], corosync1["node2"]
    key = knetcrypto.Key.load(key_path)
    sealed = inject.seal_knet(inject.build_knet("ping", ["node=2", "link=0",
                                                        "time=hex:" + bytes(16).hex()]),
                              str(key_path))
    opened = knetcrypto.KeyRing([key]).open(sealed)
    assert opened is not None
    plain = bytearray(opened.plain)
    plain[7:23] = STAMP  # the ping's time field: header 6, link 1
    resealed = knetcrypto.seal(bytes(plain), key, opened.suite)
    pongs = _pongs(_speak(node2, resealed), key, STAMP)
    assert pongs and pongs[0]["node"] == 1 and pongs[0]["link"] == 0

    before = _refusals(corosync1["log"])
    wrong = inject.seal_knet(bytes(plain), str(other_path))
    assert _pongs(_speak(node2, wrong), key, STAMP) == []
    _wait_refused(corosync1["log"], before)


def _through_proxy(corosync1: dict[str, Any], rule: str, packet: bytes) -> tuple[list[bytes], dict]:
    """Send `packet` from node2 while a fault session there applies `rule` on the way out."""
    require_fault_proxy("iptables")
    from hbtools import knetcrypto
    from hbtools.usecases.fault import FaultSession

    ring = knetcrypto.load_keys([str(corosync1["key_path"]), str(corosync1["other_path"])])
    session = FaultSession.build(rules=[rule], netns=corosync1["node2"].netns, ports=[5405],
                                 corosync_keys=ring, duration=30.0)
    session.start(timeout=10.0)
    try:
        replies = _speak(corosync1["node2"], packet)
    finally:
        session.stop("test done")
        result = session.join()
    return replies, result.stats


def test_fault_proxy_rewrites_inside_encrypted_knet_and_corosync_takes_it(corosync1) -> None:
    from hbtools import inject, knetcrypto

    key_path = corosync1["key_path"]
    key = knetcrypto.Key.load(key_path)
    ping = inject.seal_knet(inject.build_knet("ping", ["node=2", "link=0",
                                                      "time=hex:" + bytes(16).hex()]),
                            str(key_path))
    rewrite = f"rewrite knet.time:=hex:{STAMP.hex()} type=ping out"
    replies, stats = _through_proxy(corosync1, rewrite, ping)
    pongs = _pongs(replies, key, STAMP)
    assert pongs and pongs[0]["node"] == 1 and pongs[0]["link"] == 0
    assert stats["rules"][0]["rewritten"] >= 1 and stats["knet_undecryptable"] == 0

    before = _refusals(corosync1["log"])
    replies, stats = _through_proxy(corosync1, rewrite.replace(" type=", " key=other type="),
                                    ping)
    assert _pongs(replies, key, STAMP) == [] and stats["rules"][0]["rewritten"] >= 1
    _wait_refused(corosync1["log"], before)
