"""Install and entry points (issue 14, item 10).

`pip install .` must not compile netfilterqueue or pull scapy/pyshark for decode: those
are extras, and a verb whose extra is missing says which one to install. `--version`,
`-v/--debug`, `python -m hbtools` and shell completion work as documented.
"""

from __future__ import annotations

import configparser
import subprocess
import sys

from dissect_vectors import ROOT

from hbtools import __version__

CODE = "import sys; sys.argv[0] = 'hbtool'; {block}from hbtools.cli import main; main()"


def _run(*args: str, block: str = "", env: dict | None = None) -> subprocess.CompletedProcess[str]:
    code = CODE.format(block=block)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def _cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_compiled_and_optional_packages_are_extras():
    cfg = _cfg()
    core = cfg["options"]["install_requires"]
    for name in ("netfilterqueue", "scapy", "pyshark"):
        assert name not in core, name
    extras = cfg["options.extras_require"]
    assert "netfilterqueue" in extras["fault"]
    assert "scapy" in extras["spoof"]
    assert "pyshark" in extras["bench"]
    # make setup installs [test]: it must carry what the tests import
    for name in ("pytest", "hypothesis", "scapy", "netfilterqueue"):
        assert name in extras["test"], name


def test_missing_extra_is_one_line_naming_it():
    block = "sys.modules['scapy'] = None; "  # as if `pip install hbtools` without [spoof]
    res = _run("inject", "--no-auth", "--to", "127.0.0.1", "--spoof-src", "198.18.0.9",
               block=block)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "hbtool inject: error: --spoof-src needs scapy: pip install 'hbtools[spoof]'"]
    from hbtools.extras import MissingExtra, require

    try:
        require("hbtools_no_such_module", "fault", "hbtool fault")
    except MissingExtra as exc:
        assert str(exc) == ("hbtool fault needs hbtools_no_such_module: "
                            "pip install 'hbtools[fault]'")
    else:
        raise AssertionError("no MissingExtra")


def test_version_debug_and_python_m():
    res = subprocess.run([sys.executable, "-m", "hbtools", "--version"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"hbtool, version {__version__}"
    res = _run("--debug", "decode", "captures/hb-bcast-crc/capture.pcap", "-c", "1")
    assert res.returncode == 0, res.stderr
    assert "DEBUG" in res.stderr
    res = _run("-v", "decode", "captures/hb-bcast-crc/capture.pcap", "-c", "1")
    assert res.returncode == 0 and "DEBUG" in res.stderr


def test_shell_completion_as_documented():
    readme = (ROOT / "README.md").read_text()
    assert "_HBTOOL_COMPLETE=bash_source hbtool" in readme
    res = _run(env={"_HBTOOL_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and "complete" in res.stdout and "hbtool" in res.stdout


def test_unreadable_capture_prints_only_the_error():
    """Issue 14 (schema): no "(no cluster messages)" on stdout beside the error."""
    res = _run("decode", "/nonexistent.pcap")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "hbtool decode: /nonexistent.pcap: No such file or directory"]


def test_installed_as_hbtools_only():
    """Issue 14: no generic top-level `dissectors`/`faults` in site-packages. What setuptools
    reads from setup.cfg installs every package folder of the tree, all under `hbtools`."""
    from setuptools.config.setupcfg import read_configuration

    options = read_configuration(str(ROOT / "setup.cfg"))["options"]
    packages, folders = options["packages"], options["package_dir"]
    assert {name.split(".")[0] for name in packages} == {"hbtools"}

    def folder(package: str) -> str:
        parent, _, last = package.rpartition(".")
        return folders.get(package) or (f"{folder(parent)}/{last}" if parent else package)

    installed = {folder(name) for name in packages}
    tree = {str(init.parent.relative_to(ROOT)) for top in ("hbtools", "dissectors", "faults")
            for init in (ROOT / top).rglob("__init__.py")}
    assert installed == tree
    code = "import hbtools.dissectors.pipeline, hbtools.faults.rules; import dissectors"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1] == (
        "ImportError: import hbtools.dissectors, not dissectors: one module, one name (issue 14)")
