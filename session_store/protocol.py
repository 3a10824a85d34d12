"""The port the service talks to; backends implement it structurally."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from session_store.records import ResumePoint, SaveResult, SessionRecord, SessionRef


class SessionStore(Protocol):
    """Opaque, versioned session records with a TTL, plus resume pointers.

    A hop costs one backend round trip to load and one to save, its
    subscriber's resume pointer included (a reference that names the
    subscriber keeps both in one hash slot).
    """

    async def load(self, ref: SessionRef) -> SessionRecord | None:
        """The session's record, or None when it does not exist (or expired)."""
        ...

    async def load_or_take_dropped(
        self, ref: SessionRef
    ) -> tuple[SessionRecord | None, ResumePoint | None]:
        """The record; when there is none, the subscriber's resume pointer,
        atomically taken (offered once). ``ref.msisdn`` must be set."""
        ...

    async def create(self, record: SessionRecord) -> SaveResult:
        """Store a new session at version 1; CONFLICT with the existing record
        when the session already exists (gateways send the start twice)."""
        ...

    async def save(
        self,
        record: SessionRecord,
        expected_version: int,
        *,
        remember: ResumePoint | None = None,
        forget: bool = False,
    ) -> SaveResult:
        """Compare-and-set: commit ``record`` as version ``expected_version + 1``
        only if the stored version is still ``expected_version``; refreshes
        the TTL. CONFLICT carries the winner's record, MISSING means expired.
        A winning save also sets (``remember``) or deletes (``forget``) the
        subscriber's resume pointer, atomically with the record."""
        ...

    async def delete(self, ref: SessionRef) -> bool:
        """Remove a session; True when it existed."""
        ...

    async def remember_dropped(
        self, point: ResumePoint, *, window: timedelta | None = None
    ) -> None:
        """Remember where a subscriber dropped, for ``window`` (default from
        settings); replaces an older pointer of the same subscriber."""
        ...

    async def take_dropped(self, channel: str, msisdn: str) -> ResumePoint | None:
        """Atomically fetch and remove the pointer, so it is offered once."""
        ...

    async def forget(self, channel: str, msisdn: str) -> None:
        """Drop a subscriber's resume pointer, if any."""
        ...
