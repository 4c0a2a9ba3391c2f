"""Service checks per resource group, and when a failing one moves the group: pure rules.

A node can be alive while the service of a group it holds is dead. ldirectord's answer was
to ask the service (a negotiate check) and stop sending clients to a real server that answers
wrong, falling back to another that answers right. Here the same idea moves a Heartbeat
group: ``ha.cf`` says, per group, which check to run, how often, with which timeout, and after
how many failures in a row to act::

    check 198.18.0.100 http://127.0.0.1/ expect=node interval=1 timeout=1 failures=2

(the first word names the group by any of its ``haresources`` resources). Every node runs the
check of every group all the time, against its own copy of the service (the URL is usually
node-local, like ldirectord's real servers), so each node knows whether it could serve.

* The holder whose check has failed ``failures`` times in a row offers the group to its peer.
* A node accepts a group only while its own check for it passes (its last result was ok):
  ldirectord's "fallback only to a server that passes", so a group never moves to a node that
  is known to be as broken. Nobody passes: the group stays where it is (quiescent).

Only the runner runs checks (:mod:`hbtools.checks`); this module only counts and decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from hbtools.checks import Check, CheckSpecError, parse_check
from hbtools.checks.spec import DEFAULT_TIMEOUT, parse_seconds

__all__ = ["GroupCheck", "ServiceWatch", "parse_check_directive"]

DEFAULT_INTERVAL = 2.0
DEFAULT_FAILURES = 3
MAX_FAILURES = 1000


@dataclass(frozen=True)
class GroupCheck:
    """One ``check`` line of ``ha.cf``: which group, what to ask, how often, when to act."""

    key: str  # a resource spec of the group (e.g. its address)
    check: Check
    interval: float = DEFAULT_INTERVAL
    failures: int = DEFAULT_FAILURES
    line: int | None = None


def parse_check_directive(args: list[str], line: int | None = None) -> GroupCheck:
    """``GROUP URL [key=value ...]`` with ``interval=``, ``failures=`` besides the check's own
    keys; ValueError (one line) for anything wrong."""
    if len(args) < 2:
        raise ValueError("expected 'check GROUP URL [key=value ...]' (GROUP: one of the group's "
                         "resources, e.g. its address)")
    key, words = args[0], args[1:]
    interval, failures = DEFAULT_INTERVAL, DEFAULT_FAILURES
    rest: list[str] = [words[0]]
    for word in words[1:]:
        name, eq, value = word.partition("=")
        if eq and name == "interval":
            try:
                interval = parse_seconds(value, "interval")
            except CheckSpecError as exc:
                raise ValueError(str(exc).removeprefix("check spec: ")) from None
        elif eq and name == "failures":
            if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_FAILURES):
                raise ValueError(f"failures={value!r} is not a count from 1 to {MAX_FAILURES}")
            failures = int(value)
        else:
            rest.append(word)
    try:
        # no timeout= given: the check's default, but never longer than the interval
        check = parse_check(rest, defaults={"timeout": f"{min(DEFAULT_TIMEOUT, interval):g}"})
    except CheckSpecError as exc:
        raise ValueError(str(exc)) from None
    if check.timeout > interval:
        raise ValueError(f"the check's timeout ({check.timeout:g} s) is longer than its interval "
                         f"({interval:g} s)")
    return GroupCheck(key, check, interval, failures, line)


@dataclass
class ServiceWatch:
    """The results of one group's check on this node: failures in a row and the last verdict.

    ``ok`` is None until the first result: an unknown service is neither a reason to move a
    group away nor a reason to accept one.
    """

    failures_to_act: int
    in_a_row: int = 0
    ok: bool | None = None
    reason: str = ""

    def record(self, ok: bool, reason: str) -> bool:
        """Count one result; True when this result makes the check *failed* (the threshold is
        reached just now), so the caller raises one event and acts once."""
        self.ok, self.reason = ok, reason
        if ok:
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        return self.in_a_row == self.failures_to_act

    @property
    def failed(self) -> bool:
        """Failed ``failures_to_act`` times in a row (and not passed since)."""
        return self.in_a_row >= self.failures_to_act

    @property
    def passes(self) -> bool:
        """The last result was right: this node could serve the group."""
        return self.ok is True


def should_offer(holding: bool, watch: ServiceWatch | None, peer_ready: bool) -> bool:
    """Hand a held group to the peer: our check has failed and the peer can take part in a
    hand-over (alive, active, stable). Whether the peer's own check passes is the peer's
    decision when it is asked (:func:`may_accept`)."""
    return holding and watch is not None and watch.failed and peer_ready


def may_accept(watch: ServiceWatch | None, failed_start: bool) -> tuple[bool, str]:
    """Take a group the peer offers because of a failure: only if we could serve it.

    No check configured: yes unless its start already failed here. A check: only when its last
    result here was ok (ldirectord falls back only to servers that pass)."""
    if failed_start:
        return False, "its start failed here"
    if watch is None:
        return True, ""
    if not watch.passes:
        why = watch.reason or "no result yet"
        return False, f"our own check fails ({why})"
    return True, ""
