"""A process steps a session from the record it saved last; a stale copy is never stored.

Two ``Dialogue`` objects over one real Redis stand for two service processes
(``serve --workers``): the gateway's hops may reach either.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.menugen import generate_chain
from menus import MenuRegistry
from menus.operations import OperationResult
from session_store import RedisSessionStore, SessionRecord, SessionRef
from ussd_service.dialogue import Dialogue
from ussd_service.hop import Hop, HopKind
from ussd_service.menu_files import load_menus
from ussd_service.metrics import Metrics
from ussd_service.recent_sessions import RecentSessions

_ids = itertools.count()


class CountingStore(RedisSessionStore):
    """The real store, counting its reads."""

    loads = 0

    async def load(self, ref: SessionRef) -> SessionRecord | None:
        self.loads += 1
        return await super().load(ref)


class NoOperations:
    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        raise AssertionError(f"the chain menu runs no operation, asked {name}")


@pytest.fixture
def chain(tmp_path: Path) -> MenuRegistry:
    return load_menus(generate_chain(tmp_path / "chain.yaml", 6))


def process(store: RedisSessionStore, menus: MenuRegistry, capacity: int = 100) -> Dialogue:
    return Dialogue(
        store=store,
        menus=menus,
        operations=lambda *_a, **_k: NoOperations(),
        handoffs=lambda _h: None,  # type: ignore[arg-type,return-value]
        metrics=Metrics.create(),
        recent=RecentSessions(capacity),
    )


def hop(session: str, n: int, kind: HopKind = HopKind.INPUT, text: str = "1") -> Hop:
    return Hop("ussd", "africastalking", session, "+79160000001", kind, f"{session}:{n}", text)


async def test_a_session_on_one_process_reads_redis_once(
    redis_client: aioredis.Redis, chain: MenuRegistry
) -> None:
    store = CountingStore(redis_client)
    dialogue = process(store, chain)
    session = f"s{next(_ids)}"
    screens = [(await dialogue.handle(hop(session, 0, HopKind.BEGIN, ""))).screen.text]
    for n in range(1, 7):
        screens.append((await dialogue.handle(hop(session, n))).screen.text)
    assert store.loads == 0, "every step went from the record this process saved"
    assert [s.split("\n")[0] for s in screens[:-1]] == [f"Level {n}" for n in range(6)]
    assert screens[-1] == "Chain done."
    assert len(dialogue.recent) == 0, "an ended session is not kept"


async def test_hops_alternating_between_processes_stay_exact(
    redis_client: aioredis.Redis, chain: MenuRegistry
) -> None:
    store = CountingStore(redis_client)
    first, second = process(store, chain), process(store, chain)
    session = f"s{next(_ids)}"
    answers = [await first.handle(hop(session, 0, HopKind.BEGIN, ""))]
    for n in range(1, 5):
        answers.append(await (second if n % 2 else first).handle(hop(session, n)))
    # Each process stepped once from a stale copy, lost the compare-and-set and
    # stepped again from the winner's record: no level skipped or repeated.
    assert [a.screen.text.split("\n")[0] for a in answers] == [f"Level {n}" for n in range(5)]
    assert [a.seq for a in answers] == [1, 2, 3, 4, 5]
    assert store.loads == 1, "only the second process's first hop read; conflicts bring the winner"
    # A retry of the last hop on the other process replays its answer.
    again = await second.handle(hop(session, 4))
    assert (again.outcome, again.screen.text) == ("duplicate", answers[-1].screen.text)


async def test_a_session_gone_from_redis_is_expired_not_revived(
    redis_client: aioredis.Redis, chain: MenuRegistry
) -> None:
    store = RedisSessionStore(redis_client)
    dialogue = process(store, chain)
    session = f"s{next(_ids)}"
    await dialogue.handle(hop(session, 0, HopKind.BEGIN, ""))
    ref = SessionRef("ussd", "africastalking", session, "+79160000001")
    assert dialogue.recent.get(ref) is not None
    await store.delete(ref)  # expired, or ended on another process
    answer = await dialogue.handle(hop(session, 1))
    assert answer.outcome == "expired"
    assert await store.load(ref) is None
    assert dialogue.recent.get(ref) is None


def test_the_oldest_records_go_past_capacity() -> None:
    recent = RecentSessions(capacity=2)
    refs = [SessionRef("ussd", "at", f"s{n}") for n in range(3)]
    for ref in refs:
        recent.keep(SessionRecord(ref=ref, menu_version="v", node="n", state="{}"))
    recent.keep(SessionRecord(ref=refs[1], menu_version="v", node="again", state="{}"))
    assert [recent.get(r) is not None for r in refs] == [False, True, True]
    assert len(recent) == 2
    off = RecentSessions(capacity=0)
    off.keep(SessionRecord(ref=refs[0], menu_version="v", node="n", state="{}"))
    assert off.get(refs[0]) is None

