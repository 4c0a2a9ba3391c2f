"""The house's layers, enforced: codecs <- rooms (dissectors, faults, node, lab, ...) <-
use cases <- CLI. No module imports one of a higher layer, not even inside a function.

docs/DESIGN: dataflow is one way, and a Python caller gets everything a command does by
calling a use case, which only holds if nothing below the CLI reaches back into it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hbtools", "dissectors", "faults")  # folders; the last two install as hbtools.*
#: Folders whose Python files import the packages (the generic names must not appear).
CALLERS = (*PACKAGES, "tests", "benchmarks", "fuzz", "captures")

#: Higher number, higher layer. A module takes the layer of its longest listed prefix;
#: anything else in hbtools is a codec or a base helper (layer 0).
LAYERS = {
    "hbtools": 0,
    "hbtools.dissectors": 1,
    "hbtools.faults": 1,
    "hbtools.node": 1,
    "hbtools.lab": 1,
    "hbtools.detectors": 1,
    "hbtools.inject": 1,
    "hbtools.wireshark": 1,
    "hbtools.plot": 1,
    "hbtools.decodeplot": 1,
    "hbtools.scapy": 1,  # adapters to other tools: they use the dissector and the Lua export
    "hbtools.pyshark": 1,
    "hbtools.chaos": 2,  # the chaos engine runs fault sessions: it is a use case
    "hbtools.pytest_plugin": 2,
    "hbtools.usecases": 2,
    "hbtools.commands": 3,
    "hbtools.cli": 3,
    "hbtools.__main__": 3,
}
NAMES = {0: "codec", 1: "room", 2: "use case", 3: "CLI"}


def layer_of(module: str) -> int:
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] in ("dissectors", "faults"):
        parts.insert(0, "hbtools")
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in out if name.split(".")[0] in PACKAGES]


def test_nothing_imports_the_generic_top_level_names():
    """Issue 14: site-packages holds hbtools.dissectors and hbtools.faults only, so an import
    of `dissectors` or `faults` works in the checkout and fails once installed."""
    problems = [f"{path.relative_to(ROOT)}:{line}: imports {name}"
                for folder in CALLERS for path in sorted((ROOT / folder).rglob("*.py"))
                for line, name in _imports(path, _module_name(path))
                if name.split(".")[0] in ("dissectors", "faults")]
    assert not problems, "\n".join(problems)


def _modules() -> list[tuple[Path, str]]:
    return [(path, _module_name(path)) for package in PACKAGES
            for path in sorted((ROOT / package).rglob("*.py"))]


def test_no_module_imports_a_higher_layer():
    problems: list[str] = []
    for path, module in _modules():
        own = layer_of(module)
        seen: set[int] = set()
        for line, name in _imports(path, module):
            if layer_of(name) > own and line not in seen:
                seen.add(line)
                problems.append(f"{path.relative_to(ROOT)}:{line}: {NAMES[own]} {module} "
                                f"imports {NAMES[layer_of(name)]} {name}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_violation():
    """The rule can fail: a codec importing the CLI, or a room importing a use case."""
    assert layer_of("hbtools.totem") < layer_of("hbtools.dissectors.fast") < layer_of(
        "hbtools.usecases.decode") < layer_of("hbtools.commands.decode")
    assert layer_of("hbtools.node.core") == 1 and layer_of("hbtools.recognition") == 0
    sample = ROOT / "hbtools" / "totem.py"
    names = [n for _, n in _imports(sample, "hbtools.totem")]
    assert "hbtools.layout" in names  # the walker reads real imports

