"""Negotiate checks: ask a service something real and judge the answer (ldirectord's idea).

One interface for every protocol: a :class:`Check` (target, timeout, expected answer) goes in,
a :class:`CheckResult` (ok or failed, a reason, the latency) comes out. Parsing is pure
(:mod:`hbtools.checks.spec`); asking uses the standard library's clients and PyMySQL / ldap3
(:mod:`hbtools.checks.run`), never a protocol client of our own.
"""

from hbtools.checks.run import CheckResult, run_check, shown
from hbtools.checks.spec import PROTOCOLS, Check, CheckSpecError, parse_check

__all__ = ["PROTOCOLS", "Check", "CheckResult", "CheckSpecError", "parse_check", "run_check",
           "shown"]
