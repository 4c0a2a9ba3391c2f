"""Heartbeat datagrams whose two signatures disagree, written by hand (issue 14, item 2).

The bytes and both signatures are built here from PROTOCOL-NOTES §1 with the standard
library's HMAC-SHA1, not with the project's codec or auth module:

* trailer: HMAC over the bytes from the first ``#`` through ``%%%\\n``;
* in-body ``auth``: HMAC over the classic "no head" text of every other field
  (``name=value\\n``, binary fields as ``(1)name=<base64>\\n``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

KEY = b"hbtools-receiver-test"
AUTHKEYS = "auth 2\n1 crc\n2 sha1 hbtools-receiver-test\n"
WRONG = "2 " + "0" * 40


def sign(data: bytes) -> str:
    return "2 " + hmac.new(KEY, data, hashlib.sha1).hexdigest()


def _ns(item: bytes) -> bytes:
    return b"%d:%s," % (len(item), item)


def status_fields(node: str, seq: int, uuid: bytes, gen: int, ts: int) -> list[tuple[str, object]]:
    return [("t", "status"), ("st", "active"), ("dt", "bb8"), ("protocol", "1"), ("src", node),
            ("srcuuid", uuid), ("seq", f"{seq:x}"), ("hg", f"{gen:x}"), ("ts", f"{ts:x}"),
            ("ld", "0.01 0.02 0.03 1/90 100"), ("ttl", "4")]


def inline_text(fields: list[tuple[str, object]]) -> bytes:
    out = b""
    for name, value in fields:
        if isinstance(value, bytes):
            out += b"(1)" + name.encode() + b"=" + base64.b64encode(value) + b"\n"
        else:
            out += f"{name}={value}\n".encode()
    return out


def netstring_datagram(fields: list[tuple[str, object]], *, body_right: bool, trailer: str
                       ) -> bytes:
    """``trailer``: "right", "wrong" or "none"."""
    auth = sign(inline_text(fields)) if body_right else WRONG
    body = b"###\n"
    for name, value in [*fields, ("auth", auth)]:
        if isinstance(value, bytes):
            body += _ns(b"(1)" + name.encode() + b"=" + value)
        else:
            body += _ns(f"(0){name}={value}".encode())
    body += b"%%%\n"
    if trailer == "none":
        return body
    return body + _ns((sign(body) if trailer == "right" else WRONG).encode())


def classic_datagram(fields: list[tuple[str, object]], *, body_right: bool) -> bytes:
    auth = sign(inline_text(fields)) if body_right else WRONG
    return b">>>\n" + inline_text(fields) + f"auth={auth}\n".encode() + b"<<<\n"
