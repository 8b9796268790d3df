"""A worker process's environment (pool, leases, engine) outlives the jobs running when its
shutdown begins: a real Dramatiq Worker on Dramatiq's in-memory broker, a stand-in environment."""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker

from shared.settings import Settings
from workers.setup import WorkerSetup, install_env


class RecordingEnv:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def test_the_environment_is_closed_after_the_running_job_ends_not_before():
    broker = StubBroker()
    broker.add_middleware(WorkerSetup(Settings()))
    env = RecordingEnv()
    install_env(env)  # type: ignore[arg-type] - only close() is asked of it
    running, release = threading.Event(), threading.Event()
    closed_while_running: list[bool] = []

    @dramatiq.actor(broker=broker)
    def job() -> None:
        running.set()
        release.wait(30)
        closed_while_running.append(env.closed.is_set())

    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        job.send()
        assert running.wait(10), "the job did not start"
        stopping = threading.Thread(target=worker.stop)
        stopping.start()
        # The shutdown has begun and waits for the job; the environment must still be open.
        assert not env.closed.wait(0.5)
        release.set()
        stopping.join(30)
    finally:
        release.set()
        install_env(None)
    assert closed_while_running == [False]
    assert env.closed.is_set()
