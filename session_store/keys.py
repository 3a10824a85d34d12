"""Redis key layout, ready for Redis Cluster.

Every key of one session carries the same ``{...}`` hash tag, so they live in
one slot and one Lua script may touch them all. A session whose reference
names its subscriber shares the tag of that subscriber's resume pointer
(``{channel:+E164}``), so the pointer moves in the same script as the
record. Components are validated so a hostile or broken gateway cannot forge
another session's key.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote

from session_store.errors import InvalidKeyError
from session_store.records import SessionRef
from session_store.settings import (
    DROPOFF_KEY_PART,
    MAX_SESSION_ID_LENGTH,
    RESUME_KEY_PART,
    SESSION_KEY_PART,
)

_NAME = re.compile(r"[a-z0-9_-]{1,32}")
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")
# Braces would move the hash tag; '%' is escaped so the quoting is reversible.
_UNSAFE_IN_TAG = frozenset("{}%")


def _name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidKeyError(f"{kind} must match {_NAME.pattern}, got {value!r}")
    return value


def _session_id(value: str) -> str:
    if not value or len(value) > MAX_SESSION_ID_LENGTH:
        raise InvalidKeyError(f"session id must be 1..{MAX_SESSION_ID_LENGTH} characters")
    if _UNSAFE_IN_TAG.isdisjoint(value):
        return value
    return quote(value, safe="")


def _msisdn(value: str) -> str:
    if not _E164.fullmatch(value):
        raise InvalidKeyError("msisdn must be in E.164 form (+ and 7..15 digits)")
    return value


def subscriber_tag(channel: str, msisdn: str) -> str:
    """The hash tag of one subscriber's keys on one channel."""
    return "{" + f"{_name('channel', channel)}:{_msisdn(msisdn)}" + "}"


def session_tag(ref: SessionRef) -> str:
    """The hash tag every key of this session carries."""
    if ref.msisdn:
        return subscriber_tag(ref.channel, ref.msisdn)
    channel = _name("channel", ref.channel)
    gateway = _name("gateway", ref.gateway)
    return "{" + f"{channel}:{gateway}:{_session_id(ref.session_id)}" + "}"


def session_key(prefix: str, ref: SessionRef) -> str:
    """Key of the session record hash.

    With the subscriber's number: ``ussd:s:{ussd:+79161234567}:gateway:id``;
    without: ``ussd:s:{ussd:gateway:id}``.
    """
    tag = session_tag(ref)
    if not ref.msisdn:
        return f"{prefix}:{SESSION_KEY_PART}:{tag}"
    gateway = _name("gateway", ref.gateway)
    return f"{prefix}:{SESSION_KEY_PART}:{tag}:{gateway}:{_session_id(ref.session_id)}"


def session_keys(prefix: str, ref: SessionRef) -> tuple[str, ...]:
    """Every key the store may write for this session (all in one slot)."""
    if ref.msisdn:
        return (session_key(prefix, ref), resume_key(prefix, ref.channel, ref.msisdn))
    return (session_key(prefix, ref),)


def resume_key(prefix: str, channel: str, msisdn: str) -> str:
    """Key of the resume pointer of one subscriber on one channel.

    The E.164 number is in the key as is: hashing a 10^10 space would hide
    nothing from anyone with Redis access. It never goes to logs.
    """
    return f"{prefix}:{RESUME_KEY_PART}:{subscriber_tag(channel, msisdn)}"


def dropoff_key(prefix: str, day: date) -> str:
    """Key of the drop-off counter hash of one UTC day."""
    return f"{prefix}:{DROPOFF_KEY_PART}:{day.isoformat()}"
