"""search speed: song_search's btree indexes in the order the results are ranked, so that a
common title ("love": thousands of songs) or a common word gives its most popular songs by
reading a page of an index, not every match and a sort. Built CONCURRENTLY before the two they
replace are dropped (CONCURRENTLY too): no rewrite, no long lock, at 10M rows as at 1M.

Revision ID: 20261201_04
Revises: 20261201_03
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "20261201_04"
down_revision = "20261201_03"
branch_labels = None
depends_on = None

# pipeline/store/search.py's BY_POPULARITY, after the title where the title is given: an exact
# title's songs in popularity order (the title, equal, drops out of the order), and every song
# in that order for a broad word's most popular matches (incremental sort read every song of a
# popularity to order them by title: thousands at 1M rows).
INDEXES = {
    "idx_song_search_title_popularity":
        "ON song_search USING btree (title text_pattern_ops, popularity DESC NULLS LAST, song_id)",
    "idx_song_search_by_popularity": "ON song_search USING btree (popularity DESC NULLS LAST, title, song_id)",
}
# Migration 20261201_01's, which the ones above serve in full (the title's prefix and equality;
# the popularity order).
REPLACED = {
    "idx_song_search_title": "ON song_search USING btree (title text_pattern_ops)",
    "idx_song_search_popularity": "ON song_search USING btree (popularity DESC NULLS LAST)",
}


def _search_table_exists() -> bool:
    # 20261201_01 builds nothing on a PostgreSQL without pg_trgm and unaccent.
    return op.get_bind().execute(sa.text("SELECT to_regclass('song_search') IS NOT NULL")).scalar_one()


def _swap(build: dict[str, str], drop: dict[str, str]) -> None:
    if not _search_table_exists():
        return
    with op.get_context().autocommit_block():
        for name, definition in build.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # an interrupted build left it INVALID
            op.execute(f"CREATE INDEX CONCURRENTLY {name} {definition}")
        for name in drop:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def upgrade() -> None:
    _swap(INDEXES, REPLACED)


def downgrade() -> None:
    _swap(REPLACED, INDEXES)
