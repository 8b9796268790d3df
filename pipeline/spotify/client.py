"""The Spotify Web API client.

Every request goes the same way (`_request`):
  penalty boxes as this process knows them (RateLimited, no network) -> token -> the boxes and the
  fleet's budget, read and taken in one Redis round trip (bounded wait) -> GET -> what the
  response means (responses.py) -> a 429 fills the penalty box for the fleet (a 429 from the
  token endpoint too).
5xx, timeouts, connection errors and unreadable bodies are retried inside the call with jittered
exponential backoff, bounded in attempts and in total seconds (SPOTIFY_RETRY_BUDGET). A 429 is
never slept on. A 401 gets one fresh token and one more try.

Capabilities (pipeline/capabilities.py) decide which calls are made at all.

Rate control (pipeline/ratecontrol/):
- before every request the quota box (one per developer account) and the penalty box (one per
  client id) are checked: RateLimited(source="penalty_box"), no request sent (and no permit
  taken: the limiter reads the boxes in the round trip that takes the permit);
- the fleet's budget (fixed or learned) is waited for, bounded; RateLimited(source="budget")
  when it frees too late;
- a window 429 shuts the penalty box and teaches a learned budget the limit; a quota 429
  (QUOTA_EXCEEDED, or a Retry-After of more than ten minutes) shuts the quota box instead and
  leaves the learned rate alone;
- a background call that is RateLimited takes a return slot in the fleet's line (pacer.py), so
  its job is parked until a time the budget admits, not together with every other parked job.

Two lanes share the budget. Background work (jobs) uses this client as it is. A call someone is
waiting on (the API edge's search) goes through `client.interactive()`: a client whose calls take
the share of the budget kept from background work, so they find a permit at once while a
backfill holds the background lane at its limit, and wait for one at most
INTERACTIVE_MAX_WAIT_S before RateLimited(source="budget"):

    page = client.interactive().search("isrc:USRC17607839")
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from loguru import logger

from pipeline import metrics
from pipeline.capabilities import AUDIO_FEATURES, BATCH_TRACKS, POPULARITY, Capabilities
from pipeline.errors import (
    SPOTIFY,
    CapabilityForbidden,
    Forbidden,
    ForeignUrl,
    NetworkError,
    NotFound,
    PipelineError,
    RateLimited,
    Unauthorized,
)
from pipeline.ratecontrol.limiter import BACKGROUND, INTERACTIVE
from pipeline.ratecontrol.penalty_box import check_known, is_quota
from pipeline.spotify.http import PlainUrls, bounded_retry, send
from pipeline.spotify.ids import batches, normalize_track_id, normalize_track_ids
from pipeline.spotify.models import (
    AudioFeatures,
    AudioFeaturesAnswer,
    Page,
    SavedTrack,
    SpotifyUser,
    Track,
    TracksAnswer,
    decode_batch,
)
from pipeline.spotify.responses import api_result
from pipeline.store.capabilities import CapabilityState

TRACKS_PER_REQUEST = 50
AUDIO_FEATURES_PER_REQUEST = 100
SAVED_TRACKS_PER_PAGE = 50
USER_TOKEN_CACHE_SIZE = 4096  # users whose token source a process keeps (least recently used go)
INTERACTIVE_MAX_WAIT_S = 2.0  # someone is waiting: a search that cannot have a permit by then gives up

T = TypeVar("T")


class TokenSource(Protocol):
    def token(self) -> str: ...
    def invalidate(self, token: str) -> None: ...


class Limiter(Protocol):
    def acquire(self, max_wait_s: float | None = None, lane: str = BACKGROUND,
                boxes: tuple[Any, ...] = ()) -> float | None: ...


class PenaltyBox(Protocol):
    def check(self) -> None: ...
    def block(self, retry_after_s: float, reason: str) -> float: ...
    def remaining_s(self) -> float: ...


class Budget(Protocol):  # pipeline/ratecontrol/budget.py
    learned: bool

    @property
    def window_s(self) -> int: ...
    def requests(self) -> int: ...
    def rate_limited(self) -> None: ...


class Pacer(Protocol):
    def slot(self, delay_s: float) -> tuple[float, float]: ...


@dataclass(frozen=True)
class TrackFetch:
    """What `fetch_tracks` got: `found` (id -> Track, or None where Spotify has no such track),
    and the error that stopped it part way, if one did."""

    found: dict[str, Track | None]
    stopped_by: PipelineError | None = None


class _StaticToken:
    def __init__(self, token: str):
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        pass


class SpotifyClient:
    def __init__(
        self,
        *,
        http: httpx.Client,
        api_base_url: str,
        limiter: Limiter,
        penalty_box: PenaltyBox,
        tokens: TokenSource,
        capabilities: Capabilities,
        retry_after_default_s: float = 30.0,
        retry_budget_s: float = 8.0,
        attempts: int = 4,
        user_tokens: Callable[[str], TokenSource] | None = None,
        user_token_cache_size: int = USER_TOKEN_CACHE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        quota_box: PenaltyBox | None = None,
        budget: Budget | None = None,
        pacer: Pacer | None = None,
    ):
        self._http = http
        self._base = api_base_url.rstrip("/")
        self._plain_urls = PlainUrls(self._base)
        self._headers: tuple[str, httpx.Headers] | None = None  # (token, the client's headers with it)
        self._limiter = limiter
        self._penalty = penalty_box
        self._quota = quota_box
        self._budget = budget
        self._pacer = pacer
        self._lane = BACKGROUND
        self._max_wait_s: float | None = None  # the limiter's own
        self._tokens = tokens
        self.capabilities = capabilities
        self._retry_after_default_s = retry_after_default_s
        self._retry_budget_s = retry_budget_s
        self._attempts = attempts
        self._user_tokens = user_tokens
        self._user_token_cache: OrderedDict[str, TokenSource] = OrderedDict()
        self._user_token_cache_size = user_token_cache_size
        self._user_lock = threading.Lock()
        self._sleep = sleep

    # --- other identities (pipeline/wiring.py builds the client) ---

    def for_user(self, user_id: str) -> SpotifyClient:
        """The same client (budget, penalty box, capabilities, pool) acting with a user's token,
        refreshed when needed by one worker at a time."""
        if self._user_tokens is None:
            raise RuntimeError("user tokens need a database engine and SPOTIFY_TOKEN_KEYS")
        with self._user_lock:
            tokens = self._user_token_cache.get(user_id)
            if tokens is None:
                tokens = self._user_token_cache[user_id] = self._user_tokens(user_id)
                if len(self._user_token_cache) > self._user_token_cache_size:
                    self._user_token_cache.popitem(last=False)
            else:
                self._user_token_cache.move_to_end(user_id)
        user_client = copy.copy(self)
        user_client._tokens = tokens
        return user_client

    def interactive(self) -> SpotifyClient:
        """The same client in the interactive lane: for a call someone is waiting on (a search of
        the API edge). Its calls take the share of the budget kept from background work, wait for a
        permit at most INTERACTIVE_MAX_WAIT_S, and are not put in the parked jobs' line."""
        other = copy.copy(self)
        other._lane, other._max_wait_s, other._pacer = INTERACTIVE, INTERACTIVE_MAX_WAIT_S, None
        return other

    def with_access_token(self, access_token: str) -> SpotifyClient:
        """The same client acting with a given token (e.g. fresh from a code exchange)."""
        other = copy.copy(self)
        other._tokens = _StaticToken(access_token)
        return other

    def held_off_s(self) -> float:
        """Seconds until the fleet may call again: its penalty box, or its developer account's spent
        quota (0.0: both open)."""
        quota_s = self._quota.remaining_s() if self._quota is not None else 0.0
        return max(self._penalty.remaining_s(), quota_s)

    def budget_spent(self) -> bool:
        """Is the fleet's budget spent for now, as this process last saw it? (A request of fewer ids
        than it may hold would wait for it anyway: the coalescer keeps filling it meanwhile.)"""
        spent = getattr(self._limiter, "spent", None)
        return bool(spent()) if spent is not None else False

    @property
    def budget(self) -> Budget | None:
        """The fleet's budget this client draws on (None: a client built without one, in tests)."""
        return self._budget

    # --- tracks ---

    def get_track(self, track_id: str) -> Track:
        """One track by id (URI and URL forms accepted). NotFound when Spotify has none."""
        track_id = normalize_track_id(track_id)
        track = Track.from_json(self._request("/tracks/{id}", f"/tracks/{track_id}", batch_size=1))
        self._learn_popularity([track])
        return track

    def get_tracks(self, ids: Iterable[str]) -> dict[str, Track | None]:
        """Tracks by id, every id asked for a key (None: Spotify has no such track).
        Batches of 50; where batch /tracks is forbidden, one /tracks/{id} per id. Raises what
        stopped it; `fetch_tracks` keeps what came before."""
        fetched = self.fetch_tracks(ids)
        if fetched.stopped_by is not None:
            raise fetched.stopped_by
        return fetched.found

    def fetch_tracks(self, ids: Iterable[str]) -> TrackFetch:
        """`get_tracks`, but an error part way (a 429 on the 20th of 50 one-by-one requests, the
        fleet's budget, a 5xx after the retries) is returned beside the tracks fetched before it,
        in the order asked, so that the caller can write them and not fetch them again."""
        wanted = normalize_track_ids(ids)
        found: dict[str, Track | None] = {}
        stopped_by: PipelineError | None = None
        try:
            self._fetch_tracks(wanted, found)
        except PipelineError as exc:
            stopped_by = exc
        self._learn_popularity([t for t in found.values() if t is not None])
        return TrackFetch({track_id: found[track_id] for track_id in wanted if track_id in found}, stopped_by)

    def _fetch_tracks(self, wanted: list[str], found: dict[str, Track | None]) -> None:
        """Into `found`, as they come: batches while the app may, then one by one."""
        if wanted and self.capabilities.allowed(BATCH_TRACKS):
            for batch in batches(wanted, TRACKS_PER_REQUEST):
                try:
                    mapped = self._request("/tracks", _with_ids("/tracks", batch), batch_size=len(batch),
                                           decode=_batch_decoder(TracksAnswer, batch, "/tracks"))
                except Forbidden as exc:
                    self._learn_forbidden(BATCH_TRACKS, "GET /tracks?ids=", exc)
                    logger.warning("batch /tracks is forbidden for this app: fetching tracks one by one")
                    break
                found.update(mapped)
                self.capabilities.allow(BATCH_TRACKS)
        for track_id in wanted:
            if track_id not in found:
                try:
                    found[track_id] = Track.from_json(
                        self._request("/tracks/{id}", f"/tracks/{track_id}", batch_size=1))
                except NotFound:
                    found[track_id] = None

    def get_audio_features(self, ids: Iterable[str]) -> dict[str, AudioFeatures | None]:
        """Audio features by id (None: the track has none), batches of 100.
        Raises CapabilityForbidden, without calling, when the app may not use /audio-features."""
        wanted = normalize_track_ids(ids)
        if not self.capabilities.allowed(AUDIO_FEATURES):
            state = self.capabilities.state(AUDIO_FEATURES)
            raise CapabilityForbidden(AUDIO_FEATURES, "/audio-features", state.recheck_after if state else None,
                                      (state.reason if state else None) or "")
        found: dict[str, AudioFeatures | None] = {}
        for batch in batches(wanted, AUDIO_FEATURES_PER_REQUEST):
            try:
                mapped = self._request(
                    "/audio-features", _with_ids("/audio-features", batch), batch_size=len(batch),
                    decode=_batch_decoder(AudioFeaturesAnswer, batch, "/audio-features"))
            except Forbidden as exc:
                state = self._learn_forbidden(AUDIO_FEATURES, "GET /audio-features", exc)
                raise CapabilityForbidden(AUDIO_FEATURES, "/audio-features", state.recheck_after,
                                          state.reason or "") from exc
            found.update(mapped)
            self.capabilities.allow(AUDIO_FEATURES)
        return found

    # --- the user's side (needs for_user) ---

    def me(self) -> SpotifyUser:
        return SpotifyUser.from_json(self._request("/me", "/me"))

    def saved_tracks(self, offset: int = 0, limit: int = SAVED_TRACKS_PER_PAGE) -> Page[SavedTrack]:
        """One page of the user's saved tracks (newest first) from `offset`."""
        limit = max(1, min(limit, SAVED_TRACKS_PER_PAGE))
        payload = self._request("/me/tracks", "/me/tracks", {"limit": limit, "offset": offset}, batch_size=limit)
        return Page.from_json(payload, SavedTrack.from_json)

    def next_page(self, page: Page[Any], item: Callable[[dict], Any] | None = None) -> Page[Any] | None:
        """The page after `page`, following its `next` URL verbatim; None at the end.
        Raises ForeignUrl, sending nothing, when `next` is not under the API base URL."""
        if page.next is None:
            return None
        endpoint = "/search" if "/search" in page.next else "/me/tracks"
        payload = self._request(endpoint, page.next, batch_size=page.limit)
        if endpoint == "/search":
            return Page.from_json(payload.get("tracks") or {}, item or Track.from_json)
        return Page.from_json(payload, item or SavedTrack.from_json)

    def search(self, query: str, *, limit: int = 10, offset: int = 0) -> Page[Track]:
        """Tracks matching `query`. Keep limit <= 10: development-mode apps get no more since 2026."""
        payload = self._request("/search", "/search", {"q": query, "type": "track", "limit": limit, "offset": offset},
                                batch_size=limit)
        return Page.from_json(payload.get("tracks") or {}, Track.from_json)

    # --- the request path ---

    def _request(self, endpoint: str, path_or_url: str, params: dict | None = None, *,
                 batch_size: int | None = None, decode: Callable[[bytes], Any] | None = None) -> Any:
        """GET with the whole policy: the answer's JSON object, or what `decode` makes of a
        successful answer's bytes. Decoding runs inside the retries: a body that does not decode
        (MalformedResponse) is retried like a 5xx."""
        retrying = bounded_retry(attempts=self._attempts, budget_s=self._retry_budget_s, sleep=self._sleep)
        url = self._url(path_or_url)

        def attempt() -> Any:
            return self._with_fresh_token(endpoint, url, params, batch_size, decode)

        try:
            return retrying(attempt)
        except RateLimited as limited:
            self._take_turn(limited)
            raise

    def _take_turn(self, limited: RateLimited) -> None:
        """A background call that may not go now: its job comes back in its turn of the fleet's line
        at the budget's pace (pipeline/ratecontrol/pacer.py), not when every other parked job does.
        A spent quota is not queued: it comes back when the quota does."""
        if self._pacer is None or is_quota(limited):
            return
        slot_s, now_s = self._pacer.slot(limited.retry_after_s)
        limited.retry_after_s, limited.blocked_until = slot_s - now_s, slot_s
        limited.message = f"{limited.message}; back in {slot_s - now_s:.1f}s, in its turn at the budget's pace"
        limited.args = (limited.message,)

    def _url(self, path_or_url: str) -> str:
        """A path under the API base URL, or a full URL (a page's `next`) that must be under it:
        the token goes to no other host. A `next` that is not a URL at all is refused too."""
        if not path_or_url.startswith(("http://", "https://")):
            if not path_or_url.startswith("/"):
                raise ForeignUrl(path_or_url[:100])
            return self._base + path_or_url
        try:
            host = urlsplit(path_or_url).hostname
        except ValueError:
            raise ForeignUrl(path_or_url[:100]) from None
        if not path_or_url.startswith(self._base + "/"):
            raise ForeignUrl(host)
        return path_or_url

    def _with_fresh_token(self, endpoint: str, url: str, params: dict | None, batch_size: int | None,
                          decode: Callable[[bytes], Any] | None) -> Any:
        # What this process knows of the boxes, before a token is refreshed for nothing; Redis's word
        # on them comes with the permit (_send).
        check_known(self._quota, self._penalty)
        token = self._token()
        try:
            return self._send(endpoint, url, params, batch_size, token, decode)
        except Unauthorized:
            self._tokens.invalidate(token)
            return self._send(endpoint, url, params, batch_size, self._token(), decode)

    def _token(self) -> str:
        try:
            return self._tokens.token()
        except RateLimited as limited:  # the accounts service's 429 (app or user token): not the API's rate
            self._hold_off(limited, "/api/token", learn=False)
            raise

    def _send(self, endpoint: str, url: str, params: dict | None, batch_size: int | None, token: str,
              decode: Callable[[bytes], Any] | None) -> Any:
        # The boxes are found open in the round trip that takes the permit, and again at every try of
        # a wait (a peer may meet a 429 meanwhile); the quota's box first: its 429 outlasts the window's.
        self._limiter.acquire(self._max_wait_s, lane=self._lane, boxes=(self._quota, self._penalty))
        started = time.perf_counter()
        try:
            response = send(lambda: self._http.send(self._build_request(url, params, token)), endpoint)
        except NetworkError as exc:
            timed_out = isinstance(exc.__cause__, httpx.TimeoutException)
            metrics.REQUESTS.labels(endpoint, "timeout" if timed_out else "error").inc()
            raise
        latency_s = time.perf_counter() - started
        metrics.REQUESTS.labels(endpoint, str(response.status_code)).inc()
        metrics.REQUEST_SECONDS.labels(endpoint).observe(latency_s)
        logger.debug("spotify request", endpoint=endpoint, status=response.status_code,
                     latency_ms=round(latency_s * 1000, 1), batch_size=batch_size)
        try:
            return api_result(response.status_code, response.headers, response.content, endpoint,
                              self._retry_after_default_s, decode=decode)
        except RateLimited as limited:
            self._hold_off(limited, endpoint)
            raise

    def _build_request(self, url: str, params: dict | None, token: str) -> httpx.Request:
        """The GET as httpx.Client.build_request makes it (the client's headers, cookies and
        params merged in), but for a plain path under the base URL (a batch of ids) without parsing
        the URL again (PlainUrls) or merging headers anew for every request. Sent by the client
        (Client.send: timeouts, redirects, cookies as ever)."""
        plain = self._plain_urls.url(url) if params is None and not self._http.cookies else None
        if plain is None:
            return self._http.build_request("GET", url, params=params, headers={"Authorization": f"Bearer {token}"})
        headers = self._headers
        if headers is None or headers[0] != token:
            merged = httpx.Headers(self._http.headers)
            merged["Authorization"] = f"Bearer {token}"
            headers = self._headers = (token, merged)
        return httpx.Request("GET", plain, headers=headers[1])

    def _hold_off(self, limited: RateLimited, endpoint: str, *, learn: bool = True) -> None:
        """A 429. A spent quota shuts the quota box of the developer account until it comes back; a
        window 429 shuts the penalty box of the client id for its Retry-After and teaches a learned
        budget the limit (`learn`: the API's 429s, not the accounts service's)."""
        metrics.RATE_LIMITED.labels(limited.reason).inc()
        if is_quota(limited) and self._quota is not None:
            limited.blocked_until = self._quota.block(limited.retry_after_s, limited.reason)
            logger.warning("spotify answered 429: the quota is spent; every client id of the developer account "
                           "holds off", endpoint=endpoint, reason=limited.reason, retry_after_s=limited.retry_after_s)
            return
        limited.blocked_until = self._penalty.block(limited.retry_after_s, limited.reason)
        if learn and self._budget is not None and self._budget.learned and limited.source == SPOTIFY:
            self._budget.rate_limited()
        logger.warning("spotify answered 429: every worker of this client id holds off", endpoint=endpoint,
                       reason=limited.reason, retry_after_s=limited.retry_after_s)

    def _learn_forbidden(self, capability: str, request: str, error: Forbidden) -> CapabilityState:
        """A 403 on `request`: the app may not use `capability` (recorded, looked at again later).
        A 403 about scopes is the token's fault, not the app's: raised as it is."""
        if "scope" in error.message.lower():
            raise error
        return self.capabilities.forbid(capability, f"{request} answered 403 {error.message!r}")

    def _learn_popularity(self, tracks: list[Track]) -> None:
        if not tracks:
            return
        if any(t.popularity is not None for t in tracks):
            self.capabilities.allow(POPULARITY)
        else:
            self.capabilities.forbid(POPULARITY, "tracks come without popularity (the access tier leaves it out)")


def _with_ids(path: str, ids: list[str]) -> str:
    """A batch request's path with its ids in the query, written out here rather than handed to
    httpx as params: the ids are base62 (normalize_track_ids), so nothing needs escaping, and
    httpx's encoding of params (each comma to %2C, then the query parsed and checked again
    character by character) was about 0.25 ms of CPU per request of 50 ids, over a tenth of the
    request's own cost."""
    return f"{path}?ids={','.join(ids)}"


def _batch_decoder(kind: type[TracksAnswer] | type[AudioFeaturesAnswer], asked: list[str],
                   endpoint: str) -> Callable[[bytes], dict[str, Any]]:
    """The decoder of a batch answer for the ids `asked` (models.decode_batch: by position)."""
    return lambda body: decode_batch(body, kind, asked, endpoint)
