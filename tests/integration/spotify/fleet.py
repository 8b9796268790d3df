"""What each worker process of the fleet tests runs (spawned: a fresh interpreter each)."""

from __future__ import annotations

import os
import threading
import time

import httpx

from pipeline.errors import RateLimited, SpotifyError
from pipeline.spotify.client import SpotifyClient
from pipeline.spotify.http import make_http_client
from pipeline.wiring import build_client


def _client(settings, engine=None, sent: list | None = None, limited_at: list | None = None) -> SpotifyClient:
    hooks = {}
    if sent is not None:
        def on_request(request: httpx.Request) -> None:
            if "/v1/" in request.url.path:
                sent.append((time.time(), threading.get_ident()))
        hooks["request"] = [on_request]
    if limited_at is not None:
        def on_response(response: httpx.Response) -> None:
            if response.status_code == 429:
                limited_at.append(time.time())
        hooks["response"] = [on_response]
    return build_client(settings, engine=engine, http=make_http_client(settings, event_hooks=hooks))


def steady_load(settings, ids, threads: int, start, duration_s: float, results, *,
                with_database: bool = False, wait_out_limits: bool = False) -> None:
    """Call get_tracks from `threads` threads for `duration_s` after `start` opens; with
    `wait_out_limits`, a thread waits out a RateLimited before its next call (as a parked job
    would); with `with_database`, the client keeps what it learns in PostgreSQL too (the learned
    budget, capabilities). Reports what it saw and the budget the process ended with."""
    from shared.db import make_engine

    engine = make_engine(settings, pool_size=2) if with_database else None
    client = _client(settings, engine=engine)
    completed: list[float] = []
    outcome = {"ok": 0, "rate_limited": 0, "local_budget": 0, "errors": []}
    lock = threading.Lock()
    start.wait()
    end = time.monotonic() + duration_s

    def run() -> None:
        while time.monotonic() < end:
            try:
                client.get_tracks(ids)
                with lock:
                    outcome["ok"] += 1
                    completed.append(time.time())
            except RateLimited as limited:
                with lock:
                    outcome["local_budget" if limited.reason == "local_budget" else "rate_limited"] += 1
                if wait_out_limits:
                    time.sleep(min(max(limited.retry_after_s, 0.05), max(0.0, end - time.monotonic())))
            except SpotifyError as exc:
                with lock:
                    outcome["errors"].append(repr(exc))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    [w.start() for w in workers]
    [w.join() for w in workers]
    budget = client._limiter.budget.requests()  # type: ignore[attr-defined]
    if engine is not None:
        engine.dispose()
    results.put({**outcome, "completed": completed, "budget": budget})


def hammer_until_stopped(settings, ids, threads: int, start, stop, events, results) -> None:
    """Call get_tracks in a loop; report once every thread of the process has met RateLimited."""
    sent: list[float] = []
    limited_at: list[float] = []
    client = _client(settings, sent=sent, limited_at=limited_at)
    lock = threading.Lock()
    seen_limited: set[int] = set()
    outcome = {"ok": 0, "rate_limited": 0, "max_call_s": 0.0, "blocked_until": set(), "errors": []}
    start.wait()

    reported = threading.Event()

    def run(number: int) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                client.get_tracks(ids)
                with lock:
                    outcome["ok"] += 1
                    if outcome["ok"] == 1:
                        events.put(("first-success", os.getpid()))
            except RateLimited as limited:
                with lock:
                    outcome["rate_limited"] += 1
                    outcome["blocked_until"].add(limited.blocked_until or 0.0)
                    seen_limited.add(number)
                    if len(seen_limited) == threads and not reported.is_set():
                        reported.set()  # once per process
                        events.put(("all-threads-limited", os.getpid()))
            except SpotifyError as exc:
                with lock:
                    outcome["errors"].append(repr(exc))
            finally:
                with lock:
                    outcome["max_call_s"] = max(outcome["max_call_s"], time.monotonic() - began)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    [w.start() for w in workers]
    [w.join() for w in workers]
    results.put({**outcome, "blocked_until": sorted(outcome["blocked_until"]), "sent": sent,
                 "limited_at": limited_at})


def user_calls(settings, user_id: str, threads: int, start, results) -> None:
    """`threads` threads need the user's token at the same moment."""
    from shared.db import make_engine

    engine = make_engine(settings, pool_size=threads)
    client = build_client(settings, engine=engine)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    start.wait()

    def run() -> None:
        barrier.wait()
        try:
            page = client.for_user(user_id).saved_tracks(0, 50)
            result = f"ok:{len(page.items)}"
        except SpotifyError as exc:
            result = type(exc).__name__
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    [w.start() for w in workers]
    [w.join() for w in workers]
    engine.dispose()
    results.put(outcomes)


def capability_follower(settings, ids, new_ids, threads: int, ready, go, results) -> None:
    """A worker process that learns nothing itself: it fetches `ids` while the tier allows batch
    /tracks and /audio-features (and keeps that), says it is ready, and when told to go fetches
    `new_ids` from `threads` threads. Reports the 403s it met and what each thread got."""
    from pipeline.errors import CapabilityForbidden
    from shared.db import make_engine

    engine = make_engine(settings, pool_size=threads)
    met_403: list[str] = []

    def on_response(response: httpx.Response) -> None:
        if response.status_code == 403:
            met_403.append(response.request.url.path)

    client = build_client(settings, engine=engine,
                                         http=make_http_client(settings, event_hooks={"response": [on_response]}))
    client.get_tracks(ids)
    client.get_audio_features(ids)
    cached = {c: client.capabilities.allowed(c) for c in ("batch_tracks", "audio_features")}
    ready_at = time.monotonic()
    ready.set()
    go.wait(60)
    waited_s = time.monotonic() - ready_at
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(chunk: list[str]) -> None:
        try:
            tracks = client.get_tracks(chunk)
            result = "tracks" if all(tracks.values()) else "tracks missing"
            try:
                client.get_audio_features(chunk)
                result += "+features"
            except CapabilityForbidden:
                result += "+features forbidden"
        except SpotifyError as exc:
            result = repr(exc)
        with lock:
            outcomes.append(result)

    size = max(1, len(new_ids) // threads)
    workers = [threading.Thread(target=run, args=(new_ids[i:i + size],)) for i in range(0, len(new_ids), size)]
    [w.start() for w in workers]
    [w.join() for w in workers]
    engine.dispose()
    results.put({"cached_before": cached, "waited_s": waited_s, "met_403": met_403, "outcomes": outcomes})
