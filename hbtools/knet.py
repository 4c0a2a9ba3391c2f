"""Kronosnet (knet) packets as corosync 3's default transport sends them, sans-I/O.

tshark's "knet" is KristalliNet, a game protocol, so nothing decodes kronosnet. The
layouts follow `struct knet_header` and its payload structs in libknet's onwire.h
(libknet 1.25, on-wire version 1): a 6-byte header, then per type a data, ping/pong or
PMTUd payload. Multi-byte fields are NOT in one byte order: knet converts node ids and
sequence numbers with htons (big endian) but sends the PMTUd size and the ping timestamp
in host order (little endian on the x86 machines captured), so every field pins its own.

A data packet carries Totem in clear (`Packet.totem`) unless it is a fragment or is
compressed. With crypto on (e.g. aes256/sha256) the whole UDP payload is opaque: a
16-byte IV, the AES-CBC ciphertext and a 32-byte HMAC. Such packets decode as
`type_name == "encrypted"` with their `size`, never as the garbage fields a blind parse
would produce.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import Any

from hbtools import errors
from hbtools import totem as _totem
from hbtools.layout import REST, Field, Layout, LayoutError, Record

__all__ = [
    "LAYOUTS",
    "TYPES",
    "DecodeError",
    "EncodeError",
    "Packet",
    "Reassembler",
    "decode",
    "encode",
    "looks_clear",
]


class DecodeError(errors.DecodeError):
    """The bytes are not a well-formed knet packet (the only error decode raises)."""


class EncodeError(errors.EncodeError):
    """A field of the packet does not fit its C type (the only error encode raises)."""


#: KNET_HEADER_VERSION: the on-wire version libknet 1.x sends.
VERSION = 1

PORT = 5405
"""UDP port of knet link 0 (corosync's default ``mcastport``)."""
MAX_LINKS = 8
"""knet links a node can have; corosync gives link L the port PORT + L unless configured."""
LINK_PORTS = tuple(PORT + link for link in range(MAX_LINKS))

#: KNET_HEADER_TYPE_* in onwire.h.
TYPES: Mapping[int, str] = MappingProxyType({
    0x00: "data",
    0x01: "host_info",
    0x81: "ping",
    0x82: "pong",
    0x83: "pmtud",
    0x84: "pmtud_reply",
})
TYPE_CODES: Mapping[str, int] = MappingProxyType({v: k for k, v in TYPES.items()})

#: The pseudo type of a packet whose crypto we cannot see through.
ENCRYPTED = "encrypted"

#: Compression models libknet numbers in khp_data_compress (compress.c's model ids;
#: 0: not compressed). Compression runs before fragmentation and crypto.
COMPRESS_MODELS: Mapping[int, str] = MappingProxyType({
    0: "none", 1: "zlib", 2: "lz4", 3: "lz4hc", 4: "lzo2", 5: "lzma", 6: "bzip2", 7: "zstd",
})
COMPRESS_MAX = max(COMPRESS_MODELS)
#: KNET_DATABUFSIZE: no user data decompresses to more (a bound against bombs).
MAX_USERDATA = 65536

HEADER = (
    Field("version", "B", "KNET_HEADER_VERSION, on-wire protocol version", const=VERSION),
    Field("type", "B", "packet type", values=TYPES, base="hex"),
    Field("node", ">H", "knet host id of the sender (corosync's nodeid), big endian"),
    Field("pad1", "B", "kh_pad1, room to grow the header"),
    Field("pad2", "B", "kh_pad2"),
)

DATA = (
    Field("seq_num", ">H", "per-host packet sequence number, used to drop duplicates"),
    Field("compress", "B", "compression model of the user data, 0 when uncompressed",
          values=COMPRESS_MODELS),
    Field("data_pad1", "B", "khp_data_pad1, room to grow the header"),
    Field("bcast", "B", "1 broadcast to every host, 0 unicast"),
    Field("frag_num", "B", "number of fragments of this packet; 1 means not fragmented"),
    Field("frag_seq", "B", "which fragment this is, from 1; 0 in an unfragmented packet"),
    Field("channel", "b", "knet channel (corosync uses one channel for Totem)"),
    Field("userdata", REST, "the application data: a Totem message, or a fragment of one"),
)

PING = (
    Field("link", "B", "link id the ping was sent on"),
    Field("time", "16s", "sender's timestamp (struct timespec, host byte order), echoed"),
    Field("seq_num", ">H", "sender's highest data seq_num, for the receiver's dedup"),
    Field("timed", "B", "1 for a timed ping, 0 for one forced by seq_num"),
)

PMTUD = (
    Field("link", "B", "link id being probed"),
    Field("size", "<H", "probed packet size; host byte order (little endian on x86)"),
    Field("pmtud_data", REST, "fill bytes up to the probed size"),
)

ENCRYPTED_LAYOUT = Layout(ENCRYPTED, (
    Field("ciphertext", REST, "IV, encrypted knet packet and HMAC, opaque without the key"),
), "a knet packet with crypto on")

_BODIES = {
    "data": DATA,
    "host_info": DATA,
    "ping": PING,
    "pong": PING,
    "pmtud": PMTUD,
    "pmtud_reply": PMTUD,
}

_MEANINGS = {
    "data": "application data (Totem)",
    "host_info": "host information (unused by libknet 1.x)",
    "ping": "link heartbeat",
    "pong": "reply to a link heartbeat",
    "pmtud": "path MTU discovery probe",
    "pmtud_reply": "reply to a path MTU discovery probe",
}


class Packet(Record):
    """One knet packet; `totem` holds the Totem message of an unfragmented data packet.

    Compressed user data is decompressed first (`decompress`). `totem` is None for other
    types and fragments; if the (decompressed) user data of
    such a packet is not valid Totem, `totem` is None and `totem_error` says why (knet can
    carry other applications' data, and a dissector should still show the knet header).
    """

    __slots__ = ("_totem", "_totem_error")
    _totem: _totem.Message | None
    _totem_error: str | None

    def __init__(self, type_name: str, *, totem: _totem.Message | None = None,
                 **fields: Any) -> None:
        layout = LAYOUTS.get(type_name)
        if layout is None:
            raise ValueError(f"unknown knet packet type {type_name!r}")
        if type_name != ENCRYPTED:
            fields["type"] = TYPE_CODES[type_name]
        if type_name in ("data", "host_info"):
            fields.setdefault("frag_num", 1)  # frag_seq stays 0, as libknet sends it
            if totem is not None:
                if "userdata" in fields:
                    raise ValueError("give userdata or totem, not both")
                fields["userdata"] = _totem.encode(totem)
        elif totem is not None:
            raise ValueError(f"a {type_name} packet carries no Totem message")
        self._init(layout, fields)
        self._attach_totem()

    def _after_replace(self, original: Record) -> None:
        self._attach_totem()

    def _attach_totem(self) -> None:
        message: _totem.Message | None = None
        error: str | None = None
        if self._layout.name == "data" and self._values["frag_num"] == 1:
            try:
                userdata = decompress(self._values["compress"], self._values["userdata"])
                message = _totem.decode(userdata)
            except (_totem.DecodeError, DecodeError) as exc:
                error = str(exc)
        object.__setattr__(self, "_totem", message)
        object.__setattr__(self, "_totem_error", error)

    @property
    def type_name(self) -> str:
        return self._layout.name

    @property
    def encrypted(self) -> bool:
        return self._layout is ENCRYPTED_LAYOUT

    @property
    def wire_size(self) -> int:
        """Size of the whole packet on the wire, in bytes."""
        return len(encode(self))

    def __getattr__(self, name: str) -> Any:
        # An encrypted packet's `size` is its wire size; a PMTUd packet's `size` is its field.
        if name == "size" and self._layout is ENCRYPTED_LAYOUT:
            return len(self._values["ciphertext"])
        return Record.__getattr__(self, name)

    @property
    def totem(self) -> _totem.Message | None:
        return self._totem

    @property
    def totem_error(self) -> str | None:
        return self._totem_error

    def to_dict(self) -> dict[str, Any]:
        """Wire fields by the codec's names, led by `type_name`; ciphertext shown as size."""
        if self.encrypted:
            return {"type_name": ENCRYPTED, "encrypted": True, "size": self.wire_size}
        out: dict[str, Any] = {"type_name": self.type_name, **Record.to_dict(self)}
        if self._totem is not None:
            out["totem"] = self._totem.to_dict()
        elif self._totem_error is not None:
            out["totem_error"] = self._totem_error
        return out


def _layouts() -> Mapping[str, Layout]:
    out = {}
    for name, body in _BODIES.items():
        layout = Layout(name, HEADER + body, _MEANINGS[name])
        layout.record_type = Packet
        out[name] = layout
    ENCRYPTED_LAYOUT.record_type = Packet
    out[ENCRYPTED] = ENCRYPTED_LAYOUT
    return MappingProxyType(out)


LAYOUTS: Mapping[str, Layout] = _layouts()

# ------------------------------------------------------------------- recognition
# How a knet packet is recognised, declared once for every reader (decode, the
# dissector's detector, the fast path, the fault engine, the Lua export).

HEADER_SIZE = sum(f.scalar_size() or 0 for f in HEADER)
_HEADER_SIZE = HEADER_SIZE
#: The smallest packet knet crypto can produce: a 16-byte IV and one 16-byte AES block
#: (the HMAC, 32 bytes with sha256, comes on top; real ones were 64 bytes and up).
MIN_ENCRYPTED_SIZE = 32
_PING_SIZE = LAYOUTS["ping"].fixed_size
PING_SIZE: int = _PING_SIZE or 0
DATA_TYPE = TYPE_CODES["data"]
_DATA = LAYOUTS["data"]
#: Offsets in a data packet of the bytes recognisers read (from the layout, not by hand).
COMPRESS_AT = _DATA.offset_of("compress")
PAD_AT = _DATA.offset_of("data_pad1")
BCAST_AT = _DATA.offset_of("bcast")
FRAG_NUM_AT = _DATA.offset_of("frag_num")
FRAG_SEQ_AT = _DATA.offset_of("frag_seq")
USERDATA_AT = _DATA.offset_of("userdata")
TIMED_AT = LAYOUTS["ping"].offset_of("timed")


def looks_clear(data: bytes) -> bool:
    """Would a cleartext knet sender have produced exactly these bytes?

    With crypto on the packet is uniformly random, so it passes every check below only by
    chance (the version, type and padding bytes alone leave about one chance in 2^32).
    """
    if len(data) < _HEADER_SIZE or data[0] != VERSION or data[4] or data[5]:
        return False
    name = TYPES.get(data[1])
    if name is None:
        return False
    if name in ("data", "host_info"):
        if len(data) < USERDATA_AT:
            return False
        compress, pad, bcast, frag_num, frag_seq = data[COMPRESS_AT:FRAG_SEQ_AT + 1]
        return (compress <= COMPRESS_MAX and pad == 0 and bcast <= 1
                and 1 <= frag_num and frag_seq <= frag_num)
    if name in ("ping", "pong"):
        return len(data) == _PING_SIZE and data[TIMED_AT] <= 1
    return len(data) >= _HEADER_SIZE + 3


def is_fragment(data: bytes) -> bool:
    """A data packet that is one fragment of a bigger one: only a reassembler can read it."""
    return len(data) > FRAG_SEQ_AT and data[1] == DATA_TYPE and data[FRAG_NUM_AT] > 1


def carries_totem(data: bytes) -> bool:
    """A cleartext data packet whose user data is whole and uncompressed (Totem, usually)."""
    return data[1] == DATA_TYPE and data[FRAG_NUM_AT] == 1 and data[COMPRESS_AT] == 0


def looks(data: bytes) -> bool:
    """On a port that is not Corosync's: is this kronosnet, shown as such?

    The 6-byte header alone is too weak a mark, so only cleartext packets whose contents
    are consistent pass: data carrying Totem that itself looks like Totem, fragments with
    a valid fragment number, pings and pongs of the exact size, PMTUd probes.
    """
    if not looks_clear(data):
        return False
    name = TYPES[data[1]]
    if name == "data":
        if data[FRAG_NUM_AT] == 1:
            return _totem.looks(data[USERDATA_AT:])
        return data[FRAG_SEQ_AT] >= 1
    return name != "host_info"


def decode(data: bytes | bytearray | memoryview, *, crypto: bool | None = None) -> Packet:
    """Decode one knet packet (a whole UDP payload).

    `crypto`: True when the capture is known to use knet crypto (every packet is then
    reported encrypted), False when it is known not to (malformed packets raise), None to
    judge each packet by whether it is a plausible cleartext packet.
    """
    data = bytes(data)
    if crypto or (crypto is None and not looks_clear(data)):
        if not data:
            raise DecodeError("empty packet", 0)
        if crypto is None and len(data) < MIN_ENCRYPTED_SIZE:
            # Too short even for an IV and one cipher block: neither clear nor encrypted.
            raise DecodeError(f"{len(data)} bytes: too short for a knet packet, clear or encrypted",
                              len(data))
        packet = Packet._make(ENCRYPTED_LAYOUT, {"ciphertext": data})
        assert isinstance(packet, Packet)
        packet._attach_totem()
        return packet
    if len(data) < _HEADER_SIZE:
        raise DecodeError(f"truncated knet header: {len(data)} bytes", len(data))
    if data[0] != VERSION:
        raise DecodeError(f"unsupported knet on-wire version {data[0]}", 0)
    name = TYPES.get(data[1])
    if name is None:
        raise DecodeError(f"unknown knet packet type {data[1]:#04x}", 1)
    try:
        packet, end = LAYOUTS[name].decode_from(data, 0, "big")
    except LayoutError as exc:
        raise DecodeError(f"{name}: {exc}", exc.offset) from None
    if end != len(data):
        raise DecodeError(f"{name}: {len(data) - end} bytes after the end of the packet", end)
    assert isinstance(packet, Packet)
    packet._attach_totem()
    return packet


def _lz4_block(data: bytes) -> bytes:
    import lz4.block  # type: ignore[import-not-found]  # extra "knet"

    return bytes(lz4.block.decompress(data, uncompressed_size=MAX_USERDATA))


def _zstd(data: bytes) -> bytes:
    import zstandard  # type: ignore[import-not-found]  # extra "knet"

    return bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_USERDATA))


def _stream(make: Any) -> Any:
    """A bounded one-shot decompression with a stdlib decompressor class."""
    def run(data: bytes) -> bytes:
        decompressor = make()
        out = decompressor.decompress(data, MAX_USERDATA)
        if not decompressor.eof:
            raise ValueError("truncated or over the 64 KiB knet buffer")
        return bytes(out)
    return run


def _zlib() -> Any:
    import zlib

    class Zlib:
        """zlib.decompressobj with the bz2/lzma decompressor interface."""

        def __init__(self) -> None:
            self._d = zlib.decompressobj()
            self.eof = False

        def decompress(self, data: bytes, max_length: int) -> bytes:
            out = self._d.decompress(data, max_length)
            self.eof = self._d.eof
            return out

    return Zlib()


def _decompressors() -> dict[str, Any]:
    import bz2
    import lzma

    return {
        # compress2(): a zlib stream; lzma_easy_buffer_encode(): an .xz stream without a
        # check; BZ2_bzBuffToBuffCompress(): a .bz2 stream; ZSTD_compressCCtx(): a zstd
        # frame; LZ4_compress_fast / LZ4_compress_HC: a raw LZ4 block (no size, no frame).
        "zlib": _stream(_zlib),
        "lzma": _stream(lzma.LZMADecompressor),
        "bzip2": _stream(bz2.BZ2Decompressor),
        "lz4": _lz4_block,
        "lz4hc": _lz4_block,
        "zstd": _zstd,
    }


_DECOMPRESS = _decompressors()
#: Models with no well-kept Python library: lzo2 (python-lzo is unmaintained and needs
#: a C build); such packets are shown with their knet header and compressed size only.
UNSUPPORTED_COMPRESSION = frozenset(("lzo2",))


def decompress(model: int, data: bytes) -> bytes:
    """The user data of a packet whose ``compress`` byte is `model` (0: as it is).

    Raises DecodeError for an unknown model, one without a library here, or bytes that do
    not decompress (within the 64 KiB knet buffer).
    """
    if model == 0:
        return bytes(data)
    name = COMPRESS_MODELS.get(model)
    if name is None:
        raise DecodeError(f"unknown knet compression model {model}")
    function = _DECOMPRESS.get(name)
    if function is None:
        raise DecodeError(f"{name}-compressed user data: no {name} library here")
    try:
        return function(data)
    except ImportError:
        raise DecodeError(f"{name}-compressed user data: install hbtools[knet] "
                          f"for the {name} library") from None
    except Exception as exc:  # noqa: BLE001 - each library has its own error types
        raise DecodeError(f"{name}: user data does not decompress: {exc}") from None


def encode(packet: Packet) -> bytes:
    """The exact wire bytes of `packet` (an encrypted one is its ciphertext unchanged)."""
    out = bytearray()
    try:
        packet.layout.encode_into(packet, "big", out)
    except ValueError as exc:
        raise EncodeError(str(exc), len(out)) from None
    return bytes(out)


class Reassembler:
    """Joins the fragments of knet data packets, for a dissector reading a capture.

    libknet splits user data bigger than the link MTU into `frag_num` packets sharing the
    sender's `seq_num`, numbered by `frag_seq` from 1. Pass every data packet to `add`
    with a key for its flow (e.g. the source address): it returns the whole user data
    once the last missing piece arrives, else None. Memory is bounded: beyond
    `max_pending` incomplete packets the oldest is dropped, as libknet's own defrag
    buffers drop stale entries.
    """

    def __init__(self, max_pending: int = 64) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[Any, ...], tuple[int, dict[int, bytes]]] = (
            OrderedDict())

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, packet: Packet, source: Hashable = None) -> bytes | None:
        if packet.type_name not in ("data", "host_info"):
            return None
        frag_num, frag_seq = packet.frag_num, packet.frag_seq
        if frag_num <= 1:
            return bytes(packet.userdata)
        if not 1 <= frag_seq <= frag_num:
            return None
        key = (source, packet.node, packet.channel, packet.seq_num)
        entry = self._pending.pop(key, None)
        if entry is None or entry[0] != frag_num:
            entry = (frag_num, {})
        entry[1][frag_seq] = bytes(packet.userdata)
        if len(entry[1]) == frag_num:
            return b"".join(entry[1][i] for i in range(1, frag_num + 1))
        self._pending[key] = entry
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        return None

    def totem(self, packet: Packet, source: Hashable = None) -> _totem.Message | None:
        """The Totem message `packet` completes (decompressed), else None.

        One step for every reader of fragmented knet (decode's rows, the fault engine's
        views), so both see the same message on the same last fragment. Raises
        `DecodeError` or `hbtools.totem.DecodeError` when the joined data is not Totem.
        """
        whole = self.add(packet, source)
        if whole is None:
            return None
        return _totem.decode(decompress(packet.compress, whole))
