"""The synthetic catalog: deterministic, in range, tier views, ISRC, search."""

from __future__ import annotations

from emulator.catalog import Catalog


def test_same_index_same_track_and_different_catalogs_differ():
    a, b = Catalog(1000, "s"), Catalog(1000, "s")
    assert a.track(5, hour=10) == b.track(5, hour=10)
    assert Catalog(1000, "t").track(5)["name"] is not None
    assert a.track(5)["id"] != Catalog(1000, "t").track(5)["id"]


def test_track_shape_and_album_grouping():
    catalog = Catalog(1000, "s")
    t10, t11 = catalog.track(10), catalog.track(11)
    assert t10["album"]["id"] == t11["album"]["id"] and (t10["track_number"], t11["track_number"]) == (1, 2)
    assert 90_000 <= t10["duration_ms"] < 420_000 and isinstance(t10["explicit"], bool)
    assert t10["uri"] == "spotify:track:" + t10["id"] and t10["href"].endswith(t10["id"])
    assert catalog.track(999)["album"]["total_tracks"] == 10
    assert Catalog(1005, "s").track(1004)["album"]["total_tracks"] == 5


def test_track_index_knows_the_catalog_size():
    small, big = Catalog(100, "s"), Catalog(1000, "s")
    track_id = big.track_id(500)
    assert big.track_index(track_id) == 500 and small.track_index(track_id) is None


def test_dev_2026_view_and_market_view():
    catalog = Catalog(100, "s")
    dev = catalog.track(3, view="dev-2026")
    assert "popularity" not in dev and "available_markets" not in dev and dev["preview_url"] is None
    market = catalog.track(3, market=True)
    assert market["is_playable"] is True and "available_markets" not in market


def test_audio_features_share_and_ranges():
    catalog = Catalog(10_000, "s")
    features = [catalog.audio_features(i) for i in range(2000)]
    present = [f for f in features if f]
    assert 0.86 < len(present) / 2000 < 0.94
    for f in present:
        assert -60 <= f["loudness"] <= 0 and -1 <= f["key"] <= 11 and f["mode"] in (0, 1)
        assert 3 <= f["time_signature"] <= 7 and 60 <= f["tempo"] <= 200
        assert all(0 <= f[k] <= 1 for k in ("acousticness", "danceability", "energy", "instrumentalness",
                                            "liveness", "speechiness", "valence"))
    assert Catalog(100, "s", audio_features_share=0.0).audio_features(1) is None


def test_popularity_drifts_slowly_within_bounds():
    catalog = Catalog(1000, "s")
    for index in range(200):
        series = [catalog.popularity(index, hour) for hour in range(0, 24 * 28, 6)]
        assert all(0 <= p <= 100 for p in series)
        assert max(abs(a - b) for a, b in zip(series, series[1:], strict=False)) <= 1
    assert any(catalog.popularity(i, 0) != catalog.popularity(i, 24 * 7) for i in range(50))


def test_isrc_round_trip_and_search():
    catalog = Catalog(1_000_000, "s")
    track = catalog.track(987_654)
    assert catalog.index_from_isrc(track["external_ids"]["isrc"]) == 987_654
    assert catalog.index_from_isrc("USRC17607839") is None
    assert catalog.search(f"isrc:{track['external_ids']['isrc']}", 0, 10) == (1, [987_654])
    assert catalog.search("isrc:USRC17607839", 0, 10) == (0, [])


def test_a_million_tracks_cost_no_memory_up_front():
    catalog = Catalog(1_000_000, "s")
    assert catalog.track(999_999)["track_number"] == 10
    assert catalog._track_base.cache_info().currsize == 1


def test_cached_renders_hold_about_their_length_in_memory():
    """A cache of 200,000 renders must not cost four times their bytes (orjson's output buffers
    are rounded up and never shrunk; the catalog keeps right-sized copies)."""
    import tracemalloc

    catalog = Catalog(10_000, "s")
    for i in range(1_000):  # the track objects the renders are made from, cached beforehand
        catalog.track(i)
        catalog.audio_features(i)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        renders = [catalog.track_json(i, "full", False, 0) for i in range(1_000)]
        renders += [catalog.audio_features_json(i) for i in range(1_000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1.5 * sum(len(r) for r in renders)


def test_the_tracks_of_an_album_share_one_album_object():
    catalog = Catalog(1_000, "s")
    first, tenth, next_album = (catalog.track(i)["album"] for i in (0, 9, 10))
    assert first is tenth and first is not next_album
