"""Two jobs of 50 share one audio-features request of 100; an error reaches every job of it."""

import threading

import pytest

from pipeline.batching import Coalescer


class Recorder:
    def __init__(self, error=None):
        self.requests: list[list[str]] = []
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, ids):
        with self.lock:
            self.requests.append(list(ids))
        if self.error:
            raise self.error
        return {i: f"features of {i}" for i in ids}


def in_threads(coalescer, groups):
    results, errors = {}, {}

    def ask(n, ids):
        try:
            results[n] = coalescer(ids)
        except Exception as exc:  # noqa: BLE001
            errors[n] = exc

    threads = [threading.Thread(target=ask, args=(n, ids)) for n, ids in enumerate(groups)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results, errors


def ids(prefix, n=50):
    return [f"{prefix}{i}" for i in range(n)]


def test_two_threads_of_fifty_share_one_request_of_a_hundred():
    fetch = Recorder()
    results, errors = in_threads(Coalescer(fetch, size=100, max_wait_s=5), [ids("a"), ids("b")])
    assert errors == {} and len(fetch.requests) == 1 and len(fetch.requests[0]) == 100
    assert results[0] == {i: f"features of {i}" for i in ids("a")}
    assert results[1] == {i: f"features of {i}" for i in ids("b")}


def test_a_lone_thread_waits_at_most_max_wait_then_asks_alone():
    fetch = Recorder()
    assert Coalescer(fetch, size=100, max_wait_s=0.05)(ids("a")) == {i: f"features of {i}" for i in ids("a")}
    assert fetch.requests == [ids("a")]


def test_what_does_not_fit_goes_into_the_next_request():
    fetch = Recorder()
    results, errors = in_threads(Coalescer(fetch, size=100, max_wait_s=0.2), [ids("a", 60), ids("b", 60)])
    assert errors == {} and sorted(len(r) for r in fetch.requests) == [60, 60]
    assert set(results[0]) == set(ids("a", 60)) and set(results[1]) == set(ids("b", 60))


def test_the_requests_error_reaches_every_thread_that_took_part():
    fetch = Recorder(error=RuntimeError("429"))
    results, errors = in_threads(Coalescer(fetch, size=100, max_wait_s=5), [ids("a"), ids("b")])
    assert results == {} and {str(e) for e in errors.values()} == {"429"} and len(errors) == 2
    assert len(fetch.requests) == 1


def test_a_full_request_goes_out_at_once():
    fetch = Recorder()
    Coalescer(fetch, size=100, max_wait_s=60)(ids("a", 100))
    assert len(fetch.requests) == 1
    with pytest.raises(RuntimeError):
        Coalescer(Recorder(error=RuntimeError("x")), size=100)(ids("a", 100))


class Interrupted(BaseException):
    """Like Dramatiq's Interrupt: raised asynchronously into a worker thread."""


def test_a_leader_interrupted_while_waiting_closes_its_batch_and_answers_its_followers():
    calls = {"n": 0}

    def clock():
        calls["n"] += 1
        if calls["n"] == 2:  # inside the leader's wait for a second job
            raise Interrupted()
        return calls["n"] * 1.0  # time flies: later waits end at once

    fetch = Recorder()
    coalescer = Coalescer(fetch, size=100, max_wait_s=0.01, monotonic=clock)
    with pytest.raises(Interrupted):
        coalescer([f"a{i}" for i in range(50)])
    assert fetch.requests == []
    # The batch it led is closed: the next caller leads a batch of its own and gets its answer.
    assert coalescer(["b1"]) == {"b1": "features of b1"}


def test_a_follower_whose_request_never_comes_back_gives_up():
    from pipeline.batching import CoalescedRequestLost

    release = threading.Event()

    def stuck(ids):
        release.wait(5)
        return {i: "late" for i in ids}

    coalescer = Coalescer(stuck, size=100, max_wait_s=0.05, follower_timeout_s=0.2)
    leader = threading.Thread(target=coalescer, args=([f"a{i}" for i in range(50)],))
    leader.start()
    try:
        opened = threading.Event()
        while not opened.wait(0.001):  # until the leader has opened the batch: then we follow it
            if coalescer._open is not None:
                opened.set()
        with pytest.raises(CoalescedRequestLost):
            coalescer([f"b{i}" for i in range(50)])
    finally:
        release.set()
        leader.join()
