"""Several service processes sharing one port (``serve --workers N``).

Each worker is a fresh interpreter (``spawn``: no state forked from the
parent) that builds its own app and listens with ``SO_REUSEPORT``, so the
kernel spreads connections over the workers. The parent owns the embedded
servers and stops them after every worker has exited. A worker dies with its
parent (``PR_SET_PDEATHSIG``): after a kill -9 of the parent no worker keeps
the port answering 503, and a new ``serve`` can bind it at once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from types import FrameType

import structlog
from aiohttp import web

from menus import MenuRegistry
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.dialogue import DIALOGUE_TEXTS
from ussd_service.embedded import die_with_parent
from ussd_service.logs import configure_logging

log = structlog.get_logger(__name__)
WORKER_STOP_TIMEOUT_S = 30.0


def _worker(settings_json: str, parent_pid: int) -> None:
    # SIGTERM: aiohttp's graceful stop, which closes the listening socket first.
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:
        return  # the parent died before the line above took effect
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_level, settings.log_format)
    menus = MenuRegistry.from_file(settings.menu_file, DIALOGUE_TEXTS)
    web.run_app(
        create_app(settings, menus=menus, reload_signal=True),
        host=settings.host,
        port=settings.port,
        reuse_port=True,
        print=None,
        access_log=None,
    )


def run_workers(settings: Settings, count: int) -> None:
    """Run ``count`` worker processes until SIGINT/SIGTERM, then stop them all."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_worker, args=(settings.model_dump_json(), os.getpid()), name=f"worker-{n}"
        )
        for n in range(count)
    ]
    for worker in workers:
        worker.start()
    log.info("workers_started", pids=[w.pid for w in workers])

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # SIGTERM: aiohttp's graceful shutdown in each worker.
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGHUP)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    try:
        for worker in workers:
            worker.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            worker.join(WORKER_STOP_TIMEOUT_S)
            if worker.is_alive():
                worker.kill()
    log.info("workers_stopped", exit_codes=[w.exitcode for w in workers])
