"""Real service daemons from Debian packages, configured into a private directory.

The negotiate checks are only proven against the servers people run, so the tests start the
real ones: nginx, vsftpd, exim4, dovecot, slapd, MariaDB and leafnode (NNTP). Each function here writes a
minimal configuration below ``workdir`` (nothing under /etc is read or changed, so the
system instances and their configs do not matter) and returns a :class:`ServerSpec`: the argv
to run in the foreground (no shell, no daemonizing, so the caller owns the PID and stops it
by that PID), and the address and ports it will listen on. Running it is the caller's job:
``subprocess.Popen(spec.argv)`` on loopback, or ``Node.popen(spec.argv)`` inside a lab node.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServerSpec:
    """How to run one server: argv (foreground), where it listens, and what it holds."""

    name: str
    argv: list[str]
    host: str
    ports: dict[str, int]
    workdir: Path
    facts: dict[str, str] = field(default_factory=dict)


def free_port(host: str) -> int:
    """A TCP port nothing listens on at ``host`` right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_listening(host: str, port: int, *, timeout: float = 20.0,
                   proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None) -> None:
    """Until a TCP connect to host:port succeeds; RuntimeError if the server died or never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout} s")


def _dir(path: Path, owner: str | None = None, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owner is not None:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def self_signed_cert(workdir: Path, host: str) -> tuple[Path, Path]:
    """An EC certificate for ``host`` (IP or name, in subjectAltName), made by openssl."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    san = f"IP:{host}" if host.replace(".", "").isdigit() else f"DNS:{host}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=hbtools-test", "-addext",
                    f"subjectAltName={san}"], check=True, capture_output=True, timeout=30)
    return cert, key


def nginx(workdir: Path, host: str, *, pages: dict[str, str], port: int | None = None,
          tls: bool = False, single_process: bool = False) -> ServerSpec:
    """nginx serving ``pages`` (name -> text) from workdir/www; ``/status500`` answers 500.

    ``single_process``: no master/worker split (``master_process off``), so one PID is the
    whole server and killing it kills the service (a failover test's "service dies").
    """
    workdir = _dir(workdir)
    www = _dir(workdir / "www")
    for name, text in pages.items():
        _write(www / name, text)
    ports = {"http": port or free_port(host)}  # free_port: in the namespace we run in
    tls_server = ""
    if tls:
        cert, key = self_signed_cert(workdir, host)
        ports["https"] = free_port(host)
        tls_server = (f"  server {{ listen {host}:{ports['https']} ssl; root {www};\n"
                      f"    ssl_certificate {cert}; ssl_certificate_key {key};\n"
                      "    location = /status500 { return 500; } }\n")
    temp = _dir(workdir / "temp")
    conf = _write(workdir / "nginx.conf", (
        f"daemon off;\nmaster_process {'off' if single_process else 'on'};\n"
        "worker_processes 1;\nuser root;\n"
        f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n  default_type text/plain;\n"
        + "".join(f"  {kind}_temp_path {temp}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  server {{ listen {host}:{ports['http']}; root {www};\n"
        "    location = /status500 { return 500; } }\n"
        + tls_server + "}\n"))
    argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(workdir), "-e",
            str(workdir / "error.log"), "-c", str(conf)]
    facts = {"cafile": str(workdir / "cert.pem")} if tls else {}
    return ServerSpec("nginx", argv, host, ports, workdir, facts)


def vsftpd(workdir: Path, host: str, *, files: dict[str, str]) -> ServerSpec:
    """vsftpd, anonymous read-only, serving ``files`` from its anon root."""
    workdir = _dir(workdir)
    root = _dir(workdir / "ftp")
    for name, text in files.items():
        _write(root / name, text)
    _dir(workdir / "empty")
    port = free_port(host)
    conf = _write(workdir / "vsftpd.conf", "\n".join([
        "listen=YES", "listen_ipv6=NO", f"listen_address={host}", f"listen_port={port}",
        "background=NO", "anonymous_enable=YES", "no_anon_password=YES", f"anon_root={root}",
        "local_enable=NO", "write_enable=NO", f"secure_chroot_dir={workdir / 'empty'}",
        "seccomp_sandbox=NO", "xferlog_enable=NO", "ftpd_banner=hbtools-test FTP ready",
        "pasv_enable=YES", "port_enable=NO", "ftp_username=ftp", "nopriv_user=nobody",
        "dirmessage_enable=NO", ""]), 0o600)
    return ServerSpec("vsftpd", ["/usr/sbin/vsftpd", str(conf)], host, {"ftp": port}, workdir)


def exim(workdir: Path, host: str, *, banner: str) -> ServerSpec:
    """exim4 listening for SMTP (it accepts no mail: the check only talks)."""
    workdir = _dir(workdir)
    spool = _dir(workdir / "spool", "Debian-exim", 0o750)
    logs = _dir(workdir / "log", "Debian-exim", 0o750)
    port = free_port(host)
    conf = _write(workdir / "exim.conf", "\n".join([
        "primary_hostname = hbtools-test.invalid", f"daemon_smtp_ports = {port}",
        f"local_interfaces = {host}", f"spool_directory = {spool}",
        f"log_file_path = {logs}/%slog", f"pid_file_path = {logs}/exim.pid",
        f"smtp_banner = {banner}", "rfc1413_hosts =", "host_lookup =",
        "tls_advertise_hosts =", "keep_environment =",
        "begin acl", "begin routers", "begin transports", ""]))
    return ServerSpec("exim4", ["/usr/sbin/exim4", "-bdf", "-C", str(conf)], host,
                      {"smtp": port}, workdir)


def dovecot(workdir: Path, host: str, *, user: str, password: str) -> ServerSpec:
    """dovecot with IMAP and POP3 for one passwd-file user (mail owned by ``nobody``)."""
    workdir = _dir(workdir)
    nobody = pwd.getpwnam("nobody")
    home = _dir(workdir / "home" / user, "nobody", 0o700)
    for sub in ("cur", "new", "tmp"):
        _dir(home / "Maildir" / sub, "nobody", 0o700)
    _dir(workdir / "run")
    _dir(workdir / "state")
    passwd = _write(workdir / "passwd", f"{user}:{{PLAIN}}{password}\n", 0o640)
    os.chown(passwd, 0, pwd.getpwnam("dovecot").pw_gid)  # dovecot's auth process reads it
    ports = {"imap": free_port(host), "pop": free_port(host)}
    conf = _write(workdir / "dovecot.conf", "\n".join([
        f"base_dir = {workdir}/run", f"state_dir = {workdir}/state", f"listen = {host}",
        "protocols = imap pop3", "ssl = no", "disable_plaintext_auth = no",
        "auth_mechanisms = plain", "auth_failure_delay = 0", f"log_path = {workdir}/dovecot.log",
        f"first_valid_uid = {nobody.pw_uid}", f"first_valid_gid = {nobody.pw_gid}",
        "login_greeting = hbtools-test dovecot ready",
        f"mail_location = maildir:{workdir}/home/%u/Maildir",
        f"passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {passwd}\n}}",
        f"userdb {{\n  driver = static\n  args = uid={nobody.pw_uid} gid={nobody.pw_gid} "
        f"home={workdir}/home/%u\n}}",
        f"service imap-login {{\n  inet_listener imap {{\n    port = {ports['imap']}\n  }}\n"
        "  inet_listener imaps {\n    port = 0\n  }\n}",
        f"service pop3-login {{\n  inet_listener pop3 {{\n    port = {ports['pop']}\n  }}\n"
        "  inet_listener pop3s {\n    port = 0\n  }\n}", ""]))
    return ServerSpec("dovecot", ["/usr/sbin/dovecot", "-F", "-c", str(conf)], host, ports,
                      workdir)


LDAP_SUFFIX = "dc=example,dc=org"


def slapd(workdir: Path, host: str, *, ldif: str) -> ServerSpec:
    """OpenLDAP slapd (mdb back end) loaded with ``ldif`` by slapadd before it starts."""
    workdir = _dir(workdir)
    db = _dir(workdir / "db", mode=0o700)
    port = free_port(host)
    conf = _write(workdir / "slapd.conf", "\n".join([
        "include /etc/ldap/schema/core.schema", "include /etc/ldap/schema/cosine.schema",
        "include /etc/ldap/schema/inetorgperson.schema", f"pidfile {workdir}/slapd.pid",
        "modulepath /usr/lib/ldap", "moduleload back_mdb", "database mdb",
        f'suffix "{LDAP_SUFFIX}"', f'rootdn "cn=admin,{LDAP_SUFFIX}"', "rootpw hbtools-secret",
        f"directory {db}", "maxsize 10485760", ""]))
    data = _write(workdir / "data.ldif", ldif)
    subprocess.run(["/usr/sbin/slapadd", "-f", str(conf), "-l", str(data)], check=True,
                   capture_output=True, timeout=60)
    argv = ["/usr/sbin/slapd", "-d", "0", "-f", str(conf), "-h", f"ldap://{host}:{port}/"]
    return ServerSpec("slapd", argv, host, {"ldap": port}, workdir,
                      {"rootdn": f"cn=admin,{LDAP_SUFFIX}", "rootpw": "hbtools-secret"})


def mariadb(workdir: Path, host: str) -> ServerSpec:
    """MariaDB with a fresh data directory (mariadb-install-db); SQL set-up is the caller's."""
    workdir = _dir(workdir)
    data = _dir(workdir / "data", "mysql", 0o750)
    subprocess.run(["/usr/bin/mariadb-install-db", "--no-defaults", f"--datadir={data}",
                    "--user=mysql", "--auth-root-authentication-method=socket",
                    "--skip-test-db"], check=True, capture_output=True, timeout=120)
    port = free_port(host)
    run = _dir(workdir / "run", "mysql", 0o755)  # the server (as mysql) makes its socket here
    sock = run / "mysqld.sock"
    argv = ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql",
            f"--socket={sock}", f"--port={port}", f"--bind-address={host}",
            f"--pid-file={run}/mysqld.pid", f"--log-error={workdir}/error.log",
            "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--skip-name-resolve"]
    return ServerSpec("mariadb", argv, host, {"mysql": port}, workdir, {"socket": str(sock)})


def mariadb_sql(spec: ServerSpec, sql: str) -> str:
    """Run SQL as root over the server's Unix socket with the real ``mariadb`` client."""
    out = subprocess.run(["/usr/bin/mariadb", "--no-defaults", f"--socket={spec.facts['socket']}",
                          "-u", "root", "-N", "-B", "-e", sql], check=True, capture_output=True,
                         text=True, timeout=30)
    return out.stdout


LEAFNODE_FQDN = "news.hbtools-lab.org"
"""leafnode refuses to answer without a "globally unique" FQDN (it rejects .test, .invalid and
bare host names); nothing resolves it here (no DNS in the lab), it only has to look unique."""


def leafnode(workdir: Path, port: int = 119) -> tuple[ServerSpec, tuple[tuple[Path, str], ...]]:
    """leafnode (an inetd-style NNTP server) behind ``socat`` for a lab node with an anchor:
    returns the spec and the bind mounts the anchor needs (its config dir and news spool are
    fixed paths, /etc/news/leafnode and /var/spool/news, so they come from ``workdir``).
    socat's ``nofork`` hands leafnode the TCP socket itself: it checks its peer's address."""
    workdir = _dir(workdir)
    etc, spool = _dir(workdir / "etc"), _dir(workdir / "spool", "news", 0o775)
    config = _write(etc / "config", f"server = 127.0.0.1\nhostname = {LEAFNODE_FQDN}\n", 0o640)
    os.chown(config, 0, pwd.getpwnam("news").pw_gid)
    for sub in ("leaf.node", "interesting.groups", "out.going", "failed.postings", "message.id",
                "temp.files"):
        _dir(spool / sub, "news", 0o775)
    argv = ["socat", f"TCP-LISTEN:{port},reuseaddr,fork", "EXEC:/usr/sbin/leafnode,nofork"]
    spec = ServerSpec("leafnode", argv, "127.0.0.1", {"nntp": port}, workdir)
    return spec, ((etc, "/etc/news/leafnode"), (spool, "/var/spool/news"))
