"""Fixtures for the namespace tests: a fresh lab per test, torn down whatever happens.

pytest imports every directory's conftest.py under the one module name ``conftest``, so
once this file is loaded ``from conftest import require_tools`` in a test here would find
this module, not tests/conftest.py. The helpers of tests/conftest.py are therefore loaded
by path and re-exported, so both spellings keep working.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from hbtools.lab import Lab

_spec = importlib.util.spec_from_file_location(
    "_hbtools_tests_root_conftest", Path(__file__).resolve().parent.parent / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

in_ci = _root.in_ci
skip_or_fail = _root.skip_or_fail
missing_for_netns = _root.missing_for_netns
require_tools = _root.require_tools


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A running Lab (bridge namespace, no nodes yet); its teardown kills and deletes all.

    A cleanup that leaves something behind raises LabError, which pytest reports as an
    error of this test: a leak must never pass silently.
    """
    with Lab() as running:
        yield running
