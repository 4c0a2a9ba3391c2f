"""The README's "Using it" examples run verbatim (issue 14, item 11).

Every command of that block is either run here, exactly as written (through bash, from a
folder that has the README's relative paths: ``captures/`` and an ``authkeys``), or is
in `NEEDS_MORE` with the reason: root, a network, or a live cluster. A new example must
be put in one of the two, so the README cannot drift from what the tools accept.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dissect_vectors import ROOT

#: Commands not run here (prefix match), and why. The netns tests cover these verbs.
NEEDS_MORE = {
    "tcpdump -i eth0": "a live interface (live decode: tests/netns/test_real_receiver_live.py)",
    "hbtool inject --node ghost": "sends to a broadcast address (tests/netns)",
    "hbtool replay": "sends to the network (tests/netns)",
    "hbtool fault": "root and NFQUEUE (tests/netns/test_fault_*)",
    "hbtool daemon": "a Heartbeat config and a network (tests/netns/test_daemon_*)",
    "hbtool detectors evaluate -t": "long: the whole matrix (tests/test_detectors.py)",
}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Using it\n+```sh\n(.*?)```", text, re.S)
    assert block, "README has no 'Using it' sh block"
    joined = block.group(1).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(re.sub(r"\s+#.*$", "", line))
    return out


def _needs_more(command: str) -> str | None:
    return next((why for prefix, why in NEEDS_MORE.items() if command.startswith(prefix)), None)


def test_every_example_is_run_or_has_a_reason():
    commands = readme_commands()
    assert len(commands) >= 10
    used = {prefix for prefix in NEEDS_MORE for c in commands if c.startswith(prefix)}
    assert used == set(NEEDS_MORE), f"stale entries: {set(NEEDS_MORE) - used}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    (work / "captures").symlink_to(ROOT / "captures")
    (work / "wireshark").symlink_to(ROOT / "wireshark")
    keys = work / "authkeys"
    shutil.copy(ROOT / "captures" / "hb-bcast-crc" / "authkeys", keys)
    keys.chmod(0o600)
    (work / "home").mkdir()
    return work


@pytest.mark.parametrize("command", [c for c in readme_commands() if _needs_more(c) is None])
def test_readme_example_runs_verbatim(command: str, workdir: Path) -> None:
    if command.startswith("tshark") and shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "HOME": str(workdir / "home")}
    if command.startswith("tshark") and not (workdir / "home/.local/lib/wireshark/plugins").is_dir():
        # the README runs it after `hbtool wireshark export --install`
        subprocess.run(["hbtool", "wireshark", "export", "--install"], env=env, cwd=workdir,
                       check=True, capture_output=True, timeout=120)
    res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{command}\n{res.stderr[-2000:]}"
    assert "Traceback" not in res.stderr
    assert res.stdout.strip() or "installed" in res.stderr, command
