"""Every business rule and limit of the ledger, in one settings object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Provisioning = Literal["dev", "external"]


@dataclass(frozen=True)
class LedgerSettings:
    """Rules the ledger enforces; the service builds one from its configuration."""

    # Phone numbers typed without a country code are read in this region.
    default_region: str = "RU"
    languages: tuple[str, ...] = ("ru", "en")
    default_language: str = "ru"

    # Gifts.
    gift_min_points: int = 10
    gift_max_points: int = 10_000
    # Points one sender may gift per calendar day (cancelled gifts do not count).
    gift_daily_cap_points: int = 20_000
    # The programme's local time zone: calendar days of the daily cap, dates shown.
    timezone: str = "Europe/Moscow"
    gift_ttl: timedelta = timedelta(hours=72)

    # Accruals expire this many calendar months after they are credited
    # unless the accrual names its own expiry.
    points_validity_months: int = 12
    # No accrual may name an expiry further ahead than this: far-future dates
    # (year 9999) cannot be shown in the programme's time zone, and no
    # programme promises points for longer.
    points_max_validity_months: int = 60

    # "dev": a redemption is fulfilled at once by the built-in provisioner.
    # "external": it stays reserved until a provisioning callback answers.
    provisioning: Provisioning = "dev"

    # A transaction that hits a deadlock or serialization failure is retried
    # whole (same idempotency key) up to this many times.
    max_attempts: int = 12
    retry_base_delay: timedelta = timedelta(milliseconds=2)

    # Sweepers handle this many gifts / accounts per transaction.
    sweep_batch: int = 200

    # Outbox delivery.
    outbox_max_attempts: int = 8
    outbox_backoff_base: timedelta = timedelta(seconds=30)
    outbox_backoff_max: timedelta = timedelta(hours=1)
    # A claimed message is invisible to other workers for this long; if the
    # worker dies before reporting, the message becomes due again.
    outbox_lease: timedelta = timedelta(seconds=60)

    history_default_limit: int = 10
    history_max_limit: int = 100


DEFAULT_SETTINGS = LedgerSettings()
