"""Typed results tolerate what an access tier leaves out, and refuse a track without what Spotify
always sends."""

from datetime import UTC, datetime

import pytest

from pipeline.errors import MalformedResponse
from pipeline.spotify.models import AudioFeatures, Page, SavedTrack, SpotifyUser, Track

FULL = {
    "id": "4uLU6hMCjMI75M1A2tKUQC", "name": "Song", "duration_ms": 213000, "explicit": False, "popularity": 71,
    "preview_url": "https://p.scdn.co/x", "uri": "spotify:track:4uLU6hMCjMI75M1A2tKUQC", "is_local": False,
    "artists": [{"id": "a1", "name": "One"}, {"id": "a2", "name": "Two"}],
    "album": {"id": "al", "name": "Album", "album_type": "album", "release_date": "2020-01-01",
              "release_date_precision": "day", "images": [{"url": "https://i.scdn.co/1"}]},
    "external_ids": {"isrc": "USUM71703861"}, "external_urls": {"spotify": "https://open.spotify.com/track/x"},
    "available_markets": ["DE"],
}


def test_a_full_track():
    track = Track.from_json(FULL)
    assert (track.popularity, track.isrc, track.artist_names, track.duration_s) == (71, "USUM71703861", "One, Two", 213)
    assert track.album.image_url == "https://i.scdn.co/1"


def test_a_dev_2026_track_reads_none_for_what_is_left_out():
    reduced = {k: v for k, v in FULL.items() if k not in ("popularity", "available_markets")} | {"preview_url": None}
    track = Track.from_json(reduced)
    assert (track.popularity, track.preview_url, track.isrc) == (None, None, "USUM71703861")


@pytest.mark.parametrize(("broken", "named"), [
    ({"id": "x"}, "'name'"),
    ({**FULL, "name": None}, "'name'"),
    ({**FULL, "artists": "Rick"}, "'artists'"),
    ({**FULL, "artists": [{"id": "a"}]}, "'artists'"),
    ({**FULL, "album": None}, "'album'"),
    ({**FULL, "duration_ms": "213573"}, "'duration_ms'"),
    ({**FULL, "id": 7}, "'id'"),
])
def test_an_object_lacking_what_spotify_always_sends_is_malformed(broken, named):
    with pytest.raises(MalformedResponse) as caught:
        Track.from_json(broken)
    assert named in str(caught.value) and caught.value.transient


def test_fields_a_tier_leaves_out_read_none():
    reduced = {k: v for k, v in FULL.items() if k not in ("popularity", "preview_url", "external_ids", "explicit")}
    track = Track.from_json(reduced)
    assert (track.popularity, track.preview_url, track.isrc, track.explicit) == (None, None, None, None)


def test_audio_features_and_user_and_page():
    features = AudioFeatures.from_json({"id": "x", "danceability": 0.5, "loudness": -7, "key": 5, "mode": 1})
    assert (features.danceability, features.loudness, features.key, features.energy) == (0.5, -7.0, 5, None)
    user = SpotifyUser.from_json({"id": "u", "display_name": "U", "account_id": "acc"})
    assert (user.country, user.email, user.account_id) == (None, None, "acc")
    page = Page.from_json({"items": [{"added_at": "2026-01-02T03:04:05Z", "track": FULL}], "offset": 50, "limit": 50,
                           "total": 51, "next": None, "previous": "p", "href": "h"}, SavedTrack.from_json)
    assert page.items[0].added_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (page.next_offset, page.total) == (None, 51)


def test_the_next_offset_is_the_one_next_names_even_when_items_are_null():
    items = [{"added_at": "2026-01-02T03:04:05Z", "track": FULL}, None, {"added_at": None, "track": FULL}]
    page = Page.from_json({"items": items, "offset": 50, "limit": 3, "total": 60,
                           "next": "https://api.spotify.com/v1/me/tracks?offset=53&limit=3"}, SavedTrack.from_json)
    assert (len(page.items), page.next_offset) == (2, 53)
    odd = Page.from_json({"items": items, "offset": 50, "limit": 3, "next": "https://api.spotify.com/v1/me/tracks"},
                         SavedTrack.from_json)
    assert odd.next_offset == 53
