"""One error type for every codec, each carrying the problem and the byte offset.

Offsets below are counted by hand from the structs (corosync's totemsrp.c, libknet's
onwire.h) and Heartbeat's framing, not read back from the code.
"""

from __future__ import annotations

import pytest

from hbtools import errors, heartbeat, knet, totem

# Corosync 3 memb_merge_detect, little endian: magic 70 c0, version 3, type 2,
# encapsulated 0, nodeid 1, target_nodeid 0 (13 bytes), system_from 1 at 13,
# ring_id.rep 1 at 17, ring_id.seq 5 at 21..28: 29 bytes.
MERGE = bytes.fromhex("70c0030200" "01000000" "00000000" "01000000" "01000000"
                      "0500000000000000")


def _raised(call, *args, **kwargs) -> errors.CodecError:
    with pytest.raises(errors.CodecError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(("data", "offset"), [
    (MERGE[:2] + b"\x04" + MERGE[3:], 2),   # version byte
    (MERGE[:20], 17),                        # ring_id.rep needs 4 bytes at 17, 3 left
    (MERGE + b"\x00", 29),                   # one byte after the end
    (b"\x00\x00\x00\x00" + MERGE[4:], 0),    # neither magic nor endian detector
])
def test_totem_errors_point_at_the_byte(data, offset):
    exc = _raised(totem.decode, data)
    assert isinstance(exc, totem.DecodeError) and isinstance(exc, errors.DecodeError)
    assert exc.offset == offset and exc.problem and str(exc)


@pytest.mark.parametrize(("data", "offset"), [
    (bytes.fromhex("017f000100000000000000000000000000000000"), 1),  # unknown type 0x7f
    (bytes.fromhex("0281000100"), 5),                                 # header cut at 5
    (bytes.fromhex("0281000100000000"), 0),                            # version 2
    (bytes.fromhex("01810001000000") + bytes(19) + b"\x00", 26),      # ping + 1 byte
])
def test_knet_errors_point_at_the_byte(data, offset):
    exc = _raised(knet.decode, data, crypto=False)
    assert isinstance(exc, knet.DecodeError) and isinstance(exc, errors.DecodeError)
    assert exc.offset == offset


def test_heartbeat_errors_keep_their_text_and_share_the_base():
    exc = _raised(heartbeat.decode, b"hello")
    assert isinstance(exc, heartbeat.DecodeError) and exc.offset == 0
    assert str(exc) == f"offset 0: {exc.problem}"
    cut = _raised(heartbeat.decode, b"###\n9:(0)t=status,%%%\n")
    # "###\n" 0-3, "9:" 4-5, nine bytes 6-14, so the ',' belongs at 15 (there: 'u')
    assert cut.offset == 15


def test_encode_errors_are_codec_errors_and_still_value_errors():
    too_big = totem.Message("memb_merge_detect", nodeid=1 << 40, system_from=1,
                            ring_id=totem.RingId(rep=1, seq=1))
    exc = _raised(totem.encode, too_big)
    assert isinstance(exc, totem.EncodeError) and isinstance(exc, ValueError)
    assert isinstance(exc, errors.EncodeError)
    ping = knet.Packet("ping", node=1 << 20)
    assert isinstance(_raised(knet.encode, ping), knet.EncodeError)
    assert issubclass(heartbeat.EncodeError, errors.EncodeError)
