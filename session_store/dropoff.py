"""Drop-off counters per menu node, in daily Redis buckets (issue 7).

One hash per UTC day, ``ussd:dropoff:YYYY-MM-DD``, with one field per
``menu_version|node|kind[|target]``; it expires ``dropoff_retention`` after its
day ends. Each day is written by one script call on its own key (one slot on
Redis Cluster); reading a date range is one pipelined round trip on a
standalone Redis and one HGETALL per day on a cluster.

Writes go through :class:`DropoffBuffer` on the hot path: a hop records its
events in memory (no I/O), and a background task adds them up and writes them
every ``DROPOFF_FLUSH_INTERVAL``, one command per day (usually one). Counting in the hop's save
round trip was rejected: the save is a Lua compare-and-set on the session's
slot, the counters live in another slot, and a hop that loses the CAS must
count nothing. Counting after a winning save, batched, costs the hop nothing
and Redis one HINCRBY per distinct field per second; a crash loses at most
one interval of counts, which an analytics report can afford.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import TracebackType
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog

from session_store.errors import StoreUnavailableError
from session_store.keys import dropoff_key
from session_store.redis_client import RedisClient, store_command
from session_store.settings import DROPOFF_FLUSH_INTERVAL, StoreSettings

#: Separates the parts of a counter field; refused inside a part.
FIELD_SEPARATOR = "|"


class DropoffKind(enum.StrEnum):
    """What happened at a node."""

    ENTRY = "entry"  # the node was shown
    EXIT = "exit"  # left for ``target``
    INVALID = "invalid"  # an input the node did not accept
    TIMEOUT = "timeout"  # no input in time (IVR)
    ABANDON = "abandon"  # the session ended here unfinished (abort, hang-up, drop)
    HANDOFF = "handoff"  # handed to an operator from here
    COMPLETE = "complete"  # the session ended here as designed (a final node)


@dataclass(frozen=True, slots=True)
class DropoffEvent:
    """One count to add; ``target`` is required for EXIT and refused otherwise."""

    menu_version: str
    node: str
    kind: DropoffKind
    target: str | None = None

    def field(self) -> str:
        """The hash field this event increments."""
        parts = [self.menu_version, self.node, self.kind.value]
        if (self.kind is DropoffKind.EXIT) != (self.target is not None):
            raise ValueError(f"{self.kind.value} event at node {self.node!r}: target is for exits")
        if self.target is not None:
            parts.append(self.target)
        for part in parts:
            if not part or FIELD_SEPARATOR in part:
                raise ValueError(
                    f"drop-off field part {part!r} is empty or has {FIELD_SEPARATOR!r}"
                )
        return FIELD_SEPARATOR.join(parts)


@dataclass(frozen=True, slots=True, order=True)
class NodeKey:
    """A node of one menu version."""

    menu_version: str
    node: str


@dataclass(slots=True)
class NodeCounts:
    """Counts of one node over a date range."""

    entries: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    timeouts: int = 0
    abandons: int = 0
    handoffs: int = 0
    completions: int = 0

    @property
    def exited(self) -> int:
        """Exits to any target."""
        return sum(self.exits.values())

    @property
    def unaccounted(self) -> int:
        """Entries with no recorded outcome: sessions that expired here
        silently (a USSD drop the service never hears of) or are in flight."""
        ended = self.exited + self.abandons + self.handoffs + self.completions
        return max(0, self.entries - ended)

    def add(self, kind: DropoffKind, target: str | None, count: int) -> None:
        """Add ``count`` events of ``kind`` (``target`` for exits)."""
        if kind is DropoffKind.EXIT:
            assert target is not None
            self.exits[target] = self.exits.get(target, 0) + count
        else:
            attribute = _ATTRIBUTE[kind]
            setattr(self, attribute, getattr(self, attribute) + count)


_ATTRIBUTE = {
    DropoffKind.ENTRY: "entries",
    DropoffKind.INVALID: "invalid",
    DropoffKind.TIMEOUT: "timeouts",
    DropoffKind.ABANDON: "abandons",
    DropoffKind.HANDOFF: "handoffs",
    DropoffKind.COMPLETE: "completions",
}


def utc_day(at: datetime) -> date:
    """The UTC date of an aware datetime (the bucket it counts in)."""
    if at.tzinfo is None:
        raise ValueError("drop-off times must be timezone-aware")
    return at.astimezone(UTC).date()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DropoffCounters(Protocol):
    """Storage of drop-off counters."""

    async def increment(self, counts: Mapping[tuple[date, str], int]) -> None:
        """Add ``counts`` keyed by (UTC day, ``DropoffEvent.field()``)."""
        ...

    async def read(
        self, since: date, until: date, *, menu_version: str | None = None
    ) -> dict[NodeKey, NodeCounts]:
        """Totals per node over the UTC days ``since..until`` inclusive."""
        ...


# KEYS[1]: one day's hash. ARGV[1]: when it expires (unix seconds, EXPIREAT: the
# same deadline whenever the day is written; a day past it is deleted at once).
# ARGV[2..]: field, count pairs to add.
INCREMENT_SCRIPT = """
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 0
"""


class RedisDropoffCounters:
    """:class:`DropoffCounters` in daily Redis hashes.

    No command spans two days' keys, so a cluster client needs no pipeline
    across slots: redis-py's cluster pipeline, retrying a node that went down,
    closes every connection of the client, and this runs beside the hops.
    """

    def __init__(
        self,
        client: RedisClient,
        settings: StoreSettings | None = None,
    ) -> None:
        self._client = client
        self._settings = settings or StoreSettings()
        self._increment = client.register_script(INCREMENT_SCRIPT)

    def key(self, day: date) -> str:
        """The hash of one UTC day."""
        return dropoff_key(self._settings.key_prefix, day)

    def expires_at(self, day: date) -> datetime:
        """When the bucket of ``day`` goes: its end plus the retention."""
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        return end + self._settings.dropoff_retention

    async def record(self, events: Iterable[DropoffEvent], at: datetime) -> None:
        """Count ``events`` at time ``at`` now, in one command (tools, tests)."""
        day = utc_day(at)
        await self.increment(Counter((day, event.field()) for event in events))

    async def increment(self, counts: Mapping[tuple[date, str], int]) -> None:
        """HINCRBY every field and EXPIREAT its day: one script call per day."""
        per_day: dict[date, list[str | int]] = {}
        for (day, name), count in counts.items():
            per_day.setdefault(day, []).extend((name, count))
        for day, pairs in sorted(per_day.items()):
            expires = int(self.expires_at(day).timestamp())
            args = [expires, *pairs]
            await store_command(functools.partial(self._increment, keys=[self.key(day)], args=args))

    async def read_days(
        self, since: date, until: date, *, menu_version: str | None = None
    ) -> dict[date, dict[NodeKey, NodeCounts]]:
        """Counts per day and node; days without counts are left out."""
        if until < since:
            raise ValueError(f"empty date range {since}..{until}")
        days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
        hashes = await store_command(lambda: self._hashes([self.key(day) for day in days]))
        result: dict[date, dict[NodeKey, NodeCounts]] = {}
        for day, raw in zip(days, hashes, strict=True):
            if raw:
                nodes = _parse(raw, menu_version)
                if nodes:
                    result[day] = nodes
        return result

    async def _hashes(self, keys: list[str]) -> list[dict[Any, Any]]:
        if isinstance(self._client, aioredis.RedisCluster):
            return [await self._client.hgetall(key) for key in keys]
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes: list[dict[Any, Any]] = await pipe.execute()
        return hashes

    async def read(
        self, since: date, until: date, *, menu_version: str | None = None
    ) -> dict[NodeKey, NodeCounts]:
        """Totals per node over ``since..until`` (UTC days, inclusive)."""
        totals: dict[NodeKey, NodeCounts] = {}
        per_day = await self.read_days(since, until, menu_version=menu_version)
        for nodes in per_day.values():
            for key, counts in nodes.items():
                total = totals.setdefault(key, NodeCounts())
                total.entries += counts.entries
                total.invalid += counts.invalid
                total.timeouts += counts.timeouts
                total.abandons += counts.abandons
                total.handoffs += counts.handoffs
                total.completions += counts.completions
                for target, n in counts.exits.items():
                    total.exits[target] = total.exits.get(target, 0) + n
        return totals


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(raw: Mapping[Any, Any], menu_version: str | None) -> dict[NodeKey, NodeCounts]:
    nodes: dict[NodeKey, NodeCounts] = {}
    for name, value in raw.items():
        parts = _text(name).split(FIELD_SEPARATOR)
        version, node, kind = parts[0], parts[1], DropoffKind(parts[2])
        if menu_version is not None and version != menu_version:
            continue
        target = parts[3] if len(parts) > 3 else None
        nodes.setdefault(NodeKey(version, node), NodeCounts()).add(kind, target, int(value))
    return nodes


class DropoffBuffer:
    """Adds drop-off events up in memory and writes them in the background.

    ``record`` does no I/O, so a hop pays nothing. Use as an async context
    manager (e.g. in ``app.cleanup_ctx``): entering starts the flush task,
    leaving stops it and flushes what is left. Counts a failed flush could not
    write are kept for the next one; they are bounded by the number of
    (day, node, kind, target) combinations, not by traffic.
    """

    def __init__(
        self,
        counters: DropoffCounters,
        *,
        interval: timedelta = DROPOFF_FLUSH_INTERVAL,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._counters = counters
        self._interval = interval.total_seconds()
        self._clock = clock
        self._pending: Counter[tuple[date, str]] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Events recorded and not yet written."""
        return sum(self._pending.values())

    def record(self, events: Iterable[DropoffEvent], at: datetime | None = None) -> None:
        """Count ``events`` at ``at`` (default: now); validated here, written later."""
        day = utc_day(self._clock() if at is None else at)
        for event in events:
            self._pending[(day, event.field())] += 1

    async def flush(self) -> int:
        """Write everything pending in one round trip; returns the events written.

        On failure the counts go back into the buffer and the error is raised.
        """
        async with self._lock:
            batch, self._pending = self._pending, Counter()
            if not batch:
                return 0
            try:
                await self._counters.increment(batch)
            except BaseException:
                self._pending.update(batch)
                raise
            return sum(batch.values())

    async def _run(self) -> None:
        log = structlog.get_logger(__name__)
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except StoreUnavailableError as exc:
                log.warning("dropoff_flush_failed", error=str(exc), pending=self.pending)
            # redis-py may absorb a cancellation that lands mid-command: a
            # pending cancel must still end this loop.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError

    async def __aenter__(self) -> DropoffBuffer:
        self._task = asyncio.create_task(self._run(), name="dropoff-flush")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
