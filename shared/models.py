"""SQLAlchemy models of the database contract (docs/architecture.md, "The database contract").

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
    BigInteger,
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

from shared.jobtypes import JOB_TYPE_NAMES

# Text ids as the existing (Prisma) application made them; new rows get a UUID in text form.
NEW_ID = text("gen_random_uuid()::text")

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

    # --- 20261122_02 job_ledger (pipeline/store/ledger.py) ---
    backfill_id: Mapped[str | None] = mapped_column(
        "backfillId", Text, ForeignKey("spotify_backfills.id", ondelete="SET NULL")
    )
    # A running job belongs to its worker until then; afterwards another worker may take it over.
    lease_until: Mapped[datetime | None] = mapped_column("leaseUntil", DateTime)
    # A parked job (rate limited, waiting out a backoff) does not run before this time.
    not_before: Mapped[datetime | None] = mapped_column("notBefore", DateTime)
    # When its last message was sent (the reconciler leaves young pending jobs alone). NULL for a
    # parked job: no message is out, and the dispatcher (workers/dispatcher.py) sends one when due.
    enqueued_at: Mapped[datetime | None] = mapped_column("enqueuedAt", DateTime)
    # How many times it was claimed: the fencing token of a run, and a guard against poison jobs.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error_class: Mapped[str | None] = mapped_column("errorClass", Text)
    # What the run did: counts written, ids not found, a library checkpoint, why a column is empty.
    result: Mapped[dict | None] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint(_in("jobType", JOB_TYPE_NAMES), name="spotify_sync_jobs_jobType_check"),
        CheckConstraint(_in("status", JOB_STATUSES), name="spotify_sync_jobs_status_check"),
        Index("idx_spotify_jobs_status", "status", "createdAt"),
        Index("idx_spotify_jobs_type", "jobType", "status"),
        Index("idx_spotify_jobs_user", "userId", "status", "createdAt"),
        Index("idx_spotify_jobs_backfill", "backfillId", "status"),
    )


# --- 20261122_02 job_ledger: backfill groups, saved-track links, popularity history ---

BACKFILL_STATES = ("enqueuing", "enqueued")


class SpotifyBackfill(Base):
    """One operator request (a backfill, a library sweep, a popularity refresh): its jobs point here,
    so its progress is one GROUP BY away. `state` is 'enqueuing' until every message was sent."""

    __tablename__ = "spotify_backfills"

    id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=NEW_ID)
    job_type: Mapped[str] = mapped_column("jobType", Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    force: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="enqueuing")
    total_ids: Mapped[int] = mapped_column("totalIds", Integer, nullable=False, server_default="0")
    # Ids not turned into work: duplicates in the input, or fresh in the cache.
    skipped_ids: Mapped[int] = mapped_column("skippedIds", Integer, nullable=False, server_default="0")
    total_jobs: Mapped[int] = mapped_column("totalJobs", Integer, nullable=False, server_default="0")
    enqueued_at: Mapped[datetime | None] = mapped_column("enqueuedAt", DateTime)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    __table_args__ = (
        CheckConstraint(_in("jobType", JOB_TYPE_NAMES), name="spotify_backfills_jobType_check"),
        CheckConstraint(_in("state", BACKFILL_STATES), name="spotify_backfills_state_check"),
    )


class SpotifySavedTrack(Base):
    """A track in a user's Spotify library ("Liked Songs"), with when they saved it."""

    __tablename__ = "spotify_saved_tracks"

    user_id: Mapped[str] = mapped_column(
        "userId", Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    song_id: Mapped[str] = mapped_column("songId", Text, ForeignKey("songs.id", ondelete="CASCADE"), primary_key=True)
    spotify_id: Mapped[str] = mapped_column("spotifyId", Text, nullable=False)
    added_at: Mapped[datetime | None] = mapped_column("addedAt", DateTime)
    # A full sync removes the links it did not see (tracks the user removed from the library).
    last_seen_at: Mapped[datetime] = mapped_column("lastSeenAt", DateTime, nullable=False, server_default=func.now())
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (Index("idx_spotify_saved_tracks_user_added", "userId", "addedAt"),)


class SongPopularityHistory(Base):
    """One observation of a song's popularity (popularity_update adds one per song it refreshes)."""

    __tablename__ = "song_popularity_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    song_id: Mapped[str] = mapped_column("songId", Text, ForeignKey("songs.id", ondelete="CASCADE"), nullable=False)
    popularity: Mapped[int] = mapped_column(Integer, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column("recordedAt", DateTime, nullable=False, server_default=func.now())
    job_id: Mapped[str | None] = mapped_column("jobId", Text)

    __table_args__ = (
        CheckConstraint("popularity >= 0 AND popularity <= 100", name="song_popularity_history_popularity_check"),
        Index("idx_song_popularity_history_song", "songId", "recordedAt"),
        # A job run twice (at-least-once delivery) records a song's observation once.
        Index("uq_song_popularity_history_job", "songId", "jobId", unique=True),
    )


# The popularity refresh picks the stalest songs first (never refreshed ones before all others).
Index(
    "idx_songs_last_popularity_update",
    Song.__table__.c.lastPopularityUpdate.asc().nulls_first(),
    postgresql_where=text('"spotifyId" IS NOT NULL'),
)


# --- 20261122_01 capabilities (pipeline/capabilities.py, pipeline/store/capabilities.py) ---

CAPABILITIES = ("batch_tracks", "audio_features", "popularity")


class SpotifyCapability(Base):
    """What a Spotify app (client id) may call, as learned from Spotify's answers: a 403 on an
    endpoint, a field the access tier leaves out. Operators read it to see why columns are empty."""

    __tablename__ = "spotify_capabilities"

    client_id: Mapped[str] = mapped_column("clientId", Text, primary_key=True)
    capability: Mapped[str] = mapped_column(Text, primary_key=True)
    allowed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    learned_at: Mapped[datetime] = mapped_column("learnedAt", DateTime, nullable=False, server_default=func.now())
    # When a forbidden capability is tried again (SPOTIFY_CAPABILITY_RECHECK after it was learned).
    recheck_after: Mapped[datetime | None] = mapped_column("recheckAfter", DateTime)

    __table_args__ = (CheckConstraint(_in("capability", CAPABILITIES), name="spotify_capabilities_capability_check"),)


# --- 20261122_04 unknown tracks (pipeline/store/songs.py) ---


class SpotifyUnknownTrack(Base):
    """An id Spotify answered null for (no such track, or not in any market), and when: within
    TRACK_TTL it is not asked for again, like a fresh song."""

    __tablename__ = "spotify_unknown_tracks"

    spotify_id: Mapped[str] = mapped_column("spotifyId", Text, primary_key=True)
    checked_at: Mapped[datetime] = mapped_column("checkedAt", DateTime, nullable=False)


# --- 20261201_01 the learned rate budget (pipeline/store/ratecontrol.py) ---


class SpotifyRateBudget(Base):
    """The fleet's learned request budget per client id (SPOTIFY_RATE_LIMIT=auto), kept beside its
    Redis copy so that a restart of every worker or a loss of Redis does not start it again.
    `state` is pipeline/ratecontrol/learning.py's LearnedState; `version` only grows."""

    __tablename__ = "spotify_rate_budgets"

    client_id: Mapped[str] = mapped_column("clientId", Text, primary_key=True)
    state: Mapped[dict] = mapped_column(JSONB, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column("updatedAt", DateTime, nullable=False)
