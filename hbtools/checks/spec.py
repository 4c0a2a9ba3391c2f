"""What a negotiate check asks: parsed from ``URL [key=value ...]``, pure (no sockets).

ldirectord configured a check as a service type plus ``request``/``receive`` strings; here the
same facts are one URL (scheme = protocol, path = what to ask for) and a few ``key=value``
words, so one line says it in a daemon config and on the command line alike::

    http://198.18.0.100/health.html expect=node[12] status=200 timeout=2
    ftp://anonymous:me@198.18.0.1/pub/README expect=hello
    ldap://198.18.0.1/dc=example,dc=org?(uid=probe) expect=probe
    mysql://probe:secret@198.18.0.1/test query='SELECT 1' expect=^1$
    tcp://198.18.0.1:22

A bad spec raises :class:`CheckSpecError` with one line that says what is wrong.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

#: scheme -> (protocol, default port). Aliases are the names people write in URLs.
SCHEMES: dict[str, tuple[str, int | None]] = {
    "http": ("http", 80),
    "https": ("https", 443),
    "ftp": ("ftp", 21),
    "smtp": ("smtp", 25),
    "imap": ("imap", 143),
    "pop": ("pop", 110),
    "pop3": ("pop", 110),
    "ldap": ("ldap", 389),
    "mysql": ("mysql", 3306),
    "mariadb": ("mysql", 3306),
    "nntp": ("nntp", 119),
    "news": ("nntp", 119),
    "tcp": ("tcp", None),
}

PROTOCOLS = ("http", "https", "ftp", "smtp", "imap", "pop", "ldap", "mysql", "nntp", "tcp")

DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 300.0

#: key -> protocols it applies to (None: all).
OPTION_KEYS: dict[str, tuple[str, ...] | None] = {
    "expect": None,
    "timeout": None,
    "status": ("http", "https"),
    "vhost": ("http", "https"),
    "insecure": ("https",),
    "cafile": ("https",),
    "query": ("mysql", "ldap"),
}


class CheckSpecError(ValueError):
    """A check spec that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Check:
    """One negotiate check: whom to ask, what, how long to wait, and what answer is right.

    ``path`` is the protocol's "what": the URL path for HTTP, a file for FTP, a mailbox for IMAP,
    a base DN for LDAP, a database for MySQL, a newsgroup for NNTP. ``expect`` is a regular
    expression searched in the answer (body, file, banner, entries, rows).
    """

    protocol: str
    host: str
    port: int
    path: str = ""
    user: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    expect: str | None = None
    status: int | None = None
    query: str | None = None
    vhost: str | None = None
    insecure: bool = False
    cafile: str | None = None

    @property
    def target(self) -> str:
        """The check as a URL, without the password (safe to print and log)."""
        who = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.path.startswith("/") or not self.path else "/" + self.path
        return f"{self.protocol}://{who}{host}:{self.port}{path}"

    @property
    def expected_status(self) -> int:
        return self.status if self.status is not None else 200

    def with_options(self, **changes: object) -> Check:
        """A copy with some fields changed (e.g. a command-line ``--timeout``), validated."""
        return _validated(replace(self, **changes))  # type: ignore[arg-type]


def parse_check(text: str | list[str], *, defaults: dict[str, str] | None = None) -> Check:
    """``URL [key=value ...]`` (one string, shell-like quoting, or already split words)."""
    try:
        words = shlex.split(text) if isinstance(text, str) else list(text)
    except ValueError as exc:
        raise CheckSpecError(f"check spec: {exc}") from None
    if not words:
        raise CheckSpecError("check spec is empty: expected a URL such as http://198.18.0.100/")
    check = parse_url(words[0])
    options = dict(defaults or {})
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if not eq:
            raise CheckSpecError(f"check spec: {word!r} is not key=value")
        options[key] = value
    return apply_options(check, options)


def parse_url(url: str) -> Check:
    """The URL part of a spec: scheme, user, password, host, port and path."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(sorted(SCHEMES))
        raise CheckSpecError(f"check spec: unknown scheme {scheme or url!r} (known: {known})")
    protocol, default_port = SCHEMES[scheme]
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise CheckSpecError(f"check spec {url!r}: {exc}") from None
    if not host:
        raise CheckSpecError(f"check spec {url!r}: no host")
    port = port if port is not None else default_port
    if port is None or port == 0:
        raise CheckSpecError(f"check spec {url!r}: {protocol} needs a port (e.g. tcp://host:22)")
    path = unquote(parts.path)
    query: str | None = None
    if protocol in ("http", "https"):
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    elif protocol == "ldap":
        path = path.lstrip("/")
        query = unquote(parts.query) or None
    elif protocol in ("imap", "mysql", "nntp"):
        path = path.lstrip("/")
    elif protocol == "tcp" and path not in ("", "/"):
        raise CheckSpecError(f"check spec {url!r}: a tcp check has no path")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return _validated(Check(protocol, host, port, path=path, user=user, password=password,
                            query=query))


def apply_options(check: Check, options: dict[str, str]) -> Check:
    """``key=value`` words onto a parsed URL; unknown keys and misplaced ones are errors."""
    changes: dict[str, object] = {}
    for key, value in options.items():
        if key not in OPTION_KEYS:
            raise CheckSpecError(f"check spec: unknown key {key!r} (known: {', '.join(OPTION_KEYS)})")
        allowed = OPTION_KEYS[key]
        if allowed is not None and check.protocol not in allowed:
            raise CheckSpecError(f"check spec: {key}= does not apply to {check.protocol} "
                                 f"(only {', '.join(allowed)})")
        if key == "timeout":
            changes[key] = parse_seconds(value, "timeout")
        elif key == "status":
            if not re.fullmatch(r"[1-5][0-9][0-9]", value):
                raise CheckSpecError(f"check spec: status={value!r} is not an HTTP status code")
            changes[key] = int(value)
        elif key == "insecure":
            changes[key] = parse_bool(value, key)
        else:
            changes[key] = value
    return _validated(replace(check, **changes))  # type: ignore[arg-type]


def parse_seconds(value: str, what: str) -> float:
    """``2``, ``2.5``, ``2s`` or ``500ms`` as seconds, within (0, MAX_TIMEOUT]."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s)?", value.strip())
    if not m:
        raise CheckSpecError(f"check spec: {what}={value!r} is not a duration (e.g. 2, 2.5s, 500ms)")
    seconds = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if not 0 < seconds <= MAX_TIMEOUT:
        raise CheckSpecError(f"check spec: {what}={value!r} must be above 0 and at most "
                             f"{MAX_TIMEOUT:g} s")
    return seconds


def parse_bool(value: str, what: str) -> bool:
    lowered = value.lower()
    if lowered in ("yes", "true", "1", "on"):
        return True
    if lowered in ("no", "false", "0", "off"):
        return False
    raise CheckSpecError(f"check spec: {what}={value!r} is not yes/no")


def _validated(check: Check) -> Check:
    if check.protocol not in PROTOCOLS:
        raise CheckSpecError(f"check spec: unknown protocol {check.protocol!r}")
    if not 0 < check.timeout <= MAX_TIMEOUT:
        raise CheckSpecError(f"check spec: timeout must be above 0 and at most {MAX_TIMEOUT:g} s")
    if not 0 < check.port < 65536:
        raise CheckSpecError(f"check spec: port {check.port} out of range")
    if check.expect is not None:
        try:
            re.compile(check.expect)
        except re.error as exc:
            raise CheckSpecError(f"check spec: expect={check.expect!r} is not a regular "
                                 f"expression: {exc}") from None
    if any(c in (check.path + (check.query or "")) for c in "\r\n\x00"):
        raise CheckSpecError("check spec: the path or query holds a line break or NUL")
    return check
