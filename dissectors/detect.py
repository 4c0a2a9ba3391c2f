"""Which UDP datagrams are cluster traffic: the dissector's name for `hbtools.recognition`.

The rules live once, in `hbtools.recognition` (ports, then content) and next to each
codec (the markers); this module keeps the dissector's import path.
"""

from __future__ import annotations

from hbtools.recognition import *  # noqa: F403 - the same names, one definition
from hbtools.recognition import __all__  # noqa: F401
