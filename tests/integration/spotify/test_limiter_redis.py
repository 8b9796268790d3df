"""The limiter and the penalty box on a real Redis: shared across clients, on Redis's clock, and
working again after Redis restarts (the script cache is empty then: NOSCRIPT)."""

import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

from pipeline.errors import RateLimited, RedisUnavailable
from pipeline.ratecontrol.limiter import RedisLimiter
from pipeline.ratecontrol.penalty_box import RedisPenaltyBox
from shared.keys import RedisKeys
from shared.settings import Rate

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A redis-server of this test's own (restarting the machine's would disturb others)."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        assert self.binary, "redis-server is needed for the restart test"
        self.dir = tempfile.mkdtemp(prefix="spotify-sync-redis-")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def test_the_limiter_and_the_box_work_again_after_a_redis_restart(private_redis):
    client = redis.Redis(port=private_redis.port, decode_responses=True)
    limiter = RedisLimiter(client, "t:rate:c", Rate(100, 10), max_wait_s=0)
    box = RedisPenaltyBox(client, "t:penalty:c")
    limiter.acquire()
    box.check()

    private_redis.stop()
    with pytest.raises(RedisUnavailable):
        limiter.acquire()
    with pytest.raises(RedisUnavailable):
        box.check()

    private_redis.start()  # empty: no data, no scripts
    assert client.script_exists(limiter.bucket.script_hash) == [False]
    limiter.acquire()
    box.check()
    box.block(60, "rate_limit")
    with pytest.raises(RateLimited):
        RedisPenaltyBox(client, "t:penalty:c").check()
    assert client.zcard("t:rate:c") == 1


def test_two_limiters_share_one_budget_on_a_real_redis(settings):
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = RedisKeys(settings.redis_namespace).rate_bucket(settings.spotify_client_id)
    one = RedisLimiter(client, key, Rate(5, 60), max_wait_s=0)
    other = RedisLimiter(redis.Redis.from_url(settings.redis_url), key, Rate(5, 60), max_wait_s=0)
    for limiter in (one, other, one, other, one):
        limiter.acquire()
    with pytest.raises(RateLimited) as caught:
        other.acquire()
    # The window, plus the limiter's margin (1 s for a minute) and its wake-up jitter (20 ms at most).
    assert caught.value.reason == "local_budget" and 59 < caught.value.retry_after_s < 61.1
