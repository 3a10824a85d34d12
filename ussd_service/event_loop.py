"""The event loop the service runs on: uvloop when installed, else asyncio's own.

uvloop's transports and its loop are written in C (libuv): the same hop costs
less CPU on it (bench/README.md has the figures). Everything here is plain
asyncio, so either loop runs it; tests run on asyncio's.
"""

from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
    uvloop = None  # type: ignore[assignment]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new loop: uvloop's when the package is there."""
    if uvloop is not None:
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


#: What ``new_event_loop`` gives, for the log line that says how the service runs.
LOOP_NAME = "asyncio" if uvloop is None else "uvloop"
