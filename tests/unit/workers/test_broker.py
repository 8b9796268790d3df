"""Routing and sending: a queue per job type, library syncs first, delays clamped to what
Dramatiq accepts."""

from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message

from shared.jobtypes import JOB_TYPES
from shared.settings import Settings
from workers.actors import declare_actors
from workers.broker import HEARTBEAT_TIMEOUT_MS, build_broker
from workers.sender import MAX_DELAY_S, JobSender


def test_each_job_type_has_its_queue_and_library_syncs_come_first():
    broker = StubBroker()
    declared = declare_actors(broker)
    assert {name: (a.queue_name, a.priority, a.options["time_limit"]) for name, a in declared.items()} == {
        "track_sync": ("tracks", 20, 600_000), "user_library": ("library", 0, 3_600_000),
        "popularity_update": ("popularity", 10, 600_000)}
    assert [a.fn.__name__ for a in declared.values()] == [t.name for t in JOB_TYPES]
    assert declared["user_library"].priority < declared["popularity_update"].priority < declared["track_sync"].priority
    assert {q for q in broker.get_declared_queues() if not q.endswith(".DQ")} == {"library", "popularity", "tracks"}


def test_the_redis_broker_lives_under_the_namespace_and_notices_dead_workers_quickly():
    broker = build_broker(Settings(redis_url="redis://127.0.0.1:1/0", redis_namespace="ns1"))
    assert isinstance(broker, RedisBroker)
    assert broker.namespace == "ns1:dramatiq" and broker.heartbeat_timeout == HEARTBEAT_TIMEOUT_MS == 15_000


def test_rabbitmq_is_chosen_by_an_amqp_broker_url_and_waits_for_publisher_confirms():
    broker = build_broker(Settings(broker_url="amqp://guest:guest@127.0.0.1:1/%2F"))
    assert type(broker).__name__ == "RabbitmqBroker" and broker.confirm_delivery is True


def test_messages_carry_only_the_job_id_and_long_delays_are_clamped():
    broker = StubBroker()
    declare_actors(broker)
    send = JobSender(broker)
    send("track_sync", "job-1")
    send("user_library", "job-2", 86_400 * 30)
    [now] = [Message.decode(m) for m in broker.queues["tracks"].queue]
    [later] = [Message.decode(m) for m in broker.queues["library.DQ"].queue]
    assert (now.args, now.kwargs, later.args) == (("job-1",), {}, ("job-2",))
    assert later.options["eta"] - later.message_timestamp == MAX_DELAY_S * 1000
