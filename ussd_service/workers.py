"""Several service processes sharing one port (``serve --workers N``).

Each worker is a fresh interpreter (``spawn``: no state forked from the
parent) that builds its own app and listens with ``SO_REUSEPORT``, so the
kernel spreads connections over the workers. The parent owns the embedded
servers and stops them after every worker has exited; a worker that dies
meanwhile is replaced. A worker dies with its parent (``PR_SET_PDEATHSIG``):
after a kill -9 of the parent no worker keeps the port answering 503, and a
new ``serve`` can bind it at once.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import time
from collections import deque
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog
from aiohttp import web

from embedded_servers import die_with_parent
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.event_loop import new_event_loop
from ussd_service.logs import configure_logging
from ussd_service.menu_files import load_menus

log = structlog.get_logger(__name__)
WORKER_STOP_TIMEOUT_S = 30.0
# A worker that keeps dying is a bug or a broken host: stop rather than spin.
MAX_WORKER_RESTARTS = 5
WORKER_RESTART_WINDOW_S = 60.0


def _worker(settings_json: str, parent_pid: int) -> None:
    # SIGTERM: aiohttp's graceful stop, which closes the listening socket first.
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:
        return  # the parent died before the line above took effect
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_level, settings.log_format)
    menus = load_menus(settings.menu_file)
    # What start-up built (menus, compiled texts) lives as long as the process:
    # the collector's full passes need not walk it again (~0.8 s on a 10k-node menu).
    gc.freeze()
    web.run_app(
        create_app(settings, menus=menus, reload_signal=True),
        host=settings.host,
        port=settings.port,
        reuse_port=True,
        print=None,
        access_log=None,
        loop=new_event_loop(),
    )


def run_workers(settings: Settings, count: int) -> bool:
    """Run ``count`` worker processes until SIGINT/SIGTERM, then stop them all.

    A worker that dies is replaced. After ``MAX_WORKER_RESTARTS`` replacements
    within ``WORKER_RESTART_WINDOW_S`` every worker is stopped and False is
    returned (``serve`` then exits non-zero); True means stopped on request.
    """
    context = multiprocessing.get_context("spawn")
    settings_json = settings.model_dump_json()

    def start(n: int) -> BaseProcess:
        worker = context.Process(
            target=_worker, args=(settings_json, os.getpid()), name=f"worker-{n}"
        )
        worker.start()
        return worker

    workers = [start(n) for n in range(count)]
    log.info("workers_started", pids=[w.pid for w in workers])
    stopping = False
    signalled: set[int | None] = set()

    def terminate_all() -> None:
        # SIGTERM once per worker: aiohttp's graceful shutdown in each.
        for worker in workers:
            if worker.is_alive() and worker.pid not in signalled:
                signalled.add(worker.pid)
                worker.terminate()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        terminate_all()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGHUP)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    restarts: deque[float] = deque()
    healthy = True
    try:
        while not stopping:
            wait([w.sentinel for w in workers])
            for n, worker in enumerate(workers):
                if stopping or worker.is_alive():
                    continue
                log.warning("worker_died", worker=n, pid=worker.pid, exit_code=worker.exitcode)
                now = time.monotonic()
                while restarts and now - restarts[0] > WORKER_RESTART_WINDOW_S:
                    restarts.popleft()
                if len(restarts) >= MAX_WORKER_RESTARTS:
                    log.error("workers_gave_up", restarts=len(restarts))
                    healthy, stopping = False, True
                    break
                restarts.append(now)
                workers[n] = start(n)
                log.info("worker_restarted", worker=n, pid=workers[n].pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        terminate_all()
        for worker in workers:
            worker.join(WORKER_STOP_TIMEOUT_S)
            if worker.is_alive():
                worker.kill()
    log.info("workers_stopped", exit_codes=[w.exitcode for w in workers])
    return healthy
