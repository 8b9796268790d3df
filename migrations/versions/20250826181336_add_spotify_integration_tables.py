"""add_spotify_integration_tables: spotify_connections and spotify_sync_jobs

Revision ID: 20250826181336
Revises: 20250826161259
Create Date: 2025-08-26 18:13:36
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "20250826181336"
down_revision = "20250826161259"
branch_labels = None
depends_on = None

NEW_ID = sa.text("gen_random_uuid()::text")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("createdAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updatedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "spotify_connections",
        sa.Column("id", sa.Text(), primary_key=True, server_default=NEW_ID),
        sa.Column("userId", sa.Text(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("spotifyUserId", sa.Text(), nullable=False, unique=True),
        sa.Column("accessToken", sa.Text(), nullable=False),
        sa.Column("refreshToken", sa.Text()),
        sa.Column("tokenExpiresAt", sa.DateTime(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False, server_default=""),
        sa.Column("authorizedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("status", sa.Text(), nullable=False, server_default="active"),
        *_timestamps(),
        sa.CheckConstraint("\"status\" IN ('active', 'needs_reauth')", name="spotify_connections_status_check"),
    )
    op.create_table(
        "spotify_sync_jobs",
        sa.Column("id", sa.Text(), primary_key=True, server_default=NEW_ID),
        sa.Column("userId", sa.Text(), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("jobType", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("payload", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("retryCount", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text()),
        sa.Column("startedAt", sa.DateTime()),
        sa.Column("completedAt", sa.DateTime()),
        *_timestamps(),
        sa.CheckConstraint(
            "\"jobType\" IN ('track_sync', 'user_library', 'popularity_update')", name="spotify_sync_jobs_jobType_check"
        ),
        sa.CheckConstraint(
            "\"status\" IN ('pending', 'running', 'completed', 'failed')", name="spotify_sync_jobs_status_check"
        ),
    )
    op.create_index("idx_spotify_jobs_status", "spotify_sync_jobs", ["status", "createdAt"])
    op.create_index("idx_spotify_jobs_type", "spotify_sync_jobs", ["jobType", "status"])
    op.create_index("idx_spotify_jobs_user", "spotify_sync_jobs", ["userId", "status", "createdAt"])


def downgrade() -> None:
    op.drop_table("spotify_sync_jobs")
    op.drop_table("spotify_connections")
