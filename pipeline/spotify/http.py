"""HTTP plumbing shared by the API client and the token endpoint: one pooled httpx client per
process with explicit timeouts, the bounded retry for short transient faults, and httpx's
transport failures translated at the boundary."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay, wait_random_exponential

from pipeline.errors import TRANSIENT_SPOTIFY, ForeignUrl, NetworkError
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


def bounded_retry(*, attempts: int, budget_s: float, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """Retries TRANSIENT errors (5xx, timeouts and failed connections, unreadable bodies) with
    jittered exponential backoff (each wait at most 2 s): at most `attempts` tries, none begun
    after `budget_s`. A 429 (RateLimited) is not among them: it is never slept on."""
    return Retrying(
        stop=stop_after_attempt(attempts) | stop_before_delay(budget_s),
        wait=wait_random_exponential(multiplier=0.25, max=2.0),
        retry=retry_if_exception_type(TRANSIENT_SPOTIFY),
        sleep=sleep,
        reraise=True,
    )


def send(request: Callable[[], httpx.Response], endpoint: str) -> httpx.Response:
    """`request()`, with every httpx exception translated: timeouts and transport failures as
    NetworkError, a URL httpx cannot send to (malformed, another scheme) as ForeignUrl."""
    try:
        return request()
    except httpx.TimeoutException as exc:
        raise NetworkError(f"{endpoint}: timed out ({exc.__class__.__name__})", endpoint=endpoint) from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as exc:  # a URL httpx cannot build
        raise ForeignUrl(f"{endpoint}: {exc.__class__.__name__}") from exc
    except httpx.HTTPError as exc:  # TransportError and the rest: the request did not complete
        raise NetworkError(f"{endpoint}: {exc.__class__.__name__}", endpoint=endpoint) from exc
