"""Typed results tolerate what an access tier leaves out, and refuse a track without what Spotify
always sends."""

from datetime import UTC, datetime

import orjson
import pytest

from pipeline.errors import MalformedResponse
from pipeline.spotify.models import (
    AudioFeatures,
    AudioFeaturesAnswer,
    Page,
    SavedTrack,
    SpotifyUser,
    Track,
    TracksAnswer,
    decode_batch,
)

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


# What is wrong, and where (msgspec's JSON path), in the message.
BROKEN = [
    ({"id": "x"}, "missing required field `name`"),
    ({**FULL, "name": None}, "Expected `str`, got `null` - at `$.name`"),
    ({**FULL, "artists": "Rick"}, "got `str` - at `$.artists`"),
    ({**FULL, "artists": []}, "Expected `array` of length >= 1 - at `$.artists`"),
    ({**FULL, "artists": [{"id": "a"}]}, "missing required field `name` - at `$.artists[0]`"),
    ({**FULL, "album": None}, "Expected `object`, got `null` - at `$.album`"),
    ({**FULL, "album": {"id": "al"}}, "missing required field `name` - at `$.album`"),
    ({**FULL, "duration_ms": "213573"}, "Expected `int`, got `str` - at `$.duration_ms`"),
    ({**FULL, "duration_ms": True}, "Expected `int`, got `bool` - at `$.duration_ms`"),
    ({**FULL, "id": 7}, "Expected `str`, got `int` - at `$.id`"),
    ({**FULL, "popularity": "71"}, "Expected `int | null`, got `str` - at `$.popularity`"),
]


@pytest.mark.parametrize(("broken", "said"), BROKEN)
def test_an_object_lacking_what_spotify_always_sends_is_malformed(broken, said):
    with pytest.raises(MalformedResponse) as caught:
        Track.from_json(broken)
    assert said in str(caught.value) and caught.value.transient


@pytest.mark.parametrize(("broken", "said"), BROKEN)
def test_a_batch_answer_with_a_broken_track_names_it_and_the_id_asked_there(broken, said):
    body = orjson.dumps({"tracks": [FULL, None, broken]})
    with pytest.raises(MalformedResponse) as caught:
        decode_batch(body, TracksAnswer, ["a", "b", "c"], "/tracks")
    where = said.replace("- at `$", "- at `$.tracks[2]") if "- at" in said else f"{said} - at `$.tracks[2]`"
    assert where in str(caught.value) and "(the entry for c)" in str(caught.value) and caught.value.transient


def test_a_batch_answer_maps_entries_to_the_ids_asked_by_position():
    found = decode_batch(orjson.dumps({"tracks": [FULL, None]}), TracksAnswer, ["a", "b"], "/tracks")
    assert found["b"] is None and found["a"].isrc == "USUM71703861"
    features = decode_batch(orjson.dumps({"audio_features": [None, {"id": "y", "tempo": 120, "key": 5}]}),
                            AudioFeaturesAnswer, ["x", "y"], "/audio-features")
    assert features["x"] is None and (features["y"].tempo, features["y"].key, features["y"].energy) == (120.0, 5, None)


@pytest.mark.parametrize(("body", "said"), [
    (b"", "truncated"),
    (b"{not json", "malformed"),
    (b'{"tracks": [null]}', "holds 1 entries for the 2 ids asked"),
    (b'{"tracks": null}', "Expected `array`, got `null` - at `$.tracks`"),
    (b'{"error": "x"}', "missing required field `tracks`"),
    (b'["a track"]', "Expected `object`, got `array`"),
])
def test_a_batch_answer_that_is_not_one_entry_per_id_is_malformed(body, said):
    with pytest.raises(MalformedResponse) as caught:
        decode_batch(body, TracksAnswer, ["a", "b"], "/tracks")
    assert said in str(caught.value) and str(caught.value).startswith("/tracks: ")


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
