"""What the namespace tests share: running this checkout's ``hbtool`` (on the host or inside a
lab node), the skip-or-fail entry to the lab, and the two-node corosync.conf the
Corosync tests configure their real corosync with.

A module of its own, not ``conftest.py``: pytest imports every directory's conftest under the
one name ``conftest`` (see tests/conftest.py), so tests import these with
``from netns_helpers import …``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def hbtool(*args: str) -> list[str]:
    """The command line of this checkout's ``hbtool`` under the test's own interpreter (a
    lab node runs it too: no console script needs to be installed)."""
    return [sys.executable, "-c", "from hbtools.cli import main; main()", *args]


def node_env() -> dict[str, str]:
    """Environment for a command run inside a lab node (the lab adds its clean base)."""
    return {"PYTHONPATH": str(ROOT)}


def host_env() -> dict[str, str]:
    """Environment for an ``hbtool`` run on the host: ours, with this checkout importable."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def lab_with(*tools: str) -> ModuleType:
    """``hbtools.lab``, once the programs ``tools`` are there (otherwise skip, or fail under
    CI: tests/policy.py)."""
    from policy import require_tools

    require_tools(*tools)
    from hbtools import lab as labmod

    return labmod


def require_fault_proxy(*tools: str) -> None:
    """What ``hbtool fault`` (the NFQUEUE proxy) needs besides ``tools``: the netfilterqueue
    binding; otherwise skip, or fail under CI."""
    from policy import require_tools, skip_or_fail

    require_tools(*tools)
    try:
        import netfilterqueue  # noqa: F401
    except ImportError:
        skip_or_fail("needs the netfilterqueue Python binding (pip install netfilterqueue)")


def corosync_conf_two_nodes(*, transport: str, crypto_cipher: str = "none",
                            crypto_hash: str = "none", debug: bool = False) -> str:
    """A corosync.conf for node1 (198.18.0.1) and node2 (198.18.0.2), written out here as
    corosync.conf(5) documents it rather than by the lab's own config writer, so that the test
    states what its real corosync runs with. knet gets its link 0 ``interface`` block."""
    interface = "    interface {\n        linknumber: 0\n    }\n" if transport == "knet" else ""
    return f"""\
totem {{
    version: 2
    cluster_name: hbtools
    transport: {transport}
    crypto_cipher: {crypto_cipher}
    crypto_hash: {crypto_hash}
{interface}}}
logging {{
    to_stderr: no
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_syslog: no
    timestamp: hires
    debug: {"on" if debug else "off"}
}}
quorum {{
    provider: corosync_votequorum
}}
nodelist {{
    node {{
        name: node1
        nodeid: 1
        ring0_addr: 198.18.0.1
    }}
    node {{
        name: node2
        nodeid: 2
        ring0_addr: 198.18.0.2
    }}
}}
"""
