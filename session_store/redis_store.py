"""Session store on Redis (standalone or Cluster) with a Lua compare-and-set."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from session_store.keys import resume_key, session_key
from session_store.records import (
    ResumePoint,
    SaveResult,
    SaveStatus,
    SessionRecord,
    SessionRef,
)
from session_store.redis_client import RedisClient, store_command
from session_store.settings import StoreSettings

# Hash fields of a session record; one letter each keeps the record small.
F_VERSION: Final = b"v"
F_MENU_VERSION: Final = b"m"
F_NODE: Final = b"n"
F_STATE: Final = b"s"
F_LAST_HOP: Final = b"h"
F_LAST_REPLY: Final = b"r"

# Status codes the script returns (first element of its reply).
_MISSING, _CONFLICT, _SAVED = 0, 1, 2

# KEYS[1]: the record hash; KEYS[2] (optional): the subscriber's resume pointer,
# in the same slot. ARGV[1]: expected version (0 = create, must not exist).
# ARGV[2]: TTL in ms. ARGV[3]: what to do with the pointer when the save wins:
# "" nothing, "set" (ARGV[4] the value, ARGV[5] its TTL in ms), "del".
# ARGV[6]: n, then n fields to remove (optional fields now None), then
# field/value pairs, version excluded.
# Replies {2, new_version} | {1, HGETALL of the winner} | {0}.
# Fields are overwritten in place rather than the hash rebuilt: a DEL would
# free the hashtable and make HSET convert a fresh listpack again (~20 us).
SAVE_SCRIPT: Final = """
local current = redis.call('HGET', KEYS[1], 'v')
local expected = tonumber(ARGV[1])
local removed = tonumber(ARGV[6])
if current == false then
  if expected ~= 0 then return {0} end
elseif tonumber(current) ~= expected then
  return {1, redis.call('HGETALL', KEYS[1])}
elseif removed > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 7, 6 + removed))
end
local new_version = expected + 1
redis.call('HSET', KEYS[1], 'v', new_version, unpack(ARGV, 7 + removed))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] == 'set' then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
elseif ARGV[3] == 'del' then
  redis.call('DEL', KEYS[2])
end
return {2, new_version}
"""

# KEYS[1]: the record hash; KEYS[2]: the subscriber's resume pointer (same slot).
# The record's fields when it exists (the pointer untouched); otherwise the
# pointer, taken (GETDEL: offered once), or false.
OPEN_SCRIPT: Final = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then return {1, fields} end
return {0, redis.call('GETDEL', KEYS[2])}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field(raw: Mapping[Any, Any], name: bytes) -> Any:
    # Works for clients with and without decode_responses.
    value = raw.get(name)
    return raw.get(name.decode()) if value is None else value


def _record_from_hash(ref: SessionRef, raw: Mapping[Any, Any]) -> SessionRecord | None:
    version = _field(raw, F_VERSION)
    if version is None:
        return None
    hop = _field(raw, F_LAST_HOP)
    reply = _field(raw, F_LAST_REPLY)
    return SessionRecord(
        ref=ref,
        menu_version=_text(_field(raw, F_MENU_VERSION)),
        node=_text(_field(raw, F_NODE)),
        state=_text(_field(raw, F_STATE)),
        last_hop_id=None if hop is None else _text(hop),
        last_reply=None if reply is None else _text(reply),
        version=int(version),
    )


def _pairs_to_dict(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisSessionStore:
    """:class:`session_store.SessionStore` on ``redis.asyncio``.

    The client (``Redis`` or ``RedisCluster``) is owned by the caller; this
    object holds no connection of its own and is cheap to build.
    """

    def __init__(
        self,
        client: RedisClient,
        settings: StoreSettings | None = None,
    ) -> None:
        self._client = client
        self._settings = settings or StoreSettings()
        self._prefix = self._settings.key_prefix
        self._ttl_ms = {channel: _ms(ttl) for channel, ttl in self._settings.session_ttls.items()}
        self._default_ttl_ms = _ms(self._settings.default_session_ttl)
        # Registered once: EVALSHA, and on NOSCRIPT load + retry (redis-py's Script).
        self._save_script = client.register_script(SAVE_SCRIPT)
        self._open_script = client.register_script(OPEN_SCRIPT)
        self._resume_ms = _ms(self._settings.resume_window)

    @property
    def settings(self) -> StoreSettings:
        """The settings this store was built with."""
        return self._settings

    def key(self, ref: SessionRef) -> str:
        """The Redis key of a session record (for tools and tests)."""
        return session_key(self._prefix, ref)

    async def load(self, ref: SessionRef) -> SessionRecord | None:
        """The session's record, or None; one HGETALL."""
        key = session_key(self._prefix, ref)
        raw = await store_command(lambda: self._client.hgetall(key))
        return _record_from_hash(ref, raw) if raw else None

    async def load_or_take_dropped(
        self, ref: SessionRef
    ) -> tuple[SessionRecord | None, ResumePoint | None]:
        """The session's record; when there is none, the subscriber's resume
        pointer, taken (offered once). One EVALSHA; ``ref`` must name the number."""
        key = session_key(self._prefix, ref)
        pointer_key = resume_key(self._prefix, ref.channel, ref.msisdn)
        found, value = await store_command(lambda: self._open_script(keys=[key, pointer_key]))
        if int(found):
            return _record_from_hash(ref, _pairs_to_dict(value)), None
        if not value:
            return None, None
        return None, _point_from_json(ref.channel, ref.msisdn, value)

    async def create(self, record: SessionRecord) -> SaveResult:
        """Store a new session at version 1 unless it exists; one EVALSHA."""
        return await self._cas(record, 0)

    async def save(
        self,
        record: SessionRecord,
        expected_version: int,
        *,
        remember: ResumePoint | None = None,
        forget: bool = False,
    ) -> SaveResult:
        """Compare-and-set on the version and refresh the TTL; one EVALSHA.

        When the save wins, the same script also sets the subscriber's resume
        pointer to ``remember`` or, with ``forget``, deletes it; the record's
        reference must then name that subscriber (one slot).
        """
        if expected_version < 1:
            raise ValueError("expected_version starts at 1; use create() for a new session")
        pointer: tuple[str, str, str] | None = None
        if remember is not None or forget:
            ref = record.ref
            if remember is not None and (remember.channel, remember.msisdn) != (
                ref.channel,
                ref.msisdn,
            ):
                raise ValueError("a resume pointer is saved with its own subscriber's session")
            key = resume_key(self._prefix, ref.channel, ref.msisdn)
            pointer = (key, "del", "") if remember is None else (key, "set", _point_json(remember))
        return await self._cas(record, expected_version, pointer)

    async def delete(self, ref: SessionRef) -> bool:
        """Remove a session; True when it existed."""
        removed = await store_command(lambda: self._delete(session_key(self._prefix, ref)))
        return bool(removed)

    async def remember_dropped(
        self, point: ResumePoint, *, window: timedelta | None = None
    ) -> None:
        """Keep a resume pointer for ``window`` (default: settings)."""
        key = resume_key(self._prefix, point.channel, point.msisdn)
        value = _point_json(point)
        ttl = self._settings.resume_window if window is None else window
        px = _ms(ttl)
        await store_command(lambda: self._client.set(key, value, px=px))

    async def take_dropped(self, channel: str, msisdn: str) -> ResumePoint | None:
        """GETDEL the resume pointer: offered once, never twice."""
        key = resume_key(self._prefix, channel, msisdn)
        raw = await store_command(lambda: self._client.getdel(key))
        if raw is None:
            return None
        return _point_from_json(channel, msisdn, raw)

    async def forget(self, channel: str, msisdn: str) -> None:
        """Delete the resume pointer, if any."""
        key = resume_key(self._prefix, channel, msisdn)
        await store_command(lambda: self._delete(key))

    async def _delete(self, key: str) -> int:
        # One key, one plain DEL: the cluster client's delete() splits keys by
        # slot into a cluster pipeline, whose retry of a node that went down
        # closes every connection of the client (the hops' too).
        return int(await self._client.execute_command("DEL", key))

    async def _cas(
        self,
        record: SessionRecord,
        expected_version: int,
        pointer: tuple[str, str, str] | None = None,
    ) -> SaveResult:
        ref = record.ref
        key = session_key(self._prefix, ref)
        keys = [key] if pointer is None else [key, pointer[0]]
        action, value = ("", "") if pointer is None else pointer[1:]
        ttl_ms = self._ttl_ms.get(ref.channel, self._default_ttl_ms)
        # An absent field means None: fields set to None are removed.
        removed = [
            name
            for name, value in ((F_LAST_HOP, record.last_hop_id), (F_LAST_REPLY, record.last_reply))
            if value is None
        ]
        args: list[Any] = [expected_version, ttl_ms, action, value, self._resume_ms]
        args += (len(removed), *removed)
        args += (F_MENU_VERSION, record.menu_version, F_NODE, record.node, F_STATE, record.state)
        if record.last_hop_id is not None:
            args += (F_LAST_HOP, record.last_hop_id)
        if record.last_reply is not None:
            args += (F_LAST_REPLY, record.last_reply)
        reply = await store_command(lambda: self._save_script(keys=keys, args=args))
        status = int(reply[0])
        if status == _SAVED:
            stored = SessionRecord(
                ref=ref,
                menu_version=record.menu_version,
                node=record.node,
                state=record.state,
                last_hop_id=record.last_hop_id,
                last_reply=record.last_reply,
                version=int(reply[1]),
            )
            return SaveResult(SaveStatus.SAVED, stored)
        if status == _CONFLICT:
            winner = _record_from_hash(ref, _pairs_to_dict(reply[1]))
            return SaveResult(SaveStatus.CONFLICT, winner)
        return SaveResult(SaveStatus.MISSING, None)


def _point_json(point: ResumePoint) -> str:
    return json.dumps(
        [point.gateway, point.session_id, point.menu_version, point.node, point.state],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _point_from_json(channel: str, msisdn: str, raw: bytes | str) -> ResumePoint:
    gateway, session_id, menu_version, node, state = json.loads(raw)
    return ResumePoint(
        channel=channel,
        msisdn=msisdn,
        gateway=gateway,
        session_id=session_id,
        menu_version=menu_version,
        node=node,
        state=state,
    )


def _ms(ttl: timedelta) -> int:
    ms = int(ttl.total_seconds() * 1000)
    if ms <= 0:
        raise ValueError(f"TTL must be positive, got {ttl}")
    return ms
