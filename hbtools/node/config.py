"""Read an ``/etc/ha.d``-style directory: ``ha.cf``, ``authkeys`` and ``haresources``.

The syntax is Heartbeat's own, so a directory that works for the real daemon works here for the
directives this node implements. Anything else in ``ha.cf`` is reported as a warning that names
its line and is ignored (a real cluster's file is full of logging and API directives that do not
matter on the wire); a wrong value for a supported directive is a `ConfigError` naming the file,
the line and the problem, because guessing would make the node behave differently from its peer.
Pure apart from reading the three files.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from hbtools.auth import AuthKeys, AuthKeysError
from hbtools.detectors.adapter import DetectorSpec, accelerated_times, parse_detector
from hbtools.errors import SourceError
from hbtools.node.service import GroupCheck, parse_check_directive
from hbtools.resources import (
    DEFAULT_INIT_DIR,
    DEFAULT_OCF_ROOT,
    DEFAULT_RESOURCE_DIRS,
    AgentResource,
    parse_agent,
    resolve,
)

__all__ = [
    "ClusterConfig",
    "ConfigError",
    "HaConfig",
    "IPAddrResource",
    "Medium",
    "ResourceGroup",
    "load_config",
    "parse_ha_cf",
    "parse_haresources",
    "parse_time_ms",
]

DEFAULT_PORT = 694


class ConfigError(SourceError):
    """A configuration value this node cannot use; the message is ``file:line: problem``."""


@dataclass(frozen=True)
class Medium:
    """One communication medium line of ``ha.cf``.

    ``bcast eth0`` sends to the interface broadcast address, ``mcast eth0 GROUP PORT TTL LOOP``
    to a multicast group, ``ucast eth0 PEER`` one copy to each peer address.
    """

    kind: Literal["bcast", "mcast", "ucast"]
    interface: str
    address: str | None = None  # mcast group or ucast peer
    port: int = DEFAULT_PORT
    ttl: int = 1
    loop: bool = False
    line: int | None = None


@dataclass(frozen=True)
class IPAddrResource:
    """``IPaddr::198.18.0.100/24/eth0``: a virtual address the holder adds to an interface."""

    address: str
    prefixlen: int | None = None
    interface: str | None = None
    spec: str = ""

    def __str__(self) -> str:
        return self.spec or self.address


@dataclass(frozen=True)
class ResourceGroup:
    """One ``haresources`` line: the home node and the resources that move together."""

    home: str
    resources: tuple[IPAddrResource | AgentResource, ...]
    line: int | None = None
    check: GroupCheck | None = None  # ha.cf `check` for this group

    @property
    def name(self) -> str:
        return " ".join(str(r) for r in self.resources)


@dataclass
class HaConfig:
    """The ``ha.cf`` directives this node implements, times in milliseconds."""

    nodes: list[str] = field(default_factory=list)
    keepalive_ms: int = 1000
    deadtime_ms: int = 30000
    warntime_ms: int | None = None
    initdead_ms: int | None = None
    udpport: int = DEFAULT_PORT
    media: list[Medium] = field(default_factory=list)
    auto_failback: bool = True
    ping_nodes: list[str] = field(default_factory=list)
    msgfmt: Literal["classic", "netstring"] = "classic"
    detector: DetectorSpec = field(default_factory=DetectorSpec)  # `detector` line (hbtools only)
    warnings: list[str] = field(default_factory=list)
    checks: list[GroupCheck] = field(default_factory=list)  # `check GROUP URL ...` lines

    @property
    def effective_warntime_ms(self) -> int:
        return self.warntime_ms if self.warntime_ms is not None else self.deadtime_ms // 2

    @property
    def effective_initdead_ms(self) -> int:
        return self.initdead_ms if self.initdead_ms is not None else self.deadtime_ms


@dataclass
class ClusterConfig:
    """Everything a node needs from its configuration directory."""

    ha: HaConfig
    keys: AuthKeys
    groups: list[ResourceGroup]
    directory: Path | None = None

    @property
    def warnings(self) -> list[str]:
        return [*self.ha.warnings, *self.keys.warnings]


# Directives of the real ha.cf that this node does not implement but that are harmless to ignore.
# Every other directive is a warning too; this set only makes the wording kinder.
_KNOWN_IGNORED = {
    "use_logd", "logfile", "debugfile", "logfacility", "realtime", "coredumps", "crm", "pacemaker",
    "autojoin", "respawn", "apiauth", "compression", "compression_threshold",
    "traditional_compression", "debug", "uuidfrom", "hopfudge", "baud", "serial", "stonith",
    "stonith_host", "ping_group", "hbgenmethod", "conn_logd_time", "max_rexmit_delay",
    "watchdog", "generic_stonith", "memreserve", "deadping", "client_children", "rtprio",
    "msgfmt_fallback", "keepalive_ms",
}

_Setter = Callable[[HaConfig, str], None]

# ASCII digits only ([0-9], not \d: `udpport ٦٩٤` is not a port), at most 9 before the point.
_TIME = re.compile(r"^([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*(ms|msec|s|sec|us|usec)?$", re.IGNORECASE | re.ASCII)
MAX_TIME_MS = 24 * 3600 * 1000  # a day: no Heartbeat timer is longer, and int() stays small
_BOOL_ON = {"on", "yes", "true", "1", "y"}
_BOOL_OFF = {"off", "no", "false", "0", "n"}


def parse_time_ms(text: str) -> int:
    """Heartbeat's time syntax: seconds by default, ``ms``/``s``/``us`` suffixes, decimals.

    Raises ValueError with a readable problem (the caller adds file and line).
    """
    m = _TIME.match(text.strip())
    if not m:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise ValueError(f"{shown!r} is not a time (e.g. 2, 1.5, 200ms)")
    number, unit = float(m.group(1)), (m.group(2) or "s").lower()
    scale = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "us": 0.001, "usec": 0.001}[unit]
    ms = round(number * scale)
    if ms <= 0:
        raise ValueError(f"{text!r} must be more than 0 ms")
    if ms > MAX_TIME_MS:
        raise ValueError(f"{text!r} is more than a day")
    return ms


def _small_number(text: str) -> bool:
    """ASCII digits, a few of them: Unicode digits and 5,000-digit numbers are refused."""
    return text.isascii() and text.isdigit() and len(text) <= 6


def _ipv4(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IPv4 address") from None


def _port(text: str) -> int:
    if not _small_number(text) or not 0 < int(text) < 65536:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise ValueError(f"port {shown!r} is not a number from 1 to 65535")
    return int(text)


def _medium(directive: str, args: list[str], udpport: int, line: int) -> Medium:
    if directive == "ucast":
        if len(args) != 2:
            raise ValueError("expected 'ucast IFACE PEER-ADDRESS'")
        return Medium("ucast", args[0], _ipv4(args[1], "peer address"), udpport, line=line)
    if len(args) != 5:
        raise ValueError("expected 'mcast IFACE GROUP PORT TTL LOOP' (e.g. mcast eth0 239.0.0.1 694 1 0)")
    group = _ipv4(args[1], "multicast group")
    if not ipaddress.IPv4Address(group).is_multicast:
        raise ValueError(f"{group} is not a multicast group (224.0.0.0/4)")
    ttl_text, loop_text = args[3], args[4]
    if not _small_number(ttl_text) or not 0 <= int(ttl_text) <= 255:
        raise ValueError(f"multicast ttl {ttl_text!r} is not 0..255")
    if loop_text not in ("0", "1"):
        raise ValueError(f"multicast loop {loop_text!r} must be 0 or 1")
    return Medium("mcast", args[0], group, _port(args[2]), int(ttl_text), loop_text == "1", line)


def parse_ha_cf(text: str, source: str = "ha.cf") -> HaConfig:
    """Parse ``ha.cf``; unsupported directives become warnings, wrong values `ConfigError`."""
    cfg = HaConfig()
    seen: dict[str, int] = {}
    pending_media: list[tuple[str, list[str], int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        directive, args = words[0].lower(), words[1:]
        try:
            if directive in ("bcast", "mcast", "ucast"):
                if not args:
                    raise ValueError(f"{directive} needs an interface")
                # The port comes from udpport, which may follow; resolve at the end.
                pending_media.append((directive, args, number))
                continue
            if directive == "node":
                if not args:
                    raise ValueError("'node' needs at least one node name")
                for name in args:
                    if name in cfg.nodes:
                        raise ValueError(f"node {name} listed twice")
                    cfg.nodes.append(name)
                continue
            if directive == "check":
                cfg.checks.append(parse_check_directive(args, number))
                continue
            if directive == "ping":
                if not args:
                    raise ValueError("'ping' needs at least one address")
                cfg.ping_nodes.extend(_ipv4(a, "ping node") for a in args)
                continue
            if directive == "detector":
                # hbtools' own directive (failure detector; docs/DAEMON.md), options as key=value.
                if directive in seen:
                    raise ValueError(f"'detector' set twice (first on line {seen[directive]})")
                seen[directive] = number
                cfg.detector = parse_detector(args)
                continue
            if directive not in _SINGLE:
                kind = "is not used by hbtool daemon" if directive in _KNOWN_IGNORED else "is unknown"
                cfg.warnings.append(f"{source}:{number}: directive {words[0]!r} {kind}; ignored")
                continue
            if len(args) != 1:
                raise ValueError(f"'{directive}' takes exactly one value")
            if directive in seen:
                raise ValueError(f"'{directive}' set twice (first on line {seen[directive]})")
            seen[directive] = number
            _SINGLE[directive](cfg, args[0])
        except ValueError as err:
            raise ConfigError(source, number, str(err)) from None
    for directive, args, number in pending_media:
        try:
            if directive == "bcast":
                # `bcast eth0 eth1` is one medium per interface.
                cfg.media.extend(Medium("bcast", iface, port=cfg.udpport, line=number) for iface in args)
            else:
                cfg.media.append(_medium(directive, args, cfg.udpport, number))
        except ValueError as err:
            raise ConfigError(source, number, str(err)) from None
    _check(cfg, source, seen)
    if cfg.detector.accelerated:  # its defaults depend on keepalive, which may follow the line
        try:
            accelerated_times(cfg.detector, cfg.keepalive_ms / 1000)
        except ValueError as err:
            raise ConfigError(source, seen["detector"], str(err)) from None
    return cfg


def _set_time(attr: str) -> _Setter:
    def setter(cfg: HaConfig, value: str) -> None:
        setattr(cfg, attr, parse_time_ms(value))

    return setter


def _set_udpport(cfg: HaConfig, value: str) -> None:
    cfg.udpport = _port(value)


def _set_auto_failback(cfg: HaConfig, value: str) -> None:
    v = value.lower()
    if v in _BOOL_ON:
        cfg.auto_failback = True
    elif v in _BOOL_OFF:
        cfg.auto_failback = False
    else:
        # 'legacy' exists in Heartbeat but needs the old nice_failback semantics we do not model.
        raise ValueError(f"auto_failback {value!r}: expected on or off")


def _set_msgfmt(cfg: HaConfig, value: str) -> None:
    v = value.lower()
    if v not in ("classic", "netstring"):
        raise ValueError(f"msgfmt {value!r}: expected classic or netstring")
    cfg.msgfmt = "classic" if v == "classic" else "netstring"


_SINGLE: dict[str, _Setter] = {
    "keepalive": _set_time("keepalive_ms"),
    "deadtime": _set_time("deadtime_ms"),
    "warntime": _set_time("warntime_ms"),
    "initdead": _set_time("initdead_ms"),
    "udpport": _set_udpport,
    "auto_failback": _set_auto_failback,
    "msgfmt": _set_msgfmt,
}


def _check(cfg: HaConfig, source: str, seen: dict[str, int]) -> None:
    """Cross-directive rules Heartbeat enforces, reported on the line that breaks them."""
    if not cfg.nodes:
        raise ConfigError(source, None, "no 'node' line: list every cluster node")
    if not cfg.media:
        raise ConfigError(source, None, "no communication medium (bcast, mcast or ucast)")
    if cfg.deadtime_ms <= 2 * cfg.keepalive_ms:
        raise ConfigError(
            source, seen.get("deadtime", seen.get("keepalive")),
            f"deadtime ({cfg.deadtime_ms} ms) must be more than twice keepalive ({cfg.keepalive_ms} ms)",
        )
    if cfg.warntime_ms is not None and not cfg.keepalive_ms < cfg.warntime_ms <= cfg.deadtime_ms:
        raise ConfigError(
            source, seen["warntime"],
            f"warntime ({cfg.warntime_ms} ms) must be above keepalive and at most deadtime",
        )
    if cfg.initdead_ms is not None and cfg.initdead_ms < cfg.deadtime_ms:
        raise ConfigError(
            source, seen["initdead"],
            f"initdead ({cfg.initdead_ms} ms) must be at least deadtime ({cfg.deadtime_ms} ms)",
        )


_IPADDR = re.compile(r"^(?:(IPaddr2?)::)?([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)((?:/[^/]+)*)$")


def parse_resource(spec: str) -> IPAddrResource | AgentResource:
    """``IPaddr::A.B.C.D[/LEN[/IFACE]]``, ``IPaddr2::…`` or a bare address (Heartbeat's shorthand)."""
    m = _IPADDR.match(spec)
    if not m:
        if re.match(r"^IPaddr2?(::|$)", spec):
            raise ValueError(f"resource {spec!r}: expected IPaddr::A.B.C.D[/LEN[/IFACE]]")
        return parse_agent(spec)  # a resource.d script, init script or OCF agent
    address = _ipv4(m.group(2), "address")
    parts = [p for p in m.group(3).split("/") if p]
    prefixlen: int | None = None
    interface: str | None = None
    if parts:
        if not _small_number(parts[0]) or not 0 < int(parts[0]) <= 32:
            raise ValueError(f"resource {spec!r}: prefix length {parts[0]!r} is not 1..32")
        prefixlen = int(parts[0])
    if len(parts) > 1:
        interface = parts[1]
    if len(parts) > 3:
        raise ValueError(f"resource {spec!r}: too many '/' parts")
    return IPAddrResource(address, prefixlen, interface, spec)


def parse_haresources(text: str, nodes: list[str], source: str = "haresources") -> list[ResourceGroup]:
    """One group per line: ``home-node resource…``; a trailing backslash continues a line."""
    groups: list[ResourceGroup] = []
    joined: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            joined.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        joined.append((start, buffer.strip()))
    for number, line in joined:
        words = line.split()
        home = words[0]
        if home not in nodes:
            raise ConfigError(source, number, f"node {home!r} is not a 'node' in ha.cf")
        if len(words) < 2:
            raise ConfigError(source, number, f"node {home} has no resources on this line")
        try:
            resources = tuple(parse_resource(w) for w in words[1:])
        except ValueError as err:
            raise ConfigError(source, number, str(err)) from None
        groups.append(ResourceGroup(home, resources, number))
    if groups and len(nodes) > 2:
        raise ConfigError(source, None, "haresources works for 2-node clusters only (as in Heartbeat v1)")
    return groups


def load_config(directory: str | Path, *, insecure_authkeys: bool = False,
                init_dir: Path = DEFAULT_INIT_DIR, ocf_root: Path = DEFAULT_OCF_ROOT) -> ClusterConfig:
    """Read ``ha.cf``, ``authkeys`` and (optional) ``haresources`` from ``directory``.

    An ``authkeys`` that group or others may read or write is refused, as 3.0.6 refuses to
    start with one; ``insecure_authkeys`` (``hbtool daemon --insecure-authkeys``) downgrades
    that to a warning, for throw-away test directories only.
    """
    base = Path(directory)
    if not base.is_dir():
        raise ConfigError(str(base), None, "is not a directory")
    ha_path = base / "ha.cf"
    try:
        ha_text = ha_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(str(ha_path), None, f"cannot read: {exc.strerror}") from None
    ha = parse_ha_cf(ha_text, str(ha_path))
    try:
        keys = AuthKeys.load(base / "authkeys")
    except AuthKeysError as err:
        raise ConfigError(err.source, err.line, err.problem) from None
    if keys.insecure_mode and not insecure_authkeys:
        raise ConfigError(str(base / "authkeys"), None, "group or others may read or write it; "
                          "Heartbeat 3.0.6 refuses to start too (chmod 600 it, or --insecure-authkeys)")
    res_path = base / "haresources"
    groups: list[ResourceGroup] = []
    if res_path.exists():
        try:
            res_text = res_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(str(res_path), None, f"cannot read: {exc.strerror}") from None
        groups = parse_haresources(res_text, ha.nodes, str(res_path))
        groups = resolve_agents(groups, (base / "resource.d", *DEFAULT_RESOURCE_DIRS), init_dir,
                                ocf_root, str(res_path))
    groups = attach_checks(groups, ha.checks, str(ha_path))
    return ClusterConfig(ha, keys, groups, base)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def resolve_agents(groups: list[ResourceGroup], resource_dirs: tuple[Path, ...], init_dir: Path,
                   ocf_root: Path, source: str) -> list[ResourceGroup]:
    """Find each agent's program (resource.d, init directory, OCF), as Heartbeat looks them up;
    one that is nowhere is an error on its haresources line ("Cannot locate resource script")."""
    out = []
    for group in groups:
        found: list[IPAddrResource | AgentResource] = []
        for res in group.resources:
            if isinstance(res, AgentResource):
                try:
                    res = resolve(res, resource_dirs=resource_dirs, init_dir=init_dir,
                                  ocf_root=ocf_root, executable=_executable)
                except ValueError as err:
                    raise ConfigError(source, group.line, str(err)) from None
            found.append(res)
        out.append(replace(group, resources=tuple(found)))
    return out


def attach_checks(groups: list[ResourceGroup], checks: list[GroupCheck], source: str
                  ) -> list[ResourceGroup]:
    """Give each ``check`` line to the group one of whose resources it names."""
    out = list(groups)
    for chk in checks:
        at = [i for i, g in enumerate(out) if any(chk.key in (str(r), getattr(r, "address", None))
                                                  for r in g.resources)]
        if not at:
            raise ConfigError(source, chk.line, f"check: no haresources group has a resource "
                              f"{chk.key!r}")
        if out[at[0]].check is not None:
            raise ConfigError(source, chk.line, f"check: group {out[at[0]].name} has a check "
                              f"already (line {out[at[0]].check.line})")
        out[at[0]] = replace(out[at[0]], check=chk)
    return out
