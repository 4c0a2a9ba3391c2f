"""``hbtool lab up|status|down``: a namespace lab with a running cluster, by hand."""

from __future__ import annotations

import json
import sys

import click

KINDS = ("hbtools", "heartbeat", "pacemaker")


def _fail(message: str) -> None:
    click.echo(f"hbtool lab: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def lab() -> None:
    """Bring up a lab cluster (bridge, nodes, client namespaces), look at it, tear it down."""


@lab.command("up")
@click.option("-k", "--kind", type=click.Choice(KINDS), default="hbtools", show_default=True)
@click.option("-n", "--nodes", type=click.IntRange(1, 8), default=2, show_default=True)
def up_command(kind: str, nodes: int) -> None:
    """Start the lab and keep it until Ctrl-C / SIGTERM / `hbtool lab down`."""
    from hbtools.lab import LabError
    from hbtools.usecases import lab as uc

    def ready(info: uc.LabInfo) -> None:
        click.echo(f"lab {info.prefix}: {kind} cluster up, VIP {info.vip} on "
                   f"{', '.join(info.owners or []) or 'nobody'}")
        for name, ns in info.namespaces.items():
            click.echo(f"  {name:8} ip netns exec {ns} ...")
        click.echo("Ctrl-C or `hbtool lab down` ends it.", err=True)

    try:
        uc.up(kind, nodes=nodes, on_ready=ready)
    except LabError as exc:
        _fail(str(exc))
    click.echo("lab down")


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per lab.")
def status_command(as_json: bool) -> None:
    """Labs brought up by `hbtool lab up` and who holds each VIP now."""
    from hbtools.usecases import lab as uc

    infos = uc.status()
    for info in infos:
        if as_json:
            click.echo(json.dumps(info.as_dict()))
            continue
        state = "running" if info.alive else "dead (run `hbtool lab down`)"
        owners = ", ".join(info.owners) if info.owners else "nobody"
        click.echo(f"{info.prefix}: {info.kind}, pid {info.pid}, {state}; VIP {info.vip}: {owners}")
        for name, ns in info.namespaces.items():
            click.echo(f"  {name:8} {ns}")
    if not infos and not as_json:
        click.echo("no lab is up")


@lab.command("down")
@click.argument("prefix", required=False)
def down_command(prefix: str | None) -> None:
    """Stop the lab(s) (by pid) and remove whatever a dead one left behind."""
    from hbtools.lab import LabError
    from hbtools.usecases import lab as uc

    try:
        stopped = uc.down(prefix)
    except LabError as exc:
        _fail(str(exc))
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "no lab was up")
