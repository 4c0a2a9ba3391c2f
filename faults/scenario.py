"""Scenario files: a TOML timeline of fault steps that runs to its end and exits.

::

    name = "node2 flaps"
    seed = 7                      # optional; --seed wins
    ports = [694]                 # optional; --port wins
    duration = "30s"              # optional; default: the end of the last step

    [nodes]                       # for partitions and from=/to= by name
    node1 = "198.18.0.1"
    node2 = "198.18.0.2"

    [[step]]
    at = "5s"                     # start, from the moment the proxy is ready
    for = "2s"                    # how long (default: to the end of the scenario)
    repeat = 4                    # flapping: on for `for`, again every `every`
    every = "5s"
    rules = ["isolate node2"]

A mistake is reported as ``FILE:LINE: problem``; tomllib gives the line of syntax errors,
and for the rest the line of the offending step or value is found in the text.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hbtools.faults.rules import Rule, RuleError, parse_duration, parse_node, parse_rule

from hbtools.errors import SourceError, read_regular_file

#: A scenario is a page of TOML; anything bigger is not one (and is not read into memory).
MAX_SCENARIO_BYTES = 1024 * 1024
#: Flaps per step: each is an activation window held for the whole run.
MAX_REPEAT = 10_000
#: A timeline value (at, for, every, duration) beyond a year is a typo, and inf breaks ends.
MAX_TIMELINE = 366 * 86400.0


class ScenarioError(SourceError):
    """A scenario that cannot run; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: tuple[Rule, ...]
    duration: float
    nodes: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    ports: tuple[int, ...] = ()


_TOP_KEYS = {"name", "seed", "ports", "duration", "nodes", "step"}
_STEP_KEYS = {"at", "for", "repeat", "every", "rules"}


def load(path: str | Path, *, extra_nodes: dict[str, str] | None = None) -> Scenario:
    path = Path(path)
    raw, _ = read_regular_file(path, MAX_SCENARIO_BYTES, ScenarioError, "not a scenario")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # TOML is UTF-8 by definition; a binary file handed to --scenario by mistake
        # must still be one line naming where it stops being text.
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(str(path), line, "not UTF-8 text (is this a TOML scenario?)") from None
    return parse(text, str(path), extra_nodes=extra_nodes)


def parse(text: str, source: str = "<scenario>", *,
          extra_nodes: dict[str, str] | None = None) -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        if m:
            problem += f" (column {m.group(2)})"
        raise ScenarioError(source, line, f"TOML: {problem}") from None
    except RecursionError:
        # tomllib recurses once per nesting level of arrays and inline tables.
        raise ScenarioError(source, None, "TOML: arrays or tables nested too deeply") from None
    lines = text.splitlines()

    def fail(problem: str, needle: str | None = None, after: int = 0) -> ScenarioError:
        return ScenarioError(source, _line_of(lines, needle, after) if needle else None, problem)

    for key in doc:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r} (one of {', '.join(sorted(_TOP_KEYS))})",
                       rf"^\s*{re.escape(key)}\s*[=.\[]|^\s*\[+\s*{re.escape(key)}")
    nodes: dict[str, str] = dict(extra_nodes or {})
    raw_nodes = doc.get("nodes", {})
    if not isinstance(raw_nodes, dict):
        raise fail("nodes must be a table of NAME = \"ADDRESS\"", r"^\s*nodes\b")
    for name, address in raw_nodes.items():
        try:
            n, a = parse_node(f"{name}={address}")
        except RuleError as exc:
            raise fail(str(exc), rf"^\s*{re.escape(name)}\s*=") from None
        nodes[n] = a
    seed = doc.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise fail("seed must be an integer", r"^\s*seed\s*=")
    ports = doc.get("ports", [])
    if not isinstance(ports, list) or not all(
            isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise fail("ports must be a list of UDP port numbers", r"^\s*ports\s*=")
    steps = doc.get("step", [])
    if not isinstance(steps, list) or not steps:
        raise fail("a scenario needs at least one [[step]] with rules")
    if not all(isinstance(step, dict) for step in steps):
        raise fail("step must be a list of tables: write each as [[step]]", r"^\s*step\s*=")
    step_lines = [i + 1 for i, line in enumerate(lines) if re.match(r"^\s*\[\[\s*step\s*\]\]", line)]

    rules: list[Rule] = []
    ends: list[float] = []
    for number, step in enumerate(steps, start=1):
        step_line = step_lines[number - 1] if number <= len(step_lines) else 0

        def step_fail(problem: str, key: str | None = None, step_line: int = step_line,
                      number: int = number) -> ScenarioError:
            line = _line_of(lines, rf"^\s*{re.escape(key)}\s*=", step_line - 1) if key else None
            return ScenarioError(source, line or step_line or None, f"step {number}: {problem}")

        for key in step:
            if key not in _STEP_KEYS:
                raise step_fail(f"unknown key {key!r} (one of {', '.join(sorted(_STEP_KEYS))})",
                                key)
        at = _duration(step.get("at", "0s"), "at", step_fail)
        length = _duration(step["for"], "for", step_fail) if "for" in step else None
        repeat = step.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise step_fail("repeat must be a positive integer", "repeat")
        if repeat > MAX_REPEAT:
            raise step_fail(f"repeat must be at most {MAX_REPEAT}", "repeat")
        every = _duration(step["every"], "every", step_fail) if "every" in step else None
        if repeat > 1:
            if every is None or length is None:
                raise step_fail("repeat needs both `for` (on time) and `every` (period)", "repeat")
            if every <= length:
                raise step_fail(f"every ({every:g} s) must be longer than for ({length:g} s), "
                                "or there is no off time", "every")
        texts = step.get("rules")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise step_fail("rules must be a non-empty list of rule strings", "rules")
        windows: list[tuple[float, float]] = []
        for k in range(repeat):
            start = at + k * (every or 0.0)
            windows.append((start, start + length if length is not None else float("inf")))
        ends.append(windows[-1][1] if length is not None else at)
        for r_index, rule_text in enumerate(texts, start=1):
            try:
                rule = parse_rule(rule_text, nodes=list(nodes),
                                  label=f"step{number}.{r_index}: {rule_text}")
            except RuleError as exc:
                line = _line_of(lines, re.escape(rule_text), step_line - 1) or step_line
                raise ScenarioError(source, line or None,
                                    f"step {number}, rule {rule_text!r}: {exc}") from None
            rules.append(replace(rule, windows=tuple(windows)))
    if "duration" in doc:
        duration = _duration(doc["duration"], "duration",
                             lambda p, k=None: fail(p, r"^\s*duration\s*="))
    else:
        duration = max(ends)
        if duration == float("inf") or duration <= 0:
            raise fail("the scenario never ends: give `duration` or `for` on every step")
    name = doc.get("name", Path(source).stem)
    return Scenario(str(name), tuple(rules), duration, nodes, seed, tuple(ports))


def _duration(value: Any, key: str, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise fail(f"{key} must be a duration such as \"10s\" or \"250ms\"", key)
    try:
        seconds = parse_duration(str(value), key)
    except RuleError as exc:
        raise fail(str(exc), key) from None
    if not seconds <= MAX_TIMELINE:  # also inf, from a few hundred digits
        raise fail(f"{key} must be at most {MAX_TIMELINE:g} s (a year)", key)
    return seconds


def _line_of(lines: list[str], pattern: str | None, after: int = 0) -> int | None:
    """1-based line of the first match of ``pattern`` at or after line index ``after``."""
    if pattern is None:
        return None
    rx = re.compile(pattern)
    for i in range(max(0, after), len(lines)):
        if rx.search(lines[i]):
            return i + 1
    return None
