"""Root test configuration: applies the privileged-test policy of `policy.py`.

The helpers live in `policy.py`, not here: pytest imports every directory's conftest.py
under the one module name ``conftest``, so ``from conftest import …`` would depend on
which conftest happened to load last. Tests import them with ``from policy import …``.
"""

from __future__ import annotations

import pytest
from policy import CAPTURES, missing_for_netns, skip_or_fail


def pytest_sessionstart(session: pytest.Session) -> None:
    """Give the committed authkeys files the mode 600 Heartbeat wants (git keeps no modes).

    Otherwise every test that loads one through `AuthKeys.load` gets Heartbeat's
    permission warning, which is right for a real keyfile but only noise here.
    """
    for keyfile in CAPTURES.glob("*/authkeys"):
        keyfile.chmod(0o600)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None:
        reason = missing_for_netns()
        if reason:
            skip_or_fail(reason)
