"""`ussd-service serve` as a real process: embedded servers, restart, external URLs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from embedded_servers import EmbeddedServers

CLI = str(Path(sys.executable).parent / "ussd-service")
MENU_FILE = Path(__file__).resolve().parents[1] / "menu_definitions.yaml"
READY_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class Service:
    """A `serve` process under test."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.port = _free_port()
        full_env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), "--data-dir", str(data_dir), *extra],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        while not _ready(self.port):
            if self.proc.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
                self.proc.kill()
                output = self.proc.communicate()[0].decode()
                pytest.fail(f"service did not become ready:\n{output}")
            time.sleep(0.1)
        self.ready_after_s = time.monotonic() - started
        self.children = [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]

    def interrupt(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        output = self.proc.communicate(timeout=60)[0].decode()
        assert self.proc.returncode == 0, output
        return output


def _survivors(pids: list[int], grace_s: float = 5.0) -> list[int]:
    """The processes still running after a short grace period (exits are not instant)."""
    deadline = time.monotonic() + grace_s
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ussd-serve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _db_value(data_dir: Path, write: str | None) -> str | None:
    # Join the running service's servers: the URL carries the data directory's secret.
    joined = EmbeddedServers(data_dir)
    url = joined.start().database_url
    assert not joined.started_any

    async def run() -> str | None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
            if write:
                await conn.execute("INSERT INTO kept VALUES ($1)", write)
            return await conn.fetchval("SELECT v FROM kept")
        finally:
            await conn.close()

    return asyncio.run(run())


def test_serve_runs_embedded_servers_and_leaves_no_process_behind(data_dir: Path) -> None:
    service = Service(data_dir)
    names = sorted(psutil.Process(pid).name() for pid in service.children)
    assert "redis-server" in names
    assert "postgres" in names
    assert _db_value(data_dir, "kept across restarts") == "kept across restarts"
    output = service.interrupt()
    assert "embedded_servers_stopped" in output
    serving = next(line for line in output.splitlines() if "serving" in line)
    assert "uvloop" in serving, "the service runs on uvloop when it is installed"
    assert _survivors(service.children) == []

    again = Service(data_dir)
    try:
        print(f"second start ready after {again.ready_after_s:.2f} s")
        assert _db_value(data_dir, None) == "kept across restarts"
    finally:
        again.interrupt()
    assert _survivors(again.children) == []


def test_serve_with_urls_starts_no_server(servers, data_dir: Path) -> None:
    service = Service(
        data_dir, {"REDIS_URL": servers.redis_url, "DATABASE_URL": servers.database_url}
    )
    try:
        assert service.children == []
        assert not (data_dir / "postgres").exists()
        assert not (data_dir / "redis").exists()
    finally:
        output = service.interrupt()
    assert "embedded_servers" not in output


def test_bad_configuration_is_a_clear_usage_error(data_dir: Path) -> None:
    result = subprocess.run(
        [CLI, "serve", "--data-dir", str(data_dir)],
        env={**os.environ, "USSD_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "USSD_PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [("serve",), ("migrate",), ("ledger", "check"), ("worker", "--once")],
    ids=" ".join,
)
def test_unreachable_database_is_a_one_line_error_without_the_password(
    data_dir: Path, command: tuple[str, ...]
) -> None:
    closed_port = _free_port()
    extra = ("--port", str(_free_port())) if command == ("serve",) else ()
    result = subprocess.run(
        [CLI, *command, "--data-dir", str(data_dir), *extra],
        env={
            **os.environ,
            "DATABASE_URL": f"postgresql://ussd:hunter2-pg@127.0.0.1:{closed_port}/ussd",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode not in {0, -signal.SIGKILL}
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "hunter2-pg" not in output
    (error,) = [line for line in result.stderr.splitlines() if "DATABASE_URL" in line]
    assert str(closed_port) in error


def test_serve_with_two_workers_shares_the_port(data_dir: Path) -> None:
    service = Service(data_dir, extra=("--workers", "2"))
    try:
        workers = [
            p
            for p in psutil.Process(service.proc.pid).children()
            if "multiprocessing.spawn" in " ".join(p.cmdline())
            and "resource_tracker" not in " ".join(p.cmdline())
        ]
        assert len(workers) >= 2
        for _ in range(10):
            assert _ready(service.port)
    finally:
        output = service.interrupt()
    assert "workers_stopped" in output
    assert _survivors(service.children) == []


def _ussd(port: int, session: str, text: str, number: str = "+79161234567") -> str:
    form = urllib.parse.urlencode(
        {
            "sessionId": session,
            "serviceCode": "*111*455#",
            "phoneNumber": number,
            "networkCode": "25001",
            "text": text,
        }
    ).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ussd/africastalking", data=form)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.read().decode())


def test_sighup_reloads_the_menu_and_sessions_in_flight_keep_theirs(data_dir: Path) -> None:
    menu = data_dir / "menu.yaml"
    original = MENU_FILE.read_text()
    menu.write_text(original)
    service = Service(data_dir, extra=("--menu", str(menu)))
    try:
        # A caller who is not a member sees the join menu; one step in, a session in flight.
        first = _ussd(service.port, "old", "")
        assert first.startswith("CON ")
        menu.write_text(original.replace('"Вступить"', '"Присоединиться"', 1))
        service.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        n = 0
        while "Присоединиться" not in _ussd(service.port, f"new-{n}", ""):
            assert time.monotonic() < deadline, "the new menu never showed"
            n += 1
            time.sleep(0.1)
        # The session that began on the old version finishes on it.
        again = _ussd(service.port, "old", "9")  # an invalid key: the same screen again
        assert "Вступить" in again
        assert "Присоединиться" not in again
        # A broken file is refused and the live version stays.
        menu.write_text("version: [")
        service.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        # (Another caller: the first one left a session mid-menu and is offered to resume.)
        assert "Присоединиться" in _ussd(service.port, "after-broken", "", "+79031112233")
    finally:
        output = service.interrupt()
    assert "menu_reloaded" in output
    assert "menu_reload_refused" in output
