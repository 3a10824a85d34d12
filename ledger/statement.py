"""The subscriber's statement: the history with what each movement was, for screens.

``history`` lists postings (kind, signed points, balance after); a subscriber
reading it on a phone also needs to know *what* each movement was: which
reward, to or from whom. ``statement`` answers that, read-only, newest first,
with dates in the programme's time zone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from ledger import _accounts
from ledger.errors import Code
from ledger.msisdn import normalize
from ledger.points import HISTORY_KINDS
from ledger.results import Outcome
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings


@dataclass(frozen=True)
class StatementItem:
    """One movement: ``points`` signed (+ in, - out), ``amount`` its size.

    ``counterparty`` is the other subscriber of a gift (E.164), ``reward`` the
    title of a redeemed or refunded reward in the language asked for;
    ``created_at`` is in the programme's time zone.
    """

    kind: str
    points: int
    amount: int
    created_at: datetime
    counterparty: str | None
    reward: str | None


@dataclass(frozen=True)
class Statement:
    items: list[StatementItem]


# Each posting on the subscriber's account, with the gift or redemption its
# operation made or resolved (one at most: every gift and redemption change is
# an operation of its own).
_STATEMENT = """
SELECT o.kind, p.amount, p.created_at,
       CASE WHEN g.sender_id = $2 THEN gr.msisdn ELSE gs.msisdn END AS counterparty,
       w.title AS reward
FROM postings p
JOIN operations o ON o.id = p.operation_id
LEFT JOIN gifts g ON g.operation_id = o.id OR g.resolve_operation_id = o.id
LEFT JOIN subscribers gs ON gs.id = g.sender_id
LEFT JOIN subscribers gr ON gr.id = g.recipient_id
LEFT JOIN redemptions r ON r.operation_id = o.id OR r.resolve_operation_id = o.id
LEFT JOIN rewards w ON w.code = r.reward_code
WHERE p.account_id = $1
ORDER BY p.id DESC
LIMIT $3
"""


def _title(raw: str | dict[str, str] | None, language: str, settings: LedgerSettings) -> str | None:
    if raw is None:
        return None
    texts: dict[str, str] = json.loads(raw) if isinstance(raw, str) else raw
    return (
        texts.get(language)
        or texts.get(settings.default_language)
        or next(iter(texts.values()), None)
    )


async def statement(
    pool: asyncpg.Pool,
    msisdn: str,
    limit: int | None = None,
    *,
    language: str | None = None,
    settings: LedgerSettings = DEFAULT_SETTINGS,
) -> Outcome[Statement]:
    """The latest movements with their counterparty or reward, newest first.

    ``language`` picks the reward titles. Codes: ok, not_enrolled (a blocked
    subscriber still sees their statement).
    """
    number = normalize(msisdn, settings.default_region)
    wanted = settings.history_default_limit if limit is None else limit
    wanted = max(1, min(wanted, settings.history_max_limit))
    lang = language or settings.default_language
    zone = ZoneInfo(settings.timezone)
    async with pool.acquire() as conn:
        sub = await _accounts.find_subscriber(conn, number)
        if sub is None or sub.status == "not_enrolled":
            return Outcome(Code.NOT_ENROLLED)
        rows = await conn.fetch(_STATEMENT, sub.account_id, sub.id, wanted)
    items = [
        StatementItem(
            kind=HISTORY_KINDS.get(row["kind"], row["kind"]),
            points=row["amount"],
            amount=abs(row["amount"]),
            created_at=row["created_at"].astimezone(zone),
            counterparty=row["counterparty"],
            reward=_title(row["reward"], lang, settings),
        )
        for row in rows
    ]
    return Outcome(Code.OK, Statement(items))
