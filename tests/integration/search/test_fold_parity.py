"""The SQL fold function and pipeline/search/normalize.py fold every string the same way."""

import importlib.util

from sqlalchemy import text

from pipeline.search import normalize
from pipeline.search.ranking import document
from pipeline.store.db import autocommit
from pipeline.store.search import fold_in_sql
from shared.migrate import SCRIPT_LOCATION
from tests.integration.search.conftest import TRICKY, insert_songs

STRINGS = [
    "Beyoncé – Halo!", "AC/DC", "Don't Stop", "Sigur Rós", "Ørsted ß Æon", "  --Hello,   World!! ", "Мумий Тролль",
    "ёлка", "東京事変", "Motörhead", "naïve_x%y", "a\\b", "R.E.M.", "Guns N’ Roses", "ﬁne", "Ｆｕｌｌ", "´acute",
    "ŁÓDŹ", "ǅ", "½ x", "İstanbul", "Ça va?", "Ñandú", "Ελληνικά ά", "“quoted” «guillemets»", "tab\there",
    "dash‐hyphen—em", "¡Hola! ¿Qué?", "ŉ", "ẞig", "Þór", "œuvre", "Đorđe", "x'; DROP TABLE songs; --",
    "", "   ", "100% Pure", "[brackets] {braces} (parens)", "a^b$c|d~e", "emoji 🎸 rock", "numbers 1999",
]


def test_sql_and_python_fold_alike(engine):
    strings = STRINGS + [part for row in TRICKY + SIGMAS for part in row[:3] if part]
    folded = fold_in_sql(engine, strings)
    mismatches = [(s, sql, normalize.fold(s)) for s, sql, in zip(strings, folded, strict=True) if sql != normalize.fold(s)]
    assert mismatches == []


def test_the_document_function_matches_python(engine):
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


# Fields that fold to nothing, or to words at their very edges: the drain builds a document from
# the folds of the fields (migration 20261202_01), which must be the document of the fields.
EDGES = [
    ("", "Artist", None, 1), ("--", "AC/DC", "", 2), ("Title", "!!", "...", 3), ("  ", "   ", "  ", 4),
    ("Don't", "Guns N’ Roses", "l'amour", 6), ("a -b- c", "x/y", "(z)", 7),
]
# Python's str.lower() makes a word-final capital sigma "ς", PostgreSQL's lower() "σ": the fold
# follows PostgreSQL's, where a lower-case "ς" stays as written.
SIGMAS = [("ΟΔΟΣ", "ΣΙΣΥΦΟΣ Σ", "ΧΑΟΣ", 5), ("Σ", "Σ", None, 5), ("οδος ΟΔΟΣ", "ς", "Σς", 5)]
# 20261201_01's document: the joined fields folded, then the artist folded without its spaces.
JOINED_FOLD = ("btrim(spotify_search_fold(s.title || ' ' || s.artist || ' ' || coalesce(s.album, '')) || ' ' "
               "|| replace(spotify_search_fold(s.artist), ' ', ''))")


def test_the_drain_writes_each_song_as_python_folds_it(clean_db):
    with clean_db.begin() as conn:
        conn.execute(text("TRUNCATE song_search_queue"))
    rows = TRICKY + EDGES + SIGMAS + [(s, s, s, 8) for s in STRINGS]
    insert_songs(clean_db, rows)  # then drained, as the search indexer does
    with autocommit(clean_db) as conn:
        written = conn.execute(text(
            "SELECT s.title, s.artist, s.album, x.title, x.artist, x.album, x.doc, x.words = to_tsvector('simple', x.doc), "
            f"x.doc = {JOINED_FOLD} FROM song_search x JOIN songs s ON s.id = x.song_id")).all()
    assert len(written) == len(rows)
    assert all(w[8] for w in written)
    mismatches = [w for w in written if tuple(w[3:8]) != (normalize.fold(w[0]), normalize.fold(w[1]), normalize.fold(w[2] or ""),
                                        document(w[0], w[1], w[2]), True)]
    assert mismatches == []
