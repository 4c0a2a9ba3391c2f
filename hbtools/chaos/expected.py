"""The verdict each (scenario, implementation) is expected to get, with the reason, in one table.

``hbtools`` must pass every scenario. The real stacks' entries record what was *observed* in
runs on this lab (see the README's chaos table): a real stack's failure is a fact about that
stack, and the tests assert it, so a change (a fix upstream, or a harness bug hiding a failure)
is noticed rather than absorbed.
"""

from __future__ import annotations

PASS, FAIL = "PASS", "FAIL"

_HB_HEAL = ("3.0.6 resolves the two owners after a heal by restarting (\"Heartbeat restart on "
            "node\"): both nodes drop the VIP and it takes longer than deadtime-based grace to "
            "be held again")

EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("kill-restart", "heartbeat"): (FAIL, "3.0.6 neither removes the VIP a SIGKILLed run left on "
                                          "the interface nor sends ARP: two owners for good"),
    ("freeze", "heartbeat"): (FAIL, _HB_HEAL),
    ("partition-oneway", "heartbeat"): (FAIL, _HB_HEAL),
    ("partition-twoway", "heartbeat"): (FAIL, _HB_HEAL),
    ("burst-loss", "heartbeat"): (FAIL, _HB_HEAL),
}
"""(scenario, impl) → (verdict, reason). Missing entries mean PASS."""


def expected_for(scenario: str, impl: str) -> tuple[str, str]:
    """Scenarios with options (``crash+phi``) inherit the base scenario's expectation unless
    listed themselves."""
    if (scenario, impl) in EXPECTED:
        return EXPECTED[(scenario, impl)]
    base = scenario.split("+", 1)[0]
    return EXPECTED.get((base, impl), (PASS, "must fail over correctly" if impl == "hbtools"
                                       else "observed to pass"))
