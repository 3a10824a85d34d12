"""The rewards catalogue and redemptions.

A redemption reserves the reward's price at once (subscriber -> escrow, lots
soonest-expiring first). Provisioning then answers: fulfilled (escrow ->
redemption account) or failed (escrow -> the subscriber's original lots).
With ``provisioning="dev"`` the built-in ``DevProvisioner`` fulfils at once.
The reservation is the stored function ``ledger_redeem`` (migration 0007),
one statement.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Protocol

import asyncpg
import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ledger import _accounts
from ledger._tx import Op, call_operation, run_operation
from ledger.clock import SYSTEM_CLOCK, Clock
from ledger.errors import Code
from ledger.results import Catalog, CatalogItem, Outcome, Redemption, RedemptionSettlement
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings

CATEGORIES = ("minutes", "sms_mms", "internet", "certificates", "gifts", "subscriptions")
DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")


# -- catalogue ----------------------------------------------------------------------


# A title is one line of a USSD menu page (80 characters in Cyrillic, with the
# price and the item's key beside it): keep it short; details go in the description.
MAX_TITLE_LENGTH = 22


class RewardSpec(pydantic.BaseModel):
    """One reward as written in the catalogue file."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    code: str = pydantic.Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")
    category: Literal["minutes", "sms_mms", "internet", "certificates", "gifts", "subscriptions"]
    price: int = pydantic.Field(gt=0, strict=True)
    title: dict[str, Annotated[str, pydantic.StringConstraints(max_length=MAX_TITLE_LENGTH)]]
    description: dict[str, str]
    active: bool = True


class CatalogFile(pydantic.BaseModel):
    """The catalogue file: ``rewards: [...]``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    rewards: list[RewardSpec]


class CatalogError(ValueError):
    """The catalogue file is malformed; the message says where."""


@dataclass(frozen=True)
class CatalogLoad:
    """What ``load_catalog`` did."""

    loaded: int
    deactivated: list[str]


def parse_catalog(text: str, settings: LedgerSettings = DEFAULT_SETTINGS) -> list[RewardSpec]:
    """Validate catalogue YAML; every reward needs a title and description per language."""
    try:
        raw = YAML(typ="safe").load(text)
        parsed = CatalogFile.model_validate(raw)
    except (pydantic.ValidationError, YAMLError, ValueError) as exc:
        raise CatalogError(str(exc)) from exc
    seen: set[str] = set()
    for spec in parsed.rewards:
        if spec.code in seen:
            raise CatalogError(f"reward {spec.code}: code appears twice")
        seen.add(spec.code)
        for field_name in ("title", "description"):
            texts: dict[str, str] = getattr(spec, field_name)
            missing = [lang for lang in settings.languages if not texts.get(lang, "").strip()]
            if missing:
                raise CatalogError(f"reward {spec.code}: {field_name} missing for {missing}")
    return parsed.rewards


async def load_catalog(
    pool: asyncpg.Pool,
    source: Path | str = DEFAULT_CATALOG,
    *,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> CatalogLoad:
    """Load the catalogue from a YAML file (``Path``) or YAML text (``str``).

    Rewards in the file are inserted or updated; rewards missing from it are
    deactivated (kept, since redemptions refer to them). Loading the same file
    twice changes nothing.
    """
    text = (
        await asyncio.to_thread(source.read_text, "utf-8") if isinstance(source, Path) else source
    )
    specs = parse_catalog(text, settings)
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            """
            INSERT INTO rewards (code, category, title, description, price, active, position)
            VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7)
            ON CONFLICT (code) DO UPDATE SET
                category = EXCLUDED.category, title = EXCLUDED.title,
                description = EXCLUDED.description, price = EXCLUDED.price,
                active = EXCLUDED.active, position = EXCLUDED.position, updated_at = now()
            """,
            [
                (
                    spec.code,
                    spec.category,
                    json.dumps(spec.title, ensure_ascii=False),
                    json.dumps(spec.description, ensure_ascii=False),
                    spec.price,
                    spec.active,
                    position,
                )
                for position, spec in enumerate(specs)
            ],
        )
        rows = await conn.fetch(
            "UPDATE rewards SET active = false, updated_at = now() "
            "WHERE active AND NOT (code = ANY($1::text[])) RETURNING code",
            [spec.code for spec in specs],
        )
    return CatalogLoad(loaded=len(specs), deactivated=sorted(row["code"] for row in rows))


def _localised(texts: dict[str, str], language: str, settings: LedgerSettings) -> str:
    return (
        texts.get(language)
        or texts.get(settings.default_language)
        or next(iter(texts.values()), "")
    )


async def list_catalog(
    pool: asyncpg.Pool,
    *,
    language: str | None = None,
    category: str | None = None,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Catalog]:
    """Active rewards (of one category, if given) with texts in ``language``. Code: ok."""
    lang = language or settings.default_language
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT code, category, title, description, price FROM rewards "
            "WHERE active AND ($1::text IS NULL OR category = $1) "
            "ORDER BY array_position($2::text[], category), position, price, code",
            category,
            list(CATEGORIES),
        )
    items = [
        CatalogItem(
            code=row["code"],
            category=row["category"],
            title=_localised(json.loads(row["title"]), lang, settings),
            description=_localised(json.loads(row["description"]), lang, settings),
            price=row["price"],
        )
        for row in rows
    ]
    return Outcome(Code.OK, Catalog(items))


# -- redemptions ---------------------------------------------------------------------


class Provisioner(Protocol):
    """Delivers a reserved reward, answering later by ``fulfil_redemption``/``fail_redemption``."""

    async def submit(self, redemption: Redemption) -> None: ...


class DevProvisioner:
    """Development: every reward is delivered at once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Clock = SYSTEM_CLOCK,
        settings: LedgerSettings = DEFAULT_SETTINGS,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._settings = settings

    async def submit(self, redemption: Redemption) -> None:
        await fulfil_redemption(
            self._pool,
            redemption.redemption_id,
            key=f"dev-provisioner:{redemption.redemption_id}",
            clock=self._clock,
            settings=self._settings,
        )


# The stored function of migration 0007: a redemption in one statement.
_REDEEM = "SELECT state, result FROM ledger_redeem($1, $2, $3, $4, $5, $6)"


async def redeem(
    pool: asyncpg.Pool,
    msisdn: str,
    reward_code: str,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
    provisioner: Provisioner | None = None,
) -> Outcome[Redemption]:
    """Reserve a reward's price and hand the redemption to provisioning.

    Codes: ok, not_enrolled, blocked, unknown_reward, insufficient_points.
    ``provisioner`` defaults to ``DevProvisioner`` when ``settings.provisioning``
    is "dev", else to none (an external system polls or is told elsewhere and
    calls back). It is called after the reservation commits, also for a
    retried request, so a crash in between is healed by the retry.
    """
    number = _accounts.normalize(msisdn, settings.default_region)
    code_wanted = reward_code.strip().lower()

    outcome = await call_operation(
        pool,
        kind="redeem",
        key=key,
        request={"msisdn": number, "reward_code": code_wanted},
        value_type=Redemption,
        query=_REDEEM,
        args=lambda _now: (number, code_wanted, settings.default_language),
        clock=clock,
        settings=settings,
    )
    if provisioner is None and settings.provisioning == "dev":
        provisioner = DevProvisioner(pool, clock=clock, settings=settings)
    if outcome.value is not None and provisioner is not None:
        await provisioner.submit(outcome.value)
    return outcome


async def _settle(
    pool: asyncpg.Pool,
    redemption_id: int,
    *,
    status: Literal["fulfilled", "failed"],
    reason: str | None,
    key: str,
    clock: Clock,
    settings: LedgerSettings,
) -> Outcome[RedemptionSettlement]:
    async def body(op: Op) -> Outcome[RedemptionSettlement]:
        row = await op.conn.fetchrow(
            "UPDATE redemptions SET status = $2, resolved_at = $3, resolve_operation_id = $4, "
            "failure_reason = $5 WHERE id = $1 AND status = 'reserved' "
            "RETURNING subscriber_id, reward_code, points, operation_id",
            redemption_id,
            status,
            op.now,
            op.id,
            reason,
        )
        if row is None:
            exists = await op.conn.fetchval(
                "SELECT status FROM redemptions WHERE id = $1", redemption_id
            )
            if exists is None:
                return Outcome(Code.UNKNOWN_REDEMPTION)
            return Outcome(Code.REDEMPTION_NOT_RESERVED, details={"status": exists})
        sub = await _accounts.subscriber_by_id(op.conn, row["subscriber_id"])
        op.subscriber_id = sub.id
        if status == "fulfilled":
            await _accounts.post_between_system_accounts(op, "escrow", "redemption", row["points"])
        else:
            await _accounts.lock_accounts(op.conn, [sub.account_id])
            shares = await _accounts.consumed_by(op.conn, row["operation_id"])
            await _accounts.restore(op, sub.account_id, shares, "escrow")
        title_json = await op.conn.fetchval(
            "SELECT title FROM rewards WHERE code = $1", row["reward_code"]
        )
        await _accounts.emit(
            op,
            "reward_fulfilled" if status == "fulfilled" else "reward_failed",
            sub.msisdn,
            {
                "language": sub.language,
                "redemption_id": redemption_id,
                "reward_code": row["reward_code"],
                "reward_title": _localised(json.loads(title_json), sub.language, settings),
                "points": row["points"],
            },
        )
        return Outcome(
            Code.OK,
            RedemptionSettlement(
                redemption_id, sub.msisdn, row["reward_code"], row["points"], status
            ),
        )

    return await run_operation(
        pool,
        kind="fulfil_redemption" if status == "fulfilled" else "fail_redemption",
        key=key,
        request={"redemption_id": redemption_id, "reason": reason},
        value_type=RedemptionSettlement,
        body=body,
        clock=clock,
        settings=settings,
    )


async def fulfil_redemption(
    pool: asyncpg.Pool,
    redemption_id: int,
    *,
    key: str,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[RedemptionSettlement]:
    """Provisioning delivered the reward: the reserved points are spent.

    Codes: ok, unknown_redemption, redemption_not_reserved.
    """
    return await _settle(
        pool, redemption_id, status="fulfilled", reason=None, key=key, clock=clock,
        settings=settings,
    )  # fmt: skip


async def fail_redemption(
    pool: asyncpg.Pool,
    redemption_id: int,
    *,
    key: str,
    reason: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[RedemptionSettlement]:
    """Provisioning could not deliver: the reserved points go back to their lots.

    Codes: ok, unknown_redemption, redemption_not_reserved.
    """
    return await _settle(
        pool, redemption_id, status="failed", reason=reason, key=key, clock=clock,
        settings=settings,
    )  # fmt: skip
