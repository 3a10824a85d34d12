"""Errors of the session store; a CAS conflict is a result, not an error."""

from __future__ import annotations


class SessionStoreError(Exception):
    """Base of every error this package raises."""


class StoreUnavailableError(SessionStoreError):
    """The backend did not answer (connection refused, timeout, loading).

    Raised instead of the driver's own exceptions so callers need not import
    ``redis``; the original is chained as ``__cause__``.
    """


class InvalidKeyError(SessionStoreError, ValueError):
    """A channel, gateway, session id or msisdn cannot be used in a key."""
