"""add_spotify_integration_fields: the seed's nine songs columns, checks and indexes

Revision ID: 20250826161259
Revises: baseline
Create Date: 2025-08-26 16:12:59
"""

import sqlalchemy as sa
from alembic import op

revision = "20250826161259"
down_revision = "baseline"
branch_labels = None
depends_on = None

def _columns() -> list[sa.Column]:
    return [
        sa.Column("spotifyLastSync", sa.DateTime()),
        sa.Column("spotifyPopularity", sa.Integer()),
        sa.Column("spotifyPreviewUrl", sa.Text()),
        sa.Column("spotifyExternalUrl", sa.Text()),
        sa.Column("audioFeaturesSynced", sa.Boolean(), server_default=sa.text("false")),
        sa.Column("lastPopularityUpdate", sa.DateTime()),
        sa.Column("speechiness", sa.Numeric(3, 2)),
        sa.Column("liveness", sa.Numeric(3, 2)),
        sa.Column("loudness", sa.Numeric(5, 2)),
    ]


def upgrade() -> None:
    for column in _columns():
        op.add_column("songs", column)
    op.create_check_constraint(
        "songs_spotifyPopularity_check",
        "songs",
        '"spotifyPopularity" IS NULL OR ("spotifyPopularity" >= 0 AND "spotifyPopularity" <= 100)',
    )
    op.create_check_constraint(
        "songs_speechiness_check", "songs", "speechiness IS NULL OR (speechiness >= 0 AND speechiness <= 1)"
    )
    op.create_check_constraint("songs_liveness_check", "songs", "liveness IS NULL OR (liveness >= 0 AND liveness <= 1)")
    op.create_index("idx_songs_spotify_sync", "songs", ["spotifyLastSync", "audioFeaturesSynced"])
    op.create_index(
        "idx_songs_spotify_popularity",
        "songs",
        ["spotifyPopularity"],
        postgresql_where=sa.text('"spotifyPopularity" IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index("idx_songs_spotify_popularity", table_name="songs")
    op.drop_index("idx_songs_spotify_sync", table_name="songs")
    for name in ("songs_liveness_check", "songs_speechiness_check", "songs_spotifyPopularity_check"):
        op.drop_constraint(name, "songs", type_="check")
    for column in reversed(_columns()):
        op.drop_column("songs", column.name)
