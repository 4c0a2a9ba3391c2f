"""Heartbeat authentication: the ``authkeys`` file and the crc/md5/sha1 signatures.

A Heartbeat 3.0.6 datagram carries up to two signatures, both written ``"N digest"``
with N the key number from ``authkeys``: the trailing netstring signs the raw bytes
from ``###`` through ``%%%\\n``, and the in-body ``auth`` field signs the classic text
of every other field. A real node checks only the trailer of a netstring datagram and
the ``auth`` field of a classic one; `AuthKeys.check` reports both so a tool can show
exactly which one is wrong. Pure: no I/O except `AuthKeys.load` reading the file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from hbtools import heartbeat
from hbtools.errors import SourceError, read_regular_file

__all__ = ["AuthCheck", "AuthKey", "AuthKeys", "AuthKeysError", "AuthKeysWarning", "crc32_heartbeat"]

METHODS = ("crc", "md5", "sha1")
MAX_KEY_NUMBER = 15  # Heartbeat keeps 16 slots, numbered 0..15


MAX_FILE_BYTES = 64 * 1024  # an authkeys file is a few lines


def _is_key_number(word: str) -> bool:
    """ASCII digits only (no Unicode digits), and short enough that int() cannot blow up."""
    return word.isascii() and word.isdigit() and len(word) <= 6


class AuthKeysError(SourceError):
    """A bad authkeys file; names the file and line so the user can fix it."""


class AuthKeysWarning(UserWarning):
    """Heartbeat's own complaint about a keyfile others can read."""


_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def crc32_heartbeat(data: bytes) -> int:
    """CRC-32 as Heartbeat's crc method computes it: MSB-first, init 0, final NOT.

    That is not zlib's reflected CRC-32, but it is its mirror image: feeding zlib the
    bit-reversed bytes from a zero register and reversing the register afterwards gives
    the MSB-first value, at C speed instead of a Python loop per byte.
    """
    register = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    mirrored = int(f"{register:032b}"[::-1], 2)
    return mirrored ^ 0xFFFFFFFF


@dataclass(frozen=True)
class AuthKey:
    number: int
    method: str
    secret: bytes = b""
    line: int | None = None

    def digest(self, data: bytes) -> str:
        if self.method == "crc":
            # Printed with %lx: lower-case hex, no zero padding.
            return format(crc32_heartbeat(data), "x")
        algorithm = hashlib.md5 if self.method == "md5" else hashlib.sha1
        return hmac.new(self.secret, data, algorithm).hexdigest()


@dataclass(frozen=True)
class AuthCheck:
    """Which signatures a packet carries and whether each is right (None: absent)."""

    trailer: bool | None
    inline: bool | None
    #: The inner message of a compression envelope has its own ``auth`` field.
    inner: bool | None = None
    #: The datagram's wire format: it decides which signature a real node checks.
    wire_format: str = "netstring"

    @property
    def receiver_checks(self) -> str:
        """The one signature a real 3.0.6 node checks (PROTOCOL-NOTES §1, Authentication).

        A netstring datagram is judged by its trailer alone (the in-body ``auth`` is
        ignored); a classic one by its ``auth=`` line.
        """
        return "trailer" if self.wire_format == "netstring" else "body"

    @property
    def accepted(self) -> bool:
        """Whether a real 3.0.6 node takes the datagram (its verdict, not ours)."""
        return (self.trailer if self.wire_format == "netstring" else self.inline) is True

    @property
    def why(self) -> str | None:
        """Why a real node drops it, in its terms; None when it accepts it."""
        if self.accepted:
            return None
        if self.wire_format == "netstring":
            if self.trailer is None:
                return "no trailer signature: a 3.0.6 node rejects a netstring datagram without one"
            return "trailer signature wrong (a 3.0.6 node checks only the trailer of a netstring datagram)"
        if self.inline is None:
            return "no auth= line: a 3.0.6 node rejects a classic datagram without one"
        return "auth= signature wrong (a 3.0.6 node checks the auth= line of a classic datagram)"

    @property
    def carried(self) -> bool:
        return any(v is not None for v in (self.trailer, self.inline, self.inner))

    @property
    def valid(self) -> bool:
        present = [v for v in (self.trailer, self.inline, self.inner) if v is not None]
        return bool(present) and all(present)


@dataclass
class AuthKeys:
    """The keys of one ``authkeys`` file and the number of the one used to sign."""

    keys: dict[int, AuthKey]
    active: int
    source: str = "<authkeys>"
    warnings: list[str] = field(default_factory=list)
    insecure_mode: bool = False  # group or others may read or write the file (3.0.6 refuses to start)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuthKeys:
        path = Path(path)
        # A FIFO must not hang the caller, a directory is one line (see read_regular_file).
        raw, mode = read_regular_file(path, MAX_FILE_BYTES, AuthKeysError, "not an authkeys")
        keys = cls.parse(raw.decode("utf-8", "surrogateescape"), source=str(path))
        if mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
            keys.insecure_mode = True
            complaint = f"Bad permissions on keyfile [{path}], 600 recommended."
            keys.warnings.append(complaint)
            warnings.warn(complaint, AuthKeysWarning, stacklevel=2)
        return keys

    @classmethod
    def parse(cls, text: str, source: str = "<authkeys>") -> AuthKeys:
        keys: dict[int, AuthKey] = {}
        active: int | None = None
        active_line: int | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split(None, 2)
            if words[0] == "auth":
                if len(words) != 2 or not _is_key_number(words[1]):
                    raise AuthKeysError(source, number, "expected 'auth N' with a key number")
                if active is not None:
                    raise AuthKeysError(source, number, f"second 'auth' line (first on line {active_line})")
                active, active_line = int(words[1]), number
                continue
            if not _is_key_number(words[0]):
                # The word is not shown: a line holding only the key would print the secret.
                raise AuthKeysError(source, number, "expected 'auth N' or 'N method [key]' with N a number "
                                    f"0..{MAX_KEY_NUMBER} (the line is not shown: it may hold a key)")
            key_number = int(words[0])
            if key_number > MAX_KEY_NUMBER:
                raise AuthKeysError(source, number, f"key number {key_number} is over {MAX_KEY_NUMBER}")
            if len(words) < 2:
                raise AuthKeysError(source, number, f"key {key_number} has no method (crc, md5 or sha1)")
            method = words[1].lower()
            if method not in METHODS:
                # A short name-like word is shown (a typo: rot13, sha256); a longer one may be
                # the key itself, written without its method, and is not.
                word = words[1]
                name_like = len(word) <= 10 and word.isascii() and word.isalnum()
                got = repr(word) if name_like else "(not shown: it may be a key)"
                raise AuthKeysError(source, number, f"unknown method {got} (crc, md5 or sha1)")
            secret = words[2].strip() if len(words) > 2 else ""
            if method != "crc" and not secret:
                raise AuthKeysError(source, number, f"method {method} needs a key")
            if key_number in keys:
                raise AuthKeysError(source, number, f"key {key_number} defined twice")
            keys[key_number] = AuthKey(
                key_number, method, secret.encode("utf-8", "surrogateescape"), number
            )
        if active is None:
            raise AuthKeysError(source, None, "no 'auth N' line choosing the key to sign with")
        if active not in keys:
            raise AuthKeysError(source, active_line, f"'auth {active}' names a key that is not defined")
        return cls(keys, active, source)

    @property
    def active_key(self) -> AuthKey:
        return self.keys[self.active]

    def sign(self, data: bytes) -> str:
        """The ``"N digest"`` text Heartbeat writes, with the active key."""
        return f"{self.active} {self.active_key.digest(data)}"

    def matches(self, signature: str, data: bytes) -> bool:
        """Whether ``"N digest"`` is right for `data` with this file's key N."""
        number, _, digest = signature.partition(" ")
        if not (number.isascii() and number.isdigit()) or not digest:
            return False
        key = self.keys.get(int(number))
        if key is None:
            return False
        # Bytes, not str: compare_digest refuses non-ASCII text, and a hostile packet
        # may carry any bytes in its signature.
        expected = key.digest(data).encode()
        return hmac.compare_digest(expected, digest.encode("utf-8", "surrogateescape"))

    def check(self, data: bytes) -> AuthCheck:
        """Check every signature `data` carries; raises `heartbeat.DecodeError` if malformed."""
        msg = heartbeat.decode(data)
        return self.check_message(msg, data)

    def check_message(self, msg: heartbeat.Message, data: bytes) -> AuthCheck:
        """Like `check` for a message already decoded from `data` (saves a decode)."""
        trailer: bool | None = None
        region = heartbeat.trailer_signed_region(data, msg)
        if region is not None and msg.trailer is not None:
            trailer = self.matches(msg.trailer, region)
        inline = self._inline(msg)
        inner: bool | None = None
        if "_compressed_payload" in msg:
            inner = self._inline(heartbeat.decompress(msg))
        return AuthCheck(trailer, inline, inner, msg.wire_format)

    def accepts(self, msg: heartbeat.Message, data: bytes) -> bool:
        """What a real 3.0.6 node decides, checking only the signature it checks.

        Cheaper than `check_message` (no decompression, one digest); the same answer as
        ``check_message(msg, data).accepted``.
        """
        if msg.wire_format == "netstring":
            region = heartbeat.trailer_signed_region(data, msg)
            return region is not None and msg.trailer is not None and self.matches(msg.trailer, region)
        return self._inline(msg) is True

    def _inline(self, msg: heartbeat.Message | None) -> bool | None:
        if msg is None:
            return None
        signature = msg.get(heartbeat.AUTH_FIELD)
        if not isinstance(signature, str):
            return None
        return self.matches(signature, heartbeat.inline_signed_text(msg))

    def verify(self, data: bytes) -> bool:
        """True when the packet carries a signature and every one it carries is right.

        Malformed bytes are simply not authentic: False, never an exception.
        """
        try:
            return self.check(data).valid
        except heartbeat.DecodeError:
            return False
