"""The storage of users' Spotify connections: tokens go in encrypted and come out decrypted.

This is the only module that reads or writes token columns; nothing above it sees ciphertext,
and nothing below it (the table) ever sees plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shared.crypto import TokenCipher
from shared.db import transaction
from shared.models import SpotifyConnection

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
    """Insert or replace the user's connection (a new authorisation resets status and authorizedAt)."""
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
    statement = insert(SpotifyConnection.__table__).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["userId"],
        set_={**{k: statement.excluded[k] for k in values if k != "userId"}, "updatedAt": datetime.utcnow()},
    )
    with transaction(engine) as session:
        session.execute(statement)


def load_tokens(engine: Engine, cipher: TokenCipher, user_id: str) -> UserTokens | None:
    with transaction(engine) as session:
        row = session.scalars(select(SpotifyConnection).where(SpotifyConnection.user_id == user_id)).one_or_none()
        return decrypt_row(cipher, row) if row else None


def decrypt_row(cipher: TokenCipher, row: SpotifyConnection) -> UserTokens:
    return UserTokens(
        user_id=row.user_id,
        spotify_user_id=row.spotify_user_id,
        access_token=cipher.decrypt(row.access_token),
        refresh_token=cipher.decrypt(row.refresh_token) if row.refresh_token else None,
        expires_at=row.token_expires_at,
        scopes=tuple(row.scopes.split()),
        authorized_at=row.authorized_at,
        status=row.status,
    )


def rotate_keys(engine: Engine, cipher: TokenCipher, batch_size: int = 500) -> int:
    """Re-encrypt every stored token under the newest key, a batch per transaction.

    Safe to interrupt and run again: each batch commits on its own, rows already under the newest
    key are skipped, and rows are locked while rewritten so a concurrent refresh is not lost.
    Returns how many rows were rewritten.
    """
    rewritten = 0
    after = ""
    while True:
        with transaction(engine) as session:
            rows = session.scalars(
                select(SpotifyConnection)
                .where(SpotifyConnection.id > after)
                .order_by(SpotifyConnection.id)
                .limit(batch_size)
                .with_for_update()
            ).all()
            if not rows:
                return rewritten
            for row in rows:
                stale = [c for c in ("access_token", "refresh_token")
                         if getattr(row, c) and not cipher.is_current(getattr(row, c))]
                if stale:
                    session.execute(
                        update(SpotifyConnection)
                        .where(SpotifyConnection.id == row.id)
                        .values({getattr(SpotifyConnection, c): cipher.rotate(getattr(row, c)) for c in stale})
                    )
                    rewritten += 1
            after = rows[-1].id


def refresh_under_lock(
    engine: Engine,
    cipher: TokenCipher,
    user_id: str,
    *,
    needs_refresh: Callable[[UserTokens], bool],
    refresh: Callable[[str | None], TokenGrant | None],
    now: Callable[[], datetime] = datetime.utcnow,
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
    returned untouched.
    """
    with transaction(engine) as session:
        # Bounded: a worker stuck behind a hung refresh gives up instead of holding its thread.
        session.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'"))
        row = session.scalars(
            select(SpotifyConnection).where(SpotifyConnection.user_id == user_id).with_for_update()
        ).one_or_none()
        if row is None:
            return None
        current = decrypt_row(cipher, row)
        if current.status != "active" or not needs_refresh(current):
            return current
        grant = refresh(current.refresh_token)
        stamp = now()
        if grant is None:
            session.execute(
                update(SpotifyConnection).where(SpotifyConnection.id == row.id)
                .values(status="needs_reauth", updated_at=stamp)
            )
            return replace(current, status="needs_reauth")
        refreshed = replace(
            current,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token or current.refresh_token,
            expires_at=stamp + timedelta(seconds=grant.expires_in_s),
            scopes=grant.scopes if grant.scopes is not None else current.scopes,
        )
        session.execute(
            update(SpotifyConnection).where(SpotifyConnection.id == row.id).values(
                access_token=cipher.encrypt(refreshed.access_token),
                refresh_token=cipher.encrypt(refreshed.refresh_token) if refreshed.refresh_token else None,
                token_expires_at=refreshed.expires_at,
                scopes=" ".join(refreshed.scopes),
                updated_at=stamp,
            )
        )
    return refreshed


def mark_needs_reauth(engine: Engine, user_id: str) -> None:
    with transaction(engine) as session:
        session.execute(
            update(SpotifyConnection).where(SpotifyConnection.user_id == user_id)
            .values(status="needs_reauth", updated_at=datetime.utcnow())
        )
