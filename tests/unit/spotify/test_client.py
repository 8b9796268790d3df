"""The client from request to decision, over pytest-httpx: batching, nulls, retries, 429s,
401s, capabilities, paging, logging."""

import json

import httpx
import pytest
from loguru import logger

from pipeline import errors
from pipeline.capabilities import AUDIO_FEATURES, BATCH_TRACKS, POPULARITY
from tests.unit.spotify.conftest import API, make_ids, track_json

FORBIDDEN = {"error": {"status": 403, "message": "Forbidden"}}


def batch_answer(unknown=()):
    def answer(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["ids"].split(",")
        return httpx.Response(200, json={"tracks": [None if i in unknown else track_json(i) for i in ids]})
    return answer


def test_get_tracks_fills_batches_of_50_and_maps_nulls_back_to_the_ids_asked(fakes, httpx_mock):
    ids = make_ids(120)
    httpx_mock.add_callback(batch_answer(unknown={ids[3], ids[119]}), is_reusable=True)
    tracks = fakes.client().get_tracks(ids)
    sizes = [len(r.url.params["ids"].split(",")) for r in httpx_mock.get_requests()]
    assert sizes == [50, 50, 20]
    assert list(tracks) == ids
    assert tracks[ids[3]] is None and tracks[ids[119]] is None
    assert tracks[ids[0]].id == ids[0] and tracks[ids[118]].name.startswith("Song")
    assert all(r.headers["authorization"] == "Bearer token-1" for r in httpx_mock.get_requests())


def test_batch_ids_go_in_the_query_as_written_one_parameter_commas_unescaped(fakes, httpx_mock):
    # Written into the path by the client, not encoded by httpx (client._with_ids: the CPU).
    ids = make_ids(3)
    httpx_mock.add_callback(batch_answer())
    fakes.client().get_tracks(ids)
    assert httpx_mock.get_requests()[0].url.query == f"ids={','.join(ids)}".encode()


def test_pasted_forms_are_normalised_before_asking(fakes, httpx_mock):
    bare = make_ids(1)[0]
    httpx_mock.add_callback(batch_answer())
    tracks = fakes.client().get_tracks([f"spotify:track:{bare}", f"https://open.spotify.com/track/{bare}?si=x"])
    assert list(tracks) == [bare] and httpx_mock.get_requests()[0].url.params["ids"] == bare


def test_an_invalid_id_fails_before_any_request(fakes):
    with pytest.raises(errors.InvalidId, match="not-an-id"):
        fakes.client().get_tracks([make_ids(1)[0], "not-an-id"])


def test_a_429_fills_the_penalty_box_and_is_never_slept_on(fakes, httpx_mock):
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "3600"},
                            json={"error": {"status": 429, "message": "API rate limit exceeded"}})
    client = fakes.client()
    with pytest.raises(errors.RateLimited) as caught:
        client.get_tracks(make_ids(3))
    assert caught.value.retry_after_s == 3600 and caught.value.reason == "rate_limit"
    assert caught.value.blocked_until == pytest.approx(fakes.box._deadline_s)
    assert fakes.slept == []
    # Every later request fails at once, without touching the network (pytest-httpx would
    # refuse an unexpected request) and without asking for a token.
    handed_out = fakes.tokens.handed_out
    for call in (lambda: client.get_tracks(make_ids(2)), lambda: client.get_track(make_ids(1)[0]), client.me):
        with pytest.raises(errors.RateLimited) as again:
            call()
        assert 3590 < again.value.retry_after_s <= 3600
    assert len(httpx_mock.get_requests()) == 1 and fakes.tokens.handed_out == handed_out


def test_a_quota_429_without_retry_after_takes_the_default_and_its_reason(fakes, httpx_mock):
    httpx_mock.add_response(status_code=429, json={"error": {"status": 429, "message": "Too many requests",
                                                             "reason": "QUOTA_EXCEEDED"}})
    with pytest.raises(errors.RateLimited) as caught:
        fakes.client().get_track(make_ids(1)[0])
    assert (caught.value.retry_after_s, caught.value.reason) == (30, "quota_exceeded")


def test_5xx_are_retried_with_short_jittered_backoff_then_succeed(fakes, httpx_mock):
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_response(status_code=502, text="<html>")
    httpx_mock.add_callback(batch_answer())
    tracks = fakes.client().get_tracks(make_ids(2))
    assert len(tracks) == 2 and len(httpx_mock.get_requests()) == 3
    assert len(fakes.slept) == 2 and all(0 <= s <= 2.0 for s in fakes.slept)


def test_retries_are_bounded_in_attempts(fakes, httpx_mock):
    httpx_mock.add_response(status_code=500, is_reusable=True)
    with pytest.raises(errors.ServerError) as caught:
        fakes.client().get_track(make_ids(1)[0])
    assert caught.value.transient
    assert len(httpx_mock.get_requests()) == 4 and sum(fakes.slept) <= 8


def test_retries_are_bounded_in_total_seconds(fakes, httpx_mock):
    httpx_mock.add_response(status_code=500, is_reusable=True)
    with pytest.raises(errors.ServerError):
        fakes.client(retry_budget_s=0.001, attempts=50).get_track(make_ids(1)[0])
    assert len(httpx_mock.get_requests()) <= 2


@pytest.mark.parametrize("exception", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"),
                                       httpx.RemoteProtocolError("dropped")])
def test_timeouts_and_connection_errors_are_retried_then_translated(fakes, httpx_mock, exception):
    httpx_mock.add_exception(exception, is_reusable=True)
    with pytest.raises(errors.NetworkError) as caught:
        fakes.client().get_track(make_ids(1)[0])
    assert isinstance(caught.value.__cause__, httpx.HTTPError) and caught.value.transient
    assert len(httpx_mock.get_requests()) == 4


def test_a_malformed_body_is_retried(fakes, httpx_mock):
    httpx_mock.add_response(text="{not json")
    httpx_mock.add_response(json={"tracks": [None]})  # wrong length for 2 ids: malformed too
    httpx_mock.add_callback(batch_answer())
    assert len(fakes.client().get_tracks(make_ids(2))) == 2
    assert len(httpx_mock.get_requests()) == 3


def test_a_401_gets_one_fresh_token_and_one_more_try(fakes, httpx_mock):
    httpx_mock.add_response(status_code=401, json={"error": {"status": 401, "message": "The access token expired"}})
    httpx_mock.add_response(json=track_json(make_ids(1)[0]))
    assert fakes.client().get_track(make_ids(1)[0]).id == make_ids(1)[0]
    assert fakes.tokens.invalidated == ["token-1"]
    assert [r.headers["authorization"] for r in httpx_mock.get_requests()] == ["Bearer token-1", "Bearer token-2"]


def test_a_second_401_is_raised(fakes, httpx_mock):
    httpx_mock.add_response(status_code=401, json={"error": {"status": 401, "message": "Invalid access token"}},
                            is_reusable=True)
    with pytest.raises(errors.Unauthorized):
        fakes.client(attempts=1).get_track(make_ids(1)[0])
    assert len(httpx_mock.get_requests()) == 2


def test_a_403_on_batch_tracks_is_learned_once_and_tracks_come_one_by_one(fakes, httpx_mock):
    ids = make_ids(3)

    def answer(request):
        if request.url.path == "/v1/tracks":
            return httpx.Response(403, json=FORBIDDEN)
        track_id = request.url.path.rsplit("/", 1)[1]
        if track_id == ids[1]:
            return httpx.Response(404, json={"error": {"status": 404, "message": "non existing id"}})
        return httpx.Response(200, json=track_json(track_id, popularity=None))

    httpx_mock.add_callback(answer, is_reusable=True)
    client = fakes.client()
    first = client.get_tracks(ids)
    second = client.get_tracks(ids)
    assert first == second and first[ids[1]] is None and first[ids[0]].id == ids[0]
    paths = [r.url.path for r in httpx_mock.get_requests()]
    assert paths.count("/v1/tracks") == 1 and len(paths) == 1 + 3 + 3
    state = fakes.rows.rows[("client-a", BATCH_TRACKS)]
    assert not state.allowed and "Forbidden" in state.reason and state.recheck_after is not None
    assert not fakes.rows.rows[("client-a", POPULARITY)].allowed  # and the tier leaves popularity out


def test_a_scope_403_is_not_a_capability(fakes, httpx_mock):
    httpx_mock.add_response(status_code=403, json={"error": {"status": 403, "message": "Insufficient client scope"}})
    with pytest.raises(errors.Forbidden):
        fakes.client().get_tracks(make_ids(2))
    assert fakes.rows.rows == {}


def test_audio_features_in_batches_of_100(fakes, httpx_mock):
    ids = make_ids(150)

    def answer(request):
        asked = request.url.params["ids"].split(",")
        return httpx.Response(200, json={"audio_features": [
            None if i == ids[7] else {"id": i, "danceability": 0.5, "energy": 0.4} for i in asked]})

    httpx_mock.add_callback(answer, is_reusable=True)
    features = fakes.client().get_audio_features(ids)
    assert [len(r.url.params["ids"].split(",")) for r in httpx_mock.get_requests()] == [100, 50]
    assert features[ids[7]] is None and features[ids[8]].danceability == 0.5 and len(features) == 150
    assert fakes.rows.rows[("client-a", AUDIO_FEATURES)].allowed


def test_a_403_on_audio_features_raises_a_documented_error_and_stops_the_calls(fakes, httpx_mock):
    httpx_mock.add_response(status_code=403, json=FORBIDDEN)
    client = fakes.client()
    for _ in range(3):
        with pytest.raises(errors.CapabilityForbidden) as caught:
            client.get_audio_features(make_ids(5))
        assert caught.value.capability == AUDIO_FEATURES and not caught.value.transient
        assert caught.value.recheck_after is not None
    assert len(httpx_mock.get_requests()) == 1


def test_saved_tracks_page_by_page_following_next_verbatim(fakes, httpx_mock):
    next_url = f"{API}/me/tracks?offset=2&limit=2&market=DE"
    httpx_mock.add_response(url=f"{API}/me/tracks?limit=2&offset=0", json={
        "items": [{"added_at": "2026-01-02T00:00:00Z", "track": track_json(i)} for i in make_ids(2)],
        "offset": 0, "limit": 2, "total": 3, "next": next_url, "previous": None, "href": "h"})
    httpx_mock.add_response(url=next_url, json={
        "items": [{"added_at": "2026-01-01T00:00:00Z", "track": track_json(make_ids(3)[2])}],
        "offset": 2, "limit": 2, "total": 3, "next": None, "previous": "p", "href": "h"})
    client = fakes.client()
    first = client.saved_tracks(offset=0, limit=2)
    second = client.next_page(first)
    assert [t.track.id for t in first.items + second.items] == make_ids(3)
    assert client.next_page(second) is None
    assert str(httpx_mock.get_requests()[1].url) == next_url


@pytest.mark.parametrize("next_url", ["https://elsewhere.test/v1/me/tracks?offset=2",
                                      "http://api.test/v1/me/tracks?offset=2",
                                      "https://api.test.evil.example/v1/me/tracks?offset=2",
                                      "https://api.test/v2/me/tracks?offset=2"])
def test_a_next_url_off_the_api_base_is_refused_and_gets_no_token(fakes, httpx_mock, next_url):
    httpx_mock.add_response(url=f"{API}/me/tracks?limit=2&offset=0", json={
        "items": [], "offset": 0, "limit": 2, "total": 3, "next": next_url})
    client = fakes.client()
    with pytest.raises(errors.ForeignUrl) as caught:
        client.next_page(client.saved_tracks(offset=0, limit=2))
    assert caught.value.host == httpx.URL(next_url).host and caught.value.host in str(caught.value)
    assert not caught.value.transient and "token-1" not in str(caught.value)
    assert len(httpx_mock.get_requests()) == 1  # pytest-httpx would refuse the foreign request anyway


@pytest.mark.parametrize("next_url", [f"{API}/me/tracks?offset=\x00", f"{API}/me/tracks?offset=\ud800"])
def test_a_malformed_next_link_is_one_of_our_errors_never_a_raw_httpx_one(fakes, httpx_mock, next_url):
    httpx_mock.add_response(url=f"{API}/me/tracks?limit=2&offset=0", json={
        "items": [], "offset": 0, "limit": 2, "total": 3, "next": next_url})
    client = fakes.client()
    with pytest.raises(errors.ForeignUrl) as caught:
        client.next_page(client.saved_tracks(offset=0, limit=2))
    assert not caught.value.transient and len(httpx_mock.get_requests()) == 1


def test_search_and_me(fakes, httpx_mock):
    httpx_mock.add_response(url=f"{API}/search?q=abba&type=track&limit=10&offset=0", json={"tracks": {
        "items": [track_json(make_ids(1)[0])], "offset": 0, "limit": 10, "total": 1, "next": None}})
    httpx_mock.add_response(url=f"{API}/me", json={"id": "user-1", "display_name": "U"})
    client = fakes.client()
    assert client.search("abba").items[0].id == make_ids(1)[0]
    assert client.me().id == "user-1"


def test_each_request_is_logged_at_debug_without_the_token(fakes, httpx_mock):
    lines = []
    sink = logger.add(lambda m: lines.append(m.record), level="DEBUG", format="{message}")
    try:
        httpx_mock.add_callback(batch_answer())
        fakes.client().get_tracks(make_ids(7))
    finally:
        logger.remove(sink)
    record = next(r for r in lines if r["message"] == "spotify request")
    assert record["level"].name == "DEBUG"
    assert {k: record["extra"][k] for k in ("endpoint", "status", "batch_size")} == {
        "endpoint": "/tracks", "status": 200, "batch_size": 7}
    assert record["extra"]["latency_ms"] >= 0
    assert "token-1" not in json.dumps([str(r["message"]) + str(r["extra"]) for r in lines])


def test_the_budget_is_taken_for_every_attempt(fakes, httpx_mock):
    taken = []
    fakes.limiter.acquire = lambda max_wait_s=None, lane="background", boxes=(): taken.append(1) or 0.0
    httpx_mock.add_response(status_code=500)
    httpx_mock.add_callback(batch_answer())
    fakes.client().get_tracks(make_ids(2))
    assert len(taken) == 2


def test_user_token_sources_are_kept_for_the_most_recently_used_users_only(fakes):
    made = []

    def user_tokens(user_id):
        made.append(user_id)
        return fakes.tokens

    client = fakes.client(user_tokens=user_tokens, user_token_cache_size=2)
    for user_id in ("u1", "u2", "u1", "u3", "u1", "u2"):
        client.for_user(user_id)
    # u2 was the least recently used when u3 came, so it is made again; u1 never is.
    assert made == ["u1", "u2", "u3", "u2"]
    assert list(client._user_token_cache) == ["u1", "u2"]


def test_a_429_from_the_token_endpoint_fills_the_penalty_box_for_the_client_id(fakes, httpx_mock):
    import fakeredis

    from pipeline.auth.app_token import AppToken
    from pipeline.auth.token_endpoint import TokenEndpoint
    from shared.keys import RedisKeys

    httpx_mock.add_response(url="https://accounts.test/api/token", method="POST", status_code=429,
                            headers={"Retry-After": "600"},
                            json={"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}})
    endpoint = TokenEndpoint(httpx.Client(), "https://accounts.test", "client-a", "secret-a", sleep=fakes.slept.append)
    client = fakes.client(tokens=AppToken(fakeredis.FakeRedis(), RedisKeys("test"), endpoint))
    with pytest.raises(errors.RateLimited) as caught:
        client.get_track(make_ids(1)[0])
    assert (caught.value.retry_after_s, caught.value.reason) == (600, "quota_exceeded")
    assert caught.value.blocked_until == pytest.approx(fakes.box._deadline_s)
    assert 590 < fakes.box.remaining_s() <= 600
    # The fleet holds off: no token request, no API request, until the deadline.
    with pytest.raises(errors.RateLimited):
        client.get_tracks(make_ids(3))
    assert len(httpx_mock.get_requests()) == 1 and fakes.slept == []


@pytest.mark.parametrize("failure", [
    httpx.Response(429, headers={"Retry-After": "60"}, json={"error": {"status": 429, "message": "API rate limit exceeded"}}),
    httpx.Response(503),
])
def test_tracks_fetched_one_by_one_before_a_failure_come_with_the_error(fakes, httpx_mock, failure):
    ids = make_ids(50)
    singles = []

    def answer(request):
        if request.url.path == "/v1/tracks":
            return httpx.Response(403, json=FORBIDDEN)
        singles.append(request.url.path.rsplit("/", 1)[1])
        if len(singles) >= 20:
            return failure
        if len(singles) == 3:
            return httpx.Response(404, json={"error": {"status": 404, "message": "non existing id"}})
        return httpx.Response(200, json=track_json(singles[-1]))

    httpx_mock.add_callback(answer, is_reusable=True)
    fetched = fakes.client().fetch_tracks(ids)
    assert isinstance(fetched.stopped_by, (errors.RateLimited, errors.ServerError))
    partial = fetched.found
    assert list(partial) == ids[:19] and partial[ids[2]] is None
    assert all(partial[i].id == i for i in ids[:19] if i != ids[2])


def test_a_limiter_refusal_part_way_carries_what_was_fetched(fakes, httpx_mock):
    ids = make_ids(5)
    fakes.capabilities.forbid(BATCH_TRACKS, "403")
    httpx_mock.add_callback(lambda request: httpx.Response(200, json=track_json(request.url.path.rsplit("/", 1)[1])),
                            is_reusable=True)
    granted = iter([0.0, 0.0])

    def acquire(max_wait_s=None, lane="background", boxes=()):
        try:
            return next(granted)
        except StopIteration:
            raise errors.RateLimited(2.5, "local_budget") from None

    fakes.limiter.acquire = acquire
    fetched = fakes.client().fetch_tracks(ids)
    assert fetched.stopped_by.reason == "local_budget" and list(fetched.found) == ids[:2]
    with pytest.raises(errors.RateLimited):  # get_tracks raises what stopped it
        fakes.client().get_tracks(ids)


def test_a_batch_request_is_the_request_httpx_would_build(fakes, httpx_mock):
    """A plain path under the base URL is not parsed again (PlainUrls): the URL made of the base's
    parts must be httpx's own parse, and the request the one Client.build_request makes. (An
    httpx that keeps a URL's parts otherwise turns PlainUrls off; this says so.)"""
    from pipeline.spotify.http import PlainUrls

    urls = PlainUrls(API)
    assert urls.works
    ids = make_ids(50)
    url = f"{API}/tracks?ids={','.join(ids)}"
    assert urls.url(url) == httpx.URL(url) and urls.url(url).raw_path == httpx.URL(url).raw_path
    assert urls.url(API + "/me") == httpx.URL(API + "/me")
    # Anything else is parsed by httpx: characters to quote, a dot segment, another host.
    for other in (API + "/search?q=a b", API + "/search?q=%41", API + "/x/../tracks", "https://elsewhere.test/v1/me",
                  API + "x/tracks"):
        assert urls.url(other) is None, other

    httpx_mock.add_callback(batch_answer())
    client = fakes.client()
    client.get_tracks(ids)
    [sent] = httpx_mock.get_requests()
    expected = client._http.build_request("GET", url, headers={"Authorization": "Bearer token-1"})
    assert sent.url == expected.url and sent.url.raw_path == expected.url.raw_path
    assert list(sent.headers.multi_items()) == list(expected.headers.multi_items())


def test_the_pooled_client_looks_for_cookies_only_in_answers_that_set_one_and_keeps_them(httpx_mock):
    from types import SimpleNamespace

    from pipeline.spotify.http import SetCookieOnly, make_http_client

    http = make_http_client(SimpleNamespace(read_timeout_s=5, connect_timeout_s=2))
    assert isinstance(http.cookies, SetCookieOnly)
    httpx_mock.add_response(url="https://api.test/v1/a", headers={"Set-Cookie": "k=v; Path=/"})
    httpx_mock.add_response(url="https://api.test/v1/b")
    httpx_mock.add_response(url="https://api.test/v1/c")
    for path in ("a", "b", "c"):
        http.get(f"https://api.test/v1/{path}")
    assert http.cookies.get("k") == "v"
    assert [r.headers.get("cookie") for r in httpx_mock.get_requests()] == [None, "k=v", "k=v"]


def test_each_thread_sends_through_a_pool_of_its_own_and_closing_the_client_closes_them_all(httpx_mock):
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from pipeline.spotify.http import PerThreadTransport, make_http_client

    http = make_http_client(SimpleNamespace(read_timeout_s=5, connect_timeout_s=2))
    transport = http._transport
    assert isinstance(transport, PerThreadTransport)
    httpx_mock.add_response(url="https://api.test/v1/me", is_reusable=True)
    http.get("https://api.test/v1/me")
    http.get("https://api.test/v1/me")  # the same thread: the same pool
    with ThreadPoolExecutor(3) as threads:
        assert [r.status_code for r in threads.map(lambda _: http.get("https://api.test/v1/me"), range(3))] == [200] * 3
    assert 2 <= len(transport._pools) <= 4
    http.close()
    assert transport._pools == []
    with pytest.raises(httpx.TransportError):
        ThreadPoolExecutor(1).submit(transport.handle_request, httpx.Request("GET", "https://api.test/v1/me")).result()
