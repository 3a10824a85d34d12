"""One-time sign-in codes and the rate limits around them, in Redis.

A code is 6 random digits, valid ``CODE_TTL_S`` (the TTL of its key), used
once, and burnt by ``CODE_MAX_TRIES`` wrong tries. Only a salted SHA-256 of it
is stored. A new code for the same number replaces the old one. Checking a
code is one Lua script on one key (compare, count the try, burn or consume),
so two tries at once cannot both pass or both escape the count; each key is
hash-tagged with its number or client address (``redis_keys``) for Redis
Cluster.

Rate limits are fixed windows (a counter whose first increment sets its TTL):
codes per number, codes per client address, wrong codes per client address.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from ussd_service import redis_keys
from ussd_service.web import limits

CheckResult = Literal["ok", "wrong", "burned", "missing"]
#: The app's Redis client: one server, or a cluster (every key here is alone in its slot).
RedisLike = aioredis.Redis | RedisCluster
_RESULTS: dict[str, CheckResult] = {r: r for r in ("ok", "wrong", "burned", "missing")}

# KEYS[1]: the counter; ARGV[1]: the window in seconds -> {count, seconds left}.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""

# KEYS[1]: the code's hash; ARGV[1]: digest of the typed code; ARGV[2]: tries allowed.
_CHECK = """
local stored = redis.call('HGET', KEYS[1], 'digest')
if not stored then return {'missing', 0} end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok', 0}
end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local left = tonumber(ARGV[2]) - tries
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return {'burned', 0}
end
return {'wrong', left}
"""


@dataclass(frozen=True)
class Limited:
    """A rate limit was reached; ``retry_after_s`` until the window ends."""

    retry_after_s: int


@dataclass(frozen=True)
class Check:
    """What a typed code did: ``ok`` (consumed), ``wrong`` (``tries_left``),
    ``burned`` (that was the last try), ``missing`` (expired, used or never sent)."""

    result: CheckResult
    tries_left: int = 0


def _digest(salt: str, msisdn: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{msisdn}:{code}".encode()).hexdigest()


def new_code() -> str:
    """Six random digits (``secrets``)."""
    return f"{secrets.randbelow(10**limits.CODE_DIGITS):0{limits.CODE_DIGITS}d}"


async def count(redis: RedisLike, key: str, window_s: int, allowed: int) -> Limited | None:
    """Count one event in ``key``'s window; a ``Limited`` past ``allowed`` of them."""
    n, ttl = await redis.eval(_COUNT, 1, key, str(window_s))
    if int(n) > allowed:
        return Limited(max(1, int(ttl)))
    return None


async def peek(redis: RedisLike, key: str, allowed: int) -> Limited | None:
    """A ``Limited`` when ``key`` already counts ``allowed`` events (counts nothing)."""
    raw = await redis.get(key)
    if raw is not None and int(raw) >= allowed:
        ttl = await redis.ttl(key)
        return Limited(max(1, int(ttl)))
    return None


async def issue(redis: RedisLike, msisdn: str, client: str) -> str | Limited:
    """A new code for ``msisdn`` (replacing any), or the limit that stops it.

    The client's limit is counted first, so a client cycling through numbers
    is stopped without touching them.
    """
    limited = await count(
        redis,
        redis_keys.login_client_key(client, "codes"),
        limits.CODES_PER_CLIENT_WINDOW_S,
        limits.CODES_PER_CLIENT,
    )
    limited = limited or await count(
        redis,
        redis_keys.login_sends_key(msisdn),
        limits.CODES_PER_NUMBER_WINDOW_S,
        limits.CODES_PER_NUMBER,
    )
    if limited is not None:
        return limited
    code = new_code()
    salt = secrets.token_hex(16)
    key = redis_keys.login_code_key(msisdn)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"digest": _digest(salt, msisdn, code), "salt": salt, "tries": 0})
        pipe.expire(key, limits.CODE_TTL_S)
        await pipe.execute()
    return code


async def check(redis: RedisLike, msisdn: str, code: str, client: str) -> Check | Limited:
    """Try ``code`` for ``msisdn``: consumed when right, counted when wrong."""
    wrong_key = redis_keys.login_client_key(client, "wrong")
    limited = await peek(redis, wrong_key, limits.WRONG_CODES_PER_CLIENT)
    if limited is not None:
        return limited
    key = redis_keys.login_code_key(msisdn)
    salt = await redis.hget(key, "salt")
    if salt is None:
        return Check("missing")
    salt_text = salt.decode() if isinstance(salt, bytes) else str(salt)
    digest = _digest(salt_text, msisdn, code)
    result, left = await redis.eval(_CHECK, 1, key, digest, str(limits.CODE_MAX_TRIES))
    name = result.decode() if isinstance(result, bytes) else str(result)
    outcome = Check(_RESULTS[name], int(left))
    if outcome.result in ("wrong", "burned"):
        await count(
            redis, wrong_key, limits.WRONG_CODES_PER_CLIENT_WINDOW_S, limits.WRONG_CODES_PER_CLIENT
        )
    return outcome
