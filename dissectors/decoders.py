"""From a UDP payload to a `Record`, through the project's codecs.

This is the one place that imports the protocol codecs. They are the only authority on
fields and their JSON rendering; the fast paths elsewhere in ``dissectors`` are tested to
agree with what is produced here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hbtools.dissectors.detect import HEARTBEAT, KNET, TOTEM
from hbtools.dissectors.records import AUTH_BAD, AUTH_OK, AUTH_UNCHECKED, Record

from hbtools import arp as _arp
from hbtools import corosync as _corosync
from hbtools import heartbeat
from hbtools import knet as _knet
from hbtools import knetcrypto as _knetcrypto
from hbtools import totem as _totem

__all__ = ["ARP", "Decoders", "arp_record"]

#: ``proto`` of an ARP row (not UDP: it comes from the link layer, see `arp_record`).
ARP = "arp"


class Decoders:
    """Per-protocol decoding with the state a capture needs (keys, knet fragments).

    One instance per capture file, so that knet fragments from two files never join.
    """

    def __init__(self, keys: Any = None, corosync_keys: Any = None) -> None:
        self.keys = keys
        #: A `hbtools.knetcrypto.KeyRing` (``--corosync-authkey``), or None.
        self.corosync_keys = corosync_keys
        self.knet_reassembler = _knet.Reassembler() if _knet is not None else None
        #: totempg / CPG / Pacemaker state of this capture (above Totem).
        self.corosync_stack = _corosync.Stack()
        self.by_proto: dict[str, Callable[[Record, bytes], Record]] = {
            HEARTBEAT: self.heartbeat,
            TOTEM: self.totem,
            KNET: self.knet,
        }

    def decode(self, record: Record, payload: bytes) -> Record:
        return self.by_proto[record.proto](record, payload)

    # -- Heartbeat -------------------------------------------------------------------

    def heartbeat(self, record: Record, payload: bytes) -> Record:
        """Decode, unwrap a compression envelope, and check signatures when keys are given.

        A compressed message is shown by its inner fields (what the cluster acts on),
        with ``_compression_algorithm`` kept so the envelope stays visible.
        """
        try:
            msg = heartbeat.decode(payload)
        except heartbeat.DecodeError as exc:
            return _refused(record, exc)
        shown = msg
        extra: dict[str, Any] = {}
        if "_compressed_payload" in msg:
            try:
                inner = heartbeat.decompress(msg)
            except heartbeat.DecodeError as exc:
                record.error = f"heartbeat: compressed payload: {exc}"
                inner = None
            if inner is not None:
                shown = inner
                algorithm = msg.get("_compression_algorithm", "zlib")
                extra = {"_compression_algorithm": algorithm}
        record.type = shown.type
        record.node = shown.src
        record.fields = {**shown.to_json_fields(), **extra} if extra else shown.to_json_fields()
        if self.keys is not None:
            try:
                check = self.keys.check_message(msg, payload)
            except heartbeat.DecodeError as exc:
                # e.g. an envelope whose inner message cannot be checked: the receiver's
                # own check (the trailer) may still pass
                record.auth = AUTH_OK if _accepts(self.keys, msg, payload) else AUTH_BAD
                record.error = record.error or f"heartbeat: signature: {exc}"
            else:
                record.auth = AUTH_OK if check.accepted else AUTH_BAD
                record.signatures = signature_results(check)
        else:
            record.auth = AUTH_UNCHECKED
        return record

    # -- Corosync --------------------------------------------------------------------

    def totem(self, record: Record, payload: bytes) -> Record:
        try:
            msg = _totem.decode(payload)
        except _totem.DecodeError as exc:
            return _refused(record, exc)
        record.type = msg.type_name
        record.node = int(msg.nodeid)
        fields = msg.to_dict()
        self.above_totem(msg, fields, fields)
        record.fields = fields
        return record

    def above_totem(self, msg: _totem.Message, totem_fields: dict[str, Any],
                    row_fields: dict[str, Any]) -> None:
        """Add what an mcast carries: ``totempg`` (messages, CPG, Pacemaker) to the Totem
        fields, and the flattened ``corosync`` summary (what filters and fault rules
        name: ``corosync.cpg_group=crmd``) to the row's top level."""
        if msg.type_name == "mcast":
            above = self.corosync_stack.mcast(msg)
            totem_fields["totempg"] = above
            row_fields["corosync"] = _corosync.summary(above)

    def knet(self, record: Record, payload: bytes, opened: Any = None) -> Record:
        """A knet packet; the Totem it carries (whole or reassembled) is under ``totem``.

        With Corosync authkeys, a packet that authenticates is decoded from its cleartext
        (``auth`` ok, ``crypto`` says which key and suite); one that does not is kept as an
        encrypted row with ``auth`` bad, unless it is a well-formed cleartext packet (a
        cluster without crypto), which stays unchecked.
        """
        ring = self.corosync_keys
        try:
            reading = _knetcrypto.read(payload, ring, opened)
        except _knet.DecodeError as exc:
            if ring is not None:
                record.auth = AUTH_BAD
            return _refused(record, exc)
        packet = reading.packet
        crypto: dict[str, Any] | None = None
        if reading.opened is not None:
            record.auth = AUTH_OK
            crypto = {"key": reading.opened.key.name,
                      "cipher": reading.opened.suite.cipher or "none",
                      "hash": reading.opened.suite.hash, "wire_size": len(payload)}
        elif ring is not None:
            record.auth = AUTH_UNCHECKED if reading.clear else AUTH_BAD
        record.type = packet.type_name
        record.node = None if packet.encrypted else int(packet.node)
        fields = packet.to_dict()
        if packet.totem is not None:
            self.above_totem(packet.totem, fields["totem"], fields)
        if crypto is not None:
            fields["crypto"] = crypto
        if (
            not packet.encrypted
            and packet.type_name == "data"
            and packet.frag_num > 1
            and self.knet_reassembler is not None
        ):
            try:
                inner = self.knet_reassembler.totem(packet, (record.src, record.sport))
            except (_totem.DecodeError, _knet.DecodeError) as exc:
                fields["totem_error"] = str(exc)
            else:
                if inner is not None:
                    fields["totem"] = inner.to_dict()
                    self.above_totem(inner, fields["totem"], fields)
        record.fields = fields
        return record


def _refused(record: Record, exc: Exception) -> Record:
    """A payload its codec refused: the row carries the codec's words and no fields."""
    record.error = f"{record.proto}: {exc}"
    record.fields = {}
    return record


def _accepts(keys: Any, msg: heartbeat.Message, payload: bytes) -> bool:
    try:
        return bool(keys.accepts(msg, payload))
    except heartbeat.DecodeError:
        return False


def _result(value: bool | None) -> str:
    return "absent" if value is None else AUTH_OK if value else AUTH_BAD


def signature_results(check: Any) -> dict[str, Any]:
    """The JSON ``signatures`` object: every signature's own result and the receiver's rule."""
    out: dict[str, Any] = {"trailer": _result(check.trailer), "body": _result(check.inline)}
    if check.inner is not None:
        out["inner"] = _result(check.inner)
    out["receiver_checks"] = check.receiver_checks
    out["why"] = check.why
    return out


def bad_auth(record: Record) -> bool:
    return record.auth == AUTH_BAD


def arp_record(frame: int, ts: float, linktype: int, data: bytes, name: str) -> Record | None:
    """The row of an Ethernet/IPv4 ARP frame (`hbtools.arp`), else None.

    ARP is not a cluster protocol but the takeover's announcement: a gratuitous ARP
    (``fields.gratuitous``) is when clients learn the address moved. ``src``/``dst`` are the
    sender and target IP, ports are null; ``node`` is null (a MAC names no node by itself).
    """
    body = _arp.arp_body(linktype, data)
    if body is None:
        return None
    try:
        packet = _arp.decode(body)
    except _arp.DecodeError:
        return None  # ARP of other hardware, or cut: not a takeover's announcement
    record = Record(frame, ts, packet.sender_ip, packet.target_ip, None, None, ARP,
                    type=packet.type_name, file=name, raw=data, linktype=linktype,
                    payload=body[:_arp.LENGTH])
    record.fields = packet.to_dict()
    return record
