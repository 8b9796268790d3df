"""The fleet's rate control, all in Redis so every process on every host shares it, all on Redis's
clock, each part with an in-memory fake of the same contract:
- limiter.py: one request log per client id, in two lanes (background jobs, interactive calls);
- budget.py: how many requests a window holds, fixed (SPOTIFY_RATE_LIMIT=N/Ws) or learned
  (SPOTIFY_RATE_LIMIT=auto; the policy is learning.py, pure; PostgreSQL keeps a copy);
- penalty_box.py: after a window 429 nobody calls with that client id until its deadline; the
  same box per developer account holds a spent quota (`is_quota`);
- pacer.py: the pace of background work (one rule, `background_per_s`), and the line in which
  parked work comes back at it (the dispatcher releases due jobs at it too);
- report.py: what the fleet learned, for `status` and `ratelimit show|clear`."""

from pipeline.ratecontrol.budget import FixedBudget, LearnedBudget
from pipeline.ratecontrol.limiter import BudgetLimiter, InMemoryLimiter, RedisLimiter
from pipeline.ratecontrol.pacer import InMemoryPacer, ReturnPacer
from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox, PenaltyBox, RedisPenaltyBox

__all__ = ["BudgetLimiter", "InMemoryLimiter", "RedisLimiter", "PenaltyBox", "InMemoryPenaltyBox", "RedisPenaltyBox",
           "FixedBudget", "LearnedBudget", "ReturnPacer", "InMemoryPacer"]
