"""The embedded servers and the migration runner, against real processes."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from embedded_servers import (
    PG_BIN,
    REDIS_SERVER_BIN,
    REDIS_SOCKET,
    SECRET_FILE,
    EmbeddedServers,
)
from ledger.migrations import available_migrations, migrate
from ussd_service.backends import SCHEMA_PACKAGES

# A local user with no business with the servers (created when the tests run as root).
PROBE_USER = "ussd-probe"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ussd-emb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_start_join_stop_and_restart_keeps_data(data_dir: Path) -> None:
    first = EmbeddedServers(data_dir, durable=False)
    urls = first.start()
    pids = first.pids
    assert len(pids) == 2
    assert redis.Redis.from_url(urls.redis_url).ping()

    async def write_then_read(value: str | None) -> str | None:
        conn = await asyncpg.connect(urls.database_url)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
            if value is not None:
                await conn.execute("INSERT INTO kept VALUES ($1)", value)
            return await conn.fetchval("SELECT v FROM kept LIMIT 1")
        finally:
            await conn.close()

    assert asyncio.run(write_then_read("points")) == "points"

    # A second process on the same data dir joins instead of starting servers.
    joiner = EmbeddedServers(data_dir, durable=False)
    assert joiner.start() == urls
    assert not joiner.started_any
    joiner.stop()
    assert all(psutil.pid_exists(pid) for pid in pids)

    first.stop()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

    # Restart over the same directory: the data survived.
    again = EmbeddedServers(data_dir, durable=False)
    urls_again = again.start()
    try:
        assert again.started_any
        assert asyncio.run(write_then_read(None)) == "points"
        assert urls_again == urls
    finally:
        again.stop()


async def test_migrations_apply_once_even_when_run_concurrently(
    servers, template_database: str
) -> None:
    admin = await asyncpg.connect(servers.database_url_for("postgres"))
    name = f"ussd_mig_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conns = [await asyncpg.connect(servers.database_url_for(name)) for _ in range(3)]
        results = await asyncio.gather(*(migrate(c, SCHEMA_PACKAGES) for c in conns))
        names = [m.name for p in SCHEMA_PACKAGES for m in available_migrations(p)]
        # Exactly one runner applied each file; the others found it done.
        assert sorted(n for r in results for n in r) == sorted(names)
        assert await migrate(conns[0], SCHEMA_PACKAGES) == []
        recorded = await conns[0].fetch(
            "SELECT name FROM schema_migrations ORDER BY applied_at, package, version"
        )
        assert [r["name"] for r in recorded] == names
        for c in conns:
            await c.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_each_test_gets_an_empty_redis_and_a_migrated_database(
    pg_pool: asyncpg.Pool, redis_client
) -> None:
    assert await redis_client.dbsize() == 0
    versions = await pg_pool.fetchval("SELECT count(*) FROM schema_migrations")
    assert versions == sum(len(available_migrations(p)) for p in SCHEMA_PACKAGES)


def _redis_only(data_dir: Path, *, durable: bool) -> tuple[EmbeddedServers, redis.Redis]:
    servers = EmbeddedServers(data_dir, durable=durable, postgres=False)
    urls = servers.start()
    return servers, redis.Redis.from_url(urls.redis_url)


def test_durable_redis_keeps_keys_across_stop_and_kill(data_dir: Path) -> None:
    servers, client = _redis_only(data_dir, durable=True)
    try:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("session:a", "kept after a clean stop")
        servers.stop()

        servers, client = _redis_only(data_dir, durable=True)
        assert client.get("session:a") == b"kept after a clean stop"
        client.set("session:b", "kept after kill -9")
        (pid,) = servers.pids
        os.kill(pid, signal.SIGKILL)
        psutil.Process(pid).wait(5)

        # Started again by the same owner, as `serve`'s supervisor does.
        client = redis.Redis.from_url(servers.start().redis_url)
        assert servers.pids != [pid]
        assert client.mget("session:a", "session:b") == [
            b"kept after a clean stop",
            b"kept after kill -9",
        ]
    finally:
        servers.stop()


def test_test_mode_redis_writes_nothing_to_disk(data_dir: Path) -> None:
    servers, client = _redis_only(data_dir, durable=False)
    try:
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
    finally:
        servers.stop()


def _run_as(user: pwd.struct_passwd | None, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``user`` (None: as ourselves), with no password from the environment."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PGPASSFILE": "/nonexistent", "HOME": "/nonexistent"},
        cwd="/",
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user else None,
    )


def _probe_user() -> pwd.struct_passwd:
    """A local user with no business with the servers (created when missing)."""
    try:
        return pwd.getpwnam(PROBE_USER)
    except KeyError:
        subprocess.run(
            [
                "/usr/sbin/useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PROBE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PROBE_USER)


def _refused(user: pwd.struct_passwd | None, socket_dir: Path) -> None:
    """Neither server lets ``user`` in without the data directory's secret."""
    psql = _run_as(
        user,
        [
            str(PG_BIN / "psql"),
            "-h",
            str(socket_dir),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-w",
            "-tAc",
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
        ],
    )
    assert psql.returncode != 0, psql.stdout
    assert "t" not in psql.stdout.split()
    cli = _run_as(
        user,
        [
            str(REDIS_SERVER_BIN.with_name("redis-cli")),
            "-s",
            str(socket_dir / REDIS_SOCKET),
            "SET",
            "probe",
            "1",
        ],
    )
    assert "OK" not in cli.stdout, cli.stdout
    assert "NOAUTH" in cli.stdout + cli.stderr or "denied" in cli.stdout + cli.stderr


def test_other_local_users_are_refused_and_files_are_private(data_dir: Path) -> None:
    servers = EmbeddedServers(data_dir, durable=False)
    urls = servers.start()
    try:
        socket_dir = urls.postgres_socket_dir
        # Even our own user gets nothing without the secret...
        _refused(None, socket_dir)
        if os.geteuid() == 0:
            # ...and another local user gets nothing at all.
            _refused(_probe_user(), socket_dir)
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        for private in (
            data_dir / "postgres.log",
            data_dir / "redis" / "redis.log",
            data_dir / SECRET_FILE,
        ):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        # The service itself gets in, with the secret in its URLs.
        assert redis.Redis.from_url(urls.redis_url).ping()
        assert asyncio.run(_is_superuser(urls.database_url))
    finally:
        servers.stop()


async def _is_superuser(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(
            await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        )
    finally:
        await conn.close()
