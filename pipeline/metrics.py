"""Prometheus metrics of the pipeline; the workers' metrics endpoint exports them.

`spotify-sync worker` runs its processes in prometheus_client's multiprocess mode (a fresh
PROMETHEUS_MULTIPROC_DIR per run, set before anything imports prometheus_client), and Dramatiq's
Prometheus middleware serves every process's values from one port. Gauges therefore say how
their processes' values combine (`multiprocess_mode`).

Labels stay low-cardinality: endpoints are templates ("/tracks/{id}"), never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "spotify_requests_total", "Requests sent to the Spotify Web API, by endpoint and HTTP status "
    "('error' when no response came back).", ["endpoint", "status"])
REQUEST_SECONDS = Histogram(
    "spotify_request_seconds", "Latency of Spotify Web API requests.", ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RATE_LIMITED = Counter(
    "spotify_rate_limited_total", "429 answers from Spotify, by reason (rate_limit, quota_exceeded).", ["reason"])
TOKEN_REFRESHES = Counter(
    "spotify_token_refreshes_total", "Token requests to the accounts service, by kind (app, user) and result "
    "(ok, invalid_grant, error).", ["kind", "result"])
PENALTY_BOX_SECONDS = Gauge(
    "spotify_penalty_box_seconds", "Seconds left before the client id may call Spotify again.", ["client_id"],
    multiprocess_mode="livemax")
RATE_BUDGET = Gauge(
    "spotify_rate_budget", "The fleet's request budget in requests per 30 s (Spotify's window), fixed by "
    "SPOTIFY_RATE_LIMIT or learned with auto.", ["client_id"], multiprocess_mode="livemax")
QUOTA_BLOCKED_SECONDS = Gauge(
    "spotify_quota_blocked_seconds", "Seconds before a spent quota (QUOTA_EXCEEDED, or a Retry-After beyond ten "
    "minutes) comes back for the client id's developer account.", ["client_id"], multiprocess_mode="livemax")
CAPABILITY_CHANGES = Counter(
    "spotify_capability_changes_total", "Capabilities learned (allowed true/false).", ["capability", "allowed"])

# --- the pipeline: jobs, rows, queues ---
JOB_RUNS = Counter(
    "spotify_sync_jobs_total", "Job runs by type and outcome (completed, failed, parked, retry).",
    ["job_type", "outcome"])
RECONCILED = Counter(
    "spotify_sync_reconciled_total", "Jobs whose message was lost, sent again by the reconciler, by kind "
    "(lease_expired: the worker was lost; resent: a pending job without a live message).", ["kind"])
CONNECTIONS = Gauge(
    "spotify_sync_connections", "Users' Spotify connections by status (active, needs_reauth, expiring_soon: "
    "a refresh token that dies within 14 days).", ["status"], multiprocess_mode="livemax")
ROWS_WRITTEN = Counter(
    "spotify_sync_rows_upserted_total", "Rows written by the pipeline's batch statements, by table.", ["table"])
QUEUE_DEPTH = Gauge(
    "spotify_sync_queue_depth", "Messages waiting in each job queue, by state (ready, delayed).",
    ["queue", "state"], multiprocess_mode="livemax")
SEARCH_QUEUED = Gauge(
    "spotify_search_queued", "Song writes not yet searchable: song_search_queue's entries, counted up to "
    "100,000 (a search indexer far behind a bulk load).", multiprocess_mode="livemax")
