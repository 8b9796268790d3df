"""What this Spotify app may call, learned from Spotify's answers (design.md, decision 5).

A 403 on batch /tracks?ids= or on /audio-features, or tracks that come without popularity, is
recorded once per client id in `spotify_capabilities` with when it was learned and when to look
again (SPOTIFY_CAPABILITY_RECHECK, default a day). Until then `allowed()` says no and the client
does not make the call (batch tracks fall back to /tracks/{id}). After it, one call is let
through: a success records the capability as allowed again, another 403 pushes the recheck on.

Each process keeps what it read for `cache_ttl_s` so a worker does not query Postgres per
request; what it learns itself it knows at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from pipeline import metrics
from shared.db import transaction
from shared.models import SpotifyCapability

BATCH_TRACKS = "batch_tracks"
AUDIO_FEATURES = "audio_features"
POPULARITY = "popularity"


@dataclass(frozen=True)
class CapabilityState:
    capability: str
    allowed: bool
    reason: str | None
    learned_at: datetime
    recheck_after: datetime | None


class CapabilityRows(Protocol):
    def load(self, client_id: str) -> dict[str, CapabilityState]: ...
    def save(self, client_id: str, state: CapabilityState) -> None: ...


class PostgresCapabilityRows:
    def __init__(self, engine: Engine):
        self._engine = engine

    def load(self, client_id: str) -> dict[str, CapabilityState]:
        with transaction(self._engine) as session:
            rows = session.scalars(select(SpotifyCapability).where(SpotifyCapability.client_id == client_id)).all()
            return {r.capability: CapabilityState(r.capability, r.allowed, r.reason, r.learned_at, r.recheck_after)
                    for r in rows}

    def save(self, client_id: str, state: CapabilityState) -> None:
        values = {"clientId": client_id, "capability": state.capability, "allowed": state.allowed,
                  "reason": state.reason, "learnedAt": state.learned_at, "recheckAfter": state.recheck_after}
        statement = insert(SpotifyCapability.__table__).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["clientId", "capability"],
            set_={k: statement.excluded[k] for k in ("allowed", "reason", "learnedAt", "recheckAfter")},
        )
        with transaction(self._engine) as session:
            session.execute(statement)


class InMemoryCapabilityRows:
    """The fake: the table as a dict."""

    def __init__(self):
        self.rows: dict[tuple[str, str], CapabilityState] = {}

    def load(self, client_id: str) -> dict[str, CapabilityState]:
        return {cap: state for (cid, cap), state in self.rows.items() if cid == client_id}

    def save(self, client_id: str, state: CapabilityState) -> None:
        self.rows[(client_id, state.capability)] = state


UNKNOWN_TTL_S = 1.0


class Capabilities:
    def __init__(
        self,
        rows: CapabilityRows,
        client_id: str,
        *,
        recheck_s: float = 86400,
        cache_ttl_s: float = 10.0,
        now: Callable[[], datetime] = datetime.utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.client_id = client_id
        self._rows = rows
        self._recheck = timedelta(seconds=recheck_s)
        self._cache_ttl_s = cache_ttl_s
        self._now = now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._states: dict[str, CapabilityState] = {}
        self._fresh_until = float("-inf")
        self._loaded_at = float("-inf")

    @classmethod
    def from_settings(cls, settings, engine: Engine) -> Capabilities:
        return cls(PostgresCapabilityRows(engine), settings.spotify_client_id, recheck_s=settings.capability_recheck_s)

    def state(self, capability: str) -> CapabilityState | None:
        with self._lock:
            now = self._monotonic()
            # Not yet known here is looked up again sooner: another process may just have
            # learned it (a 403), and asking a forbidden endpoint again is a wasted request.
            unknown_stale = capability not in self._states and now >= self._loaded_at + UNKNOWN_TTL_S
            if now >= self._fresh_until or unknown_stale:
                self._states = self._rows.load(self.client_id)
                self._loaded_at = now
                self._fresh_until = now + self._cache_ttl_s
            return self._states.get(capability)

    def allowed(self, capability: str) -> bool:
        """Unknown or allowed: yes. Forbidden: no, until its recheck time has come."""
        state = self.state(capability)
        if state is None or state.allowed:
            return True
        return state.recheck_after is not None and self._now() >= state.recheck_after

    def forbid(self, capability: str, reason: str) -> CapabilityState:
        """Record that the app may not use `capability` (once: a standing record is kept as it is)."""
        current = self.state(capability)
        if current is not None and not current.allowed and not self.allowed(capability):
            return current
        now = self._now()
        return self._save(CapabilityState(capability, False, reason, now, now + self._recheck))

    def allow(self, capability: str) -> None:
        """Record that `capability` works (written only when that is news)."""
        current = self.state(capability)
        if current is None or not current.allowed:
            self._save(CapabilityState(capability, True, None, self._now(), None))

    def _save(self, state: CapabilityState) -> CapabilityState:
        self._rows.save(self.client_id, state)
        with self._lock:
            self._states[state.capability] = state
        metrics.CAPABILITY_CHANGES.labels(state.capability, str(state.allowed).lower()).inc()
        return state
