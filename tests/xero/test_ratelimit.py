"""Rate-limit headers, and the in-memory limiter's concurrency, pacing and pauses."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from xero_integration.xero.errors import ThrottledLocally
from xero_integration.xero.ratelimit import (
    WINDOW_SECONDS,
    InMemoryLimiter,
    Limiter,
    NullLimiter,
    RateLimitState,
)

TENANT = "tenant-a"


def test_headers_of_a_recorded_reply_are_read() -> None:
    headers = CaseInsensitiveDict(
        {
            "x-daylimit-remaining": "4984",
            "x-minlimit-remaining": "59",
            "x-appminlimit-remaining": "9999",
        }
    )
    state = RateLimitState.from_headers(headers)
    assert state == RateLimitState(
        day_remaining=4984, minute_remaining=59, app_minute_remaining=9999
    )
    assert not state.is_empty


def test_429_headers_give_retry_after_and_problem() -> None:
    state = RateLimitState.from_headers({"Retry-After": "12", "X-Rate-Limit-Problem": "Day"})
    assert state.retry_after == 12.0
    assert state.problem == "day"


def test_reply_without_limit_headers_is_empty() -> None:
    assert RateLimitState.from_headers({"Content-Type": "application/json"}).is_empty


def test_implementations_satisfy_the_protocol() -> None:
    assert isinstance(InMemoryLimiter(), Limiter)
    assert isinstance(NullLimiter(), Limiter)


def test_at_most_five_calls_in_flight_per_tenant() -> None:
    limiter = InMemoryLimiter(max_wait=10)
    held = [limiter.acquire(TENANT) for _ in range(5)]
    for slot in held:
        slot.__enter__()
    assert limiter.in_flight(TENANT) == 5
    # A sixth call for the tenant gets no slot; one for another tenant is not held up.
    with pytest.raises(ThrottledLocally) as caught, limiter.acquire(TENANT, max_wait=0):
        pass
    assert caught.value.problem == "concurrent"
    with limiter.acquire("tenant-b"):
        assert limiter.in_flight("tenant-b") == 1
    held[0].__exit__(None, None, None)
    with limiter.acquire(TENANT, max_wait=0):  # a slot came free
        assert limiter.in_flight(TENANT) == 5
    for slot in held[1:]:
        slot.__exit__(None, None, None)
    assert limiter.in_flight(TENANT) == 0


def test_threads_beyond_the_limit_wait_their_turn_and_all_get_through() -> None:
    limiter = InMemoryLimiter(max_wait=10)
    lock = threading.Lock()
    peak, done = 0, 0

    def call() -> None:
        nonlocal peak, done
        with limiter.acquire(TENANT), lock:
            peak = max(peak, limiter.in_flight(TENANT))
        with lock:
            done += 1

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert done == 12 and peak <= 5
    assert limiter.in_flight(TENANT) == 0


def test_waiting_too_long_for_a_slot_raises() -> None:
    limiter = InMemoryLimiter(concurrent=1, max_wait=0.05)
    with (
        limiter.acquire(TENANT),
        pytest.raises(ThrottledLocally) as caught,
        limiter.acquire(TENANT),
    ):
        pass
    assert caught.value.problem == "concurrent"
    assert caught.value.retryable


def test_slot_is_released_when_the_call_fails() -> None:
    limiter = InMemoryLimiter(concurrent=1, max_wait=0.05)
    with pytest.raises(RuntimeError), limiter.acquire(TENANT):
        raise RuntimeError("boom")
    with limiter.acquire(TENANT):
        assert limiter.in_flight(TENANT) == 1


def test_sixty_first_call_in_a_minute_waits_for_the_window(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(clock=clock, sleep=clock.sleep)
    for second in range(60):
        clock.now = second * 0.5
        with limiter.acquire(TENANT):
            pass
    assert clock.sleeps == []
    with limiter.acquire(TENANT):
        pass
    # The first call started at 0.0; the 61st may start once that one has left the window
    # (Xero's minute and a margin for the time a call takes to reach Xero).
    assert 60.0 < WINDOW_SECONDS <= 62.0
    assert clock.sleeps == [pytest.approx(WINDOW_SECONDS - 29.5)]
    assert clock.now == pytest.approx(WINDOW_SECONDS)


def test_pacing_is_per_tenant_and_rolling(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(per_minute=3, clock=clock, sleep=clock.sleep)
    for at in (0.0, 10.0, 20.0):
        clock.now = at
        with limiter.acquire(TENANT):
            pass
    clock.now = 30.0
    with limiter.acquire("tenant-b"):
        pass
    assert clock.sleeps == []
    clock.now = WINDOW_SECONDS + 1  # the call at 0.0 left the window; the one at 10.0 has not
    with limiter.acquire(TENANT):
        pass
    assert clock.sleeps == []
    with limiter.acquire(TENANT):
        pass
    assert clock.sleeps == [pytest.approx(9.0)]


def test_pacing_longer_than_max_wait_raises_instead_of_blocking(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(per_minute=1, max_wait=5, clock=clock, sleep=clock.sleep)
    with limiter.acquire(TENANT):
        pass
    with pytest.raises(ThrottledLocally) as caught, limiter.acquire(TENANT):
        pass
    assert caught.value.problem == "minute"
    assert caught.value.retry_after == pytest.approx(WINDOW_SECONDS)
    assert clock.sleeps == []


def test_retry_after_pauses_the_tenant(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe(TENANT, RateLimitState(retry_after=10, problem="minute"))
    with limiter.acquire("tenant-b"):
        pass
    assert clock.sleeps == []
    with limiter.acquire(TENANT):
        pass
    assert clock.sleeps == [pytest.approx(10.0)]


def test_long_retry_after_raises_with_the_remaining_wait(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe(TENANT, RateLimitState(retry_after=3600, problem="day"))
    clock.now = 600.0
    with pytest.raises(ThrottledLocally) as caught, limiter.acquire(TENANT):
        pass
    assert caught.value.problem == "day"
    assert caught.value.retry_after == pytest.approx(3000.0)


def test_minute_used_up_elsewhere_pauses_until_a_slot_frees(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(clock=clock, sleep=clock.sleep)
    with limiter.acquire(TENANT):
        pass
    clock.now = 20.0
    limiter.observe(TENANT, RateLimitState(minute_remaining=0, day_remaining=4000))
    with limiter.acquire(TENANT):
        pass
    assert clock.sleeps == [pytest.approx(WINDOW_SECONDS - 20.0)]


def test_daily_budget_learnt_from_headers_is_enforced_with_a_later_probe(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(day_recheck=900, clock=clock, sleep=clock.sleep)
    limiter.observe(TENANT, RateLimitState(day_remaining=2, minute_remaining=50))
    for _ in range(2):
        with limiter.acquire(TENANT):
            pass
    with pytest.raises(ThrottledLocally) as caught, limiter.acquire(TENANT):
        pass
    assert caught.value.problem == "day"
    assert caught.value.retry_after == pytest.approx(900.0)
    # After the recheck interval one probe goes out; the rest wait for what it learns.
    clock.now = 901.0
    with limiter.acquire(TENANT):
        pass
    with pytest.raises(ThrottledLocally), limiter.acquire(TENANT):
        pass
    limiter.observe(TENANT, RateLimitState(day_remaining=5000))
    with limiter.acquire(TENANT):
        pass


def test_day_reserve_keeps_calls_back(clock: Any) -> None:
    clock.now = 0.0
    limiter = InMemoryLimiter(day_reserve=10, clock=clock, sleep=clock.sleep)
    limiter.observe(TENANT, RateLimitState(day_remaining=11))
    with limiter.acquire(TENANT):
        pass
    with pytest.raises(ThrottledLocally), limiter.acquire(TENANT):
        pass


def test_null_limiter_never_waits() -> None:
    limiter = NullLimiter()
    limiter.observe(TENANT, RateLimitState(retry_after=999))
    with limiter.acquire(TENANT):
        pass


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InMemoryLimiter(concurrent=0)
