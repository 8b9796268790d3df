"""Stats: what the emulator saw, kept in the store so every process and thread adds to one set.

The busiest-window figure is exact: each client id's request timestamps are logged for one
window; at every request the count of the log within (t - window, t] is taken and the
maximum kept. The count only grows at arrivals, so the maximum over arrivals is the maximum
over all windows.
"""

from __future__ import annotations

from typing import Any

from emulator import keys as K
from emulator.store import Store

BATCH_ENDPOINTS = ("/v1/tracks", "/v1/audio-features")


class Stats:
    def __init__(self, store: Store) -> None:
        self._store = store

    def request(self, endpoint: str, status: int | str) -> None:
        self._store.hincr(K.stats_requests(), f"{endpoint}|{status}")

    def limited(self, kind: str) -> None:
        self._store.hincr(K.stats_limited(), kind)

    def fault(self, kind: str) -> None:
        self._store.hincr(K.stats_faults(), kind)

    def token(self, grant: str, client_id: str, user: str | None) -> None:
        self._store.hincr(K.stats_tokens(), f"{grant}|{client_id}|{user or '-'}")

    def batch(self, endpoint: str, id_count: int) -> None:
        self._store.hincr(K.stats_batch(endpoint), str(id_count))

    def client_request(self, client_id: str, now: float, window_s: float) -> None:
        in_window = self._store.window_record(K.stats_window_log(client_id), now, window_s)
        self._store.hmax(K.stats_window_max(), client_id, in_window)

    def reset(self) -> None:
        self._store.delete_prefix(K.STATS)

    def snapshot(self, window_s: float) -> dict[str, Any]:
        requests: dict[str, dict[str, int]] = {}
        total = 0
        for field, count in self._store.hgetall(K.stats_requests()).items():
            endpoint, _, status = field.rpartition("|")
            requests.setdefault(endpoint, {})[status] = int(count)
            total += int(count)

        tokens: dict[str, dict[str, dict[str, int]]] = {}
        for field, count in self._store.hgetall(K.stats_tokens()).items():
            grant, client_id, user = field.split("|", 2)
            tokens.setdefault(grant, {}).setdefault(client_id, {})[user] = int(count)

        batches = {}
        for endpoint in BATCH_ENDPOINTS:
            histogram = {int(n): int(c) for n, c in self._store.hgetall(K.stats_batch(endpoint)).items()}
            count = sum(histogram.values())
            ids = sum(n * c for n, c in histogram.items())
            batches[endpoint] = {
                "histogram": {str(n): histogram[n] for n in sorted(histogram)},
                "requests": count,
                "ids": ids,
                "ids_per_request": round(ids / count, 3) if count else None,
            }

        by_client = {c: int(v) for c, v in self._store.hgetall(K.stats_window_max()).items()}
        return {
            "requests_total": total,
            "requests": requests,
            "rate_limited": {k: int(v) for k, v in self._store.hgetall(K.stats_limited()).items()},
            "faults": {k: int(v) for k, v in self._store.hgetall(K.stats_faults()).items()},
            # grant type -> client id -> user ("-" for client credentials) -> count;
            # refreshes are the "refresh_token" grant.
            "tokens": tokens,
            "batch_ids": batches,
            "max_requests_in_window": {
                "window_s": window_s,
                "max": max(by_client.values(), default=0),
                "by_client": by_client,
            },
        }
