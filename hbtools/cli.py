"""The `hbtool` command: a click group whose verbs only parse options and call the rooms.

Each verb lives in its own module under `hbtools.commands` and is imported only when
it runs, so `hbtool decode` does not pay for scapy or netfilterqueue imports that only
`inject` or `fault` need.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.util
import os
import sys

import click

from hbtools import __version__

#: Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FINDINGS = 1  # the command ran and found what it reports (e.g. bad signatures)
EXIT_USAGE = 2  # bad input: unreadable file, malformed config, wrong option, missing privilege

#: verb -> "module:attribute" of its click command.
VERBS: dict[str, str] = {
    "decode": "hbtools.commands.decode:decode",
    "daemon": "hbtools.commands.daemon:daemon",
    "inject": "hbtools.commands.inject:inject",
    "replay": "hbtools.commands.inject:replay",
    "fault": "hbtools.commands.fault:fault",
    "wireshark": "hbtools.commands.wireshark:wireshark",
    "detectors": "hbtools.commands.detectors:detectors",
    "check": "hbtools.commands.check:check",
    "lab": "hbtools.commands.lab:lab",
    "chaos": "hbtools.commands.chaos:chaos",
}


def _module_exists(target: str) -> bool:
    module = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """Imports a verb's module on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [verb for verb, target in VERBS.items() if _module_exists(target)]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in VERBS:
            return command
        target = VERBS[cmd_name]
        if not _module_exists(target):
            return None
        module_name, _, attribute = target.partition(":")
        found = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(found, click.Command):
            raise TypeError(f"{target} is not a click command")
        return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hbtool")
@click.option("-v", "--debug", is_flag=True,
              help="Log what the verb does (DEBUG level) on stderr.")
def cli(debug: bool) -> None:
    """Look at, write to, and break the wire of Linux-HA clusters.

    Heartbeat (UDP 694) and Corosync Totem/kronosnet (UDP 5404-5405) speak here.
    Every verb has its own --help with examples. Shell completion (bash):
    eval "$(_HBTOOL_COMPLETE=bash_source hbtool)"; zsh_source and fish_source also work.
    """
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("hbtools").debug("hbtools %s, Python %s, argv %s", __version__,
                                           sys.version.split()[0], sys.argv[1:])


def main() -> None:
    """Run a verb; Ctrl-C is exit 130 in every verb (128 + SIGINT, as shells report it).

    click's standalone mode turns KeyboardInterrupt into "Aborted!" and exit 1, so the
    standalone handling is done here instead, with the same messages otherwise.
    """
    try:
        try:
            rv = cli.main(prog_name="hbtool", standalone_mode=False)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _quiet_stdout()
            sys.exit(1)
        # Verbs report their own inputs; what escapes is mostly output that cannot be
        # written (`> /dev/full`, a full disk). click handles only a closed pipe itself.
        _quiet_stdout()
        where = f"{exc.filename}: " if exc.filename else ""
        if not where and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            where = "output not written: "
        click.echo(f"hbtool: {where}{exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's exit flush does not fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
