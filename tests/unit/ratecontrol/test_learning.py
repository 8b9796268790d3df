"""The learned budget's policy (pipeline/ratecontrol/learning.py), run against a simulated Spotify:
a rolling 30 s window admitting `limit` calls, a fleet that always has work, one step a tick (a second
unless told; what the fleet sends in one tick goes out together)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from pipeline.ratecontrol.learning import (
    Bounds,
    LearnedState,
    after_rate_limit,
    after_window,
    initial,
    measured_since_ms,
    probed,
    release_interval_ms,
)

WINDOW_MS = 30_000


@dataclass
class Simulation:
    limit: int
    bounds: Bounds = field(default_factory=lambda: Bounds(50, 3000, WINDOW_MS))
    now_ms: int = 1_000_000
    ours: deque = field(default_factory=deque)  # what our limiter admitted (its log)
    theirs: deque = field(default_factory=deque)  # what Spotify counted
    blocked_until_ms: int = 0
    rate_limited_at: list[int] = field(default_factory=list)
    admitted_at: list[int] = field(default_factory=list)
    held_back_at: int = 0
    # Requests already sent when the first 429 of an event comes back (the fleet's threads are past
    # the penalty box): refused too, as far as the budget had admitted them.
    in_flight: int = 0
    refused: deque = field(default_factory=deque)
    tick_ms: int = 1000  # what the fleet sends in one tick goes out together

    def __post_init__(self) -> None:
        self.state = initial(self.bounds, self.now_ms)

    def tick(self, demand: int = 10_000) -> None:
        """One tick of a fleet that always has work: as many calls as our budget lets through."""
        self.now_ms += self.tick_ms
        for log in (self.ours, self.theirs, self.refused):
            while log and log[0] <= self.now_ms - WINDOW_MS:
                log.popleft()
        since_step = sum(1 for t in self.ours if t >= self.state.stepped_at_ms)
        self.state = after_window(self.state, since_step, self.now_ms, self.bounds,
                                  held_back=self.held_back_at >= self.state.stepped_at_ms) or self.state
        if self.now_ms < self.blocked_until_ms:
            return  # the penalty box is shut
        free = self.state.requests_at(self.now_ms, self.bounds) - len(self.ours)
        if demand > free:
            self.held_back_at = self.now_ms
        admitted = max(0, min(demand, free))
        for n in range(admitted):
            self.ours.append(self.now_ms)
            if len(self.theirs) >= self.limit:  # a window 429: Retry-After until Spotify's window admits one
                self.blocked_until_ms = self.theirs[len(self.theirs) - self.limit] + WINDOW_MS
                behind = min(self.in_flight, admitted - n - 1)
                self.ours.extend([self.now_ms] * behind)
                for _ in range(1 + behind):
                    self.rate_limited_at.append(self.now_ms)
                    self.refused.append(self.now_ms)
                    self.state = after_rate_limit(self.state, len(self.ours) - len(self.refused), self.now_ms,
                                                  self.bounds) or self.state
                return
            self.theirs.append(self.now_ms)
            self.admitted_at.append(self.now_ms)

    def run(self, seconds: int, demand: int = 10_000) -> None:
        for _ in range(seconds * 1000 // self.tick_ms):
            self.tick(demand)

    def admitted_since(self, start_ms: int) -> int:
        return sum(1 for t in self.admitted_at if t > start_ms)

    def limited_since(self, start_ms: int) -> int:
        return sum(1 for t in self.rate_limited_at if t > start_ms)


def test_the_budget_converges_just_below_the_limit_within_five_minutes_and_stays_there():
    for limit in (60, 180, 600):
        sim = Simulation(limit)
        sim.run(300)
        assert 0.9 * limit <= sim.state.requests <= limit, (limit, sim.state)
        converged = sim.now_ms
        sim.run(1200)  # twenty minutes more
        achieved_per_window = sim.admitted_since(converged) / (1200 / 30)
        assert achieved_per_window >= 0.9 * limit, (limit, achieved_per_window)
        assert sim.limited_since(converged) <= 2, (limit, sim.rate_limited_at)  # at most one per 10 minutes


def test_a_steady_limit_costs_one_429_per_probe_with_a_window_of_requests_in_flight():
    # 24 threads: when a probe's first 429 comes back, 23 more requests may be on their way.
    for limit in (60, 180, 600):
        sim = Simulation(limit, in_flight=23)
        sim.run(300)
        converged = sim.now_ms
        sim.run(1200)
        probes = sorted(set(t for t in sim.rate_limited_at if t > converged))
        assert probes, (limit, sim.state)  # it kept probing
        assert sim.limited_since(converged) == len(probes), (limit, sim.rate_limited_at)  # one 429 each
        assert sim.state.ceiling == limit, (limit, sim.state)


def test_the_slow_start_that_crosses_the_limit_costs_one_429_with_a_window_of_requests_in_flight():
    # What the fleet sends in 100 ms goes out together: a step released at once (a burst of every
    # thread) crossed the limit with 23 more requests on their way, all refused.
    for limit in (60, 180, 600):
        sim = Simulation(limit, in_flight=23, tick_ms=100)
        sim.run(300)
        assert 0.9 * limit <= sim.state.requests <= limit and sim.state.ceiling == limit, (limit, sim.state)
        assert len(sim.rate_limited_at) == 1, (limit, sim.rate_limited_at)


def test_a_step_up_is_released_evenly_over_its_window_and_a_decrease_at_once():
    bounds = Bounds(400, 3000, WINDOW_MS)
    start = initial(bounds, 0)
    doubled = after_window(start, 400, WINDOW_MS, bounds, held_back=True)
    assert doubled is not None and doubled.requests == 800 and doubled.grown_from == 400
    assert [doubled.requests_at(WINDOW_MS + s * 1000, bounds) for s in (0, 15, 30, 45)] == [400, 600, 800, 800]
    assert release_interval_ms(doubled, WINDOW_MS + 1000, bounds) == 75.0  # 400 more over 30 s
    assert release_interval_ms(doubled, 2 * WINDOW_MS, bounds) is None  # all released
    assert release_interval_ms(start, 1000, bounds) is None
    limited = after_rate_limit(doubled, 600, WINDOW_MS + 15_000, bounds)
    assert limited is not None and limited.grown_from is None
    assert limited.requests_at(WINDOW_MS + 15_001, bounds) == limited.requests == 570
    held = after_window(limited, 570, 2 * WINDOW_MS + 15_000, bounds, held_back=True)
    assert held is not None and held.grown_from is None and held.requests_at(2 * WINDOW_MS + 15_000, bounds) == 570


def test_the_probe_stops_at_the_ceiling_then_passes_it_one_request_a_window():
    steps = [570.0]
    while len(steps) < 12:
        steps.append(probed(steps[-1], 600.0))
    assert [math.floor(b) for b in steps] == [570, 581, 593, 600, 601, 602, 603, 604, 605, 606, 618, 630]


def test_a_limit_that_grows_is_found_again():
    sim = Simulation(180)
    sim.run(600)
    sim.limit = 600
    sim.run(900)
    assert sim.state.requests >= 0.9 * 600, sim.state


def test_a_limit_that_halves_under_spread_requests_is_measured_by_the_429s_after_the_box_opens():
    # 171 requests spread over the window, then Spotify's limit falls to 90: the first 429 counts
    # what its window held (the old limit's traffic); the next, once the box opened 14 s later,
    # counts what Spotify let through in the window before itself.
    bounds = Bounds(50, 3000, WINDOW_MS)
    admitted = [n * 175 for n in range(171)]  # 0 .. 29.75 s
    state = LearnedState(budget=171.0, ceiling=180.0, hold_windows=10, stepped_at_ms=0)
    refused = [30_000]
    state = after_rate_limit(state, _counted(admitted, refused, measured_since_ms(state, 30_000, bounds)),
                             30_000, bounds) or state
    assert state.requests == 161  # 170 counted: the same limit, it seems
    admitted.append(44_000)
    refused.append(44_000)
    since_ms = measured_since_ms(state, 44_000, bounds)
    state = after_rate_limit(state, _counted(admitted, refused, since_ms), 44_000, bounds) or state
    assert state.ceiling == 90 and state.requests == 85, state


def test_a_limit_that_halves_is_followed_within_a_window_of_the_first_429():
    sim = Simulation(600)
    sim.run(600)
    sim.limit = 300
    halved = sim.now_ms
    sim.run(120)
    assert 0.9 * 300 <= sim.state.requests <= 300, sim.state
    assert sim.limited_since(halved) <= 2


def test_an_idle_fleet_does_not_grow_its_budget():
    sim = Simulation(600)
    sim.run(600, demand=0)
    assert sim.state.requests == 50


def test_one_decrease_per_window_the_other_429s_of_the_event_only_sharpen_it():
    bounds = Bounds(400, 3000, WINDOW_MS)
    state = after_rate_limit(initial(bounds, 0), 200, 10_000, bounds)
    assert state is not None and state.ceiling == 200 and state.requests == 190 and state.hold_windows == 10
    assert after_rate_limit(state, 205, 11_000, bounds) is None  # the same event, no lower
    sharper = after_rate_limit(state, 196, 12_000, bounds)  # four more of the window were refused
    assert sharper is not None and sharper.ceiling == 196 and sharper.requests == 186 and sharper.hold_windows == 10
    again = after_rate_limit(sharper, 196, 41_000, bounds)  # the next window: the same limit found again
    assert again is not None and again.hold_windows == 20


def test_a_429_never_raises_the_budget():
    bounds = Bounds(50, 3000, WINDOW_MS)
    state = after_rate_limit(initial(bounds, 0), 200, 10_000, bounds)
    assert state is not None and state.requests == 47


def test_a_slow_start_that_doubled_past_twice_the_limit_still_measures_it():
    bounds = Bounds(5, 3000, 3000)
    state = after_rate_limit(initial(bounds, 0).__class__(budget=80.0), 30, 10_000, bounds)
    assert state is not None and state.ceiling == 30 and state.requests == 28


def test_a_429_while_the_fleet_sent_little_measures_nothing_and_only_halves_the_budget():
    bounds = Bounds(400, 3000, WINDOW_MS)
    state = after_rate_limit(initial(bounds, 0), 3, 10_000, bounds)
    assert state is not None and state.requests == 200 and state.ceiling is None


def test_the_budget_never_grows_past_its_maximum():
    sim = Simulation(100_000, bounds=Bounds(50, 400, WINDOW_MS))
    sim.run(600)
    assert sim.state.requests == 400


def _counted(admitted_ms: list[int], refused_ms: list[int], since_ms: int) -> int:
    """What budget.py hands after_rate_limit: admitted from `since_ms` on, less the refusals since."""
    return sum(1 for t in admitted_ms if t >= since_ms) - sum(1 for t in refused_ms if t >= since_ms)


def test_late_429s_of_one_event_measure_from_a_window_before_its_first_429():
    # A 30-per-3 s limit, the budget doubled to 80: the fleet sent 30 that Spotify let through over
    # 2 s, then 10 more in flight that it refused, and 3 more admitted before it heard of the first
    # refusal (refused too); a busy host handles those 429s up to 1.5 s late.
    bounds = Bounds(5, 3000, 3000)
    state = initial(bounds, 0).__class__(budget=80.0, stepped_at_ms=7_000)
    admitted = [8_000 + n * 66 for n in range(30)] + [10_000 + n for n in range(10)]
    refused: list[int] = []
    handled = [10_100, 10_400, 10_700, 11_000, 11_300, 11_500, 11_500, 11_500, 11_600, 11_600, 11_700, 11_700, 11_800]
    for n, handled_ms in enumerate(handled):
        if n == 1:
            admitted += [10_150, 10_200, 10_250]  # the gap: admitted after Spotify's first refusal
        refused.append(handled_ms)
        since_ms = measured_since_ms(state, handled_ms, bounds)
        state = after_rate_limit(state, _counted(admitted, refused, since_ms), handled_ms, bounds) or state
    assert state.ceiling == 30 and state.requests == 28, state


def test_a_429_after_the_event_measures_from_a_window_before_itself():
    bounds = Bounds(50, 3000, WINDOW_MS)
    state = after_rate_limit(initial(bounds, 0), 200, 10_000, bounds)
    assert state is not None
    assert measured_since_ms(state, 11_500, bounds) == 10_000 - WINDOW_MS  # the same event, in flight with it
    # The same event, but sent once the box opened again: what Spotify's window holds now.
    assert measured_since_ms(state, 25_000, bounds) == 25_000 - WINDOW_MS
    assert measured_since_ms(state, 40_000, bounds) == 40_000 - WINDOW_MS  # a window on: a new one
    assert measured_since_ms(initial(bounds, 0), 5_000, bounds) == 5_000 - WINDOW_MS  # no decrease yet
