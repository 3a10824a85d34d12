"""Processes of a run: the service and the baseline server, and what they cost.

Each server runs as its own process on a free loopback port. ``Monitor``
samples a process tree in a thread: resident memory (peak) and CPU time
(user + system) per group — the service's Python processes, its embedded
Redis, its embedded PostgreSQL (reaped backends included) — so a phase can
report CPU seconds per second and per hop for each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# A 10,000-node menu takes ~50 s to load on an idle 2-core machine, more when it is busy.
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
SAMPLE_INTERVAL_S = 0.2
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """A server process with a log file; ``start`` waits for ``GET /readyz`` to answer 200."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.port = port
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode}:\n{tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready in {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (a clean stop: the service stops its embedded servers), then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _group(proc: psutil.Process) -> str:
    name = proc.name()
    if name.startswith("redis"):
        return "redis"
    if name.startswith("postgres") or name.startswith("postmaster"):
        return "postgres"
    return "service"


@dataclass
class Usage:
    """CPU seconds per group at one moment."""

    cpu: dict[str, float] = field(default_factory=dict)
    at: float = 0.0


class Monitor:
    """Samples the process trees under ``roots`` (name -> pid) in a background thread."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.peak_rss: dict[str, int] = {}
        self.last_rss: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _procs(self) -> list[tuple[str, psutil.Process, bool]]:
        """(group, process, is_group_root) for every live process of every tree."""
        out = []
        for root_name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in tree:
                try:
                    group = root_name if proc is root else _group(proc)
                    if group == "service" and root_name != "service":
                        group = root_name
                    parent_group = _group(proc.parent()) if proc.parent() else ""
                    out.append((group, proc, parent_group != group or proc is root))
                except psutil.NoSuchProcess:
                    continue
        return out

    def usage(self) -> Usage:
        """CPU seconds (user + system) per group now; a group root adds its reaped children."""
        cpu: dict[str, float] = {}
        for group, proc, is_root in self._procs():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            spent = times.user + times.system
            if is_root and group == "postgres":
                spent += times.children_user + times.children_system
            cpu[group] = cpu.get(group, 0.0) + spent
        return Usage(cpu, time.perf_counter())

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            rss: dict[str, int] = {}
            for group, proc, _root in self._procs():
                try:
                    rss[group] = rss.get(group, 0) + proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            with self._lock:
                self.last_rss = rss
                for group, value in rss.items():
                    self.peak_rss[group] = max(self.peak_rss.get(group, 0), value)

    def reset_peaks(self) -> None:
        with self._lock:
            self.peak_rss = dict(self.last_rss)

    def peaks(self) -> dict[str, int]:
        with self._lock:
            return dict(self.peak_rss)


def cpu_delta(before: Usage, after: Usage) -> dict[str, float]:
    """CPU seconds spent per group between two ``Usage`` snapshots."""
    return {
        group: after.cpu.get(group, 0.0) - before.cpu.get(group, 0.0)
        for group in sorted(set(before.cpu) | set(after.cpu))
    }
