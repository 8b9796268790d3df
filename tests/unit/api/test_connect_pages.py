"""The connect flow's pages: escaped, refreshing only while the sync runs, the right statuses."""

from __future__ import annotations

from api import pages

LINK = {"user": "u1", "expires": "1", "sig": "abc"}
CONNECTED = {"connected": True, "spotify_user_id": "<script>alert(1)</script>", "needs_reauth": False}


def sync(status: str) -> dict:
    return {"status": status, "tracks": 150, "pages": 3, "error": None}


def test_everything_shown_is_escaped():
    page = pages.connect_page('u"1<b>', LINK, {**CONNECTED, "library_sync": None}, None, ("http://accounts",))
    body = page.body.decode()
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "u&quot;1&lt;b&gt;" in body


def test_the_connected_page_refreshes_while_the_sync_runs_and_stops_when_done():
    running = pages.connect_page("u1", LINK, {**CONNECTED, "library_sync": sync("running")}, None, ())
    assert 'http-equiv="refresh"' in running.body.decode() and 'data-status="running"' in running.body.decode()
    done = pages.connect_page("u1", LINK, {**CONNECTED, "library_sync": sync("completed")}, None, ())
    assert 'http-equiv="refresh"' not in done.body.decode()
    assert '<span id="sync-tracks">150</span>' in done.body.decode()


def test_a_refusal_is_a_400_with_its_reason_and_an_unknown_reason_reads_as_a_refusal():
    refused = pages.connect_page("u1", LINK, {"connected": False}, "access_denied", ())
    assert refused.status_code == 400 and 'data-reason="access_denied"' in refused.body.decode()
    assert pages.result_page("invalid_state").status_code == 400
    assert pages.REASONS["spotify_refused"] in pages.result_page("made_up").body.decode()


def test_pages_stay_out_of_caches_frames_and_referers_and_post_only_to_us_and_spotify():
    page = pages.connect_page("u1", LINK, {"connected": False}, None, ("https://accounts.spotify.com",))
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = page.headers["content-security-policy"]
    assert "form-action 'self' https://accounts.spotify.com" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # default-src 'none': no script at all
