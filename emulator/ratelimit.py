"""Rate limiting as Spotify does it: a rolling window per client id, a penalty, a daily quota.

Order of the checks for an API call (first that refuses wins):
  1. penalty box: a client that was refused is blocked until `blocked_until`; each call made
     while blocked adds `penalty_s` to it ("calling again while limited makes the wait longer").
     Only used when penalty_s > 0.
  2. daily quota: `daily_quota` admitted calls per `quota_period_s`, counted from the first
     call of the period; refused with reason QUOTA_EXCEEDED and a Retry-After of hours.
  3. rolling window: at most `rate_limit` admitted calls in (now - rate_window_s, now].
     A refused call is not logged; Retry-After is the time until the oldest logged call that
     holds the window full leaves it, rounded up to whole seconds.
In development tiers, a client id listed in `client_accounts` is counted under its developer
account, shared by all the account's client ids (Spotify's July 2026 change).
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator import keys as K
from emulator.config import EmulatorConfig
from emulator.store import Store


@dataclass(frozen=True)
class Refusal:
    kind: str  # "window", "penalty" or "quota"
    wait_s: float


def subject_for(cfg: EmulatorConfig, client_id: str) -> str:
    account = cfg.client_accounts.get(client_id)
    if account and cfg.tier_for(client_id) != "extended":
        return f"account:{account}"
    return f"client:{client_id}"


class RateLimiter:
    def __init__(self, store: Store) -> None:
        self._store = store

    def check(self, cfg: EmulatorConfig, client_id: str, now: float) -> Refusal | None:
        subject = subject_for(cfg, client_id)
        if cfg.penalty_s > 0:
            refusal = self._penalty_box(cfg, subject, now)
            if refusal:
                return refusal
        if cfg.daily_quota is not None:
            refusal = self._quota_exhausted(cfg, cfg.daily_quota, subject, now)
            if refusal:
                return refusal
        if cfg.rate_limit is not None:
            wait_s = self._store.window_admit(K.rate_window(subject), now, cfg.rate_window_s, cfg.rate_limit)
            if wait_s > 0:
                if cfg.penalty_s > 0:
                    self._store.set(K.rate_blocked(subject), repr(now + wait_s), ttl_s=wait_s + 60)
                return Refusal("window", wait_s)
        if cfg.daily_quota is not None:
            self._store.incr(K.rate_quota_count(subject), ttl_s=cfg.quota_period_s + 60)
        return None

    def _penalty_box(self, cfg: EmulatorConfig, subject: str, now: float) -> Refusal | None:
        raw = self._store.get(K.rate_blocked(subject))
        if raw is None or now >= float(raw):
            return None
        blocked_until = float(raw) + cfg.penalty_s
        self._store.set(K.rate_blocked(subject), repr(blocked_until), ttl_s=blocked_until - now + 60)
        return Refusal("penalty", blocked_until - now)

    def _quota_exhausted(self, cfg: EmulatorConfig, quota: int, subject: str, now: float) -> Refusal | None:
        start_key, count_key = K.rate_quota_start(subject), K.rate_quota_count(subject)
        ttl_s = cfg.quota_period_s + 60  # clean-up only; the period is checked against `now`
        self._store.set_nx(start_key, repr(now), ttl_s=ttl_s)
        start = float(self._store.get(start_key) or now)
        if now >= start + cfg.quota_period_s:  # a new period begins with this call
            self._store.set(start_key, repr(now), ttl_s=ttl_s)
            self._store.delete(count_key)
            return None
        used = int(self._store.get(count_key) or 0)
        if used >= quota:
            return Refusal("quota", start + cfg.quota_period_s - now)
        return None

    def reset(self) -> None:
        self._store.delete_prefix(K.RATE)
