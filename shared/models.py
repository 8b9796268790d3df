"""SQLAlchemy models of the database contract (../shared/design.md, "The database contract").

Other services read these tables and the existing application already uses their names, so the
column names are kept exactly, quoted camelCase included; the Python attributes are snake_case.
Timestamps are TIMESTAMP WITHOUT TIME ZONE, as the seed's migrations made them: we store UTC.

Every change to this file comes with an Alembic revision in migrations/versions/;
`alembic check` (run by the tests) fails when the two drift apart.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Text ids as the existing (Prisma) application made them; new rows get a UUID in text form.
NEW_ID = text("gen_random_uuid()::text")

JOB_TYPES = ("track_sync", "user_library", "popularity_update")
JOB_STATUSES = ("pending", "running", "completed", "failed")
CONNECTION_STATUSES = ("active", "needs_reauth")


class Base(DeclarativeBase):
    metadata = MetaData()


def _created_at() -> Mapped[datetime]:
    return mapped_column("createdAt", DateTime, nullable=False, server_default=func.now())


def _updated_at() -> Mapped[datetime]:
    return mapped_column("updatedAt", DateTime, nullable=False, server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f'"{column}" IN (' + ", ".join(f"'{v}'" for v in values) + ")"


class User(Base):
    """The existing application's users (the baseline revision creates a minimal table)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=NEW_ID)
    email: Mapped[str | None] = mapped_column(Text, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Song(Base):
    """The enriched songs table: the contract other services read."""

    __tablename__ = "songs"

    # --- the existing application's columns (baseline) ---
    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=NEW_ID)
    spotify_id: Mapped[str | None] = mapped_column("spotifyId", Text, unique=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    artist: Mapped[str] = mapped_column(Text, nullable=False)
    album: Mapped[str | None] = mapped_column(Text)
    duration: Mapped[int | None] = mapped_column(Integer)  # seconds
    danceability: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    energy: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    valence: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    acousticness: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    instrumentalness: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    tempo: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    # --- 20250826161259 add_spotify_integration_fields ---
    spotify_last_sync: Mapped[datetime | None] = mapped_column("spotifyLastSync", DateTime)
    spotify_popularity: Mapped[int | None] = mapped_column("spotifyPopularity", Integer)
    spotify_preview_url: Mapped[str | None] = mapped_column("spotifyPreviewUrl", Text)
    spotify_external_url: Mapped[str | None] = mapped_column("spotifyExternalUrl", Text)
    audio_features_synced: Mapped[bool | None] = mapped_column(
        "audioFeaturesSynced", Boolean, server_default=text("false")
    )
    last_popularity_update: Mapped[datetime | None] = mapped_column("lastPopularityUpdate", DateTime)
    speechiness: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    liveness: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    loudness: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))

    __table_args__ = (
        CheckConstraint(
            '"spotifyPopularity" IS NULL OR ("spotifyPopularity" >= 0 AND "spotifyPopularity" <= 100)',
            name="songs_spotifyPopularity_check",
        ),
        CheckConstraint("speechiness IS NULL OR (speechiness >= 0 AND speechiness <= 1)", name="songs_speechiness_check"),
        CheckConstraint("liveness IS NULL OR (liveness >= 0 AND liveness <= 1)", name="songs_liveness_check"),
        Index("idx_songs_spotify_sync", "spotifyLastSync", "audioFeaturesSynced"),
        Index(
            "idx_songs_spotify_popularity",
            "spotifyPopularity",
            postgresql_where=text('"spotifyPopularity" IS NOT NULL'),
        ),
    )


class SpotifyConnection(Base):
    """A user's link to their Spotify account. Tokens are ciphertext (shared/crypto.py)."""

    __tablename__ = "spotify_connections"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=NEW_ID)
    user_id: Mapped[str] = mapped_column(
        "userId", Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    spotify_user_id: Mapped[str] = mapped_column("spotifyUserId", Text, nullable=False, unique=True)
    access_token: Mapped[str] = mapped_column("accessToken", Text, nullable=False)
    refresh_token: Mapped[str | None] = mapped_column("refreshToken", Text)
    token_expires_at: Mapped[datetime] = mapped_column("tokenExpiresAt", DateTime, nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False, server_default="")  # space-separated
    authorized_at: Mapped[datetime] = mapped_column("authorizedAt", DateTime, nullable=False, server_default=func.now())
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    __table_args__ = (CheckConstraint(_in("status", CONNECTION_STATUSES), name="spotify_connections_status_check"),)


class SpotifySyncJob(Base):
    """One unit of work. The row exists before its message is sent; the message carries its id."""

    __tablename__ = "spotify_sync_jobs"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=NEW_ID)
    user_id: Mapped[str | None] = mapped_column("userId", Text, ForeignKey("users.id", ondelete="CASCADE"))
    job_type: Mapped[str] = mapped_column("jobType", Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    retry_count: Mapped[int] = mapped_column("retryCount", Integer, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column("startedAt", DateTime)
    completed_at: Mapped[datetime | None] = mapped_column("completedAt", DateTime)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    __table_args__ = (
        CheckConstraint(_in("jobType", JOB_TYPES), name="spotify_sync_jobs_jobType_check"),
        CheckConstraint(_in("status", JOB_STATUSES), name="spotify_sync_jobs_status_check"),
        Index("idx_spotify_jobs_status", "status", "createdAt"),
        Index("idx_spotify_jobs_type", "jobType", "status"),
        Index("idx_spotify_jobs_user", "userId", "status", "createdAt"),
    )
