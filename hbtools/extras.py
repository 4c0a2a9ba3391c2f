"""Optional dependencies: which extra brings a module, and one clear line when it is missing.

``pip install hbtools`` gives decode, inject, daemon, detectors and the Wireshark export
with pure-Python wheels; ``[fault]`` adds netfilterqueue (it compiles), ``[spoof]`` scapy
for ``--spoof-src``, ``[bench]`` scapy and pyshark for the benchmark.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(RuntimeError):
    """A verb or option needs a module of an extra that is not installed."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise MissingExtra: "WHAT needs MODULE: pip install 'hbtools[EXTRA]'"."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs {top}: pip install 'hbtools[{extra}]'") from None
