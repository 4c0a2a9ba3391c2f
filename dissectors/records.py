"""One row of dissector output: a decoded (or undecodable) cluster message.

The JSON keys are a published interface (issue 4): ``frame``, ``time``, ``src``,
``dst``, ``sport``, ``dport``, ``proto``, ``type``, ``node``, ``fields``, ``auth``,
``error``, and ``signatures`` (issue 14: each Heartbeat signature's own result beside
the receiver's verdict in ``auth``), and nothing else, so scripts can rely on them. The record also keeps what
the statistics and the fast JSON writer need, outside those keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = ["AUTH_BAD", "AUTH_OK", "AUTH_UNCHECKED", "JSON_KEYS", "Record", "node_text"]

AUTH_OK = "ok"
AUTH_BAD = "bad"
AUTH_UNCHECKED = "unchecked"

JSON_KEYS = (
    "frame", "time", "src", "dst", "sport", "dport", "proto", "type", "node", "fields",
    "auth", "error", "signatures",
)

_jstr = encode_basestring_ascii


@dataclass(slots=True)
class Record:
    """A message as the dissector reports it.

    ``fields_json`` is the JSON text of ``fields`` when a fast decoder already produced
    it (then ``fields`` may be filled lazily from it); it is never a second source of
    truth, only a cache of ``json.dumps(fields)``.
    """

    frame: int
    time: float
    src: str
    dst: str
    #: UDP ports; None for an ARP row (``proto`` arp: not UDP)
    sport: int | None
    dport: int | None
    proto: str
    type: str | None = None
    #: The sender as the codec gives it: a Heartbeat name, or a Corosync nodeid as an int
    #: (what the statistics count by). Published (JSON, CSV, `to_dict`) always as text:
    #: `node_text`, one type for every protocol (issue 14).
    node: str | int | None = None
    fields: dict[str, Any] | None = None
    #: What a real 3.0.6 receiver does with the message: ``ok`` it accepts it, ``bad`` it
    #: drops it (``signatures.why`` says why), ``unchecked`` no keys were given.
    auth: str = AUTH_UNCHECKED
    error: str | None = None
    #: Each signature's own result (``trailer``, ``body``, ``inner``: ok/bad/absent),
    #: which one the receiver checks and why it drops the message; None when unchecked.
    signatures: dict[str, Any] | None = None
    fields_json: str | None = field(default=None, repr=False, compare=False)
    file: str = field(default="", repr=False, compare=False)
    #: The captured frame, its link type and the UDP payload, for ``-w`` (pcap of the
    #: matched packets) and ``-x`` (hex); not part of the JSON. For a datagram rebuilt
    #: from IP fragments the frame is the last fragment's.
    raw: bytes | None = field(default=None, repr=False, compare=False)
    linktype: int = field(default=1, repr=False, compare=False)
    payload: bytes | None = field(default=None, repr=False, compare=False)

    def get_fields(self) -> dict[str, Any]:
        """The decoded fields as a dict, parsing the cached JSON text if needed."""
        if self.fields is None:
            self.fields = json.loads(self.fields_json) if self.fields_json else {}
        return self.fields

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "time": self.time,
            "src": self.src,
            "dst": self.dst,
            "sport": self.sport,
            "dport": self.dport,
            "proto": self.proto,
            "type": self.type,
            "node": node_text(self.node),
            "fields": self.get_fields(),
            "auth": self.auth,
            "error": self.error,
            "signatures": self.signatures,
        }

    def to_json(self) -> str:
        """One JSON line; identical to ``json.dumps(self.to_dict())``, built faster.

        The hot path of ``--format json``: string pieces are escaped by the json module's
        own C encoder and glued with the default separators, so the text is the same as
        json.dumps would write (tests compare the two).
        """
        fields_json = self.fields_json
        if fields_json is None:
            fields_json = json.dumps(self.fields if self.fields is not None else {})
        node = self.node
        node_json = "null" if node is None else _jstr(node if isinstance(node, str) else str(node))
        return (
            f'{{"frame": {self.frame}, "time": {self.time!r}, "src": {_jstr(self.src)}, '
            f'"dst": {_jstr(self.dst)}, "sport": {_port(self.sport)}, "dport": {_port(self.dport)}, '
            f'"proto": {_jstr(self.proto)}, '
            f'"type": {"null" if self.type is None else _jstr(self.type)}, '
            f'"node": {node_json}, "fields": {fields_json}, "auth": {_jstr(self.auth)}, '
            f'"error": {"null" if self.error is None else _jstr(self.error)}, '
            f'"signatures": {"null" if self.signatures is None else json.dumps(self.signatures)}}}'
        )


def _port(port: int | None) -> str:
    return "null" if port is None else str(port)


def node_text(node: str | int | None) -> str | None:
    """``node`` as published: text for every protocol (a nodeid in decimal), or None."""
    return node if node is None or isinstance(node, str) else str(node)
