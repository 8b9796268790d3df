"""HTTP plumbing shared by the API client and the token endpoint: one httpx client per process
(a connection pool per thread: PerThreadTransport) with explicit timeouts, the bounded retry for
short transient faults, and httpx's transport failures translated at the boundary."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay, wait_random_exponential

from pipeline.errors import TRANSIENT_SPOTIFY, ForeignUrl, NetworkError
from shared.settings import Settings

_lock = threading.Lock()
_clients: dict[tuple, tuple[int, httpx.Client]] = {}


class SetCookieOnly(httpx.Cookies):
    """A client's cookies, looked for only in a response that sets one. httpx hands every response
    to http.cookiejar through urllib-style wrappers of the response and of its request (a parse of
    the request's whole URL: 1,200 characters for a batch of 50 ids), about 2.5 % of a worker's CPU,
    for answers that never set a cookie. The default jar (make_http_client's) reads only Set-Cookie
    headers (its policy leaves RFC 2965's Set-Cookie2 alone), so a response without one leaves it
    as it was."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class PerThreadTransport(httpx.BaseTransport):
    """httpx's transport, one connection pool per thread. httpcore's pool looks through all its
    connections at every request and again when its answer is read, and for each idle one counts
    the idle ones again (quadratic): with a worker process's 40 threads sharing one pool of some 30
    connections, that bookkeeping was about 5 % of the process's CPU. A thread sends one request at
    a time, so its own pool holds one connection, kept alive as before; the pools share one TLS
    context (the CA bundle loaded once)."""

    def __init__(self, *, limits: httpx.Limits = httpx.Limits(max_connections=4, max_keepalive_connections=2)):
        self._ssl_context = httpx.create_ssl_context()
        self._limits = limits
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pools: list[httpx.HTTPTransport] = []
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = httpx.HTTPTransport(verify=self._ssl_context, limits=self._limits)
            with self._lock:
                if self._closed:
                    pool.close()
                    raise httpx.TransportError("the transport is closed")
                self._pools.append(pool)
            self._local.pool = pool
        return pool.handle_request(request)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.close()


def make_http_client(settings: Settings, **options) -> httpx.Client:
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    options.setdefault("transport", PerThreadTransport())
    client = httpx.Client(timeout=timeout, headers={"Accept": "application/json"}, **options)
    # The client's setter would wrap it in a plain Cookies again: the attribute it keeps them in.
    client._cookies = SetCookieOnly(client.cookies.jar)
    return client


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


# Characters that httpx's URL parsing leaves as they are in a path and query (nothing to quote, no
# '.' segment to normalize, no control character): base62 ids, commas, the API's path names.
_PLAIN = re.compile(r"[A-Za-z0-9/?=,_-]*")


class PlainUrls:
    """httpx.URLs under one base URL, for paths of plain characters, made from the base's parsed
    parts rather than parsed again. httpx checks a URL string character by character in Python
    (printable, then quoted piece by piece): a /tracks URL of 50 ids is 1,200 characters, one of
    /audio-features 2,300, and parsing them was about a tenth of a request's CPU in a worker.
    A path that is not plain, or a URL under another base, is parsed by httpx as ever (`url`
    answers None). httpx has no public way to build a URL from parsed parts, so this relies on
    its URL holding them as a named tuple (`_uri_reference`): checked once here against httpx's
    own parse (a different httpx turns this off, and tests/unit/spotify/test_client.py fails)."""

    def __init__(self, base_url: str):
        self._base = base_url.rstrip("/")
        parsed = httpx.URL(self._base)
        self._parts = getattr(parsed, "_uri_reference", None)
        self._path = parsed.path.rstrip("/")
        sample = self._base + "/tracks?ids=4iV5W9uYEdYUVa79Axb7Rh,1301WleyT98MSxVHPZCA6M"
        try:
            built = self._build(sample[len(self._base):]) if self._parts is not None else None
        except (AttributeError, TypeError, ValueError):
            built = None
        parsed_sample = httpx.URL(sample)
        self.works = built is not None and built == parsed_sample and built.raw_path == parsed_sample.raw_path

    def url(self, url: str) -> httpx.URL | None:
        """`url` as httpx would parse it, if it is a plain path under the base URL; None otherwise."""
        if not self.works or not url.startswith(self._base):
            return None
        rest = url[len(self._base):]
        if not rest.startswith("/") or not _PLAIN.fullmatch(rest):
            return None
        return self._build(rest)

    def _build(self, rest: str) -> httpx.URL:
        path, question, query = rest.partition("?")
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = self._parts._replace(path=self._path + path,  # type: ignore[union-attr]
                                                  query=query if question else None)
        return url
