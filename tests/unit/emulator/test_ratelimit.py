"""The limiter's decisions, on an in-memory store and explicit times."""

from __future__ import annotations

import pytest

from emulator.config import EmulatorConfig
from emulator.ratelimit import RateLimiter
from emulator.store import MemoryStore


def decisions(limiter, config, client, times):
    out = []
    for t in times:
        refusal = limiter.check(config, client, t)
        out.append(None if refusal is None else (refusal.kind, round(refusal.wait_s, 3)))
    return out


def test_window_edges():
    limiter, config = RateLimiter(MemoryStore()), EmulatorConfig(rate_limit=2, rate_window_s=30)
    assert decisions(limiter, config, "c", [0, 5, 29.999, 30, 34.999, 35]) == [
        None, None, ("window", 0.001), None, ("window", 0.001), None]


def test_penalty_and_quota():
    limiter = RateLimiter(MemoryStore())
    config = EmulatorConfig(rate_limit=1, penalty_s=2)
    assert decisions(limiter, config, "c", [0, 10, 11, 12]) == [None, ("window", 20), ("penalty", 21), ("penalty", 22)]
    quota = EmulatorConfig(rate_limit=None, daily_quota=2, quota_period_s=100)
    assert decisions(limiter, quota, "q", [0, 1, 2, 99.5, 100]) == [None, None, ("quota", 98), ("quota", 0.5), None]


@pytest.mark.parametrize("tier,shared", [("dev-2026", True), ("dev-legacy", True), ("extended", False)])
def test_developer_accounts_share_in_dev_tiers(tier, shared):
    limiter = RateLimiter(MemoryStore())
    config = EmulatorConfig(tier=tier, rate_limit=1, client_accounts={"a": "acct", "b": "acct"})
    assert limiter.check(config, "a", 0) is None
    assert (limiter.check(config, "b", 1) is not None) is shared
