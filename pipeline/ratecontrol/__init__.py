"""The fleet's rate control: one request budget per client id (limiter.py) and one penalty box
per client id (penalty_box.py), both in Redis so every process on every host shares them, both
on Redis's clock. Each has an in-memory fake with the same contract."""

from pipeline.ratecontrol.limiter import BudgetLimiter, InMemoryLimiter, RedisLimiter
from pipeline.ratecontrol.penalty_box import InMemoryPenaltyBox, PenaltyBox, RedisPenaltyBox

__all__ = ["BudgetLimiter", "InMemoryLimiter", "RedisLimiter", "PenaltyBox", "InMemoryPenaltyBox", "RedisPenaltyBox"]
