"""A job's independent calls: in flight together on a pool, one after another without one."""

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.overlap import Later, Overlap

JOB = contextvars.ContextVar("job", default=None)


def test_without_a_pool_a_call_is_made_when_its_result_is_asked_for():
    made = []
    later = Overlap().start(lambda: made.append("features") or "answer")
    made.append("tracks")
    assert not later.started and made == ["tracks"]
    assert later.result() == "answer" and later.started and made == ["tracks", "features"]


def test_with_a_pool_calls_are_in_flight_together_in_the_callers_context():
    together = threading.Barrier(3, timeout=5)  # each call waits until all three are in flight
    JOB.set("job-1")

    def call(n):
        together.wait()
        return n, JOB.get()

    with ThreadPoolExecutor(4) as pool:
        overlap = Overlap(pool)
        started = [overlap.start(lambda n=n: call(n)) for n in range(2)]
        mine = call(2)
        assert [later.result() for later in started] + [mine] == [(0, "job-1"), (1, "job-1"), (2, "job-1")]


def test_an_error_is_raised_where_the_result_is_asked_for():
    for overlap in (Overlap(), Overlap(ThreadPoolExecutor(1))):
        later = overlap.start(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            later.result()


def test_an_answer_known_already():
    later = Later.done({"a": 1})
    assert later.started and later.result() == {"a": 1}
