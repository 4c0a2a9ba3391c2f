"""``hbtool daemon``: run a Heartbeat 3.0.6-compatible node from an /etc/ha.d-style directory.

Only option parsing and error reporting live here; the node is `hbtools.node`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import warnings
from pathlib import Path

import click

from hbtools.commands import EXIT_USAGE


def _err(message: str) -> None:
    """One line on stderr; a closed stderr (a dead log pipe) must not stop a daemon from
    starting or stopping cleanly, so a failed write points stderr at /dev/null and goes on."""
    try:
        click.echo(f"hbtool daemon: {message}", err=True)
    except OSError:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.option("-c", "--config", "config_dir", default=None, type=click.Path(file_okay=False),
              help="Directory with ha.cf, authkeys and (optional) haresources, as /etc/ha.d.")
@click.option("-n", "--node-name", default=None,
              help="This node's name in ha.cf (default: uname -n, as Heartbeat).")
@click.option("--state-dir", type=click.Path(file_okay=False), default="/var/lib/hbtools",
              show_default=True, help="Where hb_uuid and hb_generation persist between starts.")
@click.option("--events", type=click.Path(dir_okay=False), default=None,
              help="Append events as JSON lines (monotonic and wall times) to this file.")
@click.option("-q", "--quiet", is_flag=True, help="No human event lines on stderr.")
@click.option("--fence-command", default=None, metavar="CMD",
              help="Run before taking resources from a dead node ({node} = its name); "
                   "no takeover unless it exits 0.")
@click.option("--fence-timeout", type=float, default=60.0, show_default=True,
              help="Seconds before a fence command counts as failed.")
@click.option("--arp-count", type=click.IntRange(0, 100), default=10, show_default=True,
              help="Gratuitous ARP rounds after taking an address (reply + request each).")
@click.option("--arp-interval", type=click.IntRange(10, 10000), default=250, show_default=True,
              help="Milliseconds between gratuitous ARP rounds.")
@click.option("--seed", type=int, default=None, help="Seed for retransmission delays (tests).")
@click.option("--keep-stale", is_flag=True,
              help="Do not remove configured addresses left on interfaces by an earlier run.")
@click.option("--insecure-authkeys", is_flag=True,
              help="Start even if group or others may read authkeys (3.0.6 refuses; test setups only).")
@click.option("--check", is_flag=True, help="Only read the configuration and report problems.")
@click.pass_context
def daemon(ctx: click.Context, config_dir: str | None, node_name: str | None, state_dir: str,
           events: str | None, quiet: bool, fence_command: str | None, fence_timeout: float,
           arp_count: int, arp_interval: int,
           seed: int | None, keep_stale: bool, insecure_authkeys: bool, check: bool) -> None:
    """Be one node of a Heartbeat cluster: heartbeats, dead-peer detection, VIP failover.

    \b
    Examples:
      hbtool daemon --config /etc/ha.d
      hbtool daemon -c ./ha.d -n node2 --state-dir /tmp/node2 --events node2.jsonl
      hbtool daemon -c ./ha.d --check

    SIGTERM or Ctrl-C stops cleanly: resources are released and the peer is told
    (shutdone), so it takes over at once instead of after deadtime (exit 0; 130 for Ctrl-C).
    SIGHUP rereads the configuration. `hbtool daemon status` asks a running daemon.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_dir is None:
        _err("missing option '-c' / '--config' (the ha.d directory)")
        sys.exit(EXIT_USAGE)
    from hbtools.node.config import ConfigError, load_config
    from hbtools.node.runner import Runner, RunnerError, RunnerOptions, missing_interfaces

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            config = load_config(config_dir, insecure_authkeys=insecure_authkeys)
        except ConfigError as exc:
            _err(str(exc))
            sys.exit(EXIT_USAGE)
    for line in config.ha.warnings:
        _err(f"warning: {line}")
    for warning in caught:
        _err(f"warning: {warning.message}")
    name = node_name or socket.gethostname()
    if name not in config.ha.nodes:
        _err(f"node name {name!r} is not a 'node' in {Path(config_dir) / 'ha.cf'} "
             f"({' '.join(config.ha.nodes)}); use --node-name")
        sys.exit(EXIT_USAGE)
    missing = missing_interfaces(config, str(Path(config_dir) / "ha.cf"))
    if missing:
        _err(missing[0])
        sys.exit(EXIT_USAGE)
    if check:
        click.echo(f"{config_dir}: ok: node {name}, {len(config.ha.nodes)} nodes, "
                   f"{len(config.ha.media)} media, {len(config.groups)} resource groups, "
                   f"detector {config.ha.detector.kind}")
        return
    options = RunnerOptions(
        node_name=name, state_dir=Path(state_dir), events=Path(events) if events else None,
        quiet=quiet, fence_command=fence_command, fence_timeout=fence_timeout,
        arp_count=arp_count, arp_interval=arp_interval / 1000, seed=seed,
        release_stale=not keep_stale, config_dir=Path(config_dir), insecure_authkeys=insecure_authkeys,
    )
    try:
        runner = Runner(config, options)
        sys.exit(runner.run())
    except RunnerError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)


@daemon.command("status")
@click.option("--state-dir", type=click.Path(file_okay=False), default="/var/lib/hbtools",
              show_default=True, help="The running daemon's --state-dir (its status socket is there).")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
def status(state_dir: str, as_json: bool) -> None:
    """Ask a running daemon, like cl_status: node states, who holds what, last heartbeats."""
    import json

    from hbtools.node.runner import RunnerError, ask_status

    try:
        report = ask_status(Path(state_dir))
    except RunnerError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    for line in status_lines(report):
        click.echo(line)


def status_lines(report: dict) -> list[str]:
    """The human form of `Node.report`; names from the daemon's own config, still escaped."""
    from hbtools.node.core import shown

    lines = [f"{shown(report.get('node'))}: {shown(report.get('status'))} (this node, generation "
             f"{report.get('generation')}, resources {shown(report.get('resources'))}, holds "
             f"{shown(report.get('rsc_hold'))})"]
    for name, peer in sorted((report.get("peers") or {}).items()):
        ago = peer.get("last_heartbeat_ms_ago")
        heard = "never heard" if ago is None else f"last heartbeat {ago / 1000:.1f} s ago"
        lines.append(f"{shown(name)}: {shown(peer.get('status'))} ({heard}, holds "
                     f"{shown(peer.get('rsc_hold') or 'unknown')})")
    for group in report.get("groups") or []:
        holders = ", ".join(shown(h) for h in group.get("held_by") or []) or "nobody"
        chk = group.get("check")
        said = "" if not isinstance(chk, dict) else (
            "; check here: " + ("not run yet" if chk.get("ok") is None else "ok" if chk.get("ok")
                                else f"failing ({shown(chk.get('reason'))})"))
        lines.append(f"resource {shown(group.get('group'))} (home {shown(group.get('home'))}): "
                     f"held by {holders}{said}")
    return lines
