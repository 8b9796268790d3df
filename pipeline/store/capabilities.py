"""`spotify_capabilities`: what a Spotify app (client id) may call, one row per capability
(pipeline/capabilities.py decides; this stores)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Engine, Table, delete, select
from sqlalchemy.dialects.postgresql import insert

from pipeline.store.db import transaction
from shared.models import SpotifyCapability

CAPABILITIES = cast(Table, SpotifyCapability.__table__)


@dataclass(frozen=True)
class CapabilityState:
    capability: str
    allowed: bool
    reason: str | None
    learned_at: datetime
    recheck_after: datetime | None


class PostgresCapabilityRows:
    """The rows of one database (the `CapabilityRows` contract of pipeline/capabilities.py)."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def load(self, client_id: str) -> dict[str, CapabilityState]:
        with transaction(self._engine) as conn:
            rows = conn.execute(select(CAPABILITIES).where(CAPABILITIES.c.clientId == client_id)).all()
        return {r.capability: CapabilityState(r.capability, r.allowed, r.reason, r.learnedAt, r.recheckAfter)
                for r in rows}

    def save(self, client_id: str, state: CapabilityState) -> None:
        values = {"clientId": client_id, "capability": state.capability, "allowed": state.allowed,
                  "reason": state.reason, "learnedAt": state.learned_at, "recheckAfter": state.recheck_after}
        statement = insert(CAPABILITIES).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["clientId", "capability"],
            set_={k: statement.excluded[k] for k in ("allowed", "reason", "learnedAt", "recheckAfter")},
        )
        with transaction(self._engine) as conn:
            conn.execute(statement)

    def forget(self, client_id: str, capability: str | None = None) -> int:
        """Drop what was learned (one capability, or all of the client id's): it is learned
        again from Spotify's next answers. Returns how many rows went."""
        statement = delete(CAPABILITIES).where(CAPABILITIES.c.clientId == client_id)
        if capability is not None:
            statement = statement.where(CAPABILITIES.c.capability == capability)
        with transaction(self._engine) as conn:
            return conn.execute(statement).rowcount or 0
