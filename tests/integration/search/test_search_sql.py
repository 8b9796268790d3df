"""Local search against real PostgreSQL: folding, typos, word order, prefixes, filters, ranking,
paging, and the index the migration built."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pipeline.search.query import parse
from pipeline.search.ranking import EXACT, FUZZY, PREFIX, WORDS, tier
from pipeline.store.search import get_song, search_songs
from tests.integration.search.conftest import filler, insert_songs


def titles(engine, q: str, limit: int = 10, offset: int = 0) -> list[tuple[str, str]]:
    found = search_songs(engine, parse(q), limit=limit, offset=offset)
    return [(s["title"], s["artist"]) for s in found.songs]


def test_accents_and_case_fold(songs):
    assert ("Halo", "Beyoncé") in titles(songs, "beyonce")
    assert ("Halo", "Beyoncé") in titles(songs, "BEYONCÉ")
    assert titles(songs, "sigur ros") == [("Hoppípolla", "Sigur Rós")]
    assert titles(songs, "motorhead") == [("Ace of Spades", "Motörhead")]


@pytest.mark.parametrize("q", ["acdc", "ac dc", "AC/DC", "ac-dc"])
def test_punctuation_folds(songs, q):
    assert {a for _, a in titles(songs, q)} == {"AC/DC"}
    assert len(titles(songs, q)) == 3


def test_apostrophes_and_other_punctuation(songs):
    assert titles(songs, "dont stop")[0] == ("Don't Stop Me Now", "Queen")
    assert titles(songs, "guns n roses") == [("Sweet Child O' Mine", "Guns N’ Roses")]
    assert titles(songs, "rem losing")[0] == ("Losing My Religion", "R.E.M.")


def test_a_typo_is_tolerated(songs):
    assert ("Halo", "Beyoncé") in titles(songs, "beyonse")
    assert titles(songs, "bohemain rhapsody")[0] == ("Bohemian Rhapsody", "Queen")


def test_a_known_word_one_edit_away_is_the_typo_not_a_trigram_look_alike(songs):
    insert_songs(songs, [("Wanno", "Band W", None, 5), ("Want", "Band V", None, 90)])
    # "want" looks like "wanxo" as much as "wanno" does (3 of 6 trigrams), and is more popular;
    # "wanno" is one letter away.
    assert titles(songs, "wanxo") == [("Wanno", "Band W")]


def test_beside_an_unknown_word_the_short_words_stand_for_themselves(songs):
    insert_songs(songs, [("Sweet Child Anthem", "Lullaby Band", None, 99)])
    # "swxet" is the typo: "o" must start a word of the song, which "Sweet Child Anthem" has not.
    assert titles(songs, "swxet child o") == [("Sweet Child O' Mine", "Guns N’ Roses")]
    # Every longer word known: the short one may be the typo.
    assert ("Sweet Child Anthem", "Lullaby Band") in titles(songs, "sweet child x")


def test_a_short_word_before_the_last_is_a_whole_word_as_a_longer_one_is(songs):
    insert_songs(songs, [("My Lanterns", "Band Y", None, 10), ("Myriad Lanterns", "Band X", None, 50)])
    # "my" is not being typed (a word follows it): "myriad" does not hold it, as "lanternsx" would not
    # hold "lanterns"; the index looks it up as a word.
    assert titles(songs, "my lanterns") == [("My Lanterns", "Band Y")]
    # The same in the typo set, where the short word stands beside the mistyped one.
    assert titles(songs, "my lanxerns") == [("My Lanterns", "Band Y")]
    # The last word may still be a prefix, short or not.
    assert set(titles(songs, "lanterns my")) == {("My Lanterns", "Band Y"), ("Myriad Lanterns", "Band X")}


def test_words_in_any_order(songs):
    assert titles(songs, "queen bohemian")[0] == ("Bohemian Rhapsody", "Queen")
    assert titles(songs, "hell highway")[0] == ("Highway to Hell", "AC/DC")


def test_the_last_word_may_be_a_prefix(songs):
    assert titles(songs, "bohemian rhap")[0] == ("Bohemian Rhapsody", "Queen")
    assert titles(songs, "losing my reli")[0] == ("Losing My Religion", "R.E.M.")


def test_field_filters_and_phrases(songs):
    assert titles(songs, "artist:queen") == [("Bohemian Rhapsody", "Queen"), ("Don't Stop Me Now", "Queen")]
    assert titles(songs, "artist:acdc track:hell") == [("Highway to Hell", "AC/DC"), ("Hells Bells", "AC/DC")]
    assert titles(songs, "album:\"back in black\"") == [("Back in Black", "AC/DC"), ("Hells Bells", "AC/DC")]
    assert titles(songs, "track:halo artist:beyonce") == [("Halo", "Beyoncé")]
    assert titles(songs, '"in love"') == [("Crazy in Love", "Beyoncé")]


def test_ranking_exact_then_prefix_then_words_then_fuzzy_ties_by_popularity(songs):
    found = search_songs(songs, parse("halo"), limit=10, offset=0)
    ranked = [(s["title"], s["artist"], s["tier"]) for s in found.songs]
    assert ranked == [
        ("Halo", "Beyoncé", EXACT),  # popularity 80
        ("Halo", "Lovebugs", EXACT),  # 20
        ("Halo Theme", "Martin O'Donnell", PREFIX),
    ]
    exact_pair = search_songs(songs, parse("beyonce halo"), limit=10, offset=0).songs
    assert (exact_pair[0]["title"], exact_pair[0]["tier"]) == ("Halo", EXACT)


def test_sql_tiers_are_the_python_tiers(songs):
    for q in ("halo", "beyonce", "beyonse", "acdc", "hell highway", "highway to", "bohemian", "queen jazz",
              "crazy love", "rhapsody", "ighway", "sweet child o mine guns n roses"):
        query = parse(q)
        for song in search_songs(songs, query, limit=50, offset=0).songs:
            assert song["tier"] == tier(query, song["title"], song["artist"], song["album"]), (q, song["title"])


def test_within_a_tier_the_more_popular_comes_first(songs):
    found = search_songs(songs, parse("river"), limit=50, offset=0).songs
    assert len(found) == 50
    for tier_ in (PREFIX, WORDS):
        popularity = [s["spotifyPopularity"] for s in found if s["tier"] == tier_]
        assert popularity == sorted(popularity, reverse=True)


def test_paging_and_total(songs):
    first = search_songs(songs, parse("river"), limit=15, offset=0)
    second = search_songs(songs, parse("river"), limit=15, offset=15)
    past = search_songs(songs, parse("river"), limit=15, offset=100)
    rivers = sum("river" in title.lower() for title, *_ in filler(400))
    assert first.total == second.total == past.total == rivers == 76
    assert len(first.songs) == 15 and len(second.songs) == 15 and past.songs == []
    assert not {s["id"] for s in first.songs} & {s["id"] for s in second.songs}


def test_sql_metacharacters_are_harmless(songs):
    for q in ("x'; DROP TABLE songs; --", "100%", "under_score", "%", "_", "\\", "' OR '1'='1"):
        search_songs(songs, parse(q) if any(ch.isalnum() for ch in q) else parse(q + "a"), limit=10, offset=0)
    with songs.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM songs")).scalar_one() == 418
    assert titles(songs, "100%")[0] == ("100% Pure Love", "Crystal Waters")
    # "_" is a separator, never LIKE's any-character
    assert titles(songs, "under_score") == [("under_score", "Test_Artist")]


def test_non_latin_scripts(songs):
    assert titles(songs, "кино") == [("Кино", "Виктор Цой")]
    assert titles(songs, "цой") == [("Кино", "Виктор Цой")]


def test_nothing_found(songs):
    found = search_songs(songs, parse("zzqqxx"), limit=10, offset=0)
    assert found.songs == [] and found.total == 0 and found.best_tier is None


def test_the_trigram_index_serves_the_search(songs):
    with songs.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT song_id FROM song_search x WHERE x.doc LIKE '%beyonce%' OR 'beyonce' <% x.doc")).scalars())
    assert "idx_song_search_trgm" in plan


def test_get_song_returns_every_contract_column(songs):
    with songs.connect() as conn:
        spotify_id = conn.execute(text("SELECT \"spotifyId\" FROM songs WHERE title = 'Halo' AND artist = 'Beyoncé'")
                                  ).scalar_one()
    song = get_song(songs, spotify_id)
    assert song["title"] == "Halo" and song["spotifyPopularity"] == 80
    with songs.connect() as conn:
        columns = conn.execute(text("SELECT column_name FROM information_schema.columns WHERE table_name = 'songs'")
                               ).scalars().all()
    assert set(song) == set(columns)
    assert get_song(songs, "0" * 22) is None


def test_fuzzy_ranks_below_the_rest(songs):
    found = search_songs(songs, parse("bohemian"), limit=10, offset=0).songs
    assert [s["tier"] for s in found] == sorted(s["tier"] for s in found)
    assert all(s["tier"] < FUZZY for s in found[:2])


def test_a_broad_word_counts_up_to_the_cap_and_a_narrower_one_exactly(songs):
    from pipeline.store.search import ESTIMATE_MARGIN, MAX_COUNTED
    from tests.integration.search.conftest import insert_songs

    loves = MAX_COUNTED * ESTIMATE_MARGIN + 500
    insert_songs(songs, [(f"Love {n}", "Band", None, n % 100) for n in range(loves)]
                 + [(f"Lovely {n}", "Band", None, n % 100) for n in range(1000)])
    with songs.begin() as conn:
        conn.execute(text("ANALYZE song_search"))  # what the planner's estimate reads
    broad = search_songs(songs, parse("love"), limit=10, offset=0)
    assert broad.total == MAX_COUNTED and len(broad.songs) == 10  # the cap (the estimate alone says so)
    narrower = search_songs(songs, parse("lovely"), limit=10, offset=0)
    assert narrower.total == 1000  # under the cap: the exact count
