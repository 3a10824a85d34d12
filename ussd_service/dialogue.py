"""One hop, end to end: load the session, replay or step, run operations, save, answer.

The pipeline (ARCHITECTURE.md, "One hop"): a gateway dialect hands over a
``Hop``; the session is loaded from the store; a hop already answered gets
its stored reply and nothing else happens; otherwise the menu steps on the
session's own menu version, operations run through the ledger with keys
derived from the session's origin and step count (so a retry, a concurrent
duplicate or a resumed session can never repeat an effect), and the new state
is saved with compare-and-set. A hop that loses the race re-reads: the
winner's reply if it answered the same hop, else it steps again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import cast

import structlog

from menus import MenuRegistry, UnknownVersionError
from menus.engine import Menu, SessionState, StepResult
from menus.model import Channel
from menus.screen import Screen
from session_store import (
    ResumePoint,
    SaveResult,
    SaveStatus,
    SessionRecord,
    SessionRef,
    SessionStore,
    StoreUnavailableError,
)
from session_store.dropoff import DropoffBuffer, DropoffEvent, DropoffKind
from ussd_service.hop import (
    Answer,
    Deadlines,
    HandoffNeeded,
    HandoffSink,
    Hop,
    HopKind,
    OperationsFactory,
    dropoff_events,
)
from ussd_service.metrics import Metrics
from ussd_service.recent_sessions import RecentSessions
from ussd_service.replies import dump_screen, load_screen, system_screen
from ussd_service.session_payload import SessionPayload, resume_point
from ussd_service.turns import Claim, LostRaceError, run_turn

log = structlog.get_logger(__name__)

# Texts of the dialogue itself that every menu file must define.
DIALOGUE_TEXTS = ("session_expired", "service_unavailable", "resume_offer")
RESUME_NODE = "__resume__"
RESUME_YES = "1"
RESUME_NO = "2"
MAX_CAS_ATTEMPTS = 4
# The outcome of a hop whose operation may or may not have moved points.
UNCERTAIN = "uncertain"
# How often a hop looks again while another hop of its session moves points.
BUSY_POLL_S = 0.01
# Entries of "node:input" kept for the operator's view of a handoff.
TRAIL_LIMIT = 12
# A node id no menu has: stepping from it sends the session to the operator
# node with the engine's "unknown node" reason (used when a menu version is gone).
GONE_NODE = "__gone__"


def _origin(ref: SessionRef) -> str:
    return f"{ref.channel}:{ref.gateway}:{ref.session_id}"


class Dialogue:
    """Runs hops against the session store, the menus and the operations."""

    def __init__(
        self,
        *,
        store: SessionStore,
        menus: MenuRegistry,
        operations: OperationsFactory,
        handoffs: HandoffSink,
        metrics: Metrics,
        deadlines: Deadlines | None = None,
        dropoff: DropoffBuffer | None = None,
        recent: RecentSessions | None = None,
    ) -> None:
        self.store = store
        self.menus = menus
        self.operations = operations
        self.handoffs = handoffs
        self.metrics = metrics
        self.deadlines = deadlines or Deadlines()
        self.dropoff = dropoff
        self.recent = RecentSessions() if recent is None else recent

    # ------------------------------------------------------------------ entry

    async def handle(self, hop: Hop) -> Answer:
        """Answer one hop; never raises for backend trouble (polite final screens)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.deadlines.for_channel(hop.channel)):
                answer = await self._handle(hop)
        except TimeoutError:
            self.metrics.hop_timeouts.labels(hop.channel).inc()
            answer = self._system_answer("service_unavailable", hop, outcome="timeout")
        except StoreUnavailableError:
            answer = self._system_answer("service_unavailable", hop, outcome="store_unavailable")
        except Exception:
            # A bug, not an outage: keep the traceback for us, a polite screen for them.
            log.exception("hop_failed", channel=hop.channel, session=hop.session_id)
            answer = self._system_answer("service_unavailable", hop, outcome="error")
        elapsed = time.perf_counter() - started
        self.metrics.hops.labels(hop.channel, answer.outcome).inc()
        self.metrics.hop_latency.labels(hop.channel).observe(elapsed)
        log.info(
            "hop",
            channel=hop.channel,
            gateway=hop.gateway,
            session=hop.session_id,
            kind=hop.kind.value,
            input_len=len(hop.input),
            node=answer.screen.node,
            final=answer.screen.final,
            outcome=answer.outcome,
            latency_ms=round(elapsed * 1000, 2),
        )
        return answer

    async def _handle(self, hop: Hop) -> Answer:
        ref = SessionRef(hop.channel, hop.gateway, hop.session_id, hop.msisdn)
        # A USSD dial may resume a dropped session: the first read also takes
        # the subscriber's pointer when the session is new (one round trip).
        take_dropped = hop.kind is HopKind.BEGIN and hop.channel == "ussd" and not hop.shortcut
        point: ResumePoint | None = None
        conflicts = 0
        while conflicts < MAX_CAS_ATTEMPTS:
            if take_dropped:
                record, point = await self.store.load_or_take_dropped(ref)
                take_dropped = False
            elif hop.kind is HopKind.ABORT or (record := self.recent.get(ref)) is None:
                # Steps go from the record this process saved last (RecentSessions:
                # the save's compare-and-set catches a stale one); an end reads.
                record = await self.store.load(ref)
            # The record's payload, parsed once per attempt.
            payload = SessionPayload.load(record.state) if record is not None else None
            if payload is not None and self._busy(payload, hop.channel):
                # A hop that moves points is in flight: its outcome decides
                # what this one sees (the caller's own retry replays it).
                self.recent.drop(ref)
                await asyncio.sleep(BUSY_POLL_S)
                continue
            unstepped = await self._without_step(hop, record, payload)
            if unstepped is not None:
                return unstepped
            try:
                if record is None:
                    answer, new = await self._begin(hop, ref, point)
                    result = await self.store.create(new)
                else:
                    assert payload is not None
                    answer, new, expected = await self._step(hop, record, payload)
                    result = await self._save(hop, new, expected, answer)
            except LostRaceError:
                self.recent.drop(ref)
                conflicts += 1
                self.metrics.cas_conflicts.labels(hop.channel).inc()
                continue
            self._note(ref, result, final=answer.screen.final)
            if result.status is SaveStatus.SAVED:
                assert result.record is not None
                self._count(answer.events)
                return replace(answer, seq=result.record.version)
            if result.status is SaveStatus.MISSING:
                return self._system_answer("session_expired", hop, outcome="expired")
            conflicts += 1
            self.metrics.cas_conflicts.labels(hop.channel).inc()
        return self._system_answer("service_unavailable", hop, outcome="conflict")

    def _note(self, ref: SessionRef, result: SaveResult, *, final: bool) -> None:
        """Keep what Redis now holds for the session's next hop here: the saved
        record, or a conflict's winner (the next attempt steps from it)."""
        kept = result.record
        if kept is None or (result.status is SaveStatus.SAVED and final):
            self.recent.drop(ref)
        else:
            self.recent.keep(kept)

    async def _without_step(
        self, hop: Hop, record: SessionRecord | None, payload: SessionPayload | None
    ) -> Answer | None:
        """The answer of a hop that steps nothing: an end, a replay, an expired session."""
        if hop.kind is HopKind.ABORT:
            return await self._abort(hop, record, payload)
        if record is not None:
            return self._replay(hop, record)
        if hop.kind is not HopKind.BEGIN:
            return self._system_answer("session_expired", hop, outcome="expired")
        return None

    def _busy(self, payload: SessionPayload, channel: str) -> bool:
        """True while another attempt holds the session's claim (and is not stale)."""
        busy = payload.busy
        if busy is None:
            return False
        age_s = time.time() - float(busy[1]) / 1000
        return age_s < self.deadlines.for_channel(channel)

    async def _save(
        self, hop: Hop, record: SessionRecord, expected: int, answer: Answer
    ) -> SaveResult:
        """Compare-and-set the record, keeping the USSD resume pointer current.

        Gateways that never report drops get the pointer set or deleted by
        every winning save, in the same script. A hop whose operation's outcome is
        unknown saves the record as it was before the hop (releasing the claim)
        with no answer stored: the gateway's retry asks the ledger again with
        the same idempotency key, and a redial is offered to resume from there,
        keys kept, so confirming again gets the ledger's real outcome.
        """
        if answer.outcome == UNCERTAIN:
            point = resume_point(hop, record) if hop.channel == "ussd" else None
            return await self.store.save(record, expected, remember=point)
        if hop.reports_drops or hop.channel != "ussd":
            return await self.store.save(record, expected)
        menu = self._version(record.menu_version) or self.menus.current
        if answer.screen.final or not menu.resumable(record.node):
            # Nothing worth resuming: the session ended, or shows what it can show again.
            return await self.store.save(record, expected, forget=True)
        return await self.store.save(record, expected, remember=resume_point(hop, record))

    def _replay(self, hop: Hop, record: SessionRecord) -> Answer | None:
        """The stored reply when this hop (or a repeated begin) was already answered."""
        stored = record.reply_for(hop.hop_id) if hop.hop_id else None
        if stored is None and hop.kind is HopKind.BEGIN and record.last_reply is not None:
            # A second "begin" of a live session is the gateway repeating itself.
            stored = record.last_reply
        if stored is None:
            return None
        self.metrics.duplicate_hops.labels(hop.channel).inc()
        screen, handoff_id = load_screen(stored)
        return Answer(screen, record.version, handoff_id, outcome="duplicate")

    # ------------------------------------------------------------------- steps

    async def _begin(
        self, hop: Hop, ref: SessionRef, point: ResumePoint | None
    ) -> tuple[Answer, SessionRecord]:
        menu = self.menus.current
        origin = _origin(ref)
        if point is not None:
            return self._offer_resume(hop, ref, menu, point)
        ops = self.operations(hop.msisdn, f"{origin}:0")
        turn = menu.turn_start(cast(Channel, hop.channel), shortcut=hop.shortcut)
        # A new session has nothing to claim: its record is created only if absent.
        result, _ = await run_turn(turn, ops, None)
        payload = SessionPayload(state=None, origin=origin, steps=1, trail=[])
        return await self._finish(
            hop, ref, menu=menu, result=result, payload=payload, node_before=""
        )

    def _offer_resume(
        self, hop: Hop, ref: SessionRef, menu: Menu, point: ResumePoint
    ) -> tuple[Answer, SessionRecord]:
        dropped = SessionPayload.load(point.state)
        assert dropped.state is not None
        language = str(dropped.state.get("l", menu.model.default_language))
        text = menu.texts["resume_offer"].render(language, {})
        screen = Screen(node=RESUME_NODE, text=text, final=False)
        # Keeping the dropped session's origin and step count keeps its
        # idempotency keys: an operation it already ran cannot run again.
        payload = SessionPayload(
            state=None,
            origin=dropped.origin,
            steps=dropped.steps,
            trail=dropped.trail,
            resume={"s": dropped.state, "v": point.menu_version},
        )
        record = SessionRecord(
            ref=ref,
            menu_version=point.menu_version,
            node=RESUME_NODE,
            state=payload.dump(),
            last_hop_id=hop.hop_id,
            last_reply=dump_screen(screen, None),
        )
        return Answer(screen, 0, outcome="resume_offered"), record

    async def _step(
        self, hop: Hop, record: SessionRecord, payload: SessionPayload
    ) -> tuple[Answer, SessionRecord, int]:
        """Step the session; the new record and the version its save must expect."""
        text: str | None = hop.input
        if hop.input_after is not None:
            text = hop.input_after(record.last_hop_id)
        if hop.kind is HopKind.TIMEOUT:
            text = None
        if payload.resume is not None:
            answer, new = await self._answer_resume(hop, record, payload, text)
            return answer, new, record.version
        assert payload.state is not None
        state = SessionState.from_dict(payload.state)
        menu = self._version(state.version)
        if menu is None:
            # The version this session started on is gone (e.g. a restart after
            # a reload): the current menu hands the caller to an operator.
            menu = self.menus.current
            state = replace(state, version=menu.version, node=GONE_NODE)
        claim = Claim(self.store, hop, record, payload)
        ops = self.operations(
            hop.msisdn, f"{payload.origin}:{payload.steps}", language=state.language
        )
        node_before = state.node
        result, uncertain = await run_turn(menu.turn_step(state, text), ops, claim)
        if uncertain:
            # The record stays as it was before this hop (claim released by the
            # caller): a retry or a resumed redial steps again with the same keys.
            answer = Answer(result.screen, 0, outcome=UNCERTAIN)
            return answer, replace(record, state=payload.dump()), claim.version
        payload.steps += 1
        payload.trail = [*(payload.trail or []), self._trail_entry(menu, node_before, text)]
        answer, new = await self._finish(
            hop,
            record.ref,
            menu=menu,
            result=result,
            payload=payload,
            node_before=node_before,
            base=record,
        )
        return answer, new, claim.version

    async def _answer_resume(
        self, hop: Hop, record: SessionRecord, payload: SessionPayload, text: str | None
    ) -> tuple[Answer, SessionRecord]:
        assert payload.resume is not None
        menu = self._version(str(payload.resume["v"]))
        if text == RESUME_YES and menu is not None:
            state = SessionState.from_dict(payload.resume["s"])
            ops = self.operations(
                hop.msisdn, f"{payload.origin}:{payload.steps}", language=state.language
            )
            result, _ = await run_turn(menu.turn_show(state), ops, None)
            payload.resume = None
            # No step taken: the next hop keeps the dropped session's keys, so
            # an operation the dropped hop may have run is recognised, not repeated.
            return await self._finish(
                hop,
                record.ref,
                menu=menu,
                result=result,
                payload=payload,
                node_before=RESUME_NODE,
                base=record,
            )
        menu = self.menus.current
        origin = _origin(record.ref)
        ops = self.operations(hop.msisdn, f"{origin}:0")
        result, _ = await run_turn(menu.turn_start(cast(Channel, hop.channel)), ops, None)
        fresh = SessionPayload(state=None, origin=origin, steps=1, trail=[])
        return await self._finish(
            hop,
            record.ref,
            menu=menu,
            result=result,
            payload=fresh,
            node_before=RESUME_NODE,
            base=record,
        )

    async def _finish(
        self,
        hop: Hop,
        ref: SessionRef,
        *,
        menu: Menu,
        result: StepResult,
        payload: SessionPayload,
        node_before: str,
        base: SessionRecord | None = None,
    ) -> tuple[Answer, SessionRecord]:
        payload.state = result.state.to_dict()
        if payload.trail is not None:
            del payload.trail[:-TRAIL_LIMIT]
        handoff_id = None
        screen = result.screen
        if screen.handoff is not None:
            self.metrics.handoffs.labels(screen.handoff.reason).inc()
            handoff_id = await self.handoffs(
                HandoffNeeded(
                    # One handoff per session and reason, whatever the gateway repeats.
                    key=f"{payload.origin}:{screen.handoff.reason}",
                    hop=hop,
                    language=result.state.language,
                    reason=screen.handoff.reason,
                    breadcrumb=tuple(payload.trail or ()),
                    ops=self.operations(hop.msisdn, f"{payload.origin}:{payload.steps}:h"),
                )
            )
        record = SessionRecord(
            ref=ref,
            menu_version=menu.version,
            node=result.state.node,
            state=payload.dump(),
            last_hop_id=hop.hop_id,
            last_reply=dump_screen(screen, handoff_id),
            version=base.version if base is not None else 0,
        )
        before = None if node_before in ("", RESUME_NODE) else node_before
        events = dropoff_events(menu.version, before, hop.kind, result)
        return Answer(screen, 0, handoff_id, events=events), record

    @staticmethod
    def _trail_entry(menu: Menu, node_id: str, text: str | None) -> str:
        if text is None:
            return f"{node_id}:(timeout)"
        if menu.masks_input(node_id):
            return f"{node_id}:****"
        return f"{node_id}:{text}"

    def _count(self, events: tuple[DropoffEvent, ...]) -> None:
        if self.dropoff is not None and events:
            self.dropoff.record(events)

    def _version(self, version: str) -> Menu | None:
        try:
            return self.menus.get(version)
        except UnknownVersionError:
            return None

    # ------------------------------------------------------------- endings

    async def _abort(
        self, hop: Hop, record: SessionRecord | None, payload: SessionPayload | None
    ) -> Answer:
        """The gateway ended the session: remember where, so a redial can resume."""
        if record is None or payload is None:
            return self._system_answer("session_expired", hop, outcome="aborted")
        screen, _ = load_screen(record.last_reply) if record.last_reply else (None, None)
        unfinished = screen is not None and not screen.final and payload.resume is None
        menu = self._version(record.menu_version) or self.menus.current
        if hop.channel == "ussd" and unfinished and menu.resumable(record.node):
            await self.store.remember_dropped(resume_point(hop, record))
        self.recent.drop(record.ref)
        await self.store.delete(record.ref)
        if unfinished:
            self._count((DropoffEvent(record.menu_version, record.node, DropoffKind.ABANDON),))
        closing = screen or Screen(node=record.node, text="", final=True)
        return Answer(replace(closing, final=True), record.version, outcome="aborted")

    def _system_answer(self, name: str, hop: Hop, *, outcome: str) -> Answer:
        """A final screen with one of the dialogue's own texts, in the default language."""
        return Answer(system_screen(self.menus.current, name, hop.channel), 0, outcome=outcome)
