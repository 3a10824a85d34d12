"""Session store: opaque, versioned session records in Redis with a TTL.

Knows nothing of menus or the ledger. See README.md for the API and key layout.
"""

from session_store.errors import InvalidKeyError, SessionStoreError, StoreUnavailableError
from session_store.protocol import SessionStore
from session_store.records import ResumePoint, SaveResult, SaveStatus, SessionRecord, SessionRef
from session_store.redis_client import REDIS_UNAVAILABLE_ERRORS, RedisClient
from session_store.redis_store import RedisSessionStore
from session_store.settings import StoreSettings

__all__ = [
    "REDIS_UNAVAILABLE_ERRORS",
    "InvalidKeyError",
    "RedisClient",
    "RedisSessionStore",
    "ResumePoint",
    "SaveResult",
    "SaveStatus",
    "SessionRecord",
    "SessionRef",
    "SessionStore",
    "SessionStoreError",
    "StoreSettings",
    "StoreUnavailableError",
]
