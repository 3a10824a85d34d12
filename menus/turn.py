"""A hop as a resumable, synchronous step: the engine says which operation to run.

::

    turn = menu.turn_step(state, user_input)   # or turn_start(...), turn_show(state)
    while turn.pending is not None:             # PendingOperation(name, args, mutating)
        result = await run_it(turn.pending)     # the caller claims the session if mutating
        turn.resume(result)                     # OperationResult
    step_result = turn.result                   # StepResult

The engine never awaits or calls an operation: whatever the caller's
operation raises (a lost race, an outage) stays with the caller, and the
abandoned turn changes nothing (it works on a copy of the state).
"""

from __future__ import annotations

from collections.abc import Generator

from menus.operations import OperationResult, Operations, PendingOperation
from menus.state import StepResult


class Turn:
    """One hop, paused at each operation the caller must run.

    ``pending`` is the operation to run next, or None when the hop is done and
    ``result`` holds its outcome.
    """

    __slots__ = ("_result", "_steps", "pending")

    def __init__(self, steps: Generator[PendingOperation, OperationResult, StepResult]) -> None:
        self._steps = steps
        self._result: StepResult | None = None
        self.pending: PendingOperation | None = None
        self._advance(None)

    def resume(self, result: OperationResult) -> None:
        """Go on with the hop, ``result`` being what ``pending`` answered."""
        if self.pending is None:
            raise RuntimeError("this turn waits for no operation")
        self._advance(result)

    @property
    def done(self) -> bool:
        """True when the hop is over (``result`` is set)."""
        return self._result is not None

    @property
    def result(self) -> StepResult:
        """The hop's outcome; raises while an operation is pending."""
        if self._result is None:
            raise RuntimeError(f"the turn waits for operation {self.pending!r}")
        return self._result

    def _advance(self, result: OperationResult | None) -> None:
        try:
            # The first send must be None (a generator not yet started).
            self.pending = self._steps.send(result)  # type: ignore[arg-type]
        except StopIteration as stop:
            self.pending = None
            self._result = stop.value


async def drive(turn: Turn, ops: Operations) -> StepResult:
    """Run a turn to its end with ``ops`` answering every pending operation."""
    while (pending := turn.pending) is not None:
        turn.resume(await ops(pending.name, pending.args))
    return turn.result
