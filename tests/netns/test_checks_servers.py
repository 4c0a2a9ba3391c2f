"""Negotiate checks against the real servers from Debian packages, started here on loopback.

Each test starts its server (its own config in a private directory, a fresh loopback port),
checks that the right question passes, that wrong answers fail with a reason naming what was
wrong, and that the check fails with "connection refused" once the server is stopped by PID.
The expected strings are the ones written into the servers' configs and data (banners, pages,
files, LDAP entries, SQL rows), not anything the check code produces. The hang case (a socket that
listens but never answers) is in tests/test_checks.py for every protocol.

Needs root (dovecot, vsftpd and mariadb switch users), hence the ``netns`` marker's root gate.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from policy import require_tools

from hbtools.checks import parse_check, run_check
from hbtools.lab import servers

pytestmark = pytest.mark.netns

#: A loopback address of our own (any 127/8 address works on lo), so nothing of the system's or
#: another test run's is in the way.
HOST = f"127.18.{os.getpid() % 200 + 1}.{os.getpid() % 7 + 1}"


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Servers drop to their own users, who must be able to reach their files: 0755, not the 0700
    # of pytest's tmp_path.
    path = Path(tempfile.mkdtemp(prefix="hbtools-check-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Running:
    """A server process in its own process group, stopped by its PID (group) whatever happens."""

    def __init__(self, spec: servers.ServerSpec) -> None:
        self.spec = spec
        log = open(spec.workdir / f"{spec.name}.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            for port in spec.ports.values():
                servers.wait_listening(spec.host, port, proc=self.proc)
        except BaseException:
            self.stop()
            out = (spec.workdir / f"{spec.name}.out").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{spec.name} did not start: {out}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # children left in the group (nginx workers, dovecot services): by group id = our PID
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ask(spec: str) -> tuple[bool, str]:
    result = run_check(parse_check(spec))
    return result.ok, result.reason


def assert_ok(spec: str) -> str:
    ok, reason = ask(spec)
    assert ok, f"{spec}: {reason}"
    return reason


def assert_fails(spec: str, *words: str) -> str:
    ok, reason = ask(spec)
    assert not ok, f"{spec} passed: {reason}"
    for word in words:
        assert word in reason, f"{spec}: {word!r} not in {reason!r}"
    return reason


def assert_stopped(server: Running, spec: str) -> None:
    server.stop()
    assert_fails(spec, "connection refused")


def test_http_and_https_nginx(workdir: Path) -> None:
    require_tools("nginx", "openssl")
    spec = servers.nginx(workdir, HOST, pages={"index.html": "hello from node-A\n",
                                               "health.txt": "status: green\n"}, tls=True)
    http, https, ca = spec.ports["http"], spec.ports["https"], spec.facts["cafile"]
    with Running(spec) as server:
        assert "HTTP 200" in assert_ok(f"http://{HOST}:{http}/ expect=node-A")
        assert_ok(f"http://{HOST}:{http}/health.txt expect=^status:.green$")
        assert_fails(f"http://{HOST}:{http}/ expect=node-B", "does not match", "node-A")
        assert_fails(f"http://{HOST}:{http}/missing.html", "HTTP 404", "expected 200")
        assert_fails(f"http://{HOST}:{http}/status500", "HTTP 500")
        assert_ok(f"http://{HOST}:{http}/missing.html status=404")
        # HTTPS: trusted through the self-made certificate, refused without it, or insecure
        assert_ok(f"https://{HOST}:{https}/ expect=node-A cafile={ca}")
        assert_fails(f"https://{HOST}:{https}/ expect=node-A", "certificate not accepted")
        assert_ok(f"https://{HOST}:{https}/ expect=node-A insecure=yes")
        assert_fails(f"https://{HOST}:{https}/status500 cafile={ca}", "HTTP 500")
        # plain TCP against the same server
        assert_ok(f"tcp://{HOST}:{http}")
        assert_stopped(server, f"http://{HOST}:{http}/")
        assert_fails(f"https://{HOST}:{https}/ cafile={ca}", "connection refused")
        assert_fails(f"tcp://{HOST}:{http}", "connection refused")


def test_ftp_vsftpd(workdir: Path) -> None:
    require_tools("/usr/sbin/vsftpd")
    spec = servers.vsftpd(workdir, HOST, files={"hello.txt": "hello over ftp\n"})
    port = spec.ports["ftp"]
    with Running(spec) as server:
        assert_ok(f"ftp://{HOST}:{port}/ expect=hbtools-test")
        assert "retrieved" in assert_ok(f"ftp://{HOST}:{port}/hello.txt expect=hello.over")
        assert_fails(f"ftp://{HOST}:{port}/hello.txt expect=goodbye", "does not match")
        assert_fails(f"ftp://{HOST}:{port}/missing.txt", "550")
        assert_fails(f"ftp://{HOST}:{port}/ expect=ProFTPD", "banner does not match")
        assert_stopped(server, f"ftp://{HOST}:{port}/")


def test_smtp_exim(workdir: Path) -> None:
    require_tools("/usr/sbin/exim4")
    spec = servers.exim(workdir, HOST, banner="hbtools-test ESMTP exim")
    port = spec.ports["smtp"]
    with Running(spec) as server:
        assert "SMTP 220" in assert_ok(f"smtp://{HOST}:{port} expect=hbtools-test")
        assert_fails(f"smtp://{HOST}:{port} expect=Postfix", "banner does not match", "exim")
        assert_stopped(server, f"smtp://{HOST}:{port}")


def test_imap_and_pop_dovecot(workdir: Path) -> None:
    require_tools("/usr/sbin/dovecot")
    spec = servers.dovecot(workdir, HOST, user="probe", password="pw-ok")
    imap, pop = spec.ports["imap"], spec.ports["pop"]
    with Running(spec) as server:
        assert_ok(f"imap://{HOST}:{imap} expect=hbtools-test")
        assert "selected INBOX" in assert_ok(f"imap://probe:pw-ok@{HOST}:{imap}/INBOX")
        assert_fails(f"imap://probe:wrong@{HOST}:{imap}/INBOX", "imap error",
                     "AUTHENTICATIONFAILED")
        assert_fails(f"imap://probe:pw-ok@{HOST}:{imap}/NoSuchBox", "SELECT NoSuchBox")
        assert "0 messages" in assert_ok(f"pop://probe:pw-ok@{HOST}:{pop} expect=hbtools-test")
        assert_fails(f"pop://probe:wrong@{HOST}:{pop}", "pop error", "ERR")
        assert_fails(f"pop://{HOST}:{pop} expect=Cyrus", "banner does not match")
        assert_stopped(server, f"imap://{HOST}:{imap}")
        assert_fails(f"pop://{HOST}:{pop}", "connection refused")


LDIF = """\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: hbtools test

dn: uid=probe,dc=example,dc=org
objectClass: inetOrgPerson
uid: probe
cn: Probe Entry
sn: Health
"""


def test_ldap_slapd(workdir: Path) -> None:
    require_tools("/usr/sbin/slapd", "/usr/sbin/slapadd")
    spec = servers.slapd(workdir, HOST, ldif=LDIF)
    port, base = spec.ports["ldap"], servers.LDAP_SUFFIX
    root = f"{spec.facts['rootdn'].replace('=', '%3D').replace(',', '%2C')}"
    with Running(spec) as server:
        assert_ok(f"ldap://{HOST}:{port}/{base}?(uid=probe) expect='cn: Probe Entry'")
        assert_fails(f"ldap://{HOST}:{port}/{base}?(uid=nobody)", "found nothing")
        assert_fails(f"ldap://{HOST}:{port}/{base}?(uid=probe) expect=Other", "does not match")
        assert_ok(f"ldap://{root}:{spec.facts['rootpw']}@{HOST}:{port}/{base}?(uid=probe)")
        assert_fails(f"ldap://{root}:wrong@{HOST}:{port}/{base}", "bind refused",
                     "invalidCredentials")
        assert_stopped(server, f"ldap://{HOST}:{port}/{base}")


def test_mysql_mariadb(workdir: Path) -> None:
    require_tools("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db")
    spec = servers.mariadb(workdir, HOST)
    port = spec.ports["mysql"]
    with Running(spec) as server:
        servers.mariadb_sql(spec, "CREATE DATABASE hbt; CREATE TABLE hbt.t (v VARCHAR(20));"
                                  "INSERT INTO hbt.t VALUES ('alive');"
                                  "CREATE USER 'probe'@'%' IDENTIFIED BY 'pw-ok';"
                                  "GRANT SELECT ON hbt.* TO 'probe'@'%';")
        url = f"mysql://probe:pw-ok@{HOST}:{port}/hbt"
        assert "1 rows" in assert_ok(f"{url} query='SELECT v FROM t' expect=^alive$")
        assert_ok(url)
        assert_fails(f"{url} query='SELECT v FROM t WHERE v = \"dead\"'", "no rows")
        assert_fails(f"{url} query='SELECT v FROM t' expect=^dead$", "does not match", "alive")
        assert_fails(f"mysql://probe:wrong@{HOST}:{port}/hbt", "Access denied")
        assert_stopped(server, url)
