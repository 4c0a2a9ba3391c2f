"""``hbtool fault``: a message-aware fault proxy on NFQUEUE (and ``hbtool fault cleanup``).

Only option parsing, privilege checks and reporting live here: the rule language is in
`faults.rules`, timelines in `faults.scenario`, the decisions in `faults.engine` and the
kernel plumbing in `faults.nfq`. Every user error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from hbtools.commands import EXIT_USAGE, load_corosync_keys, load_keys

_EPILOG = """\b
Rules (repeatable --rule, tried in order, effects compose):
  drop type=NS_ackmsg p=0.5        delay 200ms jitter=50ms dist=normal src=node1
  duplicate 2 out                  reorder window=4 timeout=300ms
  corrupt bits=3 t=status          rewrite st:=dead seq:=+5 sign=resign|stale
  drop corosync.cpg_group=crmd to=node2    (with --corosync-authkey on encrypted knet)
  rewrite knet.seq_num:=+1 totem.seq:=+1 [key=OTHER] sign=resign|stale   (knet re-sealed)
  ratelimit 5/s burst=2            partition node1>node2 | node1<>node2
  isolate node2 | halves | bridge node2   (need --node NAME=ADDRESS for every node)
Match terms: in/out, from=, to=, sport=, dport=, port=, proto=, type=, totem.type=,
totem.nodeid=, knet.type=, knet.node=, corosync.cpg_group= (service, function, daemon,
pcmk_op, pcmk_t, pcmk_from, pcmk_to: as decode shows them), any Heartbeat field (t=, src=…),
KEY!=V to exclude, V1,V2 for either; p=0.3 applies a matched rule 30% of the time.

\b
Examples:
  hbtool fault --netns lab-node1 --rule 'drop out t=status p=0.5' --duration 30s
  hbtool fault --scenario flap.toml --stats-json stats.json
  hbtool fault cleanup --netns lab-node1
"""


def _err(message: str) -> None:
    click.echo(f"hbtool fault: {message}", err=True)


def _fail(message: str) -> NoReturn:
    _err(message)
    sys.exit(EXIT_USAGE)


def _load_keys(path: str) -> Any:
    return load_keys(path, _fail, _err)


@click.group(invoke_without_command=True, epilog=_EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-r", "--rule", "rules", multiple=True, metavar="RULE",
              help="A fault rule (repeatable); see below.")
@click.option("-s", "--scenario", type=str, default=None,
              help="TOML timeline of steps (at, for, repeat, every, rules); runs to its end.")
@click.option("-p", "--port", "ports", multiple=True, type=click.IntRange(1, 65535),
              help="UDP destination port to queue (repeatable; default 694, 5404, 5405).")
@click.option("--netns", default=None, metavar="NAME", help="Run inside this network namespace.")
@click.option("-q", "--queue", type=click.IntRange(0, 65535), default=None,
              help="NFQUEUE number (default 6940).")
@click.option("--seed", type=int, default=None, help="Seed for every random choice (reproducible).")
@click.option("-a", "--authkeys", type=str, default=None,
              help="Heartbeat authkeys: rewrite ... sign=resign signs with its active key.")
@click.option("--corosync-authkey", "corosync_authkeys", multiple=True,
              type=click.Path(dir_okay=False), metavar="FILE",
              help="Corosync /etc/corosync/authkey: match and rewrite decrypted knet, sealed "
                   "again with its cipher and hash; repeat for several keys (key=NAME picks "
                   "one to seal with). Packets no key opens pass as they came (counted).")
@click.option("-n", "--node", "nodes", multiple=True, metavar="NAME=ADDRESS",
              help="A cluster node (repeatable): for partitions and from=/to= by name.")
@click.option("-d", "--duration", default=None, metavar="TIME",
              help="Stop after this long (e.g. 30s); default: until SIGINT/SIGTERM.")
@click.option("--stats-json", type=click.Path(dir_okay=False), default=None,
              help="Write the per-rule counts as JSON at the end.")
@click.option("--status-interval", default="1s", show_default=True, metavar="TIME",
              help="How often the live line of counts is printed (0: never).")
@click.option("--backend", type=click.Choice(["auto", "nft", "iptables"]), default="auto",
              show_default=True, help="How the queue rules are installed.")
@click.option("--realtime", type=click.IntRange(1, 99), default=None, metavar="PRIO",
              help="Run the proxy with SCHED_FIFO priority PRIO: steadier latency on a busy host.")
@click.pass_context
def fault(ctx: click.Context, rules: tuple[str, ...], scenario: str | None,
          ports: tuple[int, ...], netns: str | None, queue: int | None, seed: int | None,
          authkeys: str | None, corosync_authkeys: tuple[str, ...], nodes: tuple[str, ...],
          duration: str | None,
          stats_json: str | None, status_interval: str, backend: str,
          realtime: int | None) -> None:
    """Break the wire on purpose: drop, delay, duplicate, reorder, corrupt, rewrite or
    partition cluster messages chosen by what they say."""
    if ctx.invoked_subcommand is not None:
        return
    from hbtools.faults import nfq
    from hbtools.faults.rules import RuleError, parse_duration
    from hbtools.faults.scenario import ScenarioError
    from hbtools.usecases.fault import FaultSession, plan

    if not rules and not scenario:
        _fail("give at least one --rule or a --scenario (see --help)")
    from hbtools.extras import MissingExtra, require

    try:
        require("netfilterqueue", "fault", "hbtool fault")  # before any rule is installed
    except MissingExtra as exc:
        _fail(str(exc))
    keys = _load_keys(authkeys) if authkeys else None
    corosync_keys = load_corosync_keys(corosync_authkeys, _fail) if corosync_authkeys else None
    try:
        interval = parse_duration(status_interval, "--status-interval")
        session = FaultSession(plan(rules=rules, scenario=scenario, ports=ports, netns=netns,
                                    queue=queue, seed=seed, keys=keys, nodes=nodes,
                                    corosync_keys=corosync_keys,
                                    duration=duration, backend=backend, realtime=realtime))
        session.open()
    except (RuleError, ScenarioError, nfq.FaultError) as exc:
        _fail(str(exc))
    p = session.plan
    assert session.proxy is not None and session.engine is not None
    nfq.install_signal_handlers(session.proxy)
    engine = session.engine

    def ready() -> None:
        _err(f"ready: queue {p.queue}, {session.where}, udp dport "
             f"{','.join(map(str, p.ports))}, hooks {'+'.join(p.directions)}"
             + (f", seed {p.seed}" if p.seed is not None else "")
             + (f", scenario {p.scenario_name!r} for {p.duration:g} s"
                if p.scenario_name and p.duration is not None else ""))

    def status(elapsed: float) -> None:
        nfq.write_status(sys.stderr, nfq.status_line(engine, elapsed))

    try:
        result = session.run(on_ready=ready, status=status, status_interval=interval,
                             on_warning=_err)
    except nfq.FaultError as exc:
        _fail(str(exc))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    click.echo(f"stopped ({result.reason}) after {result.elapsed:.1f} s, "
               f"{result.total} packets; rules removed")
    click.echo(result.table)
    if result.copy_errors:
        _err(f"warning: {result.copy_errors} duplicate copies could not be sent")
    if stats_json:
        try:
            Path(stats_json).write_text(json.dumps(result.stats, indent=2) + "\n")
        except OSError as exc:
            _fail(f"cannot write {stats_json}: {exc.strerror}")


@fault.command("cleanup")
@click.option("--netns", default=None, metavar="NAME", help="Clean inside this network namespace.")
@click.option("--backend", type=click.Choice(["auto", "nft", "iptables"]), default="auto",
              show_default=True)
@click.option("--force", is_flag=True, help="Also remove the rules of proxies still running.")
def cleanup_command(netns: str | None, backend: str, force: bool) -> None:
    """Remove the rules a crashed fault proxy left behind (only ours, found by name).

    Rules whose proxy still runs are kept (and named) unless --force."""
    from hbtools.faults import nfq

    try:
        nfq.require_privilege()
        if netns:
            nfq.enter_netns(netns)
        removed = nfq.cleanup(None if backend == "auto" else nfq.choose_backend(backend),
                              force=force)
        kept = [] if force else [(q, nfq.live_owner(q)) for q in nfq.recorded_queues()]
    except nfq.FaultError as exc:
        _fail(str(exc))
    for item in removed:
        click.echo(f"removed {item}")
    for queue, pid in kept:
        if pid is not None:
            click.echo(f"kept the rules of queue {queue}: its proxy (pid {pid}) is running")
    if not removed and not any(pid for _, pid in kept):
        click.echo("nothing to remove")
