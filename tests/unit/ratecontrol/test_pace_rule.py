"""One rule for how fast background work goes out (issue 16): the return line's slots
(pacer.py) and the dispatcher's releases (workers/dispatcher.py) both follow `background_per_s`."""

import pytest

from pipeline.ratecontrol.budget import FixedBudget
from pipeline.ratecontrol.pacer import InMemoryPacer, ReleaseAllowance, background_per_s, slot_width_s
from shared.settings import Rate


class Moving:
    """A learned budget that moves between ticks."""

    learned = True
    window_s = 30

    def __init__(self, requests):
        self.value = requests

    def requests(self):
        return self.value


def test_the_pace_is_the_background_lane_spread_over_the_window():
    assert background_per_s(FixedBudget(Rate(300, 30))) == pytest.approx(285 / 30)  # 5 % kept for searches
    assert background_per_s(FixedBudget(Rate(10, 1))) == 10  # under 20 a window nothing is kept
    assert slot_width_s(FixedBudget(Rate(300, 30))) == pytest.approx(30 / 285)


@pytest.mark.parametrize("rate", [Rate(300, 30), Rate(180, 30), Rate(10, 1), Rate(12, 60), Rate(1000, 30)])
def test_the_dispatcher_releases_as_many_a_second_as_the_line_gives_slots(rate):
    budget = FixedBudget(rate)
    seconds = 60
    pacer = InMemoryPacer(budget, clock_s=lambda: 0.0)
    slots = [pacer.slot(0)[0] for _ in range(5000)]
    in_line = sum(1 for s in slots if s < seconds)
    releases = ReleaseAllowance(lambda: background_per_s(budget), every_s=1.0)
    released = sum(releases.take() for _ in range(seconds))
    assert abs(released - in_line) <= 1
    assert released == pytest.approx(background_per_s(budget) * seconds, abs=1)


def test_the_fraction_is_carried_and_a_moving_budget_is_asked_at_every_tick():
    budget = Moving(300)  # 285 for background work: 9.5 a second
    releases = ReleaseAllowance(lambda: background_per_s(budget), every_s=1.0)
    assert [releases.take() for _ in range(4)] == [9, 10, 9, 10]
    budget.value = 15  # 0.5 a second: one every other tick, not one a tick
    assert [releases.take() for _ in range(4)] == [0, 1, 0, 1]
