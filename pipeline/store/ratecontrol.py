"""`spotify_rate_budgets`: the fleet's learned budget per client id, the copy that outlives Redis
(pipeline/ratecontrol/budget.py decides and keeps the live one in Redis; this stores)."""

from __future__ import annotations

from dataclasses import asdict
from typing import cast

from sqlalchemy import Engine, Table, delete, select, text
from sqlalchemy.dialects.postgresql import insert

from pipeline.ratecontrol.learning import LearnedState
from pipeline.store.db import NOW, transaction
from shared.models import SpotifyRateBudget

BUDGETS = cast(Table, SpotifyRateBudget.__table__)


class PostgresBudgetRows:
    """The `BudgetRows` contract of pipeline/ratecontrol/budget.py, in one database."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def load(self, client_id: str) -> LearnedState | None:
        with transaction(self._engine) as conn:
            row = conn.execute(select(BUDGETS.c.state).where(BUDGETS.c.clientId == client_id)).first()
        if row is None:
            return None
        try:
            return LearnedState(**row.state)
        except TypeError:  # a state of another shape (an older release): learned again
            return None

    def save(self, client_id: str, state: LearnedState) -> None:
        """Keep `state` unless a newer version is kept already (two writers, one late)."""
        statement = insert(BUDGETS).values(clientId=client_id, state=asdict(state), version=state.version,
                                           updatedAt=text(NOW))
        statement = statement.on_conflict_do_update(
            index_elements=["clientId"],
            set_={"state": statement.excluded.state, "version": statement.excluded.version,
                  "updatedAt": statement.excluded.updatedAt},
            where=BUDGETS.c.version < statement.excluded.version,
        )
        with transaction(self._engine) as conn:
            conn.execute(statement)

    def forget(self, client_id: str) -> int:
        with transaction(self._engine) as conn:
            return conn.execute(delete(BUDGETS).where(BUDGETS.c.clientId == client_id)).rowcount or 0
