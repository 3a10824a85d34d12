"""What the dialogue keeps in a session record's opaque ``state``.

The menu engine's state plus what makes a hop exact: the session's origin and
step count (the prefix of every ledger idempotency key), the breadcrumb an
operator sees, the dropped session a resume offer holds, and the busy mark
of a hop that is moving points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from session_store import ResumePoint, SessionRecord
from ussd_service.hop import Hop


@dataclass
class SessionPayload:
    """What the dialogue keeps in the record's opaque ``state``."""

    state: dict[str, Any] | None
    origin: str
    steps: int = 0
    trail: list[str] | None = None
    resume: dict[str, Any] | None = None
    # [hop id, unix ms] while a hop that moves points is in flight (the dialogue claims it).
    busy: list[Any] | None = None

    def dump(self) -> str:
        """Compact JSON for the record."""
        data: dict[str, Any] = {"o": self.origin, "k": self.steps}
        if self.busy is not None:
            data["bz"] = self.busy
        if self.state is not None:
            data["s"] = self.state
        if self.trail:
            data["tr"] = self.trail
        if self.resume is not None:
            data["rs"] = self.resume
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> SessionPayload:
        """The payload ``dump`` wrote."""
        data = json.loads(raw)
        return cls(
            state=data.get("s"),
            origin=data["o"],
            steps=data.get("k", 0),
            trail=data.get("tr"),
            resume=data.get("rs"),
            busy=data.get("bz"),
        )


def resume_point(hop: Hop, record: SessionRecord) -> ResumePoint:
    """Where ``record``'s subscriber is, for a redial to continue from."""
    return ResumePoint(
        channel=hop.channel,
        msisdn=hop.msisdn,
        gateway=hop.gateway,
        session_id=hop.session_id,
        menu_version=record.menu_version,
        node=record.node,
        state=record.state,
    )
