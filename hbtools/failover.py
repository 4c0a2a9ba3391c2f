"""A failover as the wire shows it: last heartbeat → declared dead → first GARP of the new owner.

One implementation for every reader of captures: ``hbtool decode --stats`` (its *Failovers*
table), the chaos checkers' takeover times (`hbtools.chaos.checkers.takeover_times`) and the
failover benchmark. Pure: times and names in, a `Failover` out.

* *last heartbeat*: the victim's last ``status`` before its silence;
* *declared dead*: what a peer says once it gave the victim up. Heartbeat 3.0.6 says nothing
  about the death itself; its first act is a ``t=stonith node=VICTIM`` message with the fencing
  result (``n_stnth`` without a STONITH device, ``OK``/``bad``… with one). A victim's own
  ``st=dead`` status (a clean stop) counts too. None when no such message was captured;
* *first GARP*: the first gratuitous ARP after the last heartbeat whose sender MAC belongs to
  another node: the moment clients learn the address moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Death", "Failover", "Garp", "failover", "first_takeover_garp"]

#: (time, sender MAC, announced address)
Garp = tuple[float, str, str]
#: (time, declared by, how: e.g. "stonith n_stnth" or "st=dead")
Death = tuple[float, str, str]


@dataclass(frozen=True)
class Failover:
    node: str
    last_heartbeat: float
    declared_dead: float | None = None
    declared_by: str | None = None
    how: str | None = None
    garp: float | None = None
    new_owner: str | None = None
    new_owner_mac: str | None = None
    address: str | None = None

    def ms(self, start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round((end - start) * 1000, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node, "last_heartbeat": self.last_heartbeat,
            "declared_dead": self.declared_dead, "declared_by": self.declared_by,
            "how": self.how, "garp": self.garp, "new_owner": self.new_owner,
            "new_owner_mac": self.new_owner_mac, "address": self.address,
            "dead_after_ms": self.ms(self.last_heartbeat, self.declared_dead),
            "garp_after_dead_ms": self.ms(self.declared_dead, self.garp),
            "takeover_ms": self.ms(self.last_heartbeat, self.garp),
        }


def first_takeover_garp(garps: Sequence[Garp], since: float, victim: str,
                        owner_of_mac: Mapping[str, str], until: float | None = None,
                        address: str | None = None) -> Garp | None:
    """The first gratuitous ARP at or after ``since`` (and before ``until``) from the MAC of a
    node other than ``victim`` (for ``address`` when given); garps in time order."""
    for garp in garps:
        t, mac, addr = garp
        if t < since:
            continue
        if until is not None and t > until:
            return None
        owner = owner_of_mac.get(mac)
        if owner is not None and owner != victim and (address is None or addr == address):
            return garp
    return None


def failover(victim: str, last_heartbeat: float, garps: Sequence[Garp],
             owner_of_mac: Mapping[str, str], deaths: Sequence[Death] = (),
             until: float | None = None) -> Failover | None:
    """The failover of ``victim`` after its last heartbeat, or None when neither a peer's
    declaration nor another node's gratuitous ARP followed it (a gap, not a failover)."""
    death = next((d for d in deaths if d[0] >= last_heartbeat
                  and (until is None or d[0] <= until)), None)
    garp = first_takeover_garp(garps, last_heartbeat, victim, owner_of_mac, until)
    if death is None and garp is None:
        return None
    return Failover(
        node=victim, last_heartbeat=last_heartbeat,
        declared_dead=death[0] if death else None, declared_by=death[1] if death else None,
        how=death[2] if death else None,
        garp=garp[0] if garp else None, new_owner=owner_of_mac[garp[1]] if garp else None,
        new_owner_mac=garp[1] if garp else None, address=garp[2] if garp else None)
