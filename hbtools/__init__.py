"""hbtools: packet-level toolkit for Linux-HA clusters (Heartbeat and Corosync Totem).

The capture reader and the fault proxy live in the repository's ``dissectors/`` and
``faults/`` folders but are installed as ``hbtools.dissectors`` and ``hbtools.faults``
(setup.cfg ``package_dir``), so site-packages gets no generic top-level names. A source
checkout has no ``hbtools/dissectors`` folder: the finder below gives the checkout (run in
place, ``PYTHONPATH=checkout``, or an editable install made before the move) the same
names, by the same files, so every caller imports them one way only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

__version__ = "0.1.0"

#: Packages installed under ``hbtools`` from a sibling folder of this one.
SIBLINGS = ("dissectors", "faults")


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds ``hbtools.<sibling>`` in ``<checkout>/<sibling>`` (submodules then resolve
    through the package's ``__path__`` as usual)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in SIBLINGS:
            return None
        folder = os.path.join(self.root, name)
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])


def _install_checkout_finder() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if any(os.path.isdir(os.path.join(here, name)) for name in SIBLINGS):
        return  # installed: the packages sit inside this folder
    if not all(os.path.isfile(os.path.join(root, name, "__init__.py")) for name in SIBLINGS):
        return
    if not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.append(_CheckoutFinder(root))


_install_checkout_finder()
