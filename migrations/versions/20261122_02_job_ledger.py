"""job_ledger: leases, not-before, attempts, error class and result on jobs; backfill groups,
saved-track links and popularity history

Only additions: the seed's columns of spotify_sync_jobs and songs keep their meaning.

Revision ID: 20261122_02
Revises: 20261122_01
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "20261122_02"
down_revision = "20261122_01"
branch_labels = None
depends_on = None

NEW_ID = sa.text("gen_random_uuid()::text")


def upgrade() -> None:
    op.create_table(
        "spotify_backfills",
        sa.Column("id", sa.Text(), primary_key=True, server_default=NEW_ID),
        sa.Column("jobType", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("force", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("state", sa.Text(), nullable=False, server_default="enqueuing"),
        sa.Column("totalIds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skippedIds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("totalJobs", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("enqueuedAt", sa.DateTime()),
        sa.Column("createdAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updatedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "\"jobType\" IN ('track_sync', 'user_library', 'popularity_update')", name="spotify_backfills_jobType_check"
        ),
        sa.CheckConstraint("\"state\" IN ('enqueuing', 'enqueued')", name="spotify_backfills_state_check"),
    )

    op.add_column(
        "spotify_sync_jobs",
        sa.Column("backfillId", sa.Text(), sa.ForeignKey("spotify_backfills.id", ondelete="SET NULL")),
    )
    op.add_column("spotify_sync_jobs", sa.Column("leaseUntil", sa.DateTime()))
    op.add_column("spotify_sync_jobs", sa.Column("notBefore", sa.DateTime()))
    op.add_column("spotify_sync_jobs", sa.Column("enqueuedAt", sa.DateTime()))
    op.add_column("spotify_sync_jobs", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("spotify_sync_jobs", sa.Column("errorClass", sa.Text()))
    op.add_column("spotify_sync_jobs", sa.Column("result", JSONB()))
    op.create_index("idx_spotify_jobs_backfill", "spotify_sync_jobs", ["backfillId", "status"])

    op.create_table(
        "spotify_saved_tracks",
        sa.Column("userId", sa.Text(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("songId", sa.Text(), sa.ForeignKey("songs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("spotifyId", sa.Text(), nullable=False),
        sa.Column("addedAt", sa.DateTime()),
        sa.Column("lastSeenAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("createdAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("idx_spotify_saved_tracks_user_added", "spotify_saved_tracks", ["userId", "addedAt"])

    op.create_table(
        "song_popularity_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("songId", sa.Text(), sa.ForeignKey("songs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("popularity", sa.Integer(), nullable=False),
        sa.Column("recordedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("jobId", sa.Text()),
        sa.CheckConstraint("popularity >= 0 AND popularity <= 100", name="song_popularity_history_popularity_check"),
    )
    op.create_index("idx_song_popularity_history_song", "song_popularity_history", ["songId", "recordedAt"])

    op.create_index(
        "idx_songs_last_popularity_update",
        "songs",
        [sa.text('"lastPopularityUpdate" ASC NULLS FIRST')],
        postgresql_where=sa.text('"spotifyId" IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index("idx_songs_last_popularity_update", table_name="songs")
    op.drop_table("song_popularity_history")
    op.drop_table("spotify_saved_tracks")
    op.drop_index("idx_spotify_jobs_backfill", table_name="spotify_sync_jobs")
    for column in ("result", "errorClass", "attempts", "enqueuedAt", "notBefore", "leaseUntil", "backfillId"):
        op.drop_column("spotify_sync_jobs", column)
    op.drop_table("spotify_backfills")
