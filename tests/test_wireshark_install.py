"""`hbtool wireshark export`: no folders made from -o; installed and -X together load once.

Issue 14: ``-o /nonexistent/dir/x.lua`` created the folder as root, and after
``--install`` the README's next command loaded the plugin a second time, which made
tshark print a Lua error for the protocols registered twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from dissect_vectors import ROOT

CODE = "import sys; sys.argv[0] = 'hbtool'; from hbtools.cli import main; main()"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def _hbtool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CODE, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_output_in_a_missing_folder_is_refused_and_not_created(tmp_path):
    target = tmp_path / "nonexistent" / "dir" / "x.lua"
    res = _hbtool("wireshark", "export", "-o", str(target))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"hbtool wireshark export: {target}: folder {target.parent} does not exist"]
    assert not (tmp_path / "nonexistent").exists()


@needs_tshark
def test_installed_plugin_and_lua_script_together_load_once(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    res = _hbtool("wireshark", "export", "--install", env=env)
    assert res.returncode == 0, res.stderr
    installed = tmp_path / ".local/lib/wireshark/plugins/hbtools.lua"
    assert installed.is_file()
    pcap = "captures/hb-bcast-crc/capture.pcap"
    display = 'heartbeat.t == "status"'
    # what tshark alone counts as status messages, independent of any plugin: the bytes
    want = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", 'udp.port == 694 && udp contains '
                           '"(0)t=status,"', "-T", "fields", "-e", "frame.number"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env).stdout.split()
    assert want
    for extra in ([], ["-X", "lua_script:wireshark/hbtools.lua"]):
        got = subprocess.run(["tshark", "-n", *extra, "-r", pcap, "-Y", display, "-T", "fields",
                              "-e", "frame.number"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, env=env)
        assert "Lua" not in got.stderr and "rror" not in got.stderr, got.stderr
        assert got.stdout.split() == want
