"""The SQL fold function and pipeline/search/normalize.py fold every string the same way."""

import importlib.util

from pipeline.search import normalize
from pipeline.search.ranking import document
from pipeline.store.db import autocommit
from pipeline.store.search import fold_in_sql
from shared.migrate import SCRIPT_LOCATION
from tests.integration.search.conftest import TRICKY

STRINGS = [
    "Beyoncé – Halo!", "AC/DC", "Don't Stop", "Sigur Rós", "Ørsted ß Æon", "  --Hello,   World!! ", "Мумий Тролль",
    "ёлка", "東京事変", "Motörhead", "naïve_x%y", "a\\b", "R.E.M.", "Guns N’ Roses", "ﬁne", "Ｆｕｌｌ", "´acute",
    "ŁÓDŹ", "ǅ", "½ x", "İstanbul", "Ça va?", "Ñandú", "Ελληνικά ά", "“quoted” «guillemets»", "tab\there",
    "dash‐hyphen—em", "¡Hola! ¿Qué?", "ŉ", "ẞig", "Þór", "œuvre", "Đorđe", "x'; DROP TABLE songs; --",
    "", "   ", "100% Pure", "[brackets] {braces} (parens)", "a^b$c|d~e", "emoji 🎸 rock", "numbers 1999",
]


def test_sql_and_python_fold_alike(engine):
    strings = STRINGS + [part for row in TRICKY for part in row[:3] if part]
    folded = fold_in_sql(engine, strings)
    mismatches = [(s, sql, normalize.fold(s)) for s, sql, in zip(strings, folded) if sql != normalize.fold(s)]
    assert mismatches == []


def test_the_document_function_matches_python(engine):
    from sqlalchemy import text

    with autocommit(engine) as conn:
        for title, artist, album, _ in TRICKY:
            sql = conn.execute(text("SELECT spotify_search_doc(:t, :a, :al)"), {"t": title, "a": artist, "al": album})
            assert sql.scalar_one() == document(title, artist, album)


def test_the_migration_froze_the_same_character_sets():
    path = SCRIPT_LOCATION / "versions" / "20261201_01_search_indexes.py"
    spec = importlib.util.spec_from_file_location("search_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)  # it only defines constants and functions at import
    assert migration.APOSTROPHES == normalize.APOSTROPHES
    assert migration.SEPARATORS == normalize.SEPARATORS
