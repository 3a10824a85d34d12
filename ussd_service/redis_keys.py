"""Every Redis key prefix and TTL the service writes beside the session store's.

The session store keeps its own in ``session_store.settings``; these are the
SMS desk's kept replies, the notifier's delivery records and the handoffs
deferred while PostgreSQL is down. Change a value here, nowhere else.
"""

from __future__ import annotations

#: The reply to one inbound SMS, kept for the gateway's redeliveries: ``sms:reply:<hash>``.
SMS_REPLY_PREFIX = "sms:reply:"
SMS_REPLY_TTL_S = 24 * 3600
#: How one notification went out (via, text, when): ``sms:delivery:<outbox id>``.
DELIVERY_PREFIX = "sms:delivery:"
DELIVERY_TTL_S = 7 * 24 * 3600
#: Handoffs written while PostgreSQL was unreachable, oldest first (a list).
DEFERRED_HANDOFFS_KEY = "ussd:handoffs:pending"
