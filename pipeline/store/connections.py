"""Users' Spotify connections: tokens go in encrypted and come out decrypted.

This is the only module that reads or writes token columns; nothing above it sees ciphertext,
and nothing below it (the table) ever sees plaintext. Times are the database's clock (UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, Table, select, text, update
from sqlalchemy.dialects.postgresql import insert

from pipeline.store.db import NOW, NOW_SQL, transaction
from shared.crypto import TokenCipher
from shared.models import SpotifyConnection, User

if TYPE_CHECKING:
    from pipeline.auth.token_endpoint import TokenGrant


@dataclass(frozen=True)
class UserTokens:
    """A connection's tokens in plaintext. repr() hides them."""

    user_id: str
    spotify_user_id: str
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scopes: tuple[str, ...]
    authorized_at: datetime
    status: str

    def __repr__(self) -> str:
        return (f"UserTokens(user_id={self.user_id!r}, spotify_user_id={self.spotify_user_id!r}, "
                f"expires_at={self.expires_at!r}, status={self.status!r})")


def save_connection(engine: Engine, cipher: TokenCipher, tokens: UserTokens) -> None:
    """Insert or replace the user's connection (a new authorisation resets status and
    authorizedAt); the application's users row is created when missing (nothing else of it is
    touched)."""
    values = {
        "userId": tokens.user_id,
        "spotifyUserId": tokens.spotify_user_id,
        "accessToken": cipher.encrypt(tokens.access_token),
        "refreshToken": cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None,
        "tokenExpiresAt": tokens.expires_at,
        "scopes": " ".join(tokens.scopes),
        "authorizedAt": tokens.authorized_at,
        "status": tokens.status,
    }
    statement = insert(CONNECTIONS).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["userId"],
        set_={**{k: statement.excluded[k] for k in values if k != "userId"}, "updatedAt": NOW_SQL},
    )
    with transaction(engine) as conn:
        conn.execute(insert(cast(Table, User.__table__)).values(id=tokens.user_id).on_conflict_do_nothing(index_elements=["id"]))
        conn.execute(statement)


CONNECTIONS = cast(Table, SpotifyConnection.__table__)


def load_tokens(engine: Engine, cipher: TokenCipher, user_id: str) -> UserTokens | None:
    with transaction(engine) as conn:
        row = conn.execute(select(CONNECTIONS).where(CONNECTIONS.c.userId == user_id)).first()
    return decrypt_row(cipher, row) if row else None


def decrypt_row(cipher: TokenCipher, row: Any) -> UserTokens:
    m = row._mapping
    return UserTokens(
        user_id=m["userId"],
        spotify_user_id=m["spotifyUserId"],
        access_token=cipher.decrypt(m["accessToken"]),
        refresh_token=cipher.decrypt(m["refreshToken"]) if m["refreshToken"] else None,
        expires_at=m["tokenExpiresAt"],
        scopes=tuple(m["scopes"].split()),
        authorized_at=m["authorizedAt"],
        status=m["status"],
    )


def db_now(engine: Engine) -> datetime:
    with transaction(engine) as conn:
        return conn.execute(select(NOW_SQL)).scalar_one()


def rotate_keys(engine: Engine, cipher: TokenCipher, batch_size: int = 500) -> int:
    """Re-encrypt every stored token under the newest key, a batch per transaction.

    Safe to interrupt and run again: each batch commits on its own, rows already under the newest
    key are skipped, and rows are locked while rewritten so a concurrent refresh is not lost.
    Returns how many rows were rewritten.
    """
    rewritten = 0
    after = ""
    columns = ("accessToken", "refreshToken")
    while True:
        with transaction(engine) as conn:
            rows = conn.execute(
                select(CONNECTIONS.c.id, *(CONNECTIONS.c[c] for c in columns))
                .where(CONNECTIONS.c.id > after).order_by(CONNECTIONS.c.id).limit(batch_size).with_for_update()
            ).all()
            if not rows:
                return rewritten
            for row in rows:
                m = row._mapping
                stale = [c for c in columns if m[c] and not cipher.is_current(m[c])]
                if stale:
                    conn.execute(update(CONNECTIONS).where(CONNECTIONS.c.id == m["id"])
                                 .values({c: cipher.rotate(m[c]) for c in stale}))
                    rewritten += 1
            after = rows[-1].id


def refresh_under_lock(
    engine: Engine,
    cipher: TokenCipher,
    user_id: str,
    *,
    needs_refresh: Callable[[UserTokens], bool],
    refresh: Callable[[str | None], TokenGrant | None],
    lock_timeout_s: int = 30,
) -> UserTokens | None:
    """Refresh the user's tokens once however many workers ask at the same time.

    Takes the connection row's lock (SELECT ... FOR UPDATE). Whoever holds it looks again:
    if another worker refreshed meanwhile (`needs_refresh` says no), the stored tokens are
    returned as they are. Otherwise `refresh(refresh_token)` runs under the lock and its result
    is committed before this returns: the rotated refresh token is saved before the new access
    token is used, and the old refresh token is kept when none comes back. `refresh` returning
    None means the grant is gone (invalid_grant): the row is marked needs_reauth.
    Returns None when the user has no connection; a connection that is not active is
    returned untouched. A lock not had within `lock_timeout_s` raises StoreConflict.
    """
    with transaction(engine) as conn:
        # Bounded: a worker stuck behind a hung refresh gives up instead of holding its thread.
        conn.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'"))
        row = conn.execute(select(CONNECTIONS).where(CONNECTIONS.c.userId == user_id).with_for_update()).first()
        if row is None:
            return None
        current = decrypt_row(cipher, row)
        if current.status != "active" or not needs_refresh(current):
            return current
        grant = refresh(current.refresh_token)
        stamp = conn.execute(select(NOW_SQL)).scalar_one()
        this_row = CONNECTIONS.c.id == row._mapping["id"]
        if grant is None:
            conn.execute(update(CONNECTIONS).where(this_row).values(status="needs_reauth", updatedAt=stamp))
            return replace(current, status="needs_reauth")
        refreshed = replace(
            current,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token or current.refresh_token,
            expires_at=stamp + timedelta(seconds=grant.expires_in_s),
            scopes=grant.scopes if grant.scopes is not None else current.scopes,
        )
        conn.execute(update(CONNECTIONS).where(this_row).values(
            accessToken=cipher.encrypt(refreshed.access_token),
            refreshToken=cipher.encrypt(refreshed.refresh_token) if refreshed.refresh_token else None,
            tokenExpiresAt=refreshed.expires_at,
            scopes=" ".join(refreshed.scopes),
            updatedAt=stamp,
        ))
    return refreshed


def mark_needs_reauth(engine: Engine, user_id: str) -> None:
    with transaction(engine) as conn:
        conn.execute(update(CONNECTIONS).where(CONNECTIONS.c.userId == user_id)
                     .values(status="needs_reauth", updatedAt=NOW_SQL))


REFRESH_TOKEN_LIFETIME_DAYS = 180  # Spotify: six months after the user authorised, not extended by refreshes


def count_by_status(engine: Engine, *, expiring_within_days: int = 14) -> dict[str, int]:
    """How many connections are active, need the user again, and (of the active ones) have a
    refresh token that dies within `expiring_within_days` (the operators' alert)."""
    with transaction(engine) as conn:
        row = conn.execute(text(f"""
            SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'needs_reauth'),
                   count(*) FILTER (WHERE status = 'active' AND "authorizedAt" + make_interval(days => :life)
                                    < {NOW} + make_interval(days => :within))
            FROM spotify_connections"""), {"life": REFRESH_TOKEN_LIFETIME_DAYS, "within": expiring_within_days}).one()
    return {"active": row[0], "needs_reauth": row[1], "expiring_soon": row[2]}
