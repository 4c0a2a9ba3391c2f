"""`hbtool wireshark`: export the generated Lua plugin (see `hbtools.wireshark`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hbtools.cli import EXIT_USAGE

#: Wireshark's personal plugin folder on Linux (Help > About > Folders, "Personal Lua Plugins").
PERSONAL_PLUGINS = Path("~/.local/lib/wireshark/plugins")
PLUGIN_NAME = "hbtools.lua"


def _write(path: Path, text: str, make_dirs: bool = False) -> None:
    """Write a plugin file via a temporary one so Wireshark never loads it half-written.

    Only a regular file (or a new one) is replaced that way: ``-o /dev/stdout``, a FIFO or
    a symlink is written through in place, since renaming over it would swap the device
    node or link for a plain file (as root, ``-o /dev/null`` would replace /dev/null).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            with path.open("w", encoding="utf-8") as out:
                out.write(text)
            return
        if make_dirs:
            # only Wireshark's own plugin folder is created; a folder named in -o must
            # exist (a typo must not make directories as root)
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            click.echo(f"hbtool wireshark export: {path}: folder {path.parent} does not exist",
                       err=True)
            sys.exit(EXIT_USAGE)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        click.echo(f"hbtool wireshark export: {path}: cannot write: {exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)


@click.group()
def wireshark() -> None:
    """Wireshark support: a Lua dissector for Heartbeat, Corosync 3 Totem and kronosnet."""


@wireshark.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              default="-", show_default=True,
              help="Write the plugin here ('-' is stdout), e.g. wireshark/hbtools.lua.")
@click.option("--install", is_flag=True,
              help=f"Also copy it into {PERSONAL_PLUGINS}/ (Wireshark's personal plugin "
                   "folder) and say where it went.")
def export(output: str, install: bool) -> None:
    """Write the Lua dissector generated from hbtools' field tables.

    \b
    Examples:
      hbtool wireshark export -o wireshark/hbtools.lua
      hbtool wireshark export --install
      tshark -r capture.pcap -Y 'heartbeat.t == "status"'      # installed: no -X needed
      tshark -X lua_script:wireshark/hbtools.lua -r capture.pcap  # not installed
    """
    from hbtools.wireshark import generate

    text = generate()
    if install:
        target = PERSONAL_PLUGINS.expanduser() / PLUGIN_NAME
        _write(target, text, make_dirs=True)
        click.echo(f"installed {target} (restart Wireshark or use Analyze > Reload Lua Plugins)",
                   err=True)
        if output == "-":
            return
    if output == "-":
        click.echo(text, nl=False)
    else:
        _write(Path(output), text)
