"""Encrypted knet from the injector against a REAL corosync 3.1.7 (aes256/sha256).

node1 runs corosync with crypto on and a lab key K; node2 is in its nodelist but runs no
corosync: the test speaks for node2 from 198.18.0.2:5405. What corosync itself does is
the proof:

* a knet ping built by `hbtools.inject.build_knet`, sealed with K, then opened again with
  `hbtools.knetcrypto`, its timestamp rewritten and RE-ENCRYPTED, is accepted: node1
  answers with a pong (encrypted with K) that echoes the rewritten timestamp;
* the same ping signed with another key gets no pong, and node1 logs
  ``Unable to decrypt packet from 198.18.0.2:5405``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from netns_helpers import corosync_conf_two_nodes, lab_with, node_env

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


def test_real_corosync_takes_a_reencrypted_ping_and_refuses_another_key(tmp_path: Path) -> None:
    labmod = lab_with("corosync", "corosync-quorumtool")
    from hbtools import inject, knetcrypto

    key_path, other_path = tmp_path / "authkey", tmp_path / "other"
    key_path.write_bytes(os.urandom(256))
    other_path.write_bytes(os.urandom(256))
    key = knetcrypto.Key.load(key_path)
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

        stamp = bytes(range(16))
        sealed = inject.seal_knet(inject.build_knet("ping", ["node=2", "link=0",
                                                            "time=hex:" + bytes(16).hex()]),
                                  str(key_path))
        opened = knetcrypto.KeyRing([key]).open(sealed)
        assert opened is not None
        plain = bytearray(opened.plain)
        plain[7:23] = stamp  # the ping's time field: header 6, link 1
        resealed = knetcrypto.seal(bytes(plain), key, opened.suite)
        pongs = _pongs(_speak(node2, resealed), key, stamp)
        assert pongs and pongs[0]["node"] == 1 and pongs[0]["link"] == 0

        log = node1.workdir / "var-log-corosync" / "corosync.log"
        before = log.read_text(errors="replace").count("Unable to decrypt packet from 198.18.0.2")
        wrong = inject.seal_knet(bytes(plain), str(other_path))
        assert _pongs(_speak(node2, wrong), key, stamp) == []
        deadline = time.monotonic() + 5
        after = before
        while time.monotonic() < deadline and after == before:
            after = log.read_text(errors="replace").count(
                "Unable to decrypt packet from 198.18.0.2")
            time.sleep(0.2)
        assert after > before, json.dumps(log.read_text(errors="replace").splitlines()[-5:])
