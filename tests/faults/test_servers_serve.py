"""`ussd-service serve` when its servers die, its parent dies or its Redis is gone.

Each test runs `serve` as a real process on a free port with its own data
directory and breaks something the way operations do: kill -9 of a server,
kill -9 of the parent of `--workers`, SIGTERM while Redis is down.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from embedded_servers import POSTGRES_DIR, EmbeddedServers

CLI = str(Path(sys.executable).parent / "ussd-service")
# How long a killed server may take to be back (the bound).
BACK_TO_READY_S = 20.0
# How long processes may take to exit once their parent is gone.
EXIT_GRACE_S = 5.0


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


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> float | None:
    """Seconds until ``condition`` held, polling; None if it never did in time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


class Serve:
    """A `ussd-service serve` process on a free port, ready when constructed."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or _free_port()
        self.log = data_dir.with_suffix(f".{self.port}.out")
        full_env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
        full_env.update(env or {})
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [CLI, "serve", "--port", str(self.port), "--data-dir", str(data_dir), *args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        settled = _wait_for(lambda: self.proc.poll() is not None or _ready(self.port), 60)
        if settled is not None and self.proc.poll() is None:
            return
        self.proc.kill()
        self.proc.wait()
        pytest.fail(f"serve did not become ready:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def server(self, name: str) -> psutil.Process:
        """The embedded server process called ``name`` (its main process)."""
        (found,) = [p for p in psutil.Process(self.proc.pid).children() if p.name() == name]
        return found

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ussd-faults-"))
    yield path / "var"
    shutil.rmtree(path, ignore_errors=True)


def _kill_and_time_back(service: Serve, name: str) -> float:
    victim = service.server(name)
    victim.kill()
    assert _wait_for(lambda: not _alive(victim.pid), EXIT_GRACE_S) is not None
    back = _wait_for(lambda: _ready(service.port), BACK_TO_READY_S)
    assert back is not None, f"not ready {BACK_TO_READY_S} s after kill -9 of {name}:\n" + (
        service.output()
    )
    assert service.server(name).pid != victim.pid
    return back


def test_killed_servers_are_restarted_and_a_crash_loop_stops_serve(data_dir: Path) -> None:
    service = Serve(data_dir)
    try:
        postgres_back = _kill_and_time_back(service, "postgres")
        redis_back = _kill_and_time_back(service, "redis-server")
        print(f"ready again {postgres_back:.2f} s after kill -9 of PostgreSQL")
        print(f"ready again {redis_back:.2f} s after kill -9 of Redis")
        assert "embedded_server_restarted" in service.output()

        # A PostgreSQL that cannot start any more: serve gives up and exits
        # non-zero (so systemd restarts it) instead of answering 503 forever.
        conf = data_dir / POSTGRES_DIR / "postgresql.auto.conf"
        conf.write_text(conf.read_text() + "\nthis is not a setting\n")
        pids = [p.pid for p in service.descendants()]
        service.server("postgres").kill()
        exited = _wait_for(lambda: service.proc.poll() is not None, 30)
        assert exited is not None, service.output()
        print(f"serve exited {exited:.2f} s after PostgreSQL began to crash-loop")
        assert service.proc.returncode != 0
        assert "embedded_server_gave_up" in service.output()
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids), EXIT_GRACE_S) is not None
    finally:
        service.stop(signal.SIGKILL)


def _workers(service: Serve) -> set[int]:
    """The live worker processes (a killed one not yet reaped is a zombie: not counted)."""
    found = set()
    for p in psutil.Process(service.proc.pid).children():
        try:
            if "spawn_main" in " ".join(p.cmdline()):
                found.add(p.pid)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return found


def test_workers_are_replaced_and_die_with_a_killed_parent(data_dir: Path) -> None:
    service = Serve(data_dir, "--workers", "2")
    # A worker killed on its own is replaced; the port keeps answering.
    first = _workers(service)
    assert len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = _wait_for(lambda: len(_workers(service) - first) == 1, 10)
    assert replaced is not None, service.output()
    assert victim not in _workers(service)
    assert _wait_for(lambda: _ready(service.port), 10) is not None

    family = [p.pid for p in service.descendants()]
    assert len(family) >= 4  # two workers, Redis, PostgreSQL (and its backends)
    service.proc.kill()
    service.proc.wait()
    gone = _wait_for(lambda: not any(_alive(pid) for pid in family), EXIT_GRACE_S)
    survivors = [psutil.Process(pid).cmdline() for pid in family if _alive(pid)]
    assert gone is not None, f"still running after the parent's kill -9: {survivors}"
    print(f"every child gone {gone:.2f} s after kill -9 of the parent")

    again = Serve(data_dir, port=service.port)
    assert again.stop() == 0


def test_sigterm_exits_cleanly_while_redis_is_down(servers, data_dir: Path) -> None:
    redis_dir = data_dir.with_name("redis")
    redis_only = EmbeddedServers(redis_dir, durable=False, postgres=False)
    urls = redis_only.start()
    service = Serve(
        data_dir, env={"REDIS_URL": urls.redis_url, "DATABASE_URL": servers.database_url}
    )
    # A hop records drop-off counts, which the shutdown flushes to Redis.
    form = b"sessionId=s1&serviceCode=*111*455%23&phoneNumber=%2B79161234567&text="
    with urllib.request.urlopen(
        f"http://127.0.0.1:{service.port}/ussd/africastalking", data=form, timeout=10
    ) as resp:
        assert resp.read().startswith(b"CON ")
    redis_only.stop()
    assert _wait_for(lambda: not _ready(service.port), 10) is not None
    code = service.stop(signal.SIGTERM)
    output = service.output()
    assert code == 0, output
    assert "Traceback" not in output
