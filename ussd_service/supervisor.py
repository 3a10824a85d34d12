"""Keeps `serve`'s embedded servers running: restart a dead one, give up on a crash loop.

A thread watches the servers this process started. When one dies it is
started again at once, then with a doubling delay if it keeps dying; after
``MAX_RESTARTS`` restarts of one server within ``RESTART_WINDOW_S`` the
supervisor gives up and asks the process to stop (SIGTERM to itself), so
``serve`` exits non-zero and its own supervisor (systemd) restarts the lot.

A server started by this thread gets its parent-death signal when the thread
ends (the kernel ties ``PR_SET_PDEATHSIG`` to the forking thread), so the
thread lives until ``stop()``, which comes right before the servers are stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import structlog

from embedded_servers import EmbeddedServerError, EmbeddedServers
from ussd_service.backends import embedded_backing
from ussd_service.config import Settings

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 0.2
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
# Delay before the second restart in a window; doubles with each further one.
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class ServerSupervisor:
    """Restarts the servers of ``servers`` that exit; see the module's docstring."""

    def __init__(
        self, servers: EmbeddedServers, *, give_up: Callable[[], None] = _stop_this_process
    ) -> None:
        self._servers = servers
        self._give_up = give_up
        self._stopping = threading.Event()
        self._restarts: dict[str, deque[float]] = {}
        self._thread = threading.Thread(target=self._watch, name="server-supervisor", daemon=True)
        self.gave_up = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_INTERVAL_S):
            try:
                for name, code in self._servers.exited().items():
                    log.warning("embedded_server_died", server=name, exit_code=code)
                    if not self._revive(name):
                        self.gave_up = True
                        self._give_up()
                        return
            except Exception:  # a bug here must not leave the servers unwatched
                log.exception("supervisor_error")

    def _revive(self, name: str) -> bool:
        """Start ``name`` again, backing off; False once it restarted too often."""
        died_at = time.monotonic()
        history = self._restarts.setdefault(name, deque())
        while not self._stopping.is_set():
            now = time.monotonic()
            while history and now - history[0] > RESTART_WINDOW_S:
                history.popleft()
            if len(history) >= MAX_RESTARTS:
                log.error(
                    "embedded_server_gave_up",
                    server=name,
                    restarts=len(history),
                    window_s=RESTART_WINDOW_S,
                )
                return False
            delay = min(FIRST_BACKOFF_S * 2 ** (len(history) - 1), MAX_BACKOFF_S) if history else 0
            if self._stopping.wait(delay):
                break
            history.append(time.monotonic())
            try:
                pid = self._servers.restart(name)
            except EmbeddedServerError as exc:
                log.warning(
                    "embedded_server_restart_failed",
                    server=name,
                    attempt=len(history),
                    error=str(exc).splitlines()[0],
                )
                continue
            log.info(
                "embedded_server_restarted",
                server=name,
                pid=pid,
                after_s=round(time.monotonic() - died_at, 2),
            )
            return True
        return True


@contextlib.contextmanager
def supervised_servers(settings: Settings) -> Iterator[tuple[Settings, ServerSupervisor | None]]:
    """``backends.backing_servers``, with the embedded servers it starts kept running.

    Yields settings with both URLs set and the supervisor (None when this
    process started no server: external URLs, or servers another process runs).
    """
    with embedded_backing(settings) as (resolved, embedded):
        started = embedded is not None and embedded.started_any
        supervisor = ServerSupervisor(embedded) if embedded is not None and started else None
        if supervisor is not None:
            supervisor.start()
        try:
            yield resolved, supervisor
        finally:
            if supervisor is not None:
                supervisor.stop()
