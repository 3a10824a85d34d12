"""Operators' passwords: argon2id (argon2-cffi), verified off the event loop.

``PasswordHasher()``'s defaults are RFC 9106's second recommended profile
(argon2id, 64 MiB, 3 passes, 4 lanes, 16-byte salt); the PHC string keeps the
parameters, so raising them later re-hashes each password at its next sign-in.
"""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@cache
def hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    """The PHC string (``$argon2id$v=19$m=65536,t=3,p=4$...``) to store."""
    return hasher().hash(password)


@cache
def _decoy() -> str:
    return hash_password("no operator has this name")


def _verify(stored: str | None, password: str) -> bool:
    try:
        return hasher().verify(stored or _decoy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; ``None`` (no such operator) takes as
    long as a real check and fails, so timing does not tell names apart."""
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's."""
    return hasher().check_needs_rehash(stored)
