"""The menus' operations port bound to the ledger, for one subscriber and one hop.

Each mutating call gets the idempotency key ``<prefix>:<n>``, where the prefix
names the session's origin and step (see ``dialogue``) and ``n`` counts the
mutating calls of the hop, so the same hop replayed, raced or resumed asks the
ledger the very same question. A call that does not answer within its
deadline, or finds PostgreSQL unreachable, returns ``unavailable`` and the
menu shows its "try later" branch: the gateway never waits past its budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import date, datetime
from typing import Any

import asyncpg
import structlog

import ledger
from menus.operations import OPERATIONS, UNAVAILABLE, OperationResult
from ussd_service.deadlines import within

log = structlog.get_logger(__name__)

# Well inside a USSD gateway's few seconds, with room for the rest of the hop.
DEFAULT_DEADLINE_S = 1.5
CATALOG_TTL_S = 10.0
HISTORY_LIMIT = 5

# Failures that mean "the ledger cannot answer now", not "the request is wrong".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    ledger.TooManyRetries,
)


class CatalogCache:
    """The active catalogue per (language, category), kept for a short while.

    Every list page (and every page turn) would otherwise read the catalogue
    from PostgreSQL; it changes only when an operator loads a new file, and a
    few seconds' delay in showing that is harmless.
    """

    def __init__(self, ttl_s: float = CATALOG_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple[str, str | None], tuple[float, OperationResult]] = {}

    def get(self, language: str, category: str | None) -> OperationResult | None:
        """The cached answer, or None when absent or stale."""
        entry = self._entries.get((language, category))
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def put(self, language: str, category: str | None, result: OperationResult) -> None:
        """Keep a successful answer."""
        self._entries[(language, category)] = (time.monotonic(), result)


def plain(value: Any) -> Any:
    """Dataclass values as JSON-friendly data for placeholders and session variables."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _result(outcome: ledger.Outcome[Any]) -> OperationResult:
    data = plain(outcome.value) if outcome.value is not None else dict(outcome.details)
    return OperationResult(outcome.code.value, data)


class LedgerOperations:
    """``menus.operations.Operations`` for ``msisdn``, keyed under ``key_prefix``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        msisdn: str,
        key_prefix: str,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        clock: ledger.Clock = ledger.SYSTEM_CLOCK,
        settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS,
        provisioner: ledger.Provisioner | None = None,
        before_mutation: Callable[[], Awaitable[None]] | None = None,
        language: str | None = None,
        catalog_cache: CatalogCache | None = None,
    ) -> None:
        self.pool = pool
        self.msisdn = msisdn
        self.key_prefix = key_prefix
        self.deadline_s = deadline_s
        self.clock = clock
        self.settings = settings
        self.provisioner = provisioner
        self.before_mutation = before_mutation
        self.catalog_cache = catalog_cache
        self._mutations = 0
        # The session's language, for texts the ledger stores per language.
        self._language = language or settings.default_language
        self._table: dict[
            str, Callable[[Mapping[str, Any]], Coroutine[Any, Any, OperationResult]]
        ] = {
            "subscriber": self._subscriber,
            "enroll": self._enroll,
            "balance": self._balance,
            "history": self._history,
            "catalog": self._catalog,
            "redeem": self._redeem,
            "gift": self._gift,
            "pending_gifts": self._pending_gifts,
            "accept_gift": self._accept_gift,
            "decline_gift": self._decline_gift,
            "set_language": self._set_language,
        }

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        """Run operation ``name``; ``unavailable`` when the ledger cannot answer in time."""
        handler = self._table.get(name)
        if handler is None or name not in OPERATIONS:
            raise ValueError(f"unknown operation {name!r}")
        if OPERATIONS[name].mutating and self.before_mutation is not None:
            # Once per hop, before any point moves (the dialogue's session claim).
            claim, self.before_mutation = self.before_mutation, None
            await claim()
        try:
            return await within(handler(args), self.deadline_s)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("operation_unavailable", operation=name, error=type(exc).__name__)
            return OperationResult(UNAVAILABLE)

    def _key(self) -> str:
        key = f"{self.key_prefix}:{self._mutations}"
        self._mutations += 1
        return key

    def _common(self) -> dict[str, Any]:
        return {"clock": self.clock, "settings": self.settings}

    # -- one method per operation ----------------------------------------------

    async def _subscriber(self, _args: Mapping[str, Any]) -> OperationResult:
        found = await ledger.get_subscriber(self.pool, self.msisdn, settings=self.settings)
        if found is None:
            return OperationResult(
                "ok", {"status": "not_enrolled", "language": self.settings.default_language}
            )
        self._language = found.language
        return OperationResult("ok", {"status": found.status, "language": found.language})

    async def _enroll(self, _args: Mapping[str, Any]) -> OperationResult:
        outcome = await ledger.enroll(self.pool, self.msisdn, key=self._key(), **self._common())
        return _result(outcome)

    async def _balance(self, _args: Mapping[str, Any]) -> OperationResult:
        return _result(await ledger.balance(self.pool, self.msisdn, **self._common()))

    async def _history(self, args: Mapping[str, Any]) -> OperationResult:
        limit = int(args.get("limit") or HISTORY_LIMIT)
        outcome = await ledger.history(self.pool, self.msisdn, limit, settings=self.settings)
        return _result(outcome)

    async def _catalog(self, args: Mapping[str, Any]) -> OperationResult:
        category = args.get("category") or None
        cache = self.catalog_cache
        if cache is not None and (cached := cache.get(self._language, category)) is not None:
            return cached
        outcome = await ledger.list_catalog(
            self.pool, language=self._language, category=category, settings=self.settings
        )
        result = _result(outcome)
        if cache is not None and result.ok:
            cache.put(self._language, category, result)
        return result

    async def _redeem(self, args: Mapping[str, Any]) -> OperationResult:
        outcome = await ledger.redeem(
            self.pool,
            self.msisdn,
            str(args["reward_code"]),
            key=self._key(),
            provisioner=self.provisioner,
            **self._common(),
        )
        return _result(outcome)

    async def _gift(self, args: Mapping[str, Any]) -> OperationResult:
        recipient = ledger.try_normalize_msisdn(
            str(args["recipient"]), self.settings.default_region
        )
        if recipient is None:
            return OperationResult("invalid_recipient")
        outcome = await ledger.gift(
            self.pool,
            self.msisdn,
            recipient,
            int(args["points"]),
            key=self._key(),
            **self._common(),
        )
        return _result(outcome)

    async def _pending_gifts(self, _args: Mapping[str, Any]) -> OperationResult:
        return _result(await ledger.pending_gifts(self.pool, self.msisdn, **self._common()))

    async def _accept_gift(self, args: Mapping[str, Any]) -> OperationResult:
        gift_id = args.get("gift_id")
        outcome = await ledger.accept_gift(
            self.pool,
            self.msisdn,
            int(gift_id) if gift_id is not None else None,
            key=self._key(),
            **self._common(),
        )
        return _result(outcome)

    async def _decline_gift(self, args: Mapping[str, Any]) -> OperationResult:
        gift_id = args.get("gift_id")
        outcome = await ledger.decline_gift(
            self.pool,
            self.msisdn,
            int(gift_id) if gift_id is not None else None,
            key=self._key(),
            **self._common(),
        )
        return _result(outcome)

    async def _set_language(self, args: Mapping[str, Any]) -> OperationResult:
        outcome = await ledger.set_language(
            self.pool, self.msisdn, str(args["language"]), key=self._key(), **self._common()
        )
        if outcome.ok:
            self._language = str(args["language"])
        return _result(outcome)
