"""The API end to end: `spotify-sync serve` as a child process, the emulator as a server, real
PostgreSQL and Redis. The emulator's /v1/search matches its catalog's names, where "love" is a
common word: the assertions hold for whichever tracks it returns (their ids land in songs)."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import text

from tests.e2e.api_harness import API_TOKEN, Server, free_port
from tests.e2e.pipeline_harness import emulator, run_env, scalar, wait_until  # noqa: F401 - a fixture


@pytest.fixture
def env(settings, emulator, clean_db):  # noqa: F811
    emulator.reset()
    # The emulator builds its search index on the first search (a second or two here): not the
    # wait these tests measure.
    assert emulator.http.post("/_emulator/search/warm").status_code == 200
    return run_env(settings, emulator, SEARCH_ENRICH_WAIT="2s", LOG_FORMAT="json")


def searches(emulator) -> int:  # noqa: F811
    return sum(emulator.requests_to("/v1/search").values())


def songs_and_jobs(engine) -> tuple[set[str], set[str]]:
    with engine.connect() as conn:
        songs = set(conn.execute(text('SELECT "spotifyId" FROM songs')).scalars())
        payloads = conn.execute(text("SELECT payload FROM spotify_sync_jobs WHERE \"jobType\" = 'track_sync'"))
        jobs = {i for (payload,) in payloads for i in payload["ids"]}
    return songs, jobs


def test_tracks_found_through_spotify_land_in_songs_and_a_second_search_makes_no_call(env, emulator, engine):  # noqa: F811
    with Server(env) as server:
        before = searches(emulator)
        first = server.search("love", limit=5)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["enrichment"]["status"] == "fresh"
        assert body["enrichment"]["added"] == 5
        assert searches(emulator) == before + 1
        songs, jobs = songs_and_jobs(engine)
        assert len(songs) == 5 and jobs == songs  # every added song has its audio features asked for
        for spotify_id in songs:
            song = server.http.get(f"/v1/songs/{spotify_id}")
            assert song.status_code == 200 and song.json()["spotifyId"] == spotify_id

        second = server.search("love", limit=5, enrich="always").json()  # auto: the 5 are local now
        assert second["enrichment"] == {"status": "cached", "added": 0}
        assert searches(emulator) == before + 1

        never = server.search("nothing at all", enrich="never").json()
        assert never["enrichment"]["status"] == "off"
        assert searches(emulator) == before + 1


@pytest.mark.parametrize("enrich", ["auto", "always"])  # always: Spotify asked before the local search
def test_the_wait_is_honoured_when_spotify_is_slow(settings, emulator, clean_db, engine, enrich):  # noqa: F811
    emulator.reset(faults="slow:1@/v1/search", slow_s=2.0)
    assert emulator.http.post("/_emulator/search/warm").status_code == 200
    with Server(run_env(settings, emulator, SEARCH_ENRICH_WAIT="300ms")) as server:
        started = time.monotonic()
        body = server.search("love", limit=3, enrich=enrich).json()
        elapsed = time.monotonic() - started
        assert body["enrichment"]["status"] == "pending"
        assert elapsed < 0.3 + 0.4, f"answered after {elapsed:.2f}s"
        # The call finishes in the background and its tracks land in songs.
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM songs") == 3, 15, "the background enrichment")
    emulator.reset()


def test_spotify_down_is_degraded_never_an_error(settings, emulator, clean_db):  # noqa: F811
    down = f"http://127.0.0.1:{free_port()}"
    env = run_env(settings, emulator, SEARCH_ENRICH_WAIT="1s", SPOTIFY_API_BASE_URL=down + "/v1",
                  SPOTIFY_ACCOUNTS_BASE_URL=down)
    with Server(env) as server:
        started = time.monotonic()
        response = server.search("anything")
        assert response.status_code == 200, response.text
        assert response.json()["enrichment"]["status"] == "degraded"
        assert time.monotonic() - started < 1.5


def test_bad_input_is_422_naming_the_parameter(env):
    with Server(env) as server:
        cases = {
            ("", 10): "q: nothing to search for",
            ("x" * 10_000, 10): "q: at most 200 characters",
            ("abc\x01", 10): "q: control character U+0001",
            ("halo", 0): "limit: ",
            ("halo", 1000): "limit: ",
        }
        for (q, limit), message in cases.items():
            response = server.search(q, limit=limit)
            assert response.status_code == 422, (q[:20], limit, response.text)
            error = response.json()["error"]
            assert error["status"] == 422 and error["message"].startswith(message), error
        missing = server.http.get("/v1/search")
        assert missing.status_code == 422 and missing.json()["error"]["message"].startswith("q: ")
        bad_id = server.http.get("/v1/songs/not-an-id")
        assert bad_id.status_code == 422 and bad_id.json()["error"]["message"].startswith("spotifyId: ")
        unknown = server.http.get("/v1/songs/" + "0" * 22)
        assert unknown.status_code == 404 and unknown.json()["error"]["status"] == 404
        sql = server.search("x'; DROP TABLE songs; --", enrich="never")
        assert sql.status_code == 200 and sql.json()["items"] == []


def test_auth_operations_and_docs(env):
    with Server(env) as server:
        import httpx

        anonymous = httpx.Client(base_url=server.base_url, timeout=10)
        refused = anonymous.get("/v1/search", params={"q": "halo"})
        assert refused.status_code == 401 and refused.json()["error"]["status"] == 401
        wrong = anonymous.get("/v1/search", params={"q": "halo"}, headers={"Authorization": "Bearer wrong-token"})
        assert wrong.status_code == 401
        assert anonymous.get("/health").json() == {"status": "ok"}
        ready = anonymous.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"postgresql": "ok", "redis": "ok"}
        spec = anonymous.get("/openapi.json").json()
        assert {"/v1/search", "/v1/songs/{spotify_id}", "/health", "/ready", "/metrics"} <= set(spec["paths"])
        assert anonymous.get("/docs").status_code == 200
        anonymous.close()


def test_metrics_by_route_template_and_logs_without_query_or_token(env):
    with Server(env) as server:
        server.search("secret words typed", enrich="never")
        server.http.get("/v1/songs/" + "1" * 22)
        metrics = server.http.get("/metrics").text
        assert re.search(r'spotify_api_request_seconds_count\{method="GET",route="/v1/search",status="200"\} 1\.0',
                         metrics)
        assert 'route="/v1/songs/{spotify_id}"' in metrics
        assert "1" * 22 not in metrics and "secret" not in metrics
        assert "spotify_search_enrichment_total" in metrics and "spotify_search_cache_total" in metrics
        log = server.log()
    assert "GET /v1/search 200" in log
    assert "secret words" not in log and "q=" not in log and API_TOKEN not in log


def test_postgresql_down_is_503_with_a_clear_body(settings, emulator):  # noqa: F811
    env = run_env(settings, emulator, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with Server(env) as server:
        ready = server.http.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["postgresql"].startswith("unavailable")
        assert ready.json()["checks"]["redis"] == "ok"
        response = server.search("halo")
        assert response.status_code == 503
        unavailable = "the database is unavailable, try again shortly"
        assert response.json() == {"error": {"status": 503, "message": unavailable}}


def test_several_workers_share_their_metrics(env):
    with Server(env, workers=2) as server:
        for _ in range(6):
            assert server.http.get("/health").status_code == 200
        metrics = server.http.get("/metrics").text
    counted = re.search(r'spotify_api_request_seconds_count\{method="GET",route="/health",status="200"\} (\S+)',
                        metrics)
    # One more: the harness's own /health while it waited for the server. Whichever process
    # answered each request, /metrics merged them all (multiprocess mode: no per-process
    # collectors such as python_gc_* in its output).
    assert counted and float(counted.group(1)) == 7.0, metrics[:2000]
    assert "python_gc_objects_collected_total" not in metrics
