"""``hbtool check``: run one negotiate check; exit 0 if ok, 1 if failed, 2 for a bad spec.

Only option parsing and printing; the work is in :mod:`hbtools.usecases.check`.
"""

from __future__ import annotations

import json
import sys

import click

from hbtools.usecases import check as uc

EXIT_FAILED = 1
EXIT_USAGE = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("spec", nargs=-1, required=True)
@click.option("-t", "--timeout", metavar="SECONDS", help="Per step and in total (default 5).")
@click.option("-e", "--expect", metavar="REGEX", help="Must be found in the answer.")
@click.option("--status", metavar="CODE", help="HTTP(S) status wanted (default 200).")
@click.option("-k", "--insecure", is_flag=True, help="HTTPS: accept any certificate.")
@click.option("--cafile", metavar="FILE", help="HTTPS: trust the CA certificates in FILE.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a line.")
def check(spec: tuple[str, ...], timeout: str | None, expect: str | None, status: str | None,
          insecure: bool, cafile: str | None, as_json: bool) -> None:
    """Ask a service something real and say whether the answer is right (for scripts).

    SPEC is a URL, optionally followed by key=value words (expect=, status=, timeout=,
    query=, vhost=, insecure=, cafile=). Schemes: http https ftp smtp imap pop ldap mysql
    nntp tcp.

    \b
    Examples:
      hbtool check http://198.18.0.100/ --expect 'node[12]'
      hbtool check https://198.18.0.100/ --cafile ca.pem --status 200
      hbtool check 'mysql://probe:pw@198.18.0.1/test' query='SELECT 1'
      hbtool check ldap://198.18.0.1/dc=example,dc=org?(uid=probe) -e probe
      hbtool check tcp://198.18.0.1:22 -t 500ms
    """
    req = uc.Request(words=spec, timeout=timeout, expect=expect, status=status,
                     insecure=insecure, cafile=cafile)
    try:
        result = uc.check(req)
    except uc.CheckSpecError as exc:
        click.echo(f"hbtool check: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps({"ok": result.ok, "target": result.target, "reason": result.reason,
                               "latency_ms": round(result.latency * 1000, 3)}))
    else:
        click.echo(result.line())
    sys.exit(0 if result.ok else EXIT_FAILED)
