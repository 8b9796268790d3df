"""The one way to send a job's message: its queue and actor follow from the job type, and a
delay parks it (a delayed message; Redis and RabbitMQ alike)."""

from __future__ import annotations

import dramatiq

MAX_DELAY_S = 6 * 86_400  # Dramatiq refuses delays of 7 days and more


class JobSender:
    """Sends a job's message: (job type, job id, delay in seconds)."""

    def __init__(self, broker: dramatiq.Broker):
        self.broker = broker

    def __call__(self, job_type: str, job_id: str, delay_s: float = 0.0) -> None:
        actor = self.broker.get_actor(job_type)
        delay_ms = int(min(max(delay_s, 0.0), MAX_DELAY_S) * 1000)
        actor.send_with_options(args=(job_id,), delay=delay_ms or None)
