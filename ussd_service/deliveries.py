"""How each notification went out (via the gateway or the log, its text, when).

Kept in Redis for a week beside the outbox row: the notifier writes a record
when a message is accepted, and ``GET /v1/outbox`` shows it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from session_store import RedisClient
from ussd_service.redis_keys import DELIVERY_PREFIX, DELIVERY_TTL_S


async def keep_delivery(
    redis: RedisClient, message_id: int, *, via: str, text: str, at: datetime
) -> None:
    """Record how outbox message ``message_id`` went out."""
    record = {"via": via, "text": text, "at": at.isoformat()}
    await redis.set(
        delivery_key(message_id), json.dumps(record, ensure_ascii=False), ex=DELIVERY_TTL_S
    )


def delivery_key(message_id: int) -> str:
    """Redis key of the delivery record of outbox message ``message_id``."""
    return f"{DELIVERY_PREFIX}{message_id}"


async def delivery_records(
    redis: RedisClient, message_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """Delivery records of the given messages that still exist.

    One GET per record in a pipeline, not an MGET: on Redis Cluster the
    records live in different slots (the pipeline goes to each node at once).
    """
    if not message_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for message_id in message_ids:
            pipe.get(delivery_key(message_id))
        values = await pipe.execute()
    records: dict[int, dict[str, Any]] = {}
    for message_id, raw in zip(message_ids, values, strict=True):
        if raw is not None:
            records[message_id] = json.loads(raw)
    return records
