"""/v1/search over real sockets: by names, folded, with field filters; paging and each tier's limits."""

from __future__ import annotations

import pytest

from emulator.config import EmulatorConfig


@pytest.fixture
def emu_config() -> EmulatorConfig:
    return EmulatorConfig(catalog_size=20_000, rate_limit=None)


def search(emu, token, **params) -> dict:
    response = emu.get("/v1/search", token, type="track", **params)
    assert response.status_code == 200, response.text
    return response.json()["tracks"]


def test_a_test_can_ask_for_a_track_and_its_exact_names(emu):
    listed = emu.http.get("/_emulator/tracks", params={"offset": 12_345, "count": 3}).json()
    assert listed["catalog_size"] == 20_000 and [t["index"] for t in listed["tracks"]] == [12_345, 12_346, 12_347]
    one = listed["tracks"][0]
    assert one["id"] == emu.ids(1, offset=12_345)[0]
    assert emu.http.get(f"/_emulator/tracks/{one['id']}").json() == one
    track = emu.get(f"/v1/tracks/{one['id']}", emu.app_token()).json()
    assert (track["name"], [a["name"] for a in track["artists"]], track["album"]["name"]) == (
        one["name"], one["artists"], one["album"])
    assert track["external_ids"]["isrc"] == one["isrc"]
    other_catalog = "0" * 22
    assert emu.http.get(f"/_emulator/tracks/{other_catalog}").status_code == 404
    assert emu.http.get("/_emulator/tracks/not-an-id").status_code == 400
    assert emu.http.get("/_emulator/tracks", params={"count": 5000}).status_code == 400


def test_search_finds_a_track_by_its_names_in_any_order_and_case(emu):
    token = emu.app_token()
    for offset in (3, 4_321, 19_998):
        one = emu.http.get("/_emulator/tracks", params={"offset": offset, "count": 1}).json()["tracks"][0]
        query = f'track:"{one["name"]}" artist:"{one["artists"][0]}"'
        found = search(emu, token, q=query, limit=50)
        assert one["id"] in [t["id"] for t in found["items"]], (query, found["total"])
        assert all(t["name"] == one["name"] for t in found["items"])
        shouted = search(emu, token, q=f'{one["artists"][0].upper()} {one["name"].upper()}', limit=50)
        assert shouted["total"] >= found["total"] >= 1


def test_accents_punctuation_and_scripts_are_folded(emu):
    token = emu.app_token()
    for written, plain in (("Beyoncé", "beyonce"), ("Sigur Rós", "SIGUR ROS"), ("AC/DC", "acdc"),
                           ("Guns N' Roses", "guns n roses"), ("Кино", "кино"), ("Πυξ Λαξ", "πυξ λαξ")):
        exact = search(emu, token, q=f'artist:"{written}"', limit=50)
        folded = search(emu, token, q=f"artist:{plain}" if " " not in plain else f'artist:"{plain}"', limit=50)
        assert exact["total"] > 0 and exact["total"] == folded["total"], written
        assert exact["items"] == folded["items"]
        for item in exact["items"]:
            assert written in [a["name"] for a in item["artists"]]


def test_every_word_must_match_and_filters_narrow(emu):
    token = emu.app_token()
    love = search(emu, token, q="love", limit=50)["total"]
    track_love = search(emu, token, q="track:love", limit=50)
    assert 0 < track_love["total"] < love
    assert all("love" in t["name"].lower() for t in track_love["items"])
    both = search(emu, token, q="love beyoncé", limit=50)
    assert 0 < both["total"] < love
    swapped = search(emu, token, q="beyoncé love", limit=50)
    assert (swapped["total"], swapped["items"]) == (both["total"], both["items"])
    assert search(emu, token, q="zzzqqq")["total"] == 0
    assert search(emu, token, q="zzzqqq")["items"] == []


def test_paging_is_real_and_next_is_followed_verbatim(emu):
    token = emu.app_token()
    first = search(emu, token, q="the", limit=50)
    assert first["total"] > 150 and first["previous"] is None and first["offset"] == 0
    seen = [t["id"] for t in first["items"]]
    page = first
    for _ in range(2):
        page = emu.http.get(page["next"], headers={"Authorization": f"Bearer {token}"}).json()["tracks"]
        seen += [t["id"] for t in page["items"]]
    assert page["offset"] == 100 and page["previous"] and page["total"] == first["total"]
    assert len(seen) == len(set(seen)) == 150
    last = search(emu, token, q="the", limit=50, offset=1000)
    assert last["next"] is None and len(last["items"]) == 50  # offset 1050 would be refused
    small = search(emu, token, q="beyonce", limit=50)
    assert small["next"] is None and len(small["items"]) == small["total"] < 50


@pytest.mark.parametrize("tier,max_limit", [("extended", 50), ("dev-legacy", 50), ("dev-2026", 10)])
def test_limits_of_each_tier(emu, tier, max_limit):
    emu.configure(tier=tier)
    token = emu.app_token()
    assert len(search(emu, token, q="love", limit=max_limit)["items"]) == max_limit
    assert len(search(emu, token, q="love")["items"]) == min(20, max_limit)  # the default
    too_many = emu.get("/v1/search", token, q="love", type="track", limit=max_limit + 1)
    assert too_many.status_code == 400
    assert too_many.json() == {"error": {"status": 400, "message": "Invalid limit"}}
    assert search(emu, token, q="love", offset=1000)["offset"] == 1000
    far = emu.get("/v1/search", token, q="love", type="track", offset=1001)
    assert far.status_code == 400 and far.json() == {"error": {"status": 400, "message": "Invalid offset"}}
