"""Kronosnet crypto as corosync 3 sets it up from ``/etc/corosync/authkey``, sans-I/O.

Facts (libknet 1.25 ``crypto_nss.c`` / ``crypto_openssl.c``; corosync 3.1 ``totemknet.c``):

* corosync hands knet the WHOLE authkey file as the private key (128 to 4096 bytes) and the
  ``crypto_cipher`` / ``crypto_hash`` names; ``crypto_model`` (nss or openssl) only picks
  the library, both produce the same bytes.
* Sending: ``salt (16 random bytes) ‖ AES-CBC(key[:n], iv=salt, PKCS#7 padded packet)``
  then ``HMAC(hash, whole authkey, everything before it)`` appended (encrypt-then-MAC).
  The AES key is the first 16/24/32 bytes of the authkey (nss zero-pads a shorter key,
  which the 128-byte minimum makes moot). With ``crypto_cipher: none`` and a hash the
  packet goes in clear with the HMAC appended (no salt).
* Receiving: the HMAC is checked first (the last digest-size bytes), then the rest is
  decrypted; a packet failing either is dropped.

Nothing on the wire says which cipher and hash were used, so `KeyRing.open` finds the
suite by trying: the digest size and the HMAC identify the hash (a wrong key or a tampered
packet matches none), then the AES key size is the one whose plaintext has valid padding
and a well-formed knet header. The suite that worked is tried first next time, so a
capture costs one HMAC and one decryption per packet after its first.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hbtools import knet
from hbtools.errors import SourceError

__all__ = [
    "CIPHERS",
    "HASHES",
    "MODELS",
    "AuthKeyError",
    "Key",
    "KeyRing",
    "Opened",
    "Reading",
    "Suite",
    "open_packet",
    "read",
    "seal",
]

#: crypto_cipher values corosync 3 accepts (besides none) -> AES key length in bytes.
CIPHERS: Mapping[str, int] = MappingProxyType({"aes256": 32, "aes192": 24, "aes128": 16})
#: crypto_hash values corosync 3 accepts (besides none) -> HMAC digest size in bytes.
HASHES: Mapping[str, int] = MappingProxyType(
    {"sha256": 32, "sha1": 20, "sha384": 48, "sha512": 64, "md5": 16})
#: crypto_model values; the wire bytes do not depend on the model.
MODELS = ("nss", "openssl")
#: SALT_SIZE in libknet: the random IV in front of the ciphertext.
SALT_SIZE = 16
BLOCK_SIZE = 16
#: KNET_MIN_KEY_LEN / KNET_MAX_KEY_LEN: corosync refuses an authkey outside this range.
MIN_KEY_LEN = 128
MAX_KEY_LEN = 4096


class AuthKeyError(SourceError):
    """An authkey file corosync would refuse (or that cannot be read)."""


@dataclass(frozen=True)
class Suite:
    """One crypto_cipher / crypto_hash pair (cipher None: crypto_cipher none)."""

    cipher: str | None
    hash: str

    def __str__(self) -> str:
        return f"{self.cipher or 'none'}/{self.hash}"


#: Every suite corosync 3 accepts with crypto on: any hash, with or without a cipher
#: (a cipher without a hash is refused: "crypto communication requires hash specified").
SUITES: tuple[Suite, ...] = tuple(
    Suite(cipher, hash_name)
    for cipher in (*CIPHERS, None)
    for hash_name in HASHES
)


@dataclass(frozen=True)
class Key:
    """An authkey: its bytes and the name it is shown by (the file's name)."""

    name: str
    secret: bytes

    def __post_init__(self) -> None:
        if not MIN_KEY_LEN <= len(self.secret) <= MAX_KEY_LEN:
            raise ValueError(
                f"an authkey is {MIN_KEY_LEN}..{MAX_KEY_LEN} bytes, not {len(self.secret)}")

    def __repr__(self) -> str:  # never show the secret
        return f"Key({self.name!r}, {len(self.secret)} bytes)"

    def aes_key(self, cipher: str) -> bytes:
        size = CIPHERS[cipher]
        return self.secret[:size].ljust(size, b"\0")

    def hmac(self, hash_name: str, data: bytes) -> bytes:
        return hmac.digest(self.secret, data, hash_name)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Key:
        """Read an authkey file (not following a symlink); errors name the file."""
        name = os.fspath(path)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise AuthKeyError(name, None, exc.strerror or str(exc)) from None
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise AuthKeyError(name, None, "not a regular file")
            secret = stream.read(MAX_KEY_LEN + 1)
        if not MIN_KEY_LEN <= len(secret) <= MAX_KEY_LEN:
            raise AuthKeyError(name, None, f"{len(secret)} bytes: corosync takes an authkey "
                                           f"of {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes")
        return cls(Path(name).name, secret)


@dataclass(frozen=True)
class Opened:
    """A packet that authenticated: its cleartext knet packet, and with what."""

    plain: bytes
    key: Key
    suite: Suite


def seal(plain: bytes, key: Key, suite: Suite, salt: bytes | None = None) -> bytes:
    """The wire bytes libknet sends for the cleartext knet packet `plain`.

    `salt` (16 bytes) is random when not given; tests pass one for fixed vectors.
    """
    if suite.cipher is None:
        body = bytes(plain)
    else:
        if salt is None:
            salt = os.urandom(SALT_SIZE)
        if len(salt) != SALT_SIZE:
            raise ValueError(f"the salt is {SALT_SIZE} bytes")
        pad = BLOCK_SIZE - len(plain) % BLOCK_SIZE
        padded = bytes(plain) + bytes((pad,)) * pad
        encryptor = Cipher(algorithms.AES(key.aes_key(suite.cipher)), modes.CBC(salt)).encryptor()
        body = salt + encryptor.update(padded) + encryptor.finalize()
    return body + key.hmac(suite.hash, body)


def _decrypt(body: bytes, key: Key, cipher: str) -> bytes | None:
    """AES-CBC decryption and PKCS#7 check; None when the padding is not valid."""
    if len(body) < SALT_SIZE + BLOCK_SIZE or (len(body) - SALT_SIZE) % BLOCK_SIZE:
        return None
    decryptor = Cipher(algorithms.AES(key.aes_key(cipher)),
                       modes.CBC(body[:SALT_SIZE])).decryptor()
    padded = decryptor.update(body[SALT_SIZE:]) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= BLOCK_SIZE or padded[-pad:] != bytes((pad,)) * pad:
        return None
    return padded[:-pad]


def open_packet(data: bytes, key: Key, suite: Suite) -> bytes | None:
    """The cleartext knet packet inside `data` if it authenticates with key and suite."""
    size = HASHES[suite.hash]
    if len(data) <= size:
        return None
    body = data[:-size]
    if not hmac.compare_digest(key.hmac(suite.hash, body), data[-size:]):
        return None
    if suite.cipher is None:
        return body if knet.looks_clear(body) else None
    plain = _decrypt(body, key, suite.cipher)
    if plain is None or not knet.looks_clear(plain):
        return None
    return plain


class KeyRing:
    """Several authkeys at once (a key change in progress), each tried on every packet.

    `suites` narrows the search when the configuration is known (corosync.conf); by
    default every suite corosync accepts is tried, the last one that worked first.
    """

    def __init__(self, keys: Iterable[Key], suites: Iterable[Suite] | None = None) -> None:
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("a key ring needs at least one key")
        self.suites = tuple(SUITES if suites is None else suites)
        self._order: list[tuple[Key, Suite]] = []
        self._last: tuple[Key, Suite] | None = None

    def open(self, data: bytes) -> Opened | None:
        """The packet opened by the first key and suite that authenticate it, else None."""
        data = bytes(data)
        last = self._last
        if last is not None:
            plain = open_packet(data, *last)
            if plain is not None:
                return Opened(plain, *last)
        for key in self.keys:
            for hash_name in dict.fromkeys(s.hash for s in self.suites):
                size = HASHES[hash_name]
                if len(data) <= size:
                    continue
                body = data[:-size]
                if not hmac.compare_digest(key.hmac(hash_name, body), data[-size:]):
                    continue
                for suite in self.suites:
                    if suite.hash != hash_name:
                        continue
                    plain = open_packet(data, key, suite)
                    if plain is not None:
                        self._last = (key, suite)
                        return Opened(plain, key, suite)
        return None


@dataclass(frozen=True)
class Reading:
    """A knet datagram as a receiver holding `ring` reads it (see `read`)."""

    packet: knet.Packet
    #: The key and suite that authenticated it; None when none did (or no keys were given).
    opened: Opened | None
    #: Readable without a key: a well-formed cleartext packet (a cluster without crypto).
    clear: bool


def read(data: bytes, ring: KeyRing | None, opened: Opened | None = None) -> Reading:
    """Open (when a key authenticates it) and decode one knet datagram.

    The one rule for every reader with keys (decode's rows, the fault engine): a packet a
    key opens is decoded from its cleartext; one no key opens is a cleartext packet only if
    it is a plausible one that carries something readable (a cluster without crypto), else
    it stays an encrypted packet (a wrong key, a tampered packet). Without keys, each packet
    is judged by whether it looks clear. Raises `knet.DecodeError` on malformed cleartext.
    """
    if ring is not None and opened is None:
        opened = ring.open(data)
    if opened is not None:
        return Reading(knet.decode(opened.plain, crypto=False), opened, False)
    packet = knet.decode(data)
    if ring is None:
        return Reading(packet, None, not packet.encrypted)
    clear = not packet.encrypted and (packet.type_name != "data" or packet.totem is not None
                                      or packet.frag_num > 1)
    if not clear and not packet.encrypted:
        packet = knet.decode(data, crypto=True)
    return Reading(packet, None, clear)


def load_keys(paths: Iterable[str]) -> KeyRing:
    """A key ring from authkey files (`AuthKeyError` names the bad one)."""
    return KeyRing(Key.load(path) for path in paths)


def suite_named(cipher: str, hash_name: str) -> Suite:
    """The suite of a corosync.conf's crypto_cipher / crypto_hash (ValueError if refused)."""
    if hash_name not in HASHES:
        raise ValueError(f"crypto_hash {hash_name!r}: corosync takes {', '.join(HASHES)}")
    if cipher != "none" and cipher not in CIPHERS:
        raise ValueError(f"crypto_cipher {cipher!r}: corosync takes {', '.join(CIPHERS)}")
    return Suite(None if cipher == "none" else cipher, hash_name)


# hashlib names every hash above; checked once at import so a missing one fails loudly.
for _name in HASHES:
    hashlib.new(_name)
