"""Start, join, restart and stop the embedded Redis and PostgreSQL of a data directory."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from embedded_servers.postgres_server import (
    DATABASE_NAME,
    ensure_database,
    launch_postgres,
    postgres_url,
    postgres_user,
)
from embedded_servers.process import (
    Child,
    EmbeddedServerError,
    stop_child,
    wait_until_ready,
)
from embedded_servers.redis_server import REDIS_SOCKET, launch_redis

SOCKET_DIR = "run"
LOCK_FILE = ".servers.lock"
# The password of both servers, readable by the user that runs them alone.
SECRET_FILE = ".servers.secret"  # noqa: S105 - a file name
STOP_TIMEOUT_S = 20.0
# sun_path is 108 bytes on Linux; keep a margin for the socket file name.
MAX_SOCKET_DIR_LEN = 90
REDIS = "redis"
POSTGRES = "postgres"


@dataclass(frozen=True)
class ServerUrls:
    """Where clients connect to the embedded servers (the URLs carry the secret)."""

    redis_url: str
    database_url: str
    postgres_socket_dir: Path
    secret: str = field(default="", repr=False)

    def database_url_for(self, database: str) -> str:
        """The URL of another database on the same PostgreSQL server."""
        return postgres_url(self.postgres_socket_dir, database, self.secret)


class EmbeddedServers:
    """Starts (or joins) Redis and PostgreSQL in ``data_dir``; stops what it started.

    ``durable=False`` turns off fsync in PostgreSQL and the append-only file in
    Redis; the test suite uses it because its data is thrown away. ``redis``
    and ``postgres`` choose which servers to run (the other may be external).
    """

    def __init__(
        self, data_dir: Path, *, durable: bool = True, redis: bool = True, postgres: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.durable = durable
        self.with_redis = redis
        self.with_postgres = postgres
        self._owned: dict[str, Child] = {}
        self.urls: ServerUrls | None = None

    # -- public ---------------------------------------------------------------

    def start(self) -> ServerUrls:
        """Join running servers in ``data_dir`` or start them; return their URLs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            secret, new_secret = self._secret()
            socket_dir = self._socket_dir()
            try:
                if self.with_redis:
                    self._launch(REDIS, socket_dir, secret, new_secret=new_secret)
                if self.with_postgres:
                    self._launch(POSTGRES, socket_dir, secret, new_secret=new_secret)
                    ensure_database(socket_dir, secret)
            except BaseException:
                self.stop()
                raise
        self.urls = ServerUrls(
            redis_url=f"unix://:{secret}@{socket_dir / REDIS_SOCKET}",
            database_url=postgres_url(socket_dir, DATABASE_NAME, secret),
            postgres_socket_dir=socket_dir,
            secret=secret,
        )
        return self.urls

    @property
    def started_any(self) -> bool:
        """True when this object started (and so will stop) at least one server."""
        return bool(self._owned)

    @property
    def pids(self) -> list[int]:
        """Process ids of the servers this object started."""
        return [child.proc.pid for child in self._owned.values()]

    def exited(self) -> dict[str, int]:
        """The servers this object started that have exited: name -> exit code."""
        codes = {name: child.proc.poll() for name, child in self._owned.items()}
        return {name: code for name, code in codes.items() if code is not None}

    def restart(self, name: str) -> int | None:
        """Start the server ``name`` again; its pid, or None if another process runs it now.

        Raises ``EmbeddedServerError`` (with the server's log) if it does not come up.
        """
        with self._lock():
            secret, new_secret = self._secret()
            socket_dir = self._socket_dir()
            child = self._launch(name, socket_dir, secret, new_secret=new_secret)
        return child.proc.pid if child else None

    def stop(self) -> None:
        """Stop the servers this object started; leave joined ones running."""
        while self._owned:
            _, child = self._owned.popitem()
            stop_child(child, STOP_TIMEOUT_S)

    def __enter__(self) -> ServerUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers --------------------------------------------------------------

    def _launch(
        self, name: str, socket_dir: Path, secret: str, *, new_secret: bool
    ) -> Child | None:
        """Start ``name`` unless it answers already; wait until it is ready."""
        previous = self._owned.get(name)
        if previous is not None:
            if previous.proc.poll() is None and previous.ready():
                return previous
            # Reap it if it died; stop it if it lives on without answering.
            stop_child(previous, STOP_TIMEOUT_S)
        if name == REDIS:
            child = launch_redis(self.data_dir, socket_dir, secret, durable=self.durable)
        else:
            child = launch_postgres(
                self.data_dir, socket_dir, secret, durable=self.durable, new_secret=new_secret
            )
        if child is None:
            # Someone else's server answers there: ours (if any) is no longer ours to run.
            self._owned.pop(name, None)
            return None
        self._owned[name] = child
        try:
            wait_until_ready(child)
        except BaseException:
            stop_child(child, STOP_TIMEOUT_S)
            raise
        return child

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start-or-join between processes sharing ``data_dir``."""
        with (self.data_dir / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _secret(self) -> tuple[str, bool]:
        """The data directory's secret, made on first use; True when it is new."""
        path = self.data_dir / SECRET_FILE
        try:
            path.chmod(0o600)
            return path.read_text().strip(), False
        except FileNotFoundError:
            pass
        secret = secrets.token_urlsafe(32)  # URL-safe: it goes into both URLs as is
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret, True

    def _socket_dir(self) -> Path:
        """A private directory for both Unix sockets, short enough for ``sun_path``.

        Mode 0700: only the user running the servers (and root) may reach the
        sockets. As root, PostgreSQL runs as its own user, which must create
        its socket here, so that user owns it; root gets in regardless.
        """
        preferred = self.data_dir / SOCKET_DIR
        if len(str(preferred)) <= MAX_SOCKET_DIR_LEN:
            directory = preferred
        else:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            directory = Path(tempfile.gettempdir()) / f"ussd-{digest}"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = postgres_user() if os.geteuid() == 0 else None
        info = directory.lstat()
        allowed = {os.geteuid()} | ({owner.pw_uid} if owner else set())
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in allowed:
            # A shared /tmp: someone else made this name first; never use theirs.
            raise EmbeddedServerError(f"{directory} is not a directory of this user")
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        directory.chmod(0o700)
        return directory
