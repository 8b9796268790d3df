"""Stats: what the emulator saw, kept in the store so every process and thread adds to one set.

The busiest-window figure is exact: each client id's request timestamps are logged for one
window; at every request the count of the log within (t - window, t] is taken and the
maximum kept. The count only grows at arrivals, so the maximum over arrivals is the maximum
over all windows.

Requests per second: every authenticated API call, and every 429 among them, is counted in the
second of the emulator's clock it arrived in (one hash field per second: 86,400 a day at most;
/reset clears them). The snapshot gives the mean over the seconds from the first call to the
last, the peak second, and the last SERIES_S seconds one by one.
"""

from __future__ import annotations

from typing import Any

from emulator import keys as K
from emulator.store import Store

BATCH_ENDPOINTS = ("/v1/tracks", "/v1/audio-features")
SERIES_S = 120
# The reason a client can tell from the body: Spotify's rate limit, or the daily quota.
LIMIT_REASONS = {"window": "rate_limit", "penalty": "rate_limit", "forced": "rate_limit",
                 "quota": "quota_exceeded", "forced_quota": "quota_exceeded"}


class Stats:
    def __init__(self, store: Store) -> None:
        self._store = store

    def request(self, endpoint: str, status: int | str) -> None:
        self._store.hincr(K.stats_requests(), f"{endpoint}|{status}")

    def limited(self, kind: str, now: float) -> None:
        """A 429 of `kind` (a key of LIMIT_REASONS) answered at `now`."""
        self._store.hincr(K.stats_limited(), kind)
        self._store.hincr(K.stats_per_second(), f"{int(now)}|429")

    def fault(self, kind: str) -> None:
        self._store.hincr(K.stats_faults(), kind)

    def token(self, grant: str, client_id: str, user: str | None) -> None:
        self._store.hincr(K.stats_tokens(), f"{grant}|{client_id}|{user or '-'}")

    def batch(self, endpoint: str, id_count: int) -> None:
        self._store.hincr(K.stats_batch(endpoint), str(id_count))

    def client_request(self, client_id: str, now: float, window_s: float) -> None:
        in_window = self._store.window_record(K.stats_window_log(client_id), now, window_s)
        self._store.hmax(K.stats_window_max(), client_id, in_window)
        self._store.hincr(K.stats_per_second(), str(int(now)))

    def reset(self) -> None:
        self._store.delete_prefix(K.STATS)

    def _per_second(self) -> dict[str, Any]:
        calls: dict[int, int] = {}
        refused: dict[int, int] = {}
        for field, count in self._store.hgetall(K.stats_per_second()).items():
            second, _, kind = field.partition("|")
            (refused if kind else calls)[int(second)] = int(count)
        if not calls:
            return {"first_s": None, "last_s": None, "seconds": 0, "mean": 0.0, "peak": 0, "series": []}
        first, last = min(calls), max(calls)
        seconds = last - first + 1
        return {
            "first_s": first, "last_s": last, "seconds": seconds,
            "mean": round(sum(calls.values()) / seconds, 3),
            "peak": max(calls.values()),
            # [second, API calls, of which 429], oldest first, seconds without a call included
            "series": [[t, calls.get(t, 0), refused.get(t, 0)]
                       for t in range(max(first, last - SERIES_S + 1), last + 1)],
        }

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

        batches: dict[str, dict[str, Any]] = {}
        for endpoint in BATCH_ENDPOINTS:
            histogram = {int(n): int(c) for n, c in self._store.hgetall(K.stats_batch(endpoint)).items()}
            calls = sum(histogram.values())
            ids = sum(n * c for n, c in histogram.items())
            batches[endpoint] = {
                "histogram": {str(n): histogram[n] for n in sorted(histogram)},
                "requests": calls,
                "ids": ids,
                "ids_per_request": round(ids / calls, 3) if calls else None,
            }

        by_client = {c: int(v) for c, v in self._store.hgetall(K.stats_window_max()).items()}
        limited = {k: int(v) for k, v in self._store.hgetall(K.stats_limited()).items()}
        by_reason = {"rate_limit": 0, "quota_exceeded": 0}
        for kind, refused in limited.items():
            by_reason[LIMIT_REASONS[kind]] += refused
        return {
            "requests_total": total,
            "requests": requests,
            "rate_limited": limited,  # by kind: window, penalty, quota, forced, forced_quota
            "rate_limited_by_reason": {**by_reason, "total": sum(by_reason.values())},
            "requests_per_second": self._per_second(),
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
