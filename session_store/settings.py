"""Every Redis key prefix, TTL and limit of the session store, in one place.

Change a value here (or pass a :class:`StoreSettings` built from config) rather
than writing a literal anywhere else in the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

#: First segment of every key this package writes, so one Redis can be shared.
KEY_PREFIX = "ussd"
#: Second segment of a session record key: ``ussd:s:{channel:msisdn}:gateway:session_id``
#: (``ussd:s:{channel:gateway:session_id}`` for a reference without a number).
SESSION_KEY_PART = "s"
#: Second segment of a resume pointer key: ``ussd:resume:{channel:msisdn}``.
RESUME_KEY_PART = "resume"
#: Second segment of a daily drop-off counter hash: ``ussd:dropoff:YYYY-MM-DD``.
DROPOFF_KEY_PART = "dropoff"

USSD_SESSION_TTL = timedelta(seconds=180)  # gateways drop USSD sessions after ~180 s
IVR_SESSION_TTL = timedelta(minutes=30)  # a long call with hold music still fits
SMS_SESSION_TTL = timedelta(minutes=15)  # people answer an SMS menu within minutes
#: For a channel missing from the table: the shortest, so nothing lingers.
DEFAULT_SESSION_TTL = USSD_SESSION_TTL

SESSION_TTLS: Mapping[str, timedelta] = MappingProxyType(
    {"ussd": USSD_SESSION_TTL, "ivr": IVR_SESSION_TTL, "sms": SMS_SESSION_TTL}
)

#: How long a dropped USSD session can be resumed by dialling again.
RESUME_WINDOW = timedelta(minutes=5)

#: How long a daily drop-off bucket is kept after its day ends.
DROPOFF_RETENTION = timedelta(days=90)
#: How often :class:`session_store.dropoff.DropoffBuffer` writes its counts.
DROPOFF_FLUSH_INTERVAL = timedelta(seconds=1)

#: Longest gateway session id accepted in a key (gateways use ~20-60 chars).
MAX_SESSION_ID_LENGTH = 128
#: What a typical record (~180-char last reply) must stay under in Redis
#: (``MEMORY USAGE``); the contract tests assert it.
TYPICAL_RECORD_MAX_BYTES = 2048


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Tunables of a store instance; the defaults are the constants above."""

    key_prefix: str = KEY_PREFIX
    session_ttls: Mapping[str, timedelta] = field(default_factory=lambda: SESSION_TTLS)
    default_session_ttl: timedelta = DEFAULT_SESSION_TTL
    resume_window: timedelta = RESUME_WINDOW
    dropoff_retention: timedelta = DROPOFF_RETENTION

    def session_ttl(self, channel: str) -> timedelta:
        """TTL of a session record on ``channel``."""
        return self.session_ttls.get(channel, self.default_session_ttl)
