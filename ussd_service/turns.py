"""Running one menu turn for the dialogue: the claim and the operations, as explicit steps.

The menu engine never runs an operation: its ``Turn`` pauses at each one.
``run_turn`` claims the session before the first operation that moves points
(a compare-and-set on the version the hop read) and runs each operation through
the ledger binding, noting when a mutating one's outcome is unknown.
"""

from __future__ import annotations

import time
from dataclasses import replace

from menus import Turn
from menus.engine import StepResult
from menus.operations import UNAVAILABLE, Operations
from session_store import SessionRecord, SessionStore
from ussd_service.hop import Hop
from ussd_service.session_payload import SessionPayload


class LostRaceError(Exception):
    """Another hop of the session committed or claimed it first; re-read and retry."""


class Claim:
    """The busy mark a hop takes before its first operation that moves points.

    The mark is a compare-and-set on the version the hop read, so two hops of
    one session can never both move points from the same screen, and any other
    hop waits for this one's outcome instead of overwriting it.
    """

    def __init__(
        self, store: SessionStore, hop: Hop, record: SessionRecord, payload: SessionPayload
    ) -> None:
        self.store = store
        self.hop = hop
        self.record = record
        self.payload = payload
        self.version = record.version

    async def __call__(self) -> None:
        if self.version != self.record.version:
            return  # claimed already in this hop
        marked = replace(self.payload, busy=[self.hop.hop_id, int(time.time() * 1000)])
        result = await self.store.save(
            replace(self.record, state=marked.dump()), self.record.version
        )
        if not result.saved:
            raise LostRaceError(self.hop.hop_id)
        assert result.record is not None
        self.version = result.record.version


async def run_turn(turn: Turn, ops: Operations, claim: Claim | None) -> tuple[StepResult, bool]:
    """Run the operations a turn asks for; the result and whether an outcome is unknown.

    The claim is taken before the first operation that moves points (it
    raises LostRaceError when another hop of the session got there first). A
    mutating operation answering ``unavailable`` may still have committed (a
    connection lost after COMMIT, a deadline passed): its outcome is unknown.
    """
    uncertain = False
    while (pending := turn.pending) is not None:
        if pending.mutating and claim is not None:
            await claim()
        result = await ops(pending.name, pending.args)
        uncertain = uncertain or (pending.mutating and result.code == UNAVAILABLE)
        turn.resume(result)
    return turn.result, uncertain
