"""The session records this process saved last: a session's next hop here skips its read.

A USSD session's hops usually reach the process that answered the previous
one (the gateway keeps its connection; one process serves them all). That
process already holds the record it saved, so the hop steps from it and its
save script is its only Redis round trip. The copy may be stale (another
process answered a hop since, the session expired): the save is a
compare-and-set on the version, so a stale step is never stored. A conflict
brings the winner's record, and the hop steps again from that.
"""

from __future__ import annotations

from session_store import SessionRecord, SessionRef

#: Records kept (~2-3 KB each in memory): well above the sessions one process
#: has in flight at a time at its full rate (~1,000 hops/s, a hop every ~10 s).
RECENT_SESSIONS = 10_000


class RecentSessions:
    """A bounded map of session reference -> the record last saved or seen here."""

    def __init__(self, capacity: int = RECENT_SESSIONS) -> None:
        self.capacity = capacity
        # Insertion order is recency: a kept record moves to the end.
        self._records: dict[SessionRef, SessionRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, ref: SessionRef) -> SessionRecord | None:
        """The record last kept for ``ref``, or None."""
        return self._records.get(ref)

    def keep(self, record: SessionRecord) -> None:
        """Remember ``record`` as its session's latest; the oldest go past capacity."""
        if self.capacity <= 0:
            return
        records = self._records
        records.pop(record.ref, None)
        records[record.ref] = record
        while len(records) > self.capacity:
            del records[next(iter(records))]

    def drop(self, ref: SessionRef) -> None:
        """Forget ``ref`` (ended, expired, or possibly changed elsewhere)."""
        self._records.pop(ref, None)
