"""`hbtool inject` and `hbtool replay`: put hand-made or recorded messages on a live network.

Only option parsing and the order of calls live here; building, signing and planning
are in `hbtools.inject` (pure), sockets in its I/O shell. Every bad input ends as one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from hbtools import heartbeat
from hbtools import inject as inj
from hbtools.auth import AuthKeys, AuthKeysError
from hbtools.commands import EXIT_USAGE, load_keys
from hbtools.usecases.inject import InjectSession

_F = TypeVar("_F", bound=Callable[..., Any])


def _fail(verb: str, message: str) -> NoReturn:
    click.echo(f"hbtool {verb}: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _one_line_errors(verb: str) -> Callable[[_F], _F]:
    """Turn the error types of the rooms into the CLI's one-line message and exit 2."""

    def wrap(func: _F) -> _F:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except (inj.InjectError, AuthKeysError) as exc:
                _fail(verb, str(exc))
            except heartbeat.EncodeError as exc:
                _fail(verb, f"cannot encode the message: {exc}")
            except heartbeat.DecodeError as exc:
                _fail(verb, f"not a Heartbeat message: {exc}")

        return inner  # type: ignore[return-value]

    return wrap


def _load_keys(path: str | None) -> AuthKeys | None:
    if path is None:
        return None
    return load_keys(path, _refuse, None)


def _refuse(message: str) -> NoReturn:
    """A bad keyfile: raised, so `_one_line_errors` names the verb that read it."""
    raise inj.InjectError(message)


def _template(template: str | None, from_pcap: str | None, frame: int | None) -> heartbeat.Message | None:
    if template and from_pcap:
        raise inj.InjectError("give either --template FILE or --from-pcap CAP --frame N, not both")
    if template:
        try:
            data = Path(template).read_bytes()
        except OSError as exc:
            raise inj.InjectError(f"{template}: cannot read template: {exc.strerror}") from None
        return inj.load_template(data, template)
    if from_pcap:
        if frame is None:
            raise inj.InjectError("--from-pcap needs --frame N (the frame number Wireshark shows)")
        found = inj.datagram_at_frame(from_pcap, frame)
        try:
            return heartbeat.decode(found.payload)
        except heartbeat.DecodeError as exc:
            raise inj.InjectError(f"{from_pcap}: frame {frame} is not a Heartbeat message: {exc}") from None
    if frame is not None:
        raise inj.InjectError("--frame only makes sense with --from-pcap CAP")
    return None


def _interval(count: int, interval: float | None, rate: str | None) -> float:
    if interval is not None and rate is not None:
        raise inj.InjectError("give either --interval T or --rate R/s, not both")
    if rate is not None:
        return 1.0 / inj.parse_rate(rate)
    return 1.0 if interval is None else interval


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--proto", type=click.Choice(["heartbeat", "totem"]), default="heartbeat",
              show_default=True, help="Protocol of the message to craft.")
@click.option("-t", "--type", "message_type", default=None,
              help="Message type (Heartbeat: status, NS_ackmsg, …; default status).")
@click.option("-f", "--field", "field_specs", multiple=True, metavar="NAME=VALUE",
              help="Set a field (repeatable). Numbers as decode shows them, in decimal "
                   "(dt=7000 is 7 s; 0x1b58 also works); !TEXT sends raw wire text.")
@click.option("--node", default=None, help="Sender node name (src); default: the template's, else uname -n.")
@click.option("--uuid", "node_uuid", default=None, help="Sender uuid (srcuuid); default: stable per node.")
@click.option("--authkeys", type=click.Path(dir_okay=False), default=None,
              help="Heartbeat authkeys file to sign with.")
@click.option("--bad-auth", is_flag=True, help="Sign with a wrong digest (trailer and in-body auth).")
@click.option("--no-auth", is_flag=True, help="Leave every signature out.")
@click.option("--no-inline-auth", is_flag=True,
              help="No in-body auth field (as msgfmt netstring); the trailer still signs.")
@click.option("--format", "wire_format", type=click.Choice(["netstring", "classic"]),
              default="netstring", show_default=True, help="Wire format (3.0.6 sends netstring).")
@click.option("--template", type=click.Path(dir_okay=False), default=None,
              help="Start from this message file (classic text, or netstring).")
@click.option("--from-pcap", type=click.Path(dir_okay=False), default=None,
              help="Start from a packet of this capture (with --frame N).")
@click.option("--frame", type=click.IntRange(min=1), default=None, help="Frame number in --from-pcap.")
@click.option("--no-fill", is_flag=True, help="Do not add src, srcuuid, seq, hg, ts, ld, ttl.")
@click.option("--omit", multiple=True, metavar="NAME", help="Remove this field (repeatable).")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file keeping uuid, generation and next seq per node between runs.")
@click.option("--new-generation", is_flag=True,
              help="Act as if the node restarted: generation+1, seq 1. Without --state, this "
                   "(or --generation) must be said: a live node's peers then see it restart.")
@click.option("--generation", type=click.IntRange(min=0), default=None, help="Use this generation (hg).")
@click.option("--seq", "first_seq", type=click.IntRange(min=0), default=None,
              help="Sequence number of the first message.")
@click.option("--ttl", type=click.IntRange(min=0), default=inj.DEFAULT_TTL, show_default=True,
              help="ttl field (number of nodes + 1).")
@click.option("--to", "to", default=None, help="Destination address (unicast, broadcast or multicast).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Destination port [default: 694, 5405 for totem].")
@click.option("--iface", default=None, help="Send through this interface.")
@click.option("--spoof-src", default=None, metavar="IP", help="Source address to forge (raw socket).")
@click.option("--sport", type=click.IntRange(1, 65535), default=None, help="Source port.")
@click.option("--mcast-ttl", type=click.IntRange(1, 255), default=1, show_default=True,
              help="IP TTL of multicast datagrams (ha.cf: mcast IFACE GROUP PORT TTL LOOP).")
@click.option("--count", type=click.IntRange(1, inj.MAX_COUNT), default=1, show_default=True,
              help="Number of messages.")
@click.option("--interval", type=click.FloatRange(min=0), default=None,
              help="Seconds between messages [default: 1].")
@click.option("--rate", default=None, metavar="R/s", help="Messages per second instead of --interval.")
@click.option("--knet", is_flag=True, help="Totem: wrap in a kronosnet data header.")
@click.option("--corosync-authkey", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="knet: encrypt and sign with this /etc/corosync/authkey (as libknet does).")
@click.option("--crypto", default="aes256/sha256", show_default=True, metavar="CIPHER/HASH",
              help="With --corosync-authkey: crypto_cipher/crypto_hash (none/HASH: sign only).")
@click.option("--dry-run", is_flag=True, help="Print text and hex instead of sending; state unchanged.")
@_one_line_errors("inject")
def inject(**opts: Any) -> None:
    """Build a message the way a real node would, sign it, and send it (or print it).

    \b
    Examples:
      hbtool inject --node ghost -f st=active --authkeys authkeys --state ghost.json \\
          --to 198.18.0.255 --count 10 --interval 1
      hbtool inject -t NS_ackmsg -f dest=n1 -f ackseq=44 --authkeys authkeys --dry-run
      hbtool inject --from-pcap cap.pcap --frame 7 --bad-auth --authkeys k --to 198.18.0.1
    """
    if opts["proto"] == "totem":
        _inject_totem(opts)
        return
    _inject_heartbeat(opts)


def _inject_heartbeat(o: dict[str, Any]) -> None:
    if o["bad_auth"] and o["no_auth"]:
        raise inj.InjectError("give --bad-auth or --no-auth, not both")
    if o["knet"]:
        raise inj.InjectError("--knet is for --proto totem")
    keys = _load_keys(o["authkeys"])
    auth: inj.AuthMode = "none" if o["no_auth"] else "bad" if o["bad_auth"] else "good"
    if keys is None and auth != "none":
        raise inj.InjectError("give --authkeys FILE to sign (or --no-auth to send unsigned)")
    if not o["dry_run"] and not o["to"]:
        raise inj.InjectError("give --to ADDRESS (or --dry-run to print the message)")
    overrides = [inj.parse_field_spec(s) for s in o["field_specs"]]
    template = _template(o["template"], o["from_pcap"], o["frame"])
    message_type = o["message_type"] or (None if template is not None else "status")
    template_src = template.src if template is not None else None
    node = o["node"] or template_src or os.uname().nodename
    node_uuid = None
    if o["node_uuid"]:
        try:
            node_uuid = uuid.UUID(o["node_uuid"]).bytes
        except ValueError:
            raise inj.InjectError(f"bad --uuid {o['node_uuid']!r}: expected a uuid") from None
    interval = _interval(o["count"], o["interval"], o["rate"])
    delays = inj.send_times(o["count"], interval)

    start_wall = time.time()
    session = InjectSession(o["state_file"])
    state = session.node_state(node, start_wall, node_uuid, new_generation=o["new_generation"],
                               generation=o["generation"], first_seq=o["first_seq"])
    load = inj.read_loadavg()
    seq_fixed = any(f.name == "seq" for f in overrides)

    def build(index: int, now: float) -> bytes:
        msg = inj.build_message(
            message_type=message_type, state=state, seq=state.next_seq + index, now=now, load=load,
            overrides=overrides, template=template, fill=not o["no_fill"], omit=o["omit"],
            ttl=o["ttl"], wire_format=o["wire_format"],
        )
        return inj.sign_message(msg, keys, auth, inline_auth=not o["no_inline_auth"])

    first = build(0, start_wall)  # fail on a bad message before opening any socket
    sequenced = inj.is_sequenced(heartbeat.decode(first).type) and not seq_fixed and not o["no_fill"]
    inj.check_generation_choice(
        node, sending=not o["dry_run"], signed=auth == "good", sequenced=sequenced,
        chosen=bool(o["state_file"] or o["new_generation"] or o["generation"] is not None))
    port = o["port"] or inj.HEARTBEAT_PORT
    where = f"{o['to']}:{port}" if o["to"] else "nowhere"

    if o["dry_run"]:
        for i, delay in enumerate(delays):
            data = first if i == 0 else build(i, start_wall + delay)
            header = (f"message {i + 1}/{len(delays)} at +{delay:g} s: {len(data)} bytes, "
                      f"{o['wire_format']}, to {where} (dry run, not sent)")
            click.echo(inj.dry_run_text(data, header), nl=False)
        return

    sent = 0
    try:
        with inj.Sender(o["to"], port, iface=o["iface"], spoof_src=o["spoof_src"],
                        sport=o["sport"], multicast_ttl=o["mcast_ttl"]) as sender:

            def emit(index: int) -> None:
                nonlocal sent
                data = first if index == 0 else build(index, time.time())
                sender.send(data)
                sent += 1

            inj.run_schedule(delays, emit)
    finally:
        session.sent(node, state, sent, sequenced)
    click.echo(f"hbtool inject: sent {sent} message(s) as {node} to {where}", err=True)


# ---------------------------------------------------------------------------
# Totem
# ---------------------------------------------------------------------------


def _inject_totem(o: dict[str, Any]) -> None:
    if o["bad_auth"] or o["no_auth"] or o["authkeys"] or o["state_file"] or o["template"] or o["from_pcap"]:
        raise inj.InjectError("--proto totem takes -t, -f, --knet and the sending options only")
    if not o["dry_run"] and not o["to"]:
        raise inj.InjectError("give --to ADDRESS (or --dry-run to print the message)")
    kind = o["message_type"] or "memb_join"
    if kind in inj.KNET_CONTROL_TYPES:
        o["knet"] = True
        data = inj.build_knet(kind, list(o["field_specs"]))
    else:
        data = inj.build_totem(kind, list(o["field_specs"]), knet=o["knet"])
    if o["corosync_authkey"]:
        if not o["knet"]:
            raise inj.InjectError("--corosync-authkey needs --knet (crypto is knet's)")
        data = inj.seal_knet(data, o["corosync_authkey"], o["crypto"])
    interval = _interval(o["count"], o["interval"], o["rate"])
    delays = inj.send_times(o["count"], interval)
    port = o["port"] or inj.TOTEM_PORT
    where = f"{o['to']}:{port}" if o["to"] else "nowhere"
    if o["dry_run"]:
        for i, delay in enumerate(delays):
            header = (f"message {i + 1}/{len(delays)} at +{delay:g} s: {len(data)} bytes, totem"
                      f"{' in knet' if o['knet'] else ''}, to {where} (dry run, not sent)")
            click.echo(inj.dry_run_text(data, header), nl=False)
        return
    with inj.Sender(o["to"], port, iface=o["iface"], spoof_src=o["spoof_src"], sport=o["sport"],
                    multicast_ttl=o["mcast_ttl"]) as sender:
        sent = inj.run_schedule(delays, lambda _i: sender.send(data))
    click.echo(f"hbtool inject: sent {sent} totem message(s) to {where}", err=True)


# ---------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------

_TOTEM_PORTS = frozenset({5404, 5405})


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--to", "to", default=None, help="Destination address for every datagram.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Destination port [default: each datagram's own].")
@click.option("--iface", default=None, help="Send through this interface.")
@click.option("--spoof-src", default=None, metavar="IP", help="Source address to forge (raw socket).")
@click.option("--proto", type=click.Choice(["heartbeat", "totem", "all"]), default="all",
              show_default=True, help="Which payloads to replay (Heartbeat by content, Totem by port).")
@click.option("--src", "only_src", default=None, metavar="NODE",
              help="Only Heartbeat messages whose src is NODE.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Time factor: 2 replays twice as fast.")
@click.option("--no-wait", is_flag=True, help="Send back to back, ignoring the recorded timing.")
@click.option("--resign", is_flag=True, help="Re-sign every Heartbeat message with --authkeys.")
@click.option("--authkeys", type=click.Path(dir_okay=False), default=None,
              help="Keys for --resign/--refresh.")
@click.option("--refresh", is_flag=True,
              help="Rewrite hg, seq and ts so the messages are fresh (implies re-signing).")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="State file giving (and keeping) each node's generation and next seq for --refresh.")
@click.option("--limit", type=click.IntRange(1, inj.MAX_COUNT), default=None,
              help="Send at most this many datagrams.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent, with its delay.")
@_one_line_errors("replay")
def replay(**o: Any) -> None:
    """Send a capture's Heartbeat/Totem payloads again, with their recorded timing.

    \b
    Examples:
      hbtool replay cap.pcap --to 198.18.0.255 --src ghost --speed 2
      hbtool replay cap.pcap --to 198.18.0.1 --refresh --authkeys authkeys --state s.json
    """
    if (o["resign"] or o["refresh"]) and not o["authkeys"]:
        raise inj.InjectError("--resign and --refresh need --authkeys FILE")
    if o["state_file"] and not o["refresh"]:
        raise inj.InjectError("--state is used by --refresh only")
    if not o["dry_run"] and not o["to"]:
        raise inj.InjectError("give --to ADDRESS (or --dry-run)")
    keys = _load_keys(o["authkeys"]) if (o["resign"] or o["refresh"]) else None
    datagrams = inj.read_capture(o["capture"])
    datagrams = [d for d in datagrams if _wanted(d, o["proto"])]
    if o["limit"] is not None:
        datagrams = datagrams[: o["limit"]]
    session = InjectSession(o["state_file"]) if o["refresh"] else None
    book = session.book if session is not None else None
    plan = inj.plan_replay(datagrams, now=time.time(), speed=o["speed"], wait=not o["no_wait"],
                           keys=keys, refresh=book, only_src=o["only_src"])
    if not plan:
        raise inj.InjectError(f"{o['capture']}: nothing to replay (no matching datagrams)")
    if o["dry_run"]:
        for i, item in enumerate(plan):
            header = (f"datagram {i + 1}/{len(plan)} (frame {item.frame}) at +{item.delay:.3f} s: "
                      f"{len(item.payload)} bytes to {o['to'] or 'nowhere'}:{o['port'] or item.dport}"
                      f"{' ' + item.note if item.note else ''} (dry run, not sent)")
            click.echo(inj.dry_run_text(item.payload, header), nl=False)
        return
    senders: dict[int, inj.Sender] = {}
    sent = 0
    try:
        for item in plan:
            port = o["port"] or item.dport
            if port not in senders:
                senders[port] = inj.Sender(o["to"], port, iface=o["iface"], spoof_src=o["spoof_src"])

        def emit(index: int) -> None:
            nonlocal sent
            item = plan[index]
            senders[o["port"] or item.dport].send(item.payload)
            sent += 1

        inj.run_schedule([item.delay for item in plan], emit)
    finally:
        for s in senders.values():
            s.close()
        if session is not None and sent:
            session.save()
    click.echo(f"hbtool replay: sent {sent} datagram(s) to {o['to']}", err=True)


def _wanted(d: inj.CapturedDatagram, proto: str) -> bool:
    is_hb = d.payload.startswith((heartbeat.NETSTRING_START, heartbeat.CLASSIC_START))
    is_totem = d.dport in _TOTEM_PORTS or d.sport in _TOTEM_PORTS
    if proto == "heartbeat":
        return is_hb
    if proto == "totem":
        return is_totem and not is_hb
    return is_hb or is_totem
