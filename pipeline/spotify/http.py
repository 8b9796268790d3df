"""One pooled httpx client per process, with explicit timeouts."""

from __future__ import annotations

import os
import threading

import httpx

from shared.settings import Settings

_lock = threading.Lock()
_clients: dict[tuple, tuple[int, httpx.Client]] = {}


def make_http_client(settings: Settings, **options) -> httpx.Client:
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    return httpx.Client(timeout=timeout, limits=limits, headers={"Accept": "application/json"}, **options)


def shared_http_client(settings: Settings) -> httpx.Client:
    """The process's pooled client for these timeouts. A forked child gets its own: a pool's
    sockets must not be shared across processes."""
    key = (settings.connect_timeout_s, settings.read_timeout_s)
    pid = os.getpid()
    with _lock:
        owner, client = _clients.get(key, (None, None))
        if client is None or owner != pid or client.is_closed:
            client = make_http_client(settings)
            _clients[key] = (pid, client)
        return client
