"""baseline: users and songs as the existing application had them

An existing database that already holds these tables is not upgraded through this revision but
stamped at it (`spotify-sync db stamp baseline`), so its rows are never touched.

Revision ID: baseline
Revises:
Create Date: 2025-08-01
"""

import sqlalchemy as sa
from alembic import op

revision = "baseline"
down_revision = None
branch_labels = None
depends_on = None

NEW_ID = sa.text("gen_random_uuid()::text")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Text(), primary_key=True, server_default=NEW_ID),
        sa.Column("email", sa.Text(), unique=True),
        sa.Column("name", sa.Text()),
        sa.Column("createdAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updatedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "songs",
        sa.Column("id", sa.Text(), primary_key=True, server_default=NEW_ID),
        sa.Column("spotifyId", sa.Text(), unique=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("artist", sa.Text(), nullable=False),
        sa.Column("album", sa.Text()),
        sa.Column("duration", sa.Integer()),
        sa.Column("danceability", sa.Numeric(3, 2)),
        sa.Column("energy", sa.Numeric(3, 2)),
        sa.Column("valence", sa.Numeric(3, 2)),
        sa.Column("acousticness", sa.Numeric(3, 2)),
        sa.Column("instrumentalness", sa.Numeric(3, 2)),
        sa.Column("tempo", sa.Numeric(6, 2)),
        sa.Column("createdAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updatedAt", sa.DateTime(), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("songs")
    op.drop_table("users")
