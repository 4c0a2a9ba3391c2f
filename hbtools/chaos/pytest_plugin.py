"""pytest plugin (entry point ``pytest11``): fixtures and the ``chaos`` marker for chaos tests.

Installed with the package, so any project's tests can say::

    @pytest.mark.chaos
    def test_my_cluster_survives_a_crash(chaos_run):
        result = chaos_run("crash", "hbtools")
        assert result.verdict == "PASS", result.reasons

Fixtures: ``chaos_lab`` (a Lab per test), ``chaos_cluster`` (factory: a started cluster of a kind
on that lab), ``chaos_pool`` (clusters reused across a session, after a reset check),
``chaos_run`` (play a scenario, return the :class:`~hbtools.chaos.runner.RunResult`),
``chaos_nemesis`` (a FaultSession factory for hand-made faults), ``chaos_capture`` (a bridge
capture of the test's lab) and ``chaos_checkers`` (the checker module).

Policy: a chaos (or netns) test skips with the reason when not root; under ``CI=true`` that skip
is a failure, so a CI run can never go green by not running the chaos matrix.

Nothing heavy is imported at plugin load: every pytest run loads this module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

OUT_ENV = "HBTOOLS_CHAOS_OUT"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip for a developer without the means; in CI the same gap is a failure.

    The chaos and interop tests are the proof that the codecs and the daemon are right, so CI
    must never go green by silently not running them.
    """
    if in_ci():
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(reason)


def missing_for_chaos() -> str | None:
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) for lab namespaces"
    for tool in ("ip", "nft", "tcpdump", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs {tool} (install the Debian packages listed in the README)"
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-out", default=None,
                     help=f"Directory for chaos run files (default ${OUT_ENV} or a tmp dir).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: a chaos-engine scenario run (root; a skip is a failure under CI=true)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("chaos") is not None:
        reason = missing_for_chaos()
        if reason:
            skip_or_fail(reason)


@pytest.fixture(scope="session")
def chaos_out(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where run directories (capture, timeline PNG, run.json) go."""
    chosen = request.config.getoption("--chaos-out") or os.environ.get(OUT_ENV)
    out = Path(chosen) if chosen else tmp_path_factory.mktemp("chaos")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def chaos_pool(chaos_out: Path) -> Iterator[Any]:
    """Clusters kept for the whole session; at the end every lab is torn down by PID and
    anything left behind (namespace, process) fails the session's last test teardown."""
    from hbtools.chaos.runner import Pool

    pool = Pool()
    results: list[Any] = []
    pool.results = results  # type: ignore[attr-defined]
    yield pool
    left = pool.close()
    if results:
        import json

        from hbtools.chaos.runner import write_file
        from hbtools.usecases.chaos import table

        write_file(chaos_out / "results.json",
                   json.dumps({"runs": [r.as_dict() for r in results], "leftovers": left}, indent=1))
        write_file(chaos_out / "table.md", table(results) + "\n")
    assert not left, f"chaos pool left behind: {left}"


@pytest.fixture
def chaos_run(chaos_pool: Any, chaos_out: Path) -> Callable[..., Any]:
    """``chaos_run(scenario_or_name, impl)`` → RunResult (cluster reused from the pool)."""
    from hbtools.chaos.runner import run_one
    from hbtools.chaos.scenarios import BUILTIN, Scenario

    def run(scenario: str | Scenario, impl: str) -> Any:
        sc = BUILTIN[scenario] if isinstance(scenario, str) else scenario
        result = run_one(sc, impl, chaos_out, chaos_pool)
        chaos_pool.results.append(result)
        return result

    return run


@pytest.fixture
def chaos_lab() -> Iterator[Any]:
    """A fresh Lab for the test, torn down (by PID) whatever happens."""
    from hbtools.lab import Lab

    with Lab() as lab:
        yield lab


@pytest.fixture
def chaos_cluster(chaos_lab: Any) -> Iterator[Callable[..., Any]]:
    """``chaos_cluster(kind, nodes=2, **options)`` → a started cluster on the test's lab."""
    from hbtools.lab.clusters import make_cluster, settle

    made: list[Any] = []

    def make(kind: str, nodes: int = 2, **options: Any) -> Any:
        cluster = make_cluster(kind, chaos_lab, nodes, **options)
        made.append(cluster)
        cluster.start()
        settle(cluster, 1.0)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def chaos_nemesis() -> Iterator[Callable[..., Any]]:
    """``chaos_nemesis(rules=[...], netns=..., nodes={...}, duration=...)`` → a started
    FaultSession; every session is stopped and joined (rules removed) at teardown."""
    from hbtools.usecases.fault import FaultSession

    sessions: list[Any] = []

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("queue", 30000 + os.getpid() % 3000 * 10 + len(sessions))
        session = FaultSession.build(**kwargs)
        sessions.append(session)
        session.start()
        return session

    yield start
    for session in sessions:
        session.stop("test teardown")
        session.join()


@pytest.fixture
def chaos_capture(chaos_lab: Any, tmp_path: Path) -> Callable[[str], Any]:
    """``chaos_capture(name)`` → a running bridge capture of the test's lab (stopped with it)."""

    def start(name: str = "capture.pcap") -> Any:
        return chaos_lab.capture(tmp_path / name)

    return start


@pytest.fixture
def chaos_checkers() -> Any:
    from hbtools.chaos import checkers

    return checkers
