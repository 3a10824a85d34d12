"""Waiting for a backend call without letting its clean-up outlive the deadline.

``asyncio.timeout`` cancels the call and then waits for it to unwind; when
the backend is frozen (a stopped PostgreSQL), that unwinding (a ROLLBACK, a
connection release) waits on the same frozen socket and the caller is stuck
far past its deadline. ``within`` stops waiting at the deadline and lets the
cancelled call finish its clean-up in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
_orphans: set[asyncio.Task[Any]] = set()


def _reap(task: asyncio.Task[Any]) -> None:
    _orphans.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("late_call_failed", error=type(task.exception()).__name__)


async def within(call: Coroutine[Any, Any, T], timeout_s: float) -> T:
    """The result of ``call``, or TimeoutError after ``timeout_s`` (however ``call`` unwinds)."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        # Keep a reference until it has unwound, and read its outcome then.
        _orphans.add(task)
        task.add_done_callback(_reap)
        raise TimeoutError(f"no answer within {timeout_s} s")
    return task.result()
