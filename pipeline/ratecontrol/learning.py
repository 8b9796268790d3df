"""How the fleet learns its budget from Spotify's answers (SPOTIFY_RATE_LIMIT=auto). Pure: no I/O,
no clock; pipeline/ratecontrol/budget.py keeps the state in Redis (and PostgreSQL) and calls these.

Spotify never says its limit; it only answers 429 once its rolling 30 s window is full. So:
- **Slow start.** Until a first window 429, the budget doubles after every window in which the fleet
  used most of it, or was held back by it (no growth without demand: an idle fleet must not drift
  to the ceiling).
- **A window 429 measures the limit.** The fleet's own log holds every request admitted in the last
  window, so at a 429 it holds about what Spotify counted: that count, less the requests Spotify
  refused in the window, is the `ceiling`. The budget drops to `SAFE_SHARE` of it: just below the
  limit in one step, not the halving of textbook AIMD, whose saw-tooth would average 75 %.
- **Hold, then probe gently.** Below a known ceiling the budget stays put for `hold_windows`, then
  creeps up by `PROBE_STEP` a window, but never past the ceiling in one step: it stops at the
  ceiling, and the last requests up to and just past it (`ONE_BY_ONE`) are added one a window.
  Every request of a window past the limit is refused, and the fleet's requests in flight when the
  first refusal comes (24 threads sending a window's burst) are past the box already: a step of
  2 % at a limit of 600 overshot it by up to 12, and each probe cost 2-4 429s (each one more
  second of Spotify's penalty in its penalty mode). One a window, the probe that finds a steady
  limit overshoots it by one request: one 429. A 429 at the same ceiling again doubles the hold (up
  to `MAX_HOLD_WINDOWS`), so a steady limit costs one 429 every 10-20 minutes; a probe that passes
  the old ceiling by `GREW` without a 429 means the limit grew: slow start again from there.
- **A step up is released over its window, not at once.** The fleet is busy: every thread waits
  for the budget, and a step's new requests, free at once, went out in one burst of every thread
  (24 in the benchmark) in the same few milliseconds. When that burst crossed the limit (the step
  that ends a slow start), every request of it already sent was refused: 14-19 429s for the one
  event, and in Spotify's penalty mode each call while limited lengthens the wait (2 s a call in
  the benchmark: half a minute of a silent fleet, 6 % of its achieved rate over ten minutes).
  Released evenly over the window after the step (`requests_at`), the step's requests go out about
  one at a time; the crossing's first 429 shuts the box with one or two more in flight. The
  limiter's log frees a request only when an old one leaves it, so a thread waiting for it would
  sleep through the release: while a step is released, waiting threads ask again about every
  `release_interval_ms` (the limiter's nap).
- A 429 that came while the fleet sent less than `MEASURABLE` of its budget (another program on the
  same client id, a 429 of Spotify's own) measures nothing: the budget halves, as in AIMD, which
  does not slow what the fleet was sending, and the ceiling stays as it was.
- One decrease per window: the 429s of the requests already in flight measure the same event, and
  only sharpen the measure (each one refused is one fewer that Spotify counted). Every 429 of an
  event counts what the fleet admitted from a window before the event's first 429 on
  (`measured_since_ms`), less what Spotify refused since then: counted from a window before
  itself, a 429 handled late (a busy host handles an event's 429s up to a second apart) would find
  the event's first requests gone while their refusals still count, and would lower the measure
  each time (a limit of 30 per 3 s was measured at 12 so). The count runs to the 429 being
  handled, not to the first: a request admitted between Spotify's first refusal and the fleet's
  hearing of it is refused too, and its refusal must meet its admission. A 429 more than `LATE_MS`
  after the first was not in flight with it but sent once the box opened again, to a Spotify whose
  window still held more than its limit (a limit that fell under a fleet whose requests were spread
  over the window): it counts from a window before itself, what Spotify's window holds now. Counted
  from the event's start, those 429s found the old limit's traffic again and again, one a second
  while the box kept opening (limit halved: 6 429s in 4 s before the measure moved).

A quota 429 (QUOTA_EXCEEDED, or a Retry-After far beyond the window) says nothing about the rate and
never reaches this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

SAFE_SHARE = 0.95  # of the measured ceiling
DEMAND = 0.8  # a window counts as busy when the fleet used this share of its budget
SLOW_START_FACTOR = 2.0
PROBE_STEP = 0.02  # of the budget per window, at least one request
# Past the ceiling, one request a window for this share of it (at least 2): a ceiling measured a
# request or two low (a refusal handled late) still costs one 429, not a whole step's overshoot.
ONE_BY_ONE = 0.01
GREW = 1.1  # a probe this far past the old ceiling without a 429: the limit grew
FIRST_HOLD_WINDOWS = 10
MAX_HOLD_WINDOWS = 40
MEASURABLE = 0.5  # a 429 measures the limit only when the fleet sent at least this share of its budget
SAME_CEILING = 1.05  # a 429 at or below this share of the old ceiling found the same limit again
# A 429 this long after its event's first (at most a window) was not in flight with it: 30 per 3 s
# on a busy host handled an event's in-flight 429s up to 1.7 s after the first.
LATE_MS = 2000


@dataclass(frozen=True)
class LearnedState:
    """The fleet's learned budget for one client id. Times are ms on Redis's clock."""

    budget: float  # requests per window the fleet may send now
    ceiling: float | None = None  # requests in the window when the last window 429 came; None: none yet
    hold_windows: int = 0  # how long the budget rests below the ceiling after a 429
    hold_until_ms: int = 0  # no growth before this
    stepped_at_ms: int = 0  # the start of the window being judged
    decreased_at_ms: int = 0  # the last decrease (one a window)
    version: int = 0  # one more at every change: PostgreSQL keeps the newest only
    # The budget before the last step up, which is released over the window after stepped_at_ms;
    # None: no step being released (a decrease applies at once).
    grown_from: float | None = None

    @property
    def requests(self) -> int:
        """The budget as a whole number of requests per window (at least one), once any step up
        has been released (the figure learned)."""
        return max(1, math.floor(self.budget))

    def requests_at(self, now_ms: int, bounds: Bounds) -> int:
        """The requests per window the fleet may send at `now_ms`: a step up is released evenly
        over the window after it (module docstring)."""
        if self.grown_from is None or self.grown_from >= self.budget:
            return self.requests
        released = min(1.0, max(0.0, (now_ms - self.stepped_at_ms) / bounds.window_ms))
        return max(1, math.floor(self.grown_from + (self.budget - self.grown_from) * released))


def release_interval_ms(state: LearnedState, now_ms: int, bounds: Bounds) -> float | None:
    """While a step up is being released, the ms between one of its requests and the next (how
    often a waiting thread should ask again); None when no step is being released."""
    if state.grown_from is None or state.grown_from >= state.budget \
            or now_ms - state.stepped_at_ms >= bounds.window_ms:
        return None
    return bounds.window_ms / (state.budget - state.grown_from)


@dataclass(frozen=True)
class Bounds:
    start: int
    maximum: int
    window_ms: int


def initial(bounds: Bounds, now_ms: int) -> LearnedState:
    return LearnedState(budget=float(bounds.start), stepped_at_ms=now_ms)


def after_window(state: LearnedState, used: int, now_ms: int, bounds: Bounds, *,
                 held_back: bool = False) -> LearnedState | None:
    """The state once a window has passed since `stepped_at_ms`, the fleet having sent `used`
    requests since then (not "in the last window": a burst sent at the very start of the period
    would have left that window by the time it is judged), `held_back` if a call had to wait for the
    budget in that time; None while the window is still running."""
    if now_ms - state.stepped_at_ms < bounds.window_ms:
        return None
    moved = replace(state, stepped_at_ms=now_ms, version=state.version + 1, grown_from=None)
    if (used < DEMAND * state.requests and not held_back) or now_ms < state.hold_until_ms:
        return moved
    if state.ceiling is None:
        budget = state.budget * SLOW_START_FACTOR
    else:
        budget = probed(state.budget, state.ceiling)
        if budget > state.ceiling * GREW:  # the old ceiling is passed without a 429: the limit grew
            moved = replace(moved, ceiling=None, hold_windows=0)
    budget = min(float(bounds.maximum), budget)
    return replace(moved, budget=budget, grown_from=state.budget if budget > state.budget else None)


def probed(budget: float, ceiling: float) -> float:
    """The budget one probing window later, below a known `ceiling` or past it (module docstring):
    up to the ceiling in steps of PROBE_STEP, then one request a window until ONE_BY_ONE past it."""
    if budget < ceiling:
        return min(budget + max(1.0, budget * PROBE_STEP), ceiling)
    if budget < ceiling + max(2.0, ceiling * ONE_BY_ONE):
        return budget + 1.0
    return budget + max(1.0, budget * PROBE_STEP)


def _in_event(state: LearnedState, now_ms: int, bounds: Bounds) -> bool:
    """Is a 429 at `now_ms` one of the event that made the last decrease (within a window of it)?"""
    return bool(state.decreased_at_ms) and now_ms - state.decreased_at_ms < bounds.window_ms


def _late_ms(bounds: Bounds) -> int:
    """How long after an event's first 429 its in-flight 429s may still be handled (a busy host)."""
    return min(LATE_MS, bounds.window_ms)


def measured_since_ms(state: LearnedState, now_ms: int, bounds: Bounds) -> int:
    """Where the count of a window 429 at `now_ms` starts: a window before the first 429 of its
    event (see the module docstring), or a window before itself for a 429 that came too long after
    the first to have been in flight with it (a request sent once the box opened again, to a Spotify
    whose window still holds more than its limit: a limit that fell, met by a fleet whose requests
    were spread over its window). `counted` for after_rate_limit is what the fleet admitted from
    here to now, less what Spotify refused from here to now."""
    if _in_event(state, now_ms, bounds) and now_ms - state.decreased_at_ms < _late_ms(bounds):
        return state.decreased_at_ms - bounds.window_ms
    return now_ms - bounds.window_ms


def after_rate_limit(state: LearnedState, counted: int, now_ms: int, bounds: Bounds) -> LearnedState | None:
    """The state after a window 429, `counted` being the requests from a window before the event's
    first 429 on (`measured_since_ms`) that Spotify let through (admitted by us, less those it
    refused); None when nothing changes."""
    ceiling = float(max(1, counted))
    if _in_event(state, now_ms, bounds):
        # The same event: a later 429 of it can only sharpen the measure, never count twice.
        if state.ceiling is None or ceiling >= state.ceiling:
            return None
        return replace(state, ceiling=ceiling, budget=max(1.0, min(state.budget, ceiling * SAFE_SHARE)),
                       grown_from=None, version=state.version + 1)
    # In slow start the budget may have doubled past twice the limit since the fleet last filled it:
    # measure against what it had filled, not against the new budget.
    filled = state.requests / (SLOW_START_FACTOR if state.ceiling is None else 1.0)
    if counted < MEASURABLE * filled:
        return replace(state, budget=max(1.0, state.budget / 2), stepped_at_ms=now_ms, decreased_at_ms=now_ms,
                       hold_until_ms=now_ms + bounds.window_ms, grown_from=None, version=state.version + 1)
    same_limit = state.ceiling is not None and ceiling <= state.ceiling * SAME_CEILING
    hold = min(MAX_HOLD_WINDOWS, state.hold_windows * 2) if same_limit else FIRST_HOLD_WINDOWS
    return replace(
        state, budget=max(1.0, min(state.budget, ceiling) * SAFE_SHARE), ceiling=ceiling, hold_windows=hold,
        hold_until_ms=now_ms + hold * bounds.window_ms, stepped_at_ms=now_ms, decreased_at_ms=now_ms,
        grown_from=None, version=state.version + 1)
