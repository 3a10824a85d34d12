"""The points ledger: exact double-entry bookkeeping of loyalty points on PostgreSQL.

Plain async functions over an ``asyncpg`` pool; each runs in one transaction
and each mutating one takes an idempotency ``key``. See ``ledger/README.md``.
"""

from ledger.check import Violation, check
from ledger.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from ledger.errors import Code, InvalidMsisdn, LedgerError, TooManyRetries
from ledger.gifts import (
    accept_gift,
    cancel_gift,
    decline_gift,
    expire_gifts,
    gift,
    pending_gifts,
)
from ledger.migrations import migrate
from ledger.msisdn import normalize as normalize_msisdn
from ledger.msisdn import try_normalize as try_normalize_msisdn
from ledger.outbox import (
    OutboxMessage,
    claim_due,
    list_outbox,
    mark_sent,
    record_failure,
)
from ledger.points import accrue, balance, expire_points, history
from ledger.results import (
    Accrual,
    Balance,
    Catalog,
    CatalogItem,
    Enrollment,
    GiftAccepted,
    GiftCancelled,
    GiftDeclined,
    GiftSent,
    History,
    HistoryItem,
    LanguageChange,
    Outcome,
    PendingGift,
    PendingGifts,
    Redemption,
    RedemptionSettlement,
    StatusChange,
    Subscriber,
    SubscriberSummary,
)
from ledger.rewards import (
    DEFAULT_CATALOG,
    CatalogError,
    CatalogLoad,
    DevProvisioner,
    Provisioner,
    fail_redemption,
    fulfil_redemption,
    list_catalog,
    load_catalog,
    redeem,
)
from ledger.settings import DEFAULT_SETTINGS, LedgerSettings
from ledger.subscribers import (
    block,
    enroll,
    get_subscriber,
    set_language,
    subscriber_summary,
)
from ledger.sweeper import SweepReport, run_sweeper, sweep

__all__ = [
    "DEFAULT_CATALOG",
    "DEFAULT_SETTINGS",
    "SYSTEM_CLOCK",
    "Accrual",
    "Balance",
    "Catalog",
    "CatalogError",
    "CatalogItem",
    "CatalogLoad",
    "Clock",
    "Code",
    "DevProvisioner",
    "Enrollment",
    "GiftAccepted",
    "GiftCancelled",
    "GiftDeclined",
    "GiftSent",
    "History",
    "HistoryItem",
    "InvalidMsisdn",
    "LanguageChange",
    "LedgerError",
    "LedgerSettings",
    "ManualClock",
    "OutboxMessage",
    "Outcome",
    "PendingGift",
    "PendingGifts",
    "Provisioner",
    "Redemption",
    "RedemptionSettlement",
    "StatusChange",
    "Subscriber",
    "SubscriberSummary",
    "SweepReport",
    "SystemClock",
    "TooManyRetries",
    "Violation",
    "accept_gift",
    "accrue",
    "balance",
    "block",
    "cancel_gift",
    "check",
    "claim_due",
    "decline_gift",
    "enroll",
    "expire_gifts",
    "expire_points",
    "fail_redemption",
    "fulfil_redemption",
    "get_subscriber",
    "gift",
    "history",
    "list_catalog",
    "list_outbox",
    "load_catalog",
    "mark_sent",
    "migrate",
    "normalize_msisdn",
    "pending_gifts",
    "record_failure",
    "redeem",
    "run_sweeper",
    "set_language",
    "subscriber_summary",
    "sweep",
    "try_normalize_msisdn",
]
