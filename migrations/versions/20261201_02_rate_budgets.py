"""rate budgets: the fleet's learned request budget per client id (SPOTIFY_RATE_LIMIT=auto), kept
in PostgreSQL so that it outlives a restart of every worker and a loss of Redis

Revision ID: 20261201_02
Revises: 20261201_01
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20261201_02"
down_revision = "20261201_01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spotify_rate_budgets",
        sa.Column("clientId", sa.Text(), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updatedAt", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("clientId", name="spotify_rate_budgets_pkey"),
    )


def downgrade() -> None:
    op.drop_table("spotify_rate_budgets")
