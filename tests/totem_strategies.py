"""Hypothesis strategies for Totem messages, written against the public API only.

They are spelled out per message type (not derived from the codec's own field tables) so
that a wrong table cannot generate exactly the messages it would also get wrong.
"""

from __future__ import annotations

from hypothesis import strategies as st

from hbtools import totem

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
i32 = st.integers(-(2**31), 2**31 - 1)
u64 = st.integers(0, 2**64 - 1)
endians = st.sampled_from(["little", "big"])


def _small_lists(elem: st.SearchStrategy, max_size: int = 4) -> st.SearchStrategy:
    return st.lists(elem, max_size=max_size)


# ------------------------------------------------------------------ Corosync 3
ring_ids = st.builds(totem.RingId, rep=u32, seq=u64)
rtr_items = st.builds(totem.RtrItem, ring_id=ring_ids, seq=u32)
memb_entries = st.builds(totem.MembEntry, ring_id=ring_ids, aru=u32, high_delivered=u32,
                         received_flg=u32)


@st.composite
def commit_lists(draw: st.DrawFn, addr: st.SearchStrategy,
                 entry: st.SearchStrategy) -> tuple[list, list]:
    n = draw(st.integers(0, 4))
    return draw(st.lists(addr, min_size=n, max_size=n)), draw(
        st.lists(entry, min_size=n, max_size=n))


def _bodies(addr: st.SearchStrategy, ring: st.SearchStrategy, rtr: st.SearchStrategy,
            entry: st.SearchStrategy) -> dict[str, st.SearchStrategy]:
    return {
        "orf_token": st.fixed_dictionaries({
            "seq": u32, "token_seq": u32, "aru": u32, "aru_addr": u32, "ring_id": ring,
            "backlog": u32, "fcc": u32, "retrans_flg": i32, "rtr_list": _small_lists(rtr),
        }),
        "mcast": st.fixed_dictionaries({
            "system_from": addr, "seq": u32, "this_seqno": i32, "ring_id": ring,
            "node_id": u32, "guarantee": i32, "payload": st.binary(max_size=64),
        }),
        "memb_merge_detect": st.fixed_dictionaries({"system_from": addr, "ring_id": ring}),
        "memb_join": st.fixed_dictionaries({
            "system_from": addr, "ring_seq": u64, "proc_list": _small_lists(addr),
            "failed_list": _small_lists(addr),
        }),
        "memb_commit_token": st.fixed_dictionaries({
            "token_seq": u32, "ring_id": ring, "retrans_flg": u32, "memb_index": i32,
            "lists": commit_lists(addr, entry),
        }),
        "token_hold_cancel": st.fixed_dictionaries({"ring_id": ring}),
    }


BODIES_V3 = _bodies(u32, ring_ids, rtr_items, memb_entries)


@st.composite
def messages_v3(draw: st.DrawFn, type_name: str | None = None) -> totem.Message:
    name = type_name or draw(st.sampled_from(sorted(BODIES_V3)))
    body = dict(draw(BODIES_V3[name]))
    if "lists" in body:
        body["addr"], body["memb_list"] = body.pop("lists")
    return totem.Message(name, endian=draw(endians), nodeid=draw(u32),
                         target_nodeid=draw(u32), encapsulated=draw(u8), **body)


# ------------------------------------------------------------------ Corosync 1.x / 2.x
#: Families tshark shows as an IPv4 address, as an IPv6 address (Linux numbering), and as
#: plain bytes; the BSD/Solaris/Windows AF_INET6 numbers are left out (tshark also shows
#: them as IPv6, which the oracle test does not need to cover twice).
legacy_families = st.sampled_from([0, 1, 2, 10, 3])
ip_addresses = st.builds(totem.TotemIpAddress, nodeid=u32, family=legacy_families,
                         addr=st.binary(min_size=16, max_size=16))
srp_addrs = st.builds(lambda a, b: totem.SrpAddr(addr=[a, b]), ip_addresses, ip_addresses)
legacy_ring_ids = st.builds(totem.LegacyRingId, rep=ip_addresses, seq=u64)
legacy_rtr_items = st.builds(totem.LegacyRtrItem, ring_id=legacy_ring_ids, seq=u32)
legacy_memb_entries = st.builds(totem.LegacyMembEntry, ring_id=legacy_ring_ids, aru=u32,
                                high_delivered=u32, received_flg=u32)

BODIES_LEGACY = _bodies(srp_addrs, legacy_ring_ids, legacy_rtr_items, legacy_memb_entries)


@st.composite
def messages_legacy(draw: st.DrawFn, type_name: str | None = None,
                    encapsulated: st.SearchStrategy | None = None) -> totem.Message:
    name = type_name or draw(st.sampled_from(sorted(BODIES_LEGACY)))
    body = dict(draw(BODIES_LEGACY[name]))
    if "lists" in body:
        body["addr"], body["memb_list"] = body.pop("lists")
    return totem.Message(name, version=None, endian=draw(endians), nodeid=draw(u32),
                         encapsulated=draw(encapsulated if encapsulated is not None else u8),
                         **body)
