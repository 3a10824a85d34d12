"""Every limit and lifetime of the web account and the operators' console.

Redis key names (and the code's lifetime, which is its key's TTL) live in
``ussd_service.redis_keys``; the numbers people and attackers meet are here.
"""

from __future__ import annotations

from ussd_service.redis_keys import LOGIN_CODE_TTL_S

# -- one-time sign-in codes ----------------------------------------------------------
CODE_DIGITS = 6
#: How long a code is valid (the TTL of its Redis key), in minutes for the SMS text.
CODE_TTL_S = LOGIN_CODE_TTL_S
CODE_TTL_MINUTES = CODE_TTL_S // 60
#: Wrong tries that burn a code: the number must ask for a new one.
CODE_MAX_TRIES = 5
#: Codes one number may be sent per window (resends included).
CODES_PER_NUMBER = 5
CODES_PER_NUMBER_WINDOW_S = 60 * 60
#: Codes asked from one client address per window (all numbers together).
CODES_PER_CLIENT = 20
CODES_PER_CLIENT_WINDOW_S = 15 * 60
#: Wrong codes typed from one client address per window (all numbers together).
WRONG_CODES_PER_CLIENT = 30
WRONG_CODES_PER_CLIENT_WINDOW_S = 15 * 60

# -- operators' sign-in ---------------------------------------------------------------
OPERATOR_FAILURES_PER_NAME = 5
OPERATOR_FAILURES_PER_CLIENT = 20
OPERATOR_FAILURES_WINDOW_S = 15 * 60
PASSWORD_MIN_LENGTH = 12
#: Longer passwords are refused before hashing (argon2 of megabytes is a DoS).
PASSWORD_MAX_LENGTH = 256
OPERATOR_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"

# -- sessions ---------------------------------------------------------------------------
#: A signed-in subscriber is signed out after this long without a request...
ACCOUNT_IDLE_S = 30 * 60
#: ... and after this long in any case.
ACCOUNT_MAX_AGE_S = 12 * 60 * 60
#: Operators work shifts.
OPERATOR_IDLE_S = 60 * 60
OPERATOR_MAX_AGE_S = 12 * 60 * 60
ACCOUNT_COOKIE = "account_session"
OPERATOR_COOKIE = "operator_session"

# -- pages ----------------------------------------------------------------------------------
HISTORY_ROWS = 50
#: The operators' queue refreshes itself this often (seconds).
QUEUE_REFRESH_S = 5
#: A page waits at most this long on Redis or PostgreSQL, then says "try later".
PAGE_DEADLINE_S = 10.0
#: Form fields longer than this are refused (nothing legitimate is longer).
MAX_FIELD_CHARS = 300
#: What a 503 page asks the browser to wait.
RETRY_AFTER_S = 10
