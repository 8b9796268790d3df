"""unknown tracks: ids Spotify answered null for, and when, so they are not asked for again
within TRACK_TTL (a re-enqueued file of dead ids costs no requests)

Revision ID: 20261122_04
Revises: 20261122_03
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "20261122_04"
down_revision = "20261122_03"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spotify_unknown_tracks",
        sa.Column("spotifyId", sa.Text(), nullable=False),
        sa.Column("checkedAt", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("spotifyId", name="spotify_unknown_tracks_pkey"),
    )


def downgrade() -> None:
    op.drop_table("spotify_unknown_tracks")
