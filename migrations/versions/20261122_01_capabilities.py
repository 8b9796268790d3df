"""capabilities: what each Spotify client id may call, as learned from Spotify's answers

Revision ID: 20261122_01
Revises: 20250826181336
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "20261122_01"
down_revision = "20250826181336"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spotify_capabilities",
        sa.Column("clientId", sa.Text(), nullable=False),
        sa.Column("capability", sa.Text(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("learnedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("recheckAfter", sa.DateTime()),
        sa.PrimaryKeyConstraint("clientId", "capability", name="spotify_capabilities_pkey"),
        sa.CheckConstraint(
            "\"capability\" IN ('batch_tracks', 'audio_features', 'popularity')",
            name="spotify_capabilities_capability_check",
        ),
    )


def downgrade() -> None:
    op.drop_table("spotify_capabilities")
