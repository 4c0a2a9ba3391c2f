"""The service scenarios' checker (issue 17) on hand-made timelines: the group must leave the
node whose service failed within the bound, to a node whose own check had not failed, and the
client must get that node's page."""

from __future__ import annotations

from hbtools.chaos.checkers import service_moved
from hbtools.chaos.scenarios import BUILTIN


def timeline(move_at: float | None) -> list:
    out = []
    for i in range(100):
        t = i * 0.05
        owner = "node2" if move_at is not None and t >= move_at else "node1"
        out.append((t, (owner,), None))
    return out


def test_moved_in_time_with_the_right_page():
    after, reasons = service_moved(timeline(2.2), fault_start=1.0, victim="node1", bound=3.5,
                                   page="served by node2", new_owner_check_failed=False)
    assert reasons == [] and after == 1.2


def test_too_late_wrong_page_failing_peer():
    after, reasons = service_moved(timeline(4.9), fault_start=1.0, victim="node1", bound=3.5,
                                   page="served by node1", new_owner_check_failed=True)
    assert after == 3.9
    assert any("over the 3.5 s" in r for r in reasons)
    assert any("not node2's page" in r for r in reasons)
    assert any("while its own check was failing" in r for r in reasons)


def test_never_moved():
    after, reasons = service_moved(timeline(None), fault_start=1.0, victim="node1", bound=3.5,
                                   page="", new_owner_check_failed=False)
    assert after is None and reasons == ["the group never left node1 after its service failed"]


def test_scenarios_are_hbtools_only_with_the_service_option():
    for name in ("service-dies", "service-hangs"):
        sc = BUILTIN[name]
        assert sc.impls == ("hbtools",) and sc.options == {"service": "http"}
        assert sc.steps[0].do in ("service-kill", "service-hang")
