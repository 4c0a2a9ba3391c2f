"""Shared test policy: privileged tests skip for a normal user but fail when skipped in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# One policy for the project's tests and for users of the installed chaos plugin.
from hbtools.chaos.pytest_plugin import in_ci, skip_or_fail  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"


def missing_for_netns() -> str | None:
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the `ip` command (Debian package iproute2)"
    return None


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None and not Path(tool).exists():
            skip_or_fail(f"needs {tool} (install the Debian packages listed in the README)")
