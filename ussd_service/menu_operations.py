"""The registry that links each menu operation name to the ledger function answering it.

One entry per operation: the name a menu's ``action`` or ``list`` node uses,
the ledger function, and the result codes it can return. Everything else is
read from the function's signature, by type:

* the first two positional parameters are the pool and the subscriber;
* the other positional parameters are the menu's arguments, converted to
  their annotated type (``int``, ``str``; a default makes one optional);
* keyword-only parameters are filled from the hop's context by name
  (``key`` makes the operation mutating: it moves points and needs an
  idempotency key; ``clock``, ``settings``, ``provisioner``,
  ``session_language``, ``catalog_cache``); others keep their defaults.

The menu validator gets the derived table (``menu_operations``), so a menu
naming an unknown operation, argument or result code is refused at load.
Adding an operation is a ledger function plus one entry here.
"""

from __future__ import annotations

import inspect
import time
import types
import typing
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

import ledger
from ledger import Code
from menus.operations import OK, UNAVAILABLE, OperationResult, OperationSpec

CATALOG_TTL_S = 10.0
# Movements a history screen pages through (read on a small screen, a page at a time).
HISTORY_LIMIT = 20
# Keyword-only parameters a hop's context can fill.
CONTEXT_NAMES = frozenset(
    {"key", "clock", "settings", "provisioner", "session_language", "catalog_cache"}
)


class CatalogCache:
    """The active catalogue per (language, category), kept for a short while.

    Every list page (and every page turn) would otherwise read the catalogue
    from PostgreSQL; it changes only when an operator loads a new file, and a
    few seconds' delay in showing that is harmless.
    """

    def __init__(self, ttl_s: float = CATALOG_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple[str, str | None], tuple[float, ledger.Outcome[Any]]] = {}

    def get(self, language: str, category: str | None) -> ledger.Outcome[Any] | None:
        """The cached answer, or None when absent or stale."""
        entry = self._entries.get((language, category))
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def put(self, language: str, category: str | None, outcome: ledger.Outcome[Any]) -> None:
        """Keep a successful answer."""
        self._entries[(language, category)] = (time.monotonic(), outcome)


# -- adapters: operations that are not one ledger call as it stands -----------------


async def subscriber(
    pool: asyncpg.Pool, msisdn: str, *, settings: ledger.LedgerSettings
) -> ledger.Outcome[Any]:
    """Status and language; a number never seen is ``not_enrolled`` (not an error)."""
    found = await ledger.get_subscriber(pool, msisdn, settings=settings)
    if found is None:
        details = {"status": "not_enrolled", "language": settings.default_language}
        return ledger.Outcome(Code.OK, details=details)
    return ledger.Outcome(Code.OK, details={"status": found.status, "language": found.language})


async def history(
    pool: asyncpg.Pool,
    msisdn: str,
    limit: int = HISTORY_LIMIT,
    *,
    settings: ledger.LedgerSettings,
    session_language: str,
) -> ledger.Outcome[Any]:
    """The latest movements with their counterparty or reward (reward titles in the
    session's language)."""
    return await ledger.statement(pool, msisdn, limit, language=session_language, settings=settings)


async def catalog(
    pool: asyncpg.Pool,
    _msisdn: str,
    category: str | None = None,
    *,
    settings: ledger.LedgerSettings,
    session_language: str,
    catalog_cache: CatalogCache | None = None,
) -> ledger.Outcome[Any]:
    """The active rewards (of one category) in the session's language, cached briefly."""
    category = category or None
    if catalog_cache is not None:
        cached = catalog_cache.get(session_language, category)
        if cached is not None:
            return cached
    outcome = await ledger.list_catalog(
        pool, language=session_language, category=category, settings=settings
    )
    if catalog_cache is not None and outcome.ok:
        catalog_cache.put(session_language, category, outcome)
    return outcome


async def cancel_gift(
    pool: asyncpg.Pool,
    msisdn: str,
    gift_id: int,
    *,
    key: str,
    clock: ledger.Clock,
    settings: ledger.LedgerSettings,
) -> ledger.Outcome[Any]:
    """Take back the gift picked from the list (the ledger's "newest" needs no menu)."""
    return await ledger.cancel_gift(pool, msisdn, gift_id, key=key, clock=clock, settings=settings)


# -- the registry --------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """A menu operation: its name, the function that answers it, the codes it returns."""

    name: str
    function: Callable[..., Coroutine[Any, Any, ledger.Outcome[Any]]]
    codes: tuple[Code, ...] = ()
    # Derived from the function's signature.
    args: Mapping[str, type] = field(init=False)
    optional: frozenset[str] = field(init=False)
    context: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(self.function)
        params = list(inspect.signature(self.function).parameters.values())
        args: dict[str, type] = {}
        optional: set[str] = set()
        context: set[str] = set()
        for param in params[2:]:
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                if param.name in CONTEXT_NAMES:
                    context.add(param.name)
                elif param.default is inspect.Parameter.empty:
                    raise TypeError(f"{self.name}: no context value named {param.name!r}")
                continue
            args[param.name] = _value_type(hints[param.name])
            if param.default is not inspect.Parameter.empty:
                optional.add(param.name)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "optional", frozenset(optional))
        object.__setattr__(self, "context", frozenset(context))

    @property
    def mutating(self) -> bool:
        """True when the operation moves points (it takes an idempotency key)."""
        return "key" in self.context

    def spec(self) -> OperationSpec:
        """What the menu validator checks a node against."""
        return OperationSpec(
            args=frozenset(self.args) - self.optional,
            codes=frozenset({OK, UNAVAILABLE, *(code.value for code in self.codes)}),
            mutating=self.mutating,
            optional_args=self.optional,
        )

    def arguments(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The menu's argument values converted to the function's types."""
        out: dict[str, Any] = {}
        for name, kind in self.args.items():
            value = given.get(name)
            if value is None:
                continue
            out[name] = kind(value)
        return out


def _value_type(hint: Any) -> type:
    """``int`` for ``int`` and ``int | None``; likewise ``str``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint not in (int, str):
        raise TypeError(f"menu arguments are int or str, not {hint!r}")
    return typing.cast(type, hint)


_RESOLVE_CODES = (Code.NO_PENDING_GIFT, Code.GIFT_EXPIRED, Code.GIFT_NOT_PENDING)

# Result data (keys) per operation, for placeholder authors:
#   subscriber     -> status ("not_enrolled" | "active" | "blocked"), language
#   enroll         -> status
#   balance        -> available, pending_in, pending_out, expiring_points, expiring_date
#   history        -> items: [{kind, points (signed), amount, created_at, counterparty, reward}]
#   catalog        -> items: [{code, title, description, price, category}]
#   redeem         -> reward_title, points, available, redemption_id
#   gift           -> gift_id, points, recipient, expires_at, available
#   gift_check     -> recipient, minimum, maximum, available, allowance (read-only: may the
#                     sender gift, to this recipient; minimum and maximum on refusals too)
#   pending_gifts  -> items: [{gift_id, sender, points, expires_at}], count
#   accept_gift    -> gift_id, points, sender, available, remaining (pending gifts left)
#   decline_gift   -> gift_id, points, sender, remaining
#   sent_gifts     -> items: [{gift_id, recipient, points, created_at, expires_at}], count
#                     (the caller's gifts still waiting for an answer)
#   cancel_gift    -> gift_id, points, recipient, available; refused: status (accepted,
#                     declined, cancelled, expired) unless no_pending_gift
#   set_language   -> language
#: Every operation a menu can run.
REGISTRY: Mapping[str, Operation] = {
    op.name: op
    for op in (
        Operation("subscriber", subscriber),
        Operation("enroll", ledger.enroll, (Code.ALREADY_ENROLLED, Code.BLOCKED)),
        Operation("balance", ledger.balance, (Code.NOT_ENROLLED, Code.BLOCKED)),
        Operation("history", history, (Code.NOT_ENROLLED,)),
        Operation("catalog", catalog),
        Operation(
            "redeem",
            ledger.redeem,
            (Code.NOT_ENROLLED, Code.BLOCKED, Code.INSUFFICIENT_POINTS, Code.UNKNOWN_REWARD),
        ),
        Operation(
            "gift",
            ledger.gift,
            (
                Code.NOT_ENROLLED,
                Code.BLOCKED,
                Code.INVALID_RECIPIENT,
                Code.RECIPIENT_NOT_ENROLLED,
                Code.SELF_GIFT,
                Code.INSUFFICIENT_POINTS,
                Code.BELOW_MINIMUM,
                Code.ABOVE_MAXIMUM,
                Code.DAILY_CAP_EXCEEDED,
            ),
        ),
        Operation(
            "gift_check",
            ledger.gift_check,
            (
                Code.NOT_ENROLLED,
                Code.BLOCKED,
                Code.INVALID_RECIPIENT,
                Code.SELF_GIFT,
                Code.RECIPIENT_NOT_ENROLLED,
            ),
        ),
        Operation("pending_gifts", ledger.pending_gifts),
        Operation("accept_gift", ledger.accept_gift, _RESOLVE_CODES),
        Operation("decline_gift", ledger.decline_gift, _RESOLVE_CODES),
        Operation("sent_gifts", ledger.sent_gifts),
        Operation("cancel_gift", cancel_gift, _RESOLVE_CODES),
        Operation("set_language", ledger.set_language, (Code.UNSUPPORTED_LANGUAGE,)),
    )
}


def menu_operations() -> dict[str, OperationSpec]:
    """The table the menu loader validates operation names, arguments and codes against."""
    return {name: op.spec() for name, op in REGISTRY.items()}


def as_result(outcome: ledger.Outcome[Any], plain: Callable[[Any], Any]) -> OperationResult:
    """The ledger's outcome as the menu sees it: a code and JSON-friendly data."""
    data = plain(outcome.value) if outcome.value is not None else dict(outcome.details)
    return OperationResult(outcome.code.value, data)
