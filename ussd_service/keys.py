"""Typed keys for what the application holds (``app[KEY]``)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from menus import MenuRegistry
from session_store import RedisClient
from session_store.dropoff import DropoffBuffer
from ussd_service.config import Settings
from ussd_service.dialogue import Dialogue
from ussd_service.metrics import Metrics
from ussd_service.sms_desk import SmsDesk

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
# Redis or RedisCluster (backends.open_redis asks the server which).
REDIS = web.AppKey[RedisClient]("redis")
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
DIALOGUE = web.AppKey("dialogue", Dialogue)
MENUS = web.AppKey("menus", MenuRegistry)
SMS_DESK = web.AppKey("sms_desk", SmsDesk)
# Drop-off events of hops, written to Redis in batches (flush() in tests).
DROPOFF = web.AppKey("dropoff", DropoffBuffer)
