"""The API's Prometheus metrics and their exposition.

With `spotify-sync serve --workers N` (N > 1) every worker process writes its values to
PROMETHEUS_MULTIPROC_DIR (set by the command before anything imports prometheus_client) and
/metrics merges them, as the workers' endpoint does. Labels stay low-cardinality: routes are
templates ("/v1/songs/{spotify_id}"), never raw paths.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_SECONDS = Histogram(
    "spotify_api_request_seconds", "Latency of API requests by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5))
ENRICHMENT = Counter(
    "spotify_search_enrichment_total", "Searches by what Spotify enrichment did (fresh, cached, pending, degraded, "
    "skipped).", ["outcome"])
CACHE = Counter("spotify_search_cache_total", "Search cache lookups (hit, stale, miss).", ["result"])


def exposition() -> tuple[bytes, str]:
    """The metrics text of this process, or of every process of the server in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
