"""Running a negotiate check: the standard library's and well-kept packages' clients, no own.

Every client gets the check's timeout on its socket, so a server that accepts and then says
nothing ends the check after ``timeout`` per step; an answer that is right but arrives after
the timeout in total is still a failure, so "ok" always means "right and in time". Whatever the
server said is shown escaped (:func:`shown`): a check's reason ends up in logs and terminals.
"""

from __future__ import annotations

import contextlib
import ftplib
import http.client
import imaplib
import math
import poplib
import re
import smtplib
import socket
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from hbtools.checks.spec import Check

#: At most this much of a body, file or listing is read to match ``expect`` against.
MAX_ANSWER = 256 * 1024
#: LDAP entries / MySQL rows looked at.
MAX_ROWS = 20


@dataclass(frozen=True)
class CheckResult:
    """The outcome: ``ok``, a one-line ``reason`` (already escaped), seconds taken."""

    ok: bool
    reason: str
    latency: float
    target: str

    def line(self) -> str:
        word = "ok" if self.ok else "failed"
        return f"{word} {self.target} {self.latency * 1000:.1f} ms: {self.reason}"


class CheckFailed(Exception):
    """The server answered, but not what the check expects (message already escaped)."""


def shown(text: str | bytes, limit: int = 160) -> str:
    """Server text made safe for one line: control and non-ASCII characters escaped, cut."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = ascii(text)[1:-1]
    return out if len(out) <= limit else out[:limit] + "…"


def run_check(check: Check, *, clock: Callable[[], float] = time.monotonic) -> CheckResult:
    """Ask once; never raises for anything the server or the network does."""
    start = clock()
    try:
        ok_reason = PROTOCOL_RUNNERS[check.protocol](check)
    except CheckFailed as exc:
        return CheckResult(False, str(exc), clock() - start, check.target)
    except Exception as exc:  # noqa: BLE001 - every client error becomes a reason
        return CheckResult(False, describe_error(exc, check), clock() - start, check.target)
    latency = clock() - start
    if latency > check.timeout:
        return CheckResult(False, f"answered after {latency:.2f} s, past the {check.timeout:g} s "
                           f"timeout ({ok_reason})", latency, check.target)
    return CheckResult(True, ok_reason, latency, check.target)


def describe_error(exc: BaseException, check: Check) -> str:
    """One line for a client exception, the server's words escaped."""
    if _caused_by(exc, (TimeoutError, socket.timeout), "timed out"):
        return f"no answer within {check.timeout:g} s (timeout)"
    if _caused_by(exc, (ConnectionRefusedError,), "Connection refused"):
        return "connection refused (nothing listening)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {shown(exc.verify_message or str(exc))}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {shown(exc.reason or str(exc))}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError
                  | http.client.RemoteDisconnected):
        return "connection closed by the server before it answered"
    if isinstance(exc, OSError) and exc.strerror:
        return shown(exc.strerror)
    return f"{check.protocol} error ({type(exc).__name__}): {shown(str(exc))}"


def _caused_by(exc: BaseException, types: tuple[type[BaseException], ...], words: str) -> bool:
    """Clients that wrap socket errors (PyMySQL, ldap3) keep the cause or at least its words."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, types) or words in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _expect(check: Check, answer: str, what: str) -> str:
    """Match ``expect`` in the answer; the ok-reason says what matched."""
    if check.expect is None:
        return ""
    if re.search(check.expect, answer, re.MULTILINE) is None:
        raise CheckFailed(f"{what} does not match {shown(check.expect)!s}: {shown(answer, 80)}")
    return f", {what} matches {shown(check.expect)}"


# -- HTTP / HTTPS (http.client)


def tls_context(check: Check) -> ssl.SSLContext:
    """Verified by default (system CAs or ``cafile``); ``insecure=yes`` as ldirectord does."""
    ctx = ssl.create_default_context(cafile=check.cafile)
    if check.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _http(check: Check) -> str:
    conn: http.client.HTTPConnection
    if check.protocol == "https":
        conn = http.client.HTTPSConnection(check.host, check.port, timeout=check.timeout,
                                           context=tls_context(check))
    else:
        conn = http.client.HTTPConnection(check.host, check.port, timeout=check.timeout)
    try:
        conn.request("GET", check.path or "/", headers={
            "Host": check.vhost or check.host, "User-Agent": "hbtool-check",
            "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(MAX_ANSWER).decode("utf-8", "replace")
    finally:
        conn.close()
    if resp.status != check.expected_status:
        raise CheckFailed(f"HTTP {resp.status} {shown(resp.reason, 40)} "
                          f"(expected {check.expected_status})")
    return f"HTTP {resp.status}" + _expect(check, body, "body")


# -- FTP (ftplib)


def _ftp(check: Check) -> str:
    ftp = ftplib.FTP(timeout=check.timeout)
    try:
        welcome = ftp.connect(check.host, check.port)
        ftp.login(check.user or "anonymous", check.password or "hbtool@")
        path = check.path
        if path and path != "/":
            chunks: list[bytes] = []

            def keep(block: bytes) -> None:
                chunks.append(block)
                if sum(map(len, chunks)) > MAX_ANSWER:
                    raise CheckFailed(f"file {shown(path)} is larger than {MAX_ANSWER} bytes")

            ftp.retrbinary(f"RETR {path}", keep)
            text = b"".join(chunks).decode("utf-8", "replace")
            return f"retrieved {shown(path)}" + _expect(check, text, "file")
        ftp.voidcmd("NOOP")
        return "logged in" + _expect(check, welcome, "banner")
    finally:
        with contextlib.suppress(Exception):
            ftp.quit()
        ftp.close()


# -- SMTP (smtplib)


def _smtp(check: Check) -> str:
    # local_hostname given: smtplib would otherwise ask DNS for our FQDN (can hang).
    smtp = smtplib.SMTP(timeout=check.timeout, local_hostname="hbtool-check.invalid")
    try:
        code, banner = smtp.connect(check.host, check.port)
        ecode, _ = smtp.ehlo()
        if not 200 <= ecode <= 299:
            hcode, _ = smtp.helo()
            if not 200 <= hcode <= 299:
                raise CheckFailed(f"HELO refused with {hcode}")
        ncode, _ = smtp.noop()
        if ncode != 250:
            raise CheckFailed(f"NOOP answered {ncode}")
        return f"SMTP {code}" + _expect(check, banner.decode("utf-8", "replace"), "banner")
    finally:
        with contextlib.suppress(Exception):
            smtp.quit()
        smtp.close()


# -- IMAP (imaplib)


def _imap(check: Check) -> str:
    imap = imaplib.IMAP4(check.host, check.port, timeout=check.timeout)
    try:
        welcome = imap.welcome.decode("utf-8", "replace")
        said = "greeted"
        if check.user:
            imap.login(check.user, check.password or "")
            said = "logged in"
            if check.path:
                typ, data = imap.select(_imap_mailbox(check.path), readonly=True)
                if typ != "OK":
                    raise CheckFailed(f"SELECT {shown(check.path)}: {shown(repr(data), 80)}")
                said += f", selected {shown(check.path)} ({shown(data[0] or b'?', 20)} messages)"
        return said + _expect(check, welcome, "banner")
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


def _imap_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- POP3 (poplib)


def _pop(check: Check) -> str:
    pop = poplib.POP3(check.host, check.port, timeout=check.timeout)
    try:
        welcome = pop.getwelcome().decode("utf-8", "replace")
        said = "greeted"
        if check.user:
            pop.user(check.user)
            pop.pass_(check.password or "")
            count, size = pop.stat()
            said = f"logged in, {count} messages"
        return said + _expect(check, welcome, "banner")
    finally:
        with contextlib.suppress(Exception):
            pop.quit()
        with contextlib.suppress(Exception):
            pop.close()


# -- NNTP (nntplib: in the standard library up to Python 3.12)


def _nntp(check: Check) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import nntplib
    news = nntplib.NNTP(check.host, check.port, timeout=check.timeout, readermode=True,
                        usenetrc=False)
    try:
        welcome = news.getwelcome()
        said = "greeted"
        if check.path:
            _resp, count, _first, _last, name = news.group(check.path)
            said = f"group {shown(name)} has {count} articles"
        return said + _expect(check, welcome, "banner")
    finally:
        with contextlib.suppress(Exception):
            news.quit()


# -- LDAP (ldap3)


def _ldap(check: Check) -> str:
    with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 has deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        import ldap3

    server = ldap3.Server(check.host, port=check.port, connect_timeout=check.timeout,
                          get_info=ldap3.NONE)
    # ldap3 sets SO_RCVTIMEO from receive_timeout and wants whole seconds there; the total
    # time is still held to check.timeout by run_check.
    conn = ldap3.Connection(server, user=check.user, password=check.password,
                            receive_timeout=math.ceil(check.timeout), raise_exceptions=False,
                            auto_bind=ldap3.AUTO_BIND_NONE)
    try:
        conn.open()
        if not conn.bind():
            raise CheckFailed(f"bind refused: {shown(conn.result.get('description', '?'))} "
                              f"{shown(conn.result.get('message', ''), 60)}".rstrip())
        base = check.path
        scope = ldap3.SUBTREE if base else ldap3.BASE
        found = conn.search(base, check.query or "(objectClass=*)", search_scope=scope,
                            attributes=ldap3.ALL_ATTRIBUTES, size_limit=MAX_ROWS)
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if not found or not entries:
            desc = conn.result.get("description", "no entries")
            raise CheckFailed(f"search {shown(base or 'root DSE')} found nothing ({shown(desc)})")
        text = "\n".join(f"dn: {e['dn']}\n" + "\n".join(
            f"{k}: {v}" for k, vals in e.get("attributes", {}).items()
            for v in (vals if isinstance(vals, list) else [vals])) for e in entries)
        return f"{len(entries)} entries" + _expect(check, text, "entries")
    finally:
        with contextlib.suppress(Exception):
            conn.unbind()


# -- MySQL / MariaDB (PyMySQL)


def _mysql(check: Check) -> str:
    import pymysql

    conn = pymysql.connect(host=check.host, port=check.port, user=check.user or "",
                           password=check.password or "", database=check.path or None,
                           connect_timeout=check.timeout, read_timeout=check.timeout,
                           write_timeout=check.timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(check.query or "SELECT 1")
            rows = cur.fetchmany(MAX_ROWS)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    if not rows:
        raise CheckFailed("the query returned no rows")
    text = "\n".join("\t".join("NULL" if v is None else str(v) for v in row) for row in rows)
    return f"{len(rows)} rows" + _expect(check, text, "rows")


# -- plain TCP


def _tcp(check: Check) -> str:
    with socket.create_connection((check.host, check.port), timeout=check.timeout) as sock:
        if check.expect is None:
            return "connected"
        # A banner protocol with no client of its own: read until the regex matches.
        got = b""
        while len(got) < MAX_ANSWER:
            block = sock.recv(4096)
            if not block:
                break
            got += block
            if re.search(check.expect, got.decode("utf-8", "replace"), re.MULTILINE):
                break
        return "connected" + _expect(check, got.decode("utf-8", "replace"), "banner")


PROTOCOL_RUNNERS: dict[str, Callable[[Check], str]] = {
    "http": _http, "https": _http, "ftp": _ftp, "smtp": _smtp, "imap": _imap, "pop": _pop,
    "nntp": _nntp, "ldap": _ldap, "mysql": _mysql, "tcp": _tcp,
}
