"""The Dramatiq broker, built from the settings: Redis (REDIS_URL, or BROKER_URL=redis://...) or
RabbitMQ (BROKER_URL=amqp://...). Messages carry only a job id; Postgres is the ledger.

## Queues: a flood of backfill never starves a user's library sync
Each job type has its own queue, and each queue its own consumer in every worker process with its
own prefetch, so 20,000 backfill messages ahead in `tracks` never stand in front of a library sync
in `library`. Inside a process, fetched messages wait in one priority queue for a free thread,
and the actors' priorities (shared/jobtypes.py) put library syncs first, then popularity
refreshes, then backfills (lower runs first). Operators who want hard isolation run workers for `--queues library` apart.

## How soon a dead worker's messages come back (Redis broker)
A worker holds the messages it fetched in a per-worker "acks" set until it acknowledges them.
Every command a worker sends refreshes its heartbeat (each process polls its queues at least once
a second while idle, so a live worker never goes quiet for long). Any command has a
`MAINTENANCE_CHANCE` in a million of running maintenance for its queue, which moves the unacked
messages of workers silent for more than `HEARTBEAT_TIMEOUT_MS` back to the queue.
Dramatiq's defaults (60 s and 0.1 %) bring a SIGKILLed worker's messages back after minutes;
with 15 s and 10 % (several commands a second per queue across the fleet) they come back about
15-25 s after the kill. The job rows tell the rest: a redelivered message whose job still holds
a lease waits for it to run out (JOB_LEASE, renewed every third of it while the job runs).
Should Redis lose the messages altogether, `spotify-sync jobs reconcile` sends them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries, ShutdownNotifications, TimeLimit

from shared.jobtypes import QUEUES
from shared.keys import RedisKeys
from shared.settings import Settings

HEARTBEAT_TIMEOUT_MS = 15_000
MAINTENANCE_CHANCE = 100_000  # per million commands
DEAD_MESSAGE_TTL_MS = 7 * 86_400_000



def build_broker(settings: Settings, *, middleware: list | None = None) -> dramatiq.Broker:
    """A broker with the middleware our actors rely on, plus `middleware` (ours: job context)."""
    url = settings.effective_broker_url
    stock = [
        # Jobs never run past this; the ledger's lease, not this, is what hands a job over.
        TimeLimit(time_limit=3_600_000),
        ShutdownNotifications(),
        # Our actors handle their own failures through the ledger (workers/run.py); this
        # only catches what escapes that (say, Postgres down while a failure was being recorded).
        Retries(max_retries=3, min_backoff=1_000, max_backoff=60_000),
    ]
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Publisher confirms: a send returns once RabbitMQ has taken the message (or raises), as a
        # Redis send does; without them a message lost on the way leaves its job pending until
        # `jobs reconcile --stale-after` sees it (an hour), and a deleted queue swallows sends
        # unnoticed. They cost a round trip per message: about 1,400 sends/s here, against 11,000.
        broker: dramatiq.Broker = RabbitmqBroker(url=url, middleware=stock, confirm_delivery=True)
    else:
        broker = RedisBroker(
            url=url,
            namespace=RedisKeys(settings.redis_namespace).dramatiq_namespace(),
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
            dead_message_ttl=DEAD_MESSAGE_TTL_MS,
            middleware=stock,
        )
    for extra in middleware or []:
        broker.add_middleware(extra)
    return broker


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    ready: int | None  # waiting to be fetched
    delayed: int | None  # parked or backing off
    in_flight: int | None  # fetched by a worker, not yet acknowledged
    dead: int | None  # dead-lettered (kept a week; their jobs are failed on their rows)


def queue_depths(broker: dramatiq.Broker) -> list[QueueDepth]:
    if isinstance(broker, RedisBroker):
        client, ns = broker.client, broker.namespace
        depths = []
        for queue in QUEUES:
            pipe = client.pipeline(transaction=False)
            pipe.llen(f"{ns}:{queue}")
            pipe.hlen(f"{ns}:{queue}.msgs")
            pipe.hlen(f"{ns}:{queue}.DQ.msgs")
            pipe.zcard(f"{ns}:{queue}.XQ")
            ready, held, delayed, dead = pipe.execute()
            depths.append(QueueDepth(queue, ready, delayed, max(held - ready, 0), dead))
        return depths
    depths = []
    for queue in QUEUES:
        try:
            counts = broker.get_queue_message_counts(queue)  # type: ignore[attr-defined]  # RabbitMQ: (ready, delayed, dead)
            depths.append(QueueDepth(queue, counts[0], counts[1], None, counts[2]))
        except Exception:  # noqa: BLE001 - a status display must not crash on a broker hiccup
            depths.append(QueueDepth(queue, None, None, None, None))
    return depths


# A message a worker fetched (held in its acks set) for longer than this, past its eta, is not
# live: a worker that lost its connection drops what it held in memory, while its heartbeat (and so
# the ack set) lives on. A real run renews its job's lease and shows as running, not pending.
IN_FLIGHT_STALE_S = 300


def live_job_ids(broker: dramatiq.Broker) -> set[str] | None:
    """The job ids the broker holds a live message for: ready in a queue, or fetched by a worker
    less than IN_FLIGHT_STALE_S ago (or not yet due). None when the broker cannot say (RabbitMQ):
    the reconciler then judges by age."""
    if not isinstance(broker, RedisBroker):
        return None
    client, ns = broker.client, broker.namespace
    seconds, micros = client.time()
    stale_before_ms = int(seconds) * 1000 + int(micros) // 1000 - IN_FLIGHT_STALE_S * 1000
    live: set[str] = set()
    for queue in QUEUES:
        for name in (f"{ns}:{queue}", f"{ns}:{queue}.DQ"):
            ready = {_text(m) for m in client.lrange(name, 0, -1)}
            for message_id, data in client.hscan_iter(name + ".msgs", count=1000):
                try:
                    message = json.loads(data)
                    job_id = str(message["args"][0])
                except (ValueError, KeyError, TypeError, IndexError):
                    continue
                since_ms = max(int(message.get("message_timestamp") or 0), int(message["options"].get("eta") or 0)
                               if isinstance(message.get("options"), dict) else 0)
                if _text(message_id) in ready or since_ms > stale_before_ms:
                    live.add(job_id)
    return live


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
