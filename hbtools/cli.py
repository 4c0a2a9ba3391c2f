"""The `hbtool` command: a click group whose verbs only parse options and call the rooms."""

from __future__ import annotations

import sys

import click

from hbtools import __version__

#: Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FINDINGS = 1  # the command ran and found what it reports (e.g. bad signatures)
EXIT_USAGE = 2  # bad input: unreadable file, malformed config, wrong option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hbtool")
def cli() -> None:
    """Look at, write to, and break the wire of Linux-HA clusters.

    Heartbeat (UDP 694) and Corosync Totem/kronosnet (UDP 5404-5405) speak here.
    Every verb has its own --help with examples.
    """


def main() -> None:
    try:
        cli.main(prog_name="hbtool", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
