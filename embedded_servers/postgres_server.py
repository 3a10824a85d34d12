"""The embedded PostgreSQL: the ``pgserver`` wheel's binaries, on a Unix socket.

Clients authenticate with a password (SCRAM) even on the socket: the socket
directory is private too, but a password keeps any other local user out
whatever the file modes, and root's own socket directory must stay reachable
for the service.
"""

from __future__ import annotations

import functools
import os
import pwd
import signal
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

from embedded_servers.process import (
    Child,
    EmbeddedServerError,
    package_dir,
    private_log,
    socket_answers,
    spawn,
    tail,
    write_private,
)

POSTGRES_DIR = "postgres"
POSTGRES_LOG = "postgres.log"
PG_SOCKET_PORT = 5432  # only names the socket file: .s.PGSQL.5432
DATABASE_NAME = "ussd"
PG_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root the server runs as this system user.
PG_SYSTEM_USER = "ussd-postgres"
PG_BIN = package_dir("pgserver") / "pginstall" / "bin"
# Written at every start, so a data directory made when this was "trust" is closed too.
PG_HBA = (
    "# Written by ussd-service at each start: Unix socket only, password required.\n"
    "local all all scram-sha-256\n"
)
_INITDB_PASSWORD_FILE = ".initdb-password"  # noqa: S105 - a file name


def postgres_url(socket_dir: Path, database: str, password: str | None = None) -> str:
    """A libpq URL for ``database`` on the server listening in ``socket_dir``."""
    host = quote(str(socket_dir), safe="")
    userinfo = f"{PG_SUPERUSER}:{quote(password, safe='')}" if password else PG_SUPERUSER
    return f"postgresql://{userinfo}@/{database}?host={host}"


@functools.cache
def postgres_user() -> pwd.struct_passwd:
    """The unprivileged user that runs PostgreSQL when we are root (created if missing)."""
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        useradd = ["/usr/sbin/useradd", "--system", "--no-create-home"]
        subprocess.run(
            [*useradd, "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def make_traversable(path: Path) -> None:
    """Let the PostgreSQL user walk down to ``path`` (adds o+x to each parent)."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)


def launch_postgres(
    data_dir: Path, socket_dir: Path, secret: str, *, durable: bool, new_secret: bool
) -> Child | None:
    """Start PostgreSQL in ``data_dir`` (initdb on first use); None if one already answers.

    ``new_secret``: the secret was just made, so an existing cluster gets it as
    its superuser's password before it starts.
    """
    sock = socket_dir / f".s.PGSQL.{PG_SOCKET_PORT}"
    if socket_answers(sock):
        return None
    pgdata = data_dir / POSTGRES_DIR
    user = postgres_user() if os.geteuid() == 0 else None
    if user is not None:
        make_traversable(PG_BIN)
        make_traversable(data_dir)
    pgdata.mkdir(exist_ok=True)
    if user is not None:
        os.chown(pgdata, user.pw_uid, user.pw_gid)
    pgdata.chmod(0o700)
    log = data_dir / POSTGRES_LOG
    private_log(log, user)
    hba = pgdata / "pg_hba.conf"
    if not (pgdata / "PG_VERSION").exists():
        _initdb(data_dir, pgdata, log, user, secret)
    elif new_secret or hba.read_text() != PG_HBA:
        _set_password(pgdata, log, user, secret)
    write_private(hba, PG_HBA, user)
    switch = "on" if durable else "off"
    argv = [
        str(PG_BIN / "postgres"),
        "-D", str(pgdata),
        "-k", str(socket_dir),
        "-c", "unix_socket_permissions=0700",
        "-c", "listen_addresses=",
        "-c", f"port={PG_SOCKET_PORT}",
        "-c", "max_connections=200",
        "-c", f"fsync={switch}",
        "-c", f"synchronous_commit={switch}",
        "-c", f"full_page_writes={switch}",
    ]  # fmt: skip
    # SIGINT is PostgreSQL's "fast shutdown": roll back clients, checkpoint, exit.
    return spawn("postgres", argv, log, signal.SIGINT, lambda: _ready(pgdata, sock), as_user=user)


def _ready(pgdata: Path, sock: Path) -> bool:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready" and socket_answers(sock)


def _initdb(
    data_dir: Path, pgdata: Path, log: Path, user: pwd.struct_passwd | None, secret: str
) -> None:
    # initdb wants an empty directory: the password file sits beside it, briefly.
    password_file = data_dir / _INITDB_PASSWORD_FILE
    write_private(password_file, secret + "\n", user)
    argv = [
        str(PG_BIN / "initdb"),
        "-D", str(pgdata),
        "-U", PG_SUPERUSER,
        f"--pwfile={password_file}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            check=False,
            cwd=pgdata,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    finally:
        password_file.unlink(missing_ok=True)
    if result.returncode != 0:
        log.write_bytes(result.stdout + result.stderr)
        raise EmbeddedServerError(f"initdb failed with code {result.returncode}:\n{tail(log)}")


def _set_password(pgdata: Path, log: Path, user: pwd.struct_passwd | None, secret: str) -> None:
    """Give the superuser ``secret`` in single-user mode (no login needed, nothing listening)."""
    argv = [str(PG_BIN / "postgres"), "--single", "-D", str(pgdata), "postgres"]
    result = subprocess.run(
        argv,
        input=f"ALTER ROLE {PG_SUPERUSER} PASSWORD '{secret}';\n".encode(),
        capture_output=True,
        check=False,
        cwd=pgdata,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user else None,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or b"ERROR" in output:
        with log.open("ab") as handle:
            handle.write(output)
        raise EmbeddedServerError(
            f"setting the PostgreSQL password failed (code {result.returncode}):\n{tail(log)}"
        )


def ensure_database(socket_dir: Path, secret: str) -> None:
    """Create the service's database on first start."""
    psql = [
        str(PG_BIN / "psql"),
        "-h", str(socket_dir),
        "-U", PG_SUPERUSER,
        "-d", "postgres",
        "-v", "ON_ERROR_STOP=1",
        "-w",
        "-tA",
    ]  # fmt: skip
    # The password goes in the environment, which other users cannot read (argv they can).
    env = {**os.environ, "PGPASSWORD": secret}

    def run(sql: str) -> str:
        result = subprocess.run(
            [*psql, "-c", sql], capture_output=True, check=False, text=True, env=env
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    exists = run(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'")  # noqa: S608 - a constant
    if exists != "1":
        run(f'CREATE DATABASE "{DATABASE_NAME}"')
