"""``hbtool chaos run|matrix|list``: scenarios against hbtools, Heartbeat 3.0.6 and Pacemaker."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _fail(message: str) -> None:
    click.echo(f"hbtool chaos: {message}", err=True)
    sys.exit(2)


_impl = click.option("-i", "--impl", "impls", default="hbtools,heartbeat,pacemaker",
                     show_default=True, help="Comma list of hbtools, heartbeat, pacemaker.")
_out = click.option("-o", "--out", "out_dir", default="chaos-results", show_default=True,
                    type=click.Path(file_okay=False), help="Where results.json, PNGs, captures go.")
_ha_cf = click.option("--ha-cf", "ha_cf", multiple=True, metavar="LINE",
                      help="Extra ha.cf line for the Heartbeat kinds (e.g. 'detector phi').")
_reuse = click.option("--fresh", is_flag=True, help="A fresh cluster for every run (slower).")
_detector = click.option("--detector", "detectors", multiple=True, metavar="LINE",
                         help="Also run each scenario on hbtools with this ha.cf line "
                              "(e.g. 'detector phi'), shown next to the fixed deadtime.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def chaos() -> None:
    """Break clusters on purpose and judge the failover from observation."""


def _go(names: list[str], impls: str, out_dir: str, ha_cf: tuple[str, ...], fresh: bool,
        matrix: bool, detectors: tuple[str, ...] = ()) -> None:
    import os

    from hbtools.chaos.scenarios import ScenarioError, resolve
    from hbtools.usecases import chaos as uc

    if os.geteuid() != 0:
        _fail("needs root (network, PID and mount namespaces)")
    try:
        impl_list = uc.known_impls(impls)
        scenarios = uc.apply_options(resolve(names), ha_cf=ha_cf)
        if matrix:  # issue 16: crash, freeze, loss30 with each detector, next to the fixed one
            base = [s for s in scenarios if s.name in uc.DETECTOR_SCENARIOS]
            scenarios += uc.detector_variants(base, detectors or uc.DETECTOR_LINES)
        elif detectors:
            scenarios += uc.detector_variants(scenarios, detectors)
    except (ValueError, ScenarioError) as exc:
        _fail(str(exc))
    pairs = uc.plan_runs(scenarios, impl_list, matrix=matrix)
    if not pairs:
        _fail("no scenario applies to the chosen implementations")
    doc = uc.run(pairs, Path(out_dir), reuse=not fresh, progress=lambda m: click.echo(m, err=True))
    from hbtools.chaos.runner import RunResult

    click.echo(uc.table([RunResult(**r) for r in doc["runs"]]))
    if any("+" in r["scenario"] for r in doc["runs"]):
        click.echo("\n" + uc.detector_table([RunResult(**r) for r in doc["runs"]]))
    click.echo(f"\n{len(doc['runs'])} runs in {doc['seconds']:.0f} s; results in {out_dir}/",
               err=True)
    if doc["leftovers"]:
        click.echo(f"left behind: {doc['leftovers']}", err=True)
    sys.exit(0 if all(r["as_expected"] for r in doc["runs"]) else 1)


@chaos.command("run")
@click.argument("scenarios", nargs=-1, required=True)
@_impl
@_out
@_ha_cf
@_reuse
@_detector
def run_command(scenarios: tuple[str, ...], impls: str, out_dir: str, ha_cf: tuple[str, ...],
                fresh: bool, detectors: tuple[str, ...]) -> None:
    """Run SCENARIOS (built-in names, `all`, `core`, or .toml files). Exit 1 if a verdict
    differs from the expected one."""
    _go(list(scenarios), impls, out_dir, ha_cf, fresh, matrix=False, detectors=detectors)


@chaos.command("matrix")
@_impl
@_out
@_ha_cf
@_reuse
@_detector
def matrix_command(impls: str, out_dir: str, ha_cf: tuple[str, ...], fresh: bool,
                   detectors: tuple[str, ...]) -> None:
    """Every scenario against hbtools and heartbeat, the core set against pacemaker; crash,
    freeze and loss30 also with each --detector line on hbtools (default: φ and binary)."""
    _go(["all"], impls, out_dir, ha_cf, fresh, matrix=True, detectors=detectors)


@chaos.command("list")
def list_command() -> None:
    """The built-in scenarios."""
    from hbtools.chaos.scenarios import BUILTIN, CORE

    for s in BUILTIN.values():
        core = " [core]" if s.name in CORE else ""
        click.echo(f"{s.name:18} {s.kind:8} {s.nodes} nodes, {s.duration:g} s{core}: {s.description}")
