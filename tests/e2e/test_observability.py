"""During a run, the workers' metrics endpoint answers with the pipeline's counters, and every
line a job writes in JSON carries the job's id, type and user."""

from __future__ import annotations

import json
import re
import socket

import httpx

from tests.e2e.pipeline_harness import (
    Workers,
    all_jobs_finished,
    cli_ok,
    emulator,  # noqa: F401 - the fixture
    run_env,
    wait_until,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of the samples in Prometheus text format that carry these labels (in any order)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        carried = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(carried.get(k) == v for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    return found


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample with these labels."""
    return next(iter(samples(text, name, **labels)), None)


def test_metrics_and_job_context_during_a_run(settings, clean_db, emulator):
    emulator.reset()
    port = free_port()
    env = run_env(settings, emulator, LOG_FORMAT="json")
    ids = emulator.ids(2000)  # 20 jobs
    emulator.force(kind="429", count=1, retry_after_s=1)  # one 429, to see it counted
    cli_ok(env, "enqueue", "track-sync", *ids)
    with Workers(env, processes=2, threads=4, metrics_port=port) as workers:
        workers.wait_ready()
        wait_until(lambda: all_jobs_finished(clean_db), 120, "every job finished", workers)
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        log_lines = workers.tail(10_000_000)

    assert metric(scraped, "spotify_requests_total", endpoint="/tracks", status="200") >= 20
    # A job's /tracks and /audio-features requests are in flight together: the 429 meets either.
    assert sum(samples(scraped, "spotify_requests_total", status="429")) == 1
    assert metric(scraped, "spotify_rate_limited_total", reason="rate_limit") == 1
    assert metric(scraped, "spotify_sync_jobs_total", job_type="track_sync", outcome="completed") == 20
    assert metric(scraped, "spotify_sync_jobs_total", job_type="track_sync", outcome="parked") >= 1
    assert metric(scraped, "spotify_sync_rows_upserted_total", table="songs") >= 1000
    assert metric(scraped, "spotify_token_refreshes_total", kind="app", result="ok") >= 1
    assert metric(scraped, "spotify_sync_queue_depth", queue="tracks", state="ready") is not None
    assert metric(scraped, "spotify_search_queued") is not None
    assert metric(scraped, "dramatiq_messages_total", queue_name="tracks", actor_name="track_sync") >= 20

    job_lines = [json.loads(line) for line in log_lines.splitlines()
                 if line.startswith("{") and '"job completed"' in line]
    assert len(job_lines) == 20
    assert all(line["job_type"] == "track_sync" and line["job_id"] for line in job_lines)
    assert settings.spotify_client_secret not in log_lines
