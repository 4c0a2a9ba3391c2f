"""``hbtool detectors``: failure detectors, raced on the same traces.

Only option parsing and printing; the work is in :mod:`hbtools.usecases.detectors`.
"""

from __future__ import annotations

import sys

import click
from tabulate import tabulate

from hbtools.commands import EXIT_USAGE
from hbtools.usecases import detectors as uc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def detectors() -> None:
    """Failure detectors: Heartbeat's fixed deadtime, φ accrual, accelerated heartbeats."""


@detectors.command()
@click.option("-t", "--trace", "trace_paths", multiple=True, metavar="FILE",
              help="A capture (Heartbeat status messages of the SIGKILLed node, or of the first "
                   "node), a JSON trace, or a directory of recordings (every */capture.pcap "
                   "with Heartbeat traffic, e.g. captures/). Repeatable. The bundled trace "
                   "is always included unless --no-bundled.")
@click.option("--no-bundled", is_flag=True, help="Leave out the bundled hb-failover trace.")
@click.option("-s", "--scenario", "scenarios", multiple=True,
              type=click.Choice(list(uc.SCENARIOS)),
              help="Generated scenarios to run (default: all). Repeatable.")
@click.option("--no-generated", is_flag=True, help="Only the given/bundled traces.")
@click.option("--duration", type=click.FloatRange(min=60), default=1800.0, show_default=True,
              help="Seconds of crash-free run per scenario (mistake metrics).")
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="Crash runs per scenario (detection time T_D is their mean).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--png", default="detectors-qos.png", show_default=True, metavar="FILE",
              help="Where to write the detection time vs mistake rate plot ('' for none).")
@click.option("-a", "--all", "everything", is_flag=True,
              help="Every point of every parameter sweep, not only each detector's default.")
def evaluate(trace_paths: tuple[str, ...], no_bundled: bool, scenarios: tuple[str, ...],
             no_generated: bool, duration: float, trials: int, seed: int, png: str,
             everything: bool) -> None:
    """Replay traces through every detector; print Chen/Toueg/Aguilera QoS and plot it.

    T_D: mean detection time after a real crash (s). λ_M: wrong suspicions per hour. T_MR:
    mistake recurrence time (s). T_M: mistake duration (s). P_A: query accuracy. msg/s: messages
    the detector costs (accelerated: beats + replies).

    Example: hbtool detectors evaluate -t captures/hb-failover/capture.pcap --scenario loss30-j200
    """
    req = uc.Request(trace_paths=list(trace_paths), bundled=not no_bundled,
                     scenarios=[] if no_generated else list(scenarios or uc.SCENARIOS),
                     duration=duration, trials=trials, seed=seed, png=png or None)
    try:
        ev = uc.evaluate(req)
    except uc.EvaluateError as exc:
        click.echo(f"hbtool detectors evaluate: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    for why in ev.skipped:
        click.echo(f"skipped: {why}", err=True)
    click.echo(tabulate(uc.table(ev, everything), headers=uc.HEADERS, disable_numparse=True))
    if ev.png:
        click.echo(f"\nplot written: {ev.png}")
