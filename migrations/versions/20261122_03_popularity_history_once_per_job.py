"""popularity history: one observation per song and job, so a job run twice records it once

Revision ID: 20261122_03
Revises: 20261122_02
Create Date: 2026-11-22
"""

from alembic import op

revision = "20261122_03"
down_revision = "20261122_02"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows a job run twice may already have written twice: keep the first of each pair.
    op.execute("""
        DELETE FROM song_popularity_history h USING song_popularity_history first
        WHERE h."jobId" IS NOT NULL AND h."songId" = first."songId" AND h."jobId" = first."jobId" AND h.id > first.id
    """)
    op.create_index("uq_song_popularity_history_job", "song_popularity_history", ["songId", "jobId"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_song_popularity_history_job", table_name="song_popularity_history")
