"""What a job's failure means: park it, retry it later, or fail it now. Pure (docs/architecture.md,
decision 4). The errors are pipeline/errors.py's.

- `RateLimited` (a 429, the fleet's penalty box, the budget not free in time): **park** until the
  deadline. It is Spotify's time, not the job's fault: the retry count is left alone, however
  long the wait (a Retry-After of a day parks for a day). The client has already given the job
  its turn in the fleet's return line (pipeline/ratecontrol/pacer.py), so the deadline is spread
  at the budget's pace; only a little jitter is added here. A park without a request of its own
  (the fleet's box was shut, or its budget was spent) is `quiet`: the runner logs it below a 429.
- A transient `PipelineError` (5xx and timeouts after the client's own short retries, a
  malformed body, the database or Redis unavailable, an interrupted run): **retry** with
  exponential backoff and jitter while the job's retries last, then **fail** with the error,
  visible on the job row.
- A permanent `PipelineError` (the user must authorise again, forbidden, not found, bad ids, a
  bad payload): **fail** now; retrying cannot help.
- Any other exception is a bug: **fail** now (`Fail.bug`: the runner logs its traceback). Retried,
  a bug would only fail again, five times, later.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.errors import SPOTIFY, PipelineError, RateLimited

BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0
# Jitter on a parked job's return: this share of its wait, at most PARK_SPREAD_CAP_S. The spread that
# matters is the return line's (the client's); this only keeps two slots' messages from one instant.
PARK_SPREAD = 0.01
PARK_SPREAD_CAP_S = 0.25


@dataclass(frozen=True)
class Park:
    until: datetime
    delay_s: float
    error_class: str
    message: str
    counts_as_retry: bool = False
    quiet: bool = False  # parked without a request of its own (the box shut, the budget spent): not a 429


@dataclass(frozen=True)
class Fail:
    error_class: str
    message: str
    bug: bool = False  # not one of the pipeline's own errors: its traceback belongs in the log


Decision = Park | Fail


def describe(exc: BaseException) -> tuple[str, str]:
    """(error class, message) as the job row shows them."""
    return type(exc).__name__, str(exc) or type(exc).__name__


def backoff_s(retry_count: int, *, rand: Callable[[], float] = random.random) -> float:
    """5 s, 10 s, 20 s ... capped at 10 minutes, each with jitter in [50 %, 100 %]."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** max(retry_count, 0)))
    return ceiling * (0.5 + rand() / 2)


def decide(exc: BaseException, *, retry_count: int, max_retries: int, now: datetime,
           rand: Callable[[], float] = random.random) -> Decision:
    """What to do with a job whose run raised `exc`. `retry_count` is the job's count so far."""
    error_class, message = describe(exc)
    if isinstance(exc, RateLimited):
        wait_s = max(exc.retry_after_s, 0.0)
        wait_s += min(wait_s * PARK_SPREAD, PARK_SPREAD_CAP_S) * rand()
        return Park(now + timedelta(seconds=wait_s), wait_s, error_class, message, quiet=exc.source != SPOTIFY)
    if not isinstance(exc, PipelineError):
        return Fail(error_class, message, bug=True)
    if not exc.transient:
        return Fail(error_class, message)
    if retry_count >= max_retries:
        return Fail(error_class, f"{message} (gave up after {retry_count} retries)")
    wait_s = backoff_s(retry_count, rand=rand)
    return Park(now + timedelta(seconds=wait_s), wait_s, error_class, message, counts_as_retry=True)
