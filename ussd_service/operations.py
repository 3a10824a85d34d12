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
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import asyncpg
import structlog

import ledger
from menus.operations import UNAVAILABLE, OperationResult
from ussd_service.deadlines import within
from ussd_service.menu_operations import REGISTRY, CatalogCache, as_result

log = structlog.get_logger(__name__)

# Well inside a USSD gateway's few seconds, with room for the rest of the hop.
DEFAULT_DEADLINE_S = 1.5

# Failures that mean "the ledger cannot answer now", not "the request is wrong".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # The server is shutting down (a fast shutdown, an administrator).
    asyncpg.OperatorInterventionError,
    # A pooled connection whose server died while it was idle: asyncpg reads the
    # server's goodbye as a protocol surprise ("cannot switch to state ...").
    asyncpg.InternalClientError,
    ledger.TooManyRetries,
)


def plain(value: Any) -> Any:
    """Dataclass values as JSON-friendly data for placeholders and session variables."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


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
        language: str | None = None,
        catalog_cache: CatalogCache | None = None,
    ) -> None:
        self.pool = pool
        self.msisdn = msisdn
        self.key_prefix = key_prefix
        self.deadline_s = deadline_s
        self._mutations = 0
        # What keyword-only parameters of the registry's functions are filled with.
        self._context: dict[str, Any] = {
            "clock": clock,
            "settings": settings,
            "provisioner": provisioner,
            "catalog_cache": catalog_cache,
            # The session's language, for texts the ledger stores per language.
            "session_language": language or settings.default_language,
        }

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        """Run operation ``name``; ``unavailable`` when the ledger cannot answer in time."""
        operation = REGISTRY.get(name)
        if operation is None:
            raise ValueError(f"unknown operation {name!r}")
        if operation.mutating:
            self._context["key"] = self._key()
        kwargs = {n: self._context[n] for n in operation.context if n in self._context}
        call = operation.function(self.pool, self.msisdn, **operation.arguments(args), **kwargs)
        try:
            outcome = await within(call, self.deadline_s)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("operation_unavailable", operation=name, error=type(exc).__name__)
            return OperationResult(UNAVAILABLE)
        result = as_result(outcome, plain)
        language = result.data.get("language") if result.ok else None
        if isinstance(language, str):
            # The subscriber's language became known, or they chose another.
            self._context["session_language"] = language
        return result

    def _key(self) -> str:
        key = f"{self.key_prefix}:{self._mutations}"
        self._mutations += 1
        return key
