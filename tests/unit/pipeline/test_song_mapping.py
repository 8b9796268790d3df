"""Mapping Spotify's objects to song rows: JSON and the client's dataclasses alike, values fitted
to the columns' precision and checks, and what a tier leaves out left empty."""

from datetime import UTC, datetime

import pytest

from pipeline.mapping import features_row, merge_rows, track_row, utc_naive
from pipeline.spotify.models import AudioFeatures, Track

AT = datetime(2026, 11, 22, 12, 0, 0)
TRACK = {
    "id": "4iV5W9uYEdYUVa79Axb7Rh", "name": "Never Gonna", "duration_ms": 213_573, "popularity": 77,
    "preview_url": "https://p.scdn.co/x", "external_urls": {"spotify": "https://open.spotify.com/track/4iV5W9uYEdYUVa79Axb7Rh"},
    "artists": [{"id": "a1", "name": "Rick"}, {"id": "a2", "name": "Astley"}], "album": {"id": "b1", "name": "Whenever"},
}
FEATURES = {"id": TRACK["id"], "danceability": 0.727, "energy": 0.9395, "valence": 1.2, "acousticness": -0.1,
            "instrumentalness": 0.0, "speechiness": 0.05, "liveness": 0.1, "loudness": -11.855, "tempo": 113.3346}


def test_a_track_fills_its_identity_popularity_and_links():
    assert track_row(TRACK, AT) == {
        "spotifyId": "4iV5W9uYEdYUVa79Axb7Rh", "title": "Never Gonna", "artist": "Rick, Astley", "album": "Whenever",
        "duration": 214, "spotifyPopularity": 77, "spotifyPreviewUrl": "https://p.scdn.co/x",
        "spotifyExternalUrl": "https://open.spotify.com/track/4iV5W9uYEdYUVa79Axb7Rh", "spotifyLastSync": AT,
        "lastPopularityUpdate": AT,
    }


@pytest.mark.parametrize("track", [
    TRACK,
    {**TRACK, "duration_ms": -5, "popularity": 150},
    {**TRACK, "popularity": -3, "preview_url": None, "external_urls": None},
    {**TRACK, "name": "", "artists": [{"name": ""}, {"name": "Astley"}], "album": {"name": ""}},
    {**TRACK, "artists": [{"name": ""}]},
    {k: v for k, v in TRACK.items() if k not in ("popularity", "preview_url", "external_urls")},
])
def test_the_clients_struct_maps_to_the_same_row_as_its_json(track):
    # The structs take a path of their own (attributes): it must give what the JSON's gives.
    assert track_row(Track.from_json(track), AT) == track_row(track, AT)


@pytest.mark.parametrize("features", [
    FEATURES,
    {"id": "x", "tempo": 12_345.0, "loudness": -2_000, "energy": 1, "valence": 0},
    {"id": "x"},
])
def test_the_clients_audio_features_map_to_the_same_row_as_their_json(features):
    assert features_row(AudioFeatures.from_json(features)) == features_row(features)


def test_a_tier_without_popularity_leaves_it_and_its_timestamp_empty():
    row = track_row({**TRACK, "popularity": None, "preview_url": None}, AT)
    assert row["spotifyPopularity"] is None and row["lastPopularityUpdate"] is None and row["spotifyPreviewUrl"] is None


def test_audio_features_are_clamped_to_what_the_columns_allow_and_left_for_them_to_round():
    row = features_row(FEATURES)
    assert row == {
        "danceability": 0.727, "energy": 0.9395, "valence": 1.0, "acousticness": 0.0, "instrumentalness": 0.0,
        "speechiness": 0.05, "liveness": 0.1, "tempo": 113.3346, "loudness": -11.855, "audioFeaturesSynced": True,
    }
    assert features_row(AudioFeatures.from_json(FEATURES)) == row
    extreme = features_row({"tempo": 12_345.0, "loudness": -2_000, "energy": "0.5", "valence": "loud"})
    assert (extreme["tempo"], extreme["loudness"], extreme["energy"], extreme["valence"]) == (9999.99, -999.99, 0.5, None)


def test_merge_skips_nulls_joins_features_and_marks_tracks_without_analysis_as_checked():
    other = {**TRACK, "id": "0000000000000000000002"}
    rows = merge_rows([TRACK, None, other], {TRACK["id"]: FEATURES, other["id"]: None}, AT, features_checked=True)
    assert [r["spotifyId"] for r in rows] == [TRACK["id"], other["id"]]
    assert rows[0]["danceability"] == 0.727 and rows[0]["audioFeaturesSynced"] is True
    assert rows[1].get("danceability") is None and rows[1]["audioFeaturesSynced"] is True


def test_without_features_asked_for_nothing_is_marked_synced():
    rows = merge_rows([TRACK], None, AT)
    assert "audioFeaturesSynced" not in rows[0]


def test_timestamps_become_naive_utc():
    assert utc_naive("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5)
    assert utc_naive(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == datetime(2026, 1, 2, 3, 4, 5)
    assert utc_naive(None) is None
