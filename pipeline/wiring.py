"""Builds a SpotifyClient from the settings: the real boundaries (Redis, Postgres, httpx).

The composition root of the domain: it alone imports the client, the auth flows, the rate
control and the store together, so none of those packages imports another's wiring.
"""

from __future__ import annotations

from pipeline import metrics
from pipeline.auth.app_token import AppToken
from pipeline.auth.token_endpoint import TokenEndpoint
from pipeline.auth.user_token import UserToken
from pipeline.capabilities import Capabilities, InMemoryCapabilityRows
from pipeline.ratecontrol.budget import Budget, FixedBudget, LearnedBudget
from pipeline.ratecontrol.limiter import RedisLimiter, used_since
from pipeline.ratecontrol.pacer import ReturnPacer
from pipeline.ratecontrol.penalty_box import RedisPenaltyBox
from pipeline.spotify.client import SpotifyClient
from pipeline.spotify.http import shared_http_client
from shared.crypto import TokenCipher
from shared.keys import RedisKeys
from shared.redis_conn import connect
from shared.settings import Settings


def token_endpoint(settings: Settings, http) -> TokenEndpoint:
    client_id, secret = settings.require_client_credentials()
    return TokenEndpoint(http, settings.spotify_accounts_base_url, client_id, secret,
                         retry_budget_s=settings.retry_budget_s, retry_after_default_s=settings.retry_after_default_s)


SPOTIFY_WINDOW_S = 30  # the metrics gauge speaks in Spotify's window


def build_budget(settings: Settings, redis, engine=None) -> Budget:
    """The fleet's budget for the client id: SPOTIFY_RATE_LIMIT's figure, or (auto) the one the fleet
    learns, in Redis and (with an engine) kept in PostgreSQL; its value feeds spotify_rate_budget."""
    client_id, _ = settings.require_client_credentials()
    rate = settings.spotify_rate_limit
    gauge = metrics.RATE_BUDGET.labels(client_id)
    if not rate.learned:
        gauge.set(rate.requests * SPOTIFY_WINDOW_S / rate.per_s)
        return FixedBudget(rate)
    from pipeline.store.ratecontrol import PostgresBudgetRows

    keys = RedisKeys(settings.redis_namespace)
    return LearnedBudget(redis, keys.learned_budget(client_id), rate, client_id,
                         used_since=used_since(keys.rate_bucket(client_id)), refused_key=keys.rate_refused(client_id),
                         rows=PostgresBudgetRows(engine) if engine is not None else None,
                         on_change=lambda requests: gauge.set(requests * SPOTIFY_WINDOW_S / rate.per_s))


def quota_account(settings: Settings) -> str:
    """Whose quota a 429 QUOTA_EXCEEDED spent: the developer account, else the client id alone."""
    client_id, _ = settings.require_client_credentials()
    return settings.spotify_developer_account or client_id


def build_client(settings: Settings, redis=None, engine=None, *, http=None) -> SpotifyClient:
    """One per process: the fleet's budget and penalty box (Redis), the shared app token, the
    capabilities (Postgres rows, Redis version), user tokens (with an engine and token keys)."""
    client_id, _ = settings.require_client_credentials()
    redis = redis if redis is not None else connect(settings)
    http = http if http is not None else shared_http_client(settings)
    keys = RedisKeys(settings.redis_namespace)
    cipher = TokenCipher(settings.spotify_token_keys) if settings.spotify_token_keys else None
    endpoint = token_endpoint(settings, http)
    gauge = metrics.PENALTY_BOX_SECONDS.labels(client_id)
    budget = build_budget(settings, redis, engine)
    if engine is not None:
        # The rows in Postgres, their version in Redis: what one process learns, all know at once.
        capabilities = Capabilities.from_settings(settings, engine, redis, keys)
    else:
        # Rows of this process's own: no version to share.
        capabilities = Capabilities(InMemoryCapabilityRows(), client_id, recheck_s=settings.capability_recheck_s)
    user_tokens = None
    if engine is not None and cipher is not None:
        def user_tokens(user_id: str) -> UserToken:
            return UserToken(engine, cipher, endpoint, user_id)
    return SpotifyClient(
        http=http,
        api_base_url=settings.spotify_api_base_url,
        limiter=RedisLimiter(redis, keys.rate_bucket(client_id), settings.spotify_rate_limit, budget=budget),
        penalty_box=RedisPenaltyBox(redis, keys.penalty_box(client_id), on_change=gauge.set),
        quota_box=RedisPenaltyBox(redis, keys.quota_box(quota_account(settings)),
                                  on_change=metrics.QUOTA_BLOCKED_SECONDS.labels(client_id).set),
        budget=budget,
        pacer=ReturnPacer(redis, keys.return_line(client_id), budget),
        tokens=AppToken(redis, keys, endpoint, cipher=cipher),
        capabilities=capabilities,
        retry_after_default_s=settings.retry_after_default_s,
        retry_budget_s=settings.retry_budget_s,
        user_tokens=user_tokens,
    )
