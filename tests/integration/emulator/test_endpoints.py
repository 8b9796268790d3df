"""The /v1 endpoints over real sockets: batches, single ids, audio features, /me, saved tracks,
search, and the access tiers."""

from __future__ import annotations

import httpx
import pytest

from emulator.catalog import Catalog
from emulator.ids import IdCodec

UNKNOWN = IdCodec("another-catalog", "track").encode(7)  # well formed, never issued here


def test_batch_of_tracks_keeps_order_and_nulls_unknown_ids(emu):
    token = emu.app_token()
    ids = emu.ids(49, offset=100)
    asked = ids[:10] + [UNKNOWN] + ids[10:]
    response = emu.get("/v1/tracks", token, ids=",".join(asked))
    assert response.status_code == 200
    tracks = response.json()["tracks"]
    assert len(tracks) == 50
    assert [t["id"] if t else None for t in tracks] == ids[:10] + [None] + ids[10:]
    first = tracks[0]
    assert first["type"] == "track" and first["uri"] == f"spotify:track:{ids[0]}"
    assert 0 <= first["popularity"] <= 100 and len(first["external_ids"]["isrc"]) == 12
    assert first["album"]["id"] and first["artists"][0]["name"]


def test_batch_limits_and_malformed_ids(emu):
    token = emu.app_token()
    too_many = emu.get("/v1/tracks", token, ids=",".join(emu.ids(51)))
    assert too_many.status_code == 400
    assert too_many.json() == {"error": {"status": 400, "message": "too many ids requested"}}
    bad = emu.get("/v1/tracks", token, ids=emu.ids(1)[0] + ",not-an-id")
    assert bad.json() == {"error": {"status": 400, "message": "invalid id"}}
    assert emu.get("/v1/tracks", token).status_code == 400


def test_the_same_id_always_gives_the_same_track(emu):
    token = emu.app_token()
    track_id = emu.ids(1, offset=1234)[0]
    one = emu.get(f"/v1/tracks/{track_id}", token).json()
    two = emu.get(f"/v1/tracks/{track_id}", emu.app_token()).json()
    assert one == two
    batch = emu.get("/v1/tracks", token, ids=track_id).json()["tracks"][0]
    assert batch == one


def test_single_track_404_and_400(emu):
    token = emu.app_token()
    assert emu.get(f"/v1/tracks/{UNKNOWN}", token).json() == {"error": {"status": 404, "message": "non existing id"}}
    assert emu.get("/v1/tracks/abc", token).json() == {"error": {"status": 400, "message": "invalid id"}}


def test_market_answers_is_playable_instead_of_available_markets(emu):
    token = emu.app_token()
    track_id = emu.ids(1)[0]
    plain = emu.get(f"/v1/tracks/{track_id}", token).json()
    with_market = emu.get(f"/v1/tracks/{track_id}", token, market="SE").json()
    assert "available_markets" in plain and "is_playable" not in plain
    assert with_market["is_playable"] is True and "available_markets" not in with_market


def test_audio_features_batch_of_100_with_nulls(emu):
    token = emu.app_token()
    ids = emu.ids(100, offset=500)
    response = emu.get("/v1/audio-features", token, ids=",".join(ids))
    assert response.status_code == 200
    features = response.json()["audio_features"]
    assert len(features) == 100
    present = [f for f in features if f is not None]
    assert 70 <= len(present) < 100  # most tracks have them, some do not
    for f, track_id in zip(features, ids, strict=True):
        if f is None:
            continue
        assert f["id"] == track_id and f["type"] == "audio_features"
        assert all(0 <= f[k] <= 1 for k in ("acousticness", "danceability", "energy", "instrumentalness",
                                            "liveness", "speechiness", "valence"))
        assert -60 <= f["loudness"] <= 0 and -1 <= f["key"] <= 11 and f["mode"] in (0, 1)
        assert 3 <= f["time_signature"] <= 7 and 40 < f["tempo"] < 250
    assert emu.get("/v1/audio-features", token, ids=",".join(emu.ids(101))).status_code == 400
    assert emu.get("/v1/audio-features", token, ids=UNKNOWN).json() == {"audio_features": [None]}


def test_me_profile_by_scope(emu):
    tokens = emu.user_tokens(user="alice")
    me = emu.get("/v1/me", tokens["access_token"]).json()
    assert me["id"] == "alice" and me["type"] == "user" and me["uri"] == "spotify:user:alice"
    assert me["email"] == "alice@example.com" and me["country"] and me["product"] in ("premium", "free")


def test_saved_tracks_paging_follows_next_verbatim_newest_first(emu):
    emu.configure(library_sizes={"pager": 123})
    token = emu.user_tokens(user="pager")["access_token"]
    first = emu.get("/v1/me/tracks", token).json()
    assert first["limit"] == 20 and first["offset"] == 0 and first["total"] == 123 and first["previous"] is None
    assert first["href"].startswith(emu.base_url + "/v1/me/tracks?")
    items, url, pages = [], emu.base_url + "/v1/me/tracks?limit=50", 0
    while url:
        page = emu.http.get(url, headers={"Authorization": f"Bearer {token}"}).json()
        items += page["items"]
        url, pages = page["next"], pages + 1
    assert pages == 3 and len(items) == 123
    assert page["previous"] == emu.base_url + "/v1/me/tracks?offset=50&limit=50"
    added = [i["added_at"] for i in items]
    assert added == sorted(added, reverse=True) and len(set(added)) == 123
    assert all(a.endswith("Z") and "T" in a for a in added)
    assert len({i["track"]["id"] for i in items}) == 123
    listed = emu.http.get("/_emulator/users/pager/library").json()
    assert listed["ids"] == [i["track"]["id"] for i in items] and listed["total"] == 123


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 51}, {"limit": "x"}, {"offset": -1}])
def test_saved_tracks_limits(emu, params):
    token = emu.user_tokens()["access_token"]
    assert emu.get("/v1/me/tracks", token, **params).status_code == 400


def test_growing_a_library_adds_newer_saves_on_top(emu):
    emu.configure(library_sizes={"grower": 10})
    token = emu.user_tokens(user="grower")["access_token"]
    before = emu.get("/v1/me/tracks", token, limit=50).json()["items"]
    emu.configure(library_sizes={"grower": 12})
    after = emu.get("/v1/me/tracks", token, limit=50).json()["items"]
    assert after[2:] == before and after[0]["added_at"] > before[0]["added_at"]


def test_search_tracks_deterministic_and_by_isrc(emu):
    token = emu.app_token()
    one = emu.get("/v1/search", token, q="love", type="track", limit=10).json()["tracks"]
    two = emu.get("/v1/search", token, q="love", type="track", limit=10).json()["tracks"]
    assert one == two and one["total"] > 10 and len(one["items"]) == 10
    following = emu.http.get(one["next"], headers={"Authorization": f"Bearer {token}"}).json()["tracks"]
    assert following["offset"] == 10
    track = emu.get(f"/v1/tracks/{emu.ids(1, offset=77)[0]}", token).json()
    found = emu.get("/v1/search", token, q=f"isrc:{track['external_ids']['isrc']}", type="track").json()["tracks"]
    assert found["total"] == 1 and found["items"][0]["id"] == track["id"]
    assert emu.get("/v1/search", token, q="x", type="track", limit=51).status_code == 400
    assert emu.get("/v1/search", token, type="track").status_code == 400


def test_unknown_path_gives_spotify_404(emu):
    response = emu.get("/v1/nothing-here", emu.app_token())
    assert response.status_code == 404 and response.json()["error"]["status"] == 404


# --- access tiers ---
def test_dev_2026_tier(emu):
    emu.configure(tier="dev-2026")
    token = emu.app_token()
    ids = emu.ids(3)
    for path in ("/v1/tracks", "/v1/audio-features"):
        response = emu.get(path, token, ids=",".join(ids))
        assert response.status_code == 403
        assert response.json() == {"error": {"status": 403, "message": "Forbidden"}}
    track = emu.get(f"/v1/tracks/{ids[0]}", token).json()
    assert "popularity" not in track and "available_markets" not in track and "linked_from" not in track
    assert track["preview_url"] is None and track["external_ids"]["isrc"]
    assert emu.get("/v1/search", token, q="a", type="track", limit=11).status_code == 400
    assert len(emu.get("/v1/search", token, q="a b", type="track", limit=10).json()["tracks"]["items"]) <= 10
    me = emu.get("/v1/me", emu.user_tokens()["access_token"]).json()
    assert "account_id" in me and not {"country", "email", "product", "followers"} & set(me)


def test_tier_per_client_id(emu):
    legacy, modern = emu.app_token("legacy-app"), emu.app_token("modern-app")
    emu.configure(client_tiers={"modern-app": "dev-2026"})
    ids = ",".join(emu.ids(2))
    assert emu.get("/v1/tracks", legacy, ids=ids).status_code == 200
    assert emu.get("/v1/tracks", modern, ids=ids).status_code == 403


def test_dev_legacy_tier_keeps_fields_and_caps_users(emu):
    emu.configure(tier="dev-legacy", user_caps={"dev-legacy": 2})
    track = emu.get(f"/v1/tracks/{emu.ids(1)[0]}", emu.app_token()).json()
    assert "popularity" in track and "available_markets" in track
    client_id = "capped-app"
    tokens = [emu.user_tokens(client_id=client_id, user=f"user{i}")["access_token"] for i in range(3)]
    assert [emu.get("/v1/me", t).status_code for t in tokens] == [200, 200, 403]
    assert emu.get("/v1/me", tokens[2]).json()["error"]["message"].startswith("Check settings on developer.spotify.com")


def test_popularity_drifts_slowly_with_time(emu):
    token = emu.app_token()
    ids = emu.ids(50, offset=3000)
    emu.clock(freeze_at=1_780_000_000)
    now = [t["popularity"] for t in emu.get("/v1/tracks", token, ids=",".join(ids)).json()["tracks"]]
    emu.clock(advance_s=3600)
    hour = [t["popularity"] for t in emu.get("/v1/tracks", token, ids=",".join(ids)).json()["tracks"]]
    emu.clock(advance_s=7 * 86400)
    week = [t["popularity"] for t in emu.get("/v1/tracks", token, ids=",".join(ids)).json()["tracks"]]
    assert max(abs(a - b) for a, b in zip(now, hour, strict=True)) <= 1  # slowly
    assert now != week  # but it does move
    assert max(abs(a - b) for a, b in zip(now, week, strict=True)) <= 8


def test_catalog_of_a_million_tracks(emu):
    emu.configure(catalog_size=1_000_000)
    token = emu.app_token()
    last = emu.ids(1, offset=999_999)[0]
    assert emu.get(f"/v1/tracks/{last}", token).status_code == 200
    assert emu.ids(1, offset=1_000_000) == []
    assert Catalog(1_000_000, "spotify-sync").track_index(last) == 999_999


def test_http_keep_alive_and_json_content_type(emu):
    token = emu.app_token()
    with httpx.Client(base_url=emu.base_url) as client:
        response = client.get(f"/v1/tracks/{emu.ids(1)[0]}", headers={"Authorization": f"Bearer {token}"})
    assert response.headers["content-type"].startswith("application/json")
