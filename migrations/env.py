"""Alembic environment: the database URL comes from the settings (DATABASE_URL or the embedded
services), or from `config.attributes["connection"]` when a caller hands one in (tests)."""

from __future__ import annotations

from alembic import context

from shared.db import make_engine
from shared.models import Base
from shared.settings import Settings

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.attributes.get("database_url") or Settings.from_env().require_database_url()
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


# Objects made by raw SQL (migrations 20261201_01 and _03: the search's own tables song_search,
# song_search_words and song_search_queue, and their indexes; the expression indexes of its first version) that the models do not
# declare: autogenerate must not propose dropping them.
SQL_ONLY_INDEX_PREFIXES = ("idx_songs_search_", "idx_song_search_")
SQL_ONLY_TABLES = ("song_search", "song_search_words", "song_search_queue")


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    if type_ == "table" and reflected and compare_to is None and name in SQL_ONLY_TABLES:
        return False
    return not (type_ == "index" and reflected and compare_to is None and name
                and name.startswith(SQL_ONLY_INDEX_PREFIXES))


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                      include_object=_include_object)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
