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

# -- the web account and the operators' console (ussd_service/web) ---------------
# Keys of one subscriber, number or client carry it as a hash tag (``{...}``), so
# that on Redis Cluster each lives in one slot and a script may touch it alone.

#: A browser session of the account or the console: ``web:session:{<id>}`` (JSON).
WEB_SESSION_PREFIX = "web:session:"
#: The sign-in code a number is waiting with (hash: digest, salt, tries).
LOGIN_CODE_TTL_S = 5 * 60


def web_session_key(session_id: str) -> str:
    """A browser session's record."""
    return f"{WEB_SESSION_PREFIX}{{{session_id}}}"


def login_code_key(msisdn: str) -> str:
    """The pending sign-in code of ``msisdn`` (E.164); expires with the code."""
    return f"web:login:{{{msisdn}}}:code"


def login_sends_key(msisdn: str) -> str:
    """Codes sent to ``msisdn`` in the current window (a counter)."""
    return f"web:login:{{{msisdn}}}:sends"


def login_client_key(client: str, what: str) -> str:
    """Sign-in requests (``what``: codes asked, wrong codes) from one client address."""
    return f"web:login-client:{{{client}}}:{what}"


def operator_signin_key(name: str) -> str:
    """Failed console sign-ins of one operator name (a counter)."""
    return f"web:operator-signin:{{{name}}}"


def operator_client_key(client: str) -> str:
    """Failed console sign-ins from one client address (a counter)."""
    return f"web:operator-client:{{{client}}}"
