"""``hbtool check``: one negotiate check, as a library call (the command only prints).

The daemon's per-group checks, the chaos scenarios and the command all go through
:func:`check`, so "is the service answering right?" has one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

from hbtools.checks import Check, CheckResult, CheckSpecError, parse_check, run_check

__all__ = ["CheckSpecError", "Request", "build", "check"]


@dataclass(frozen=True)
class Request:
    """A spec (``URL [key=value ...]`` words) and command-line overrides (None: keep)."""

    words: tuple[str, ...]
    timeout: str | None = None
    expect: str | None = None
    status: str | None = None
    insecure: bool = False
    cafile: str | None = None


def build(req: Request) -> Check:
    """The Check a request describes; CheckSpecError (one line) if it is not usable."""
    overrides = {key: value for key, value in (
        ("timeout", req.timeout), ("expect", req.expect), ("status", req.status),
        ("cafile", req.cafile)) if value is not None}
    if req.insecure:
        overrides["insecure"] = "yes"
    return parse_check(list(req.words) + [f"{k}={v}" for k, v in overrides.items()])


def check(req: Request | str) -> CheckResult:
    """Run the check once; raises only CheckSpecError (bad spec), never for the server."""
    spec = build(req) if isinstance(req, Request) else parse_check(req)
    return run_check(spec)
