"""The storage of users' Spotify connections: tokens go in encrypted and come out decrypted.

This is the only module that reads or writes token columns; nothing above it sees ciphertext,
and nothing below it (the table) ever sees plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.crypto import TokenCipher
from shared.db import transaction
from shared.models import SpotifyConnection


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
