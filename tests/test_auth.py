"""authkeys parsing and the three digests, against published test vectors."""

from __future__ import annotations

import os
import warnings

import pytest

from hbtools import heartbeat
from hbtools.auth import AuthKey, AuthKeys, AuthKeysError, AuthKeysWarning, crc32_heartbeat


def test_crc_check_value_from_the_protocol_notes():
    # CRC-32 MSB-first, init 0, final NOT: "123456789" -> 765e7680 (also CRC-32/POSIX's
    # catalogued check value, which excludes cksum's length folding).
    assert crc32_heartbeat(b"123456789") == 0x765E7680
    assert crc32_heartbeat(b"") == 0xFFFFFFFF


def test_hmac_md5_rfc2104_vector():
    assert AuthKey(1, "md5", b"Jefe").digest(b"what do ya want for nothing?") == (
        "750c783e6ab0b503eaa86e310a5db738")


def test_hmac_sha1_rfc2202_vector():
    assert AuthKey(1, "sha1", b"Jefe").digest(b"what do ya want for nothing?") == (
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")


def test_parse_picks_active_key():
    keys = AuthKeys.parse("# comment\nauth 2\n1 crc\n2 sha1 secret with spaces\n3 md5 k3\n")
    assert keys.active == 2
    assert keys.active_key.method == "sha1" and keys.active_key.secret == b"secret with spaces"
    assert set(keys.keys) == {1, 2, 3}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("auth 1\n1 rot13 x\n", 2, "unknown method"),
        ("auth 1\n1 md5\n", 2, "needs a key"),
        ("auth 3\n1 crc\n", 1, "not defined"),
        ("1 crc\n", None, "no 'auth N'"),
        ("auth 1\n1 crc\n1 md5 x\n", 3, "defined twice"),
        ("auth one\n", 1, "auth N"),
        ("auth 1\nfoo bar\n", 2, "'auth N' or 'N method"),
        ("auth 1\n" + "z" * 500 + "\n", 2, "the line is not shown"),
        ("auth 1\n99 crc\n", 2, "over 15"),
    ],
)
def test_bad_authkeys_name_line_and_problem(text, line, words):
    with pytest.raises(AuthKeysError) as caught:
        AuthKeys.parse(text, source="/etc/ha.d/authkeys")
    assert caught.value.line == line
    assert words in str(caught.value)
    assert str(caught.value).startswith("/etc/ha.d/authkeys")


def test_load_warns_like_heartbeat_on_readable_file(tmp_path):
    path = tmp_path / "authkeys"
    path.write_text("auth 1\n1 crc\n")
    os.chmod(path, 0o644)
    with pytest.warns(AuthKeysWarning, match=r"Bad permissions on keyfile .*600 recommended"):
        keys = AuthKeys.load(path)
    assert keys.warnings
    os.chmod(path, 0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert AuthKeys.load(path).warnings == []


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(AuthKeysError, match="cannot read"):
        AuthKeys.load(tmp_path / "nope")


@pytest.mark.parametrize("method_line", ["1 crc", "1 md5 s3cret", "1 sha1 s3cret"])
def test_sign_then_verify_both_formats(method_line):
    keys = AuthKeys.parse(f"auth 1\n{method_line}\n")
    msg = heartbeat.Message.build([("t", "status"), ("src", "n1"), ("seq", "1")])
    netstring = heartbeat.encode(msg, keys, inline_auth=True)
    classic = heartbeat.encode(msg, keys, wire_format="classic")
    for wire in (netstring, classic):
        assert keys.verify(wire)
    check = keys.check(netstring)
    assert check.trailer is True and check.inline is True
    assert keys.check(classic).trailer is None
    # Someone else's key does not verify.
    other = AuthKeys.parse(f"auth 1\n{method_line.replace('s3cret', 'other')}\n")
    if "crc" not in method_line:
        assert not other.verify(netstring)
    # A flipped byte anywhere breaks it.
    for i in range(len(netstring)):
        flipped = bytearray(netstring)
        flipped[i] ^= 0x01
        assert not keys.verify(bytes(flipped)), i


def test_netstring_without_inline_auth_is_trailer_only():
    keys = AuthKeys.parse("auth 1\n1 sha1 k\n")
    msg = heartbeat.Message.build([("t", "status"), ("src", "n1")])
    wire = heartbeat.encode(msg, keys)
    assert b"auth=" not in wire
    check = keys.check(wire)
    assert check.trailer is True and check.inline is None and keys.verify(wire)


def test_unsigned_and_garbage_do_not_verify():
    keys = AuthKeys.parse("auth 1\n1 crc\n")
    assert not keys.verify(heartbeat.encode(heartbeat.Message.build([("t", "status")])))
    assert not keys.verify(b"\x00\x01garbage")


def test_compressed_envelope_inner_auth_checked():
    keys = AuthKeys.parse("auth 1\n1 md5 k\n")
    inner = heartbeat.Message.build([("t", "status"), ("ld", "y" * 5000)])
    envelope = heartbeat.compress(inner, "zlib", keys)
    wire = heartbeat.encode(envelope, keys)
    check = keys.check(wire)
    assert check.trailer is True and check.inner is True


def test_signature_with_non_ascii_bytes_is_just_wrong():
    keys = AuthKeys.parse("auth 1\n1 crc\n")
    msg = heartbeat.Message.build([("t", "status"), ("auth", "1 a4\udce3f")])
    wire = heartbeat.encode(msg)
    assert keys.check(wire).inline is False
    assert not keys.matches("\u00b2 abc", b"x")  # a digit, but not an ASCII one


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SIGNED = heartbeat.encode(heartbeat.Message.build([("t", "status"), ("src", "n1"), ("seq", "1")]),
                           AuthKeys.parse("auth 1\n1 md5 k\n"), inline_auth=True)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3))
def test_verify_never_raises_on_mutated_packets(edits):
    keys = AuthKeys.parse("auth 1\n1 md5 k\n")
    data = bytearray(_SIGNED)
    for position, byte in edits:
        data[position % len(data)] = byte
    assert keys.verify(bytes(data)) in (True, False)
    try:
        keys.check(bytes(data))
    except heartbeat.DecodeError:
        pass
