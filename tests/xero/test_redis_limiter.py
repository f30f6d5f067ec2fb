"""The Redis limiter: workers in different processes share one budget per organisation."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from xero_integration.xero.errors import ThrottledLocally
from xero_integration.xero.ratelimit import WINDOW_SECONDS, RateLimitState
from xero_integration.xero.redis_limiter import RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def store():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"needs Redis at {REDIS_URL}")
    prefix = f"test:{uuid.uuid4().hex}"
    yield client, prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def limiter(store, **kwargs) -> RedisLimiter:
    client, prefix = store
    kwargs.setdefault("max_wait", 0.0)
    return RedisLimiter(client, prefix=prefix, **kwargs)


def test_two_workers_share_the_minute_budget(store):
    first, second = limiter(store, per_minute=6), limiter(store, per_minute=6)
    for worker in (first, second, first, second, first, second):
        with worker.acquire("tenant"):
            pass
    with pytest.raises(ThrottledLocally) as refused, second.acquire("tenant"):
        pass
    assert refused.value.problem == "minute"
    assert 0 < refused.value.retry_after <= WINDOW_SECONDS


def test_at_most_five_calls_in_flight_across_workers(store):
    workers = [limiter(store, max_wait=5.0, poll=0.01) for _ in range(4)]
    in_flight, peak, lock = [0], [0], threading.Lock()

    def call(worker: RedisLimiter) -> None:
        with worker.acquire("tenant"):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1

    threads = [threading.Thread(target=call, args=(workers[n % 4],)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 5


def test_a_retry_after_seen_by_one_worker_pauses_the_others(store):
    first, second = limiter(store), limiter(store)
    first.observe("tenant", RateLimitState(retry_after=30, problem="minute"))
    with pytest.raises(ThrottledLocally) as refused, second.acquire("tenant"):
        pass
    assert refused.value.problem == "minute"
    assert 25 < refused.value.retry_after <= 30
    with limiter(store).acquire("another tenant"):
        pass  # other organisations are not affected


def test_the_day_budget_from_xero_headers_stops_every_worker(store):
    first, second = limiter(store, day_recheck=600), limiter(store, day_recheck=600)
    first.observe("tenant", RateLimitState(day_remaining=1))
    with second.acquire("tenant"):
        pass
    with pytest.raises(ThrottledLocally) as refused, first.acquire("tenant"):
        pass
    assert refused.value.problem == "day"


def test_a_dead_workers_call_stops_counting_after_its_lease(store):
    client, prefix = store
    dead = RedisLimiter(client, prefix=prefix, concurrent=1, lease=0.2, max_wait=0.0)
    context = dead.acquire("tenant")
    context.__enter__()  # the process dies here, never releasing
    alive = RedisLimiter(client, prefix=prefix, concurrent=1, max_wait=1.0, poll=0.05)
    with alive.acquire("tenant"):
        pass
