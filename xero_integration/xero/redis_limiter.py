"""A rate limiter shared by every worker process, kept in Redis.

The same budgets as InMemoryLimiter (per tenant: calls in flight, calls in the rolling minute,
Retry-After pauses, the day's remainder from Xero's headers), decided atomically by one Lua
script on Redis's own clock, so workers on several machines draw on one budget.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from xero_integration.xero.errors import ThrottledLocally
from xero_integration.xero.ratelimit import (
    CONCURRENT_LIMIT,
    MINUTE_LIMIT,
    WINDOW_SECONDS,
    RateLimitState,
)

logger = logging.getLogger(__name__)

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local concurrent, per_minute = tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, reserve, recheck = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local window = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local pause = redis.call('HMGET', KEYS[3], 'until', 'problem')
if pause[1] and tonumber(pause[1]) > now then
  return {pause[2] or 'retry-after', tostring(tonumber(pause[1]) - now)}
end
local day = redis.call('HMGET', KEYS[4], 'remaining', 'learnt')
local probe = false
if day[1] and tonumber(day[1]) <= reserve then
  local wait = tonumber(day[2]) + recheck - now
  if wait > 0 then return {'day', tostring(wait)} end
  probe = true
end
local started = redis.call('ZCARD', KEYS[2])
if started >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[2], started - per_minute, started - per_minute,
                            'WITHSCORES')
  return {'minute', tostring(tonumber(oldest[2]) + window - now)}
end
if redis.call('ZCARD', KEYS[1]) >= concurrent then return {'concurrent', ''} end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('EXPIRE', KEYS[2], 120)
if day[1] then
  redis.call('HINCRBY', KEYS[4], 'remaining', -1)
  if probe then redis.call('HSET', KEYS[4], 'learnt', now) end
end
return {'ok', '0'}
"""

_OBSERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[2], 'remaining', ARGV[1], 'learnt', now)
  redis.call('EXPIRE', KEYS[2], 172800)
end
local pause = nil
local problem = ARGV[3]
local window = tonumber(ARGV[5])
if ARGV[2] ~= '' then
  pause = tonumber(ARGV[2])
elseif ARGV[4] ~= '' and tonumber(ARGV[4]) <= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local first = now
  if oldest[2] then first = tonumber(oldest[2]) end
  pause = first + window - now
  problem = 'minute'
end
if pause then
  local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
  if now + pause > current then
    redis.call('HSET', KEYS[1], 'until', now + pause, 'problem', problem)
    redis.call('EXPIRE', KEYS[1], math.ceil(pause) + 60)
  end
end
return 1
"""


class RedisLimiter:
    """Implements the Limiter protocol with Redis as the shared store (``redis`` is a
    ``redis.Redis`` client)."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "xero:limit",
        concurrent: int = CONCURRENT_LIMIT,
        per_minute: int = MINUTE_LIMIT,
        day_reserve: int = 0,
        day_recheck: float = 900.0,
        max_wait: float = 60.0,
        lease: float = 300.0,
        poll: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``lease`` bounds how long a call counts as in flight if its process dies."""
        if concurrent < 1 or per_minute < 1:
            raise ValueError("Limits must be at least 1")
        self.redis = redis
        self.prefix = prefix
        self.concurrent = concurrent
        self.per_minute = per_minute
        self.day_reserve = day_reserve
        self.day_recheck = day_recheck
        self.max_wait = max_wait
        self.lease = lease
        self.poll = poll
        self._sleep = sleep
        self._clock = clock
        self._acquire = redis.register_script(_ACQUIRE)
        self._observe = redis.register_script(_OBSERVE)

    def _keys(self, tenant_id: str) -> list[str]:
        base = f"{self.prefix}:{tenant_id}"
        return [f"{base}:inflight", f"{base}:started", f"{base}:pause", f"{base}:day"]

    @contextmanager
    def acquire(self, tenant_id: str, max_wait: float | None = None) -> Iterator[None]:
        """Wait for a slot (bounded by ``max_wait``), hold it while the call is in flight."""
        keys = self._keys(tenant_id)
        token = uuid.uuid4().hex
        deadline = self._clock() + min(self.max_wait, max_wait if max_wait is not None else 1e18)
        while True:
            verdict, seconds = self._acquire(
                keys=keys,
                args=[
                    token,
                    self.concurrent,
                    self.per_minute,
                    self.lease,
                    self.day_reserve,
                    self.day_recheck,
                    WINDOW_SECONDS,
                ],
            )
            verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
            seconds = seconds.decode() if isinstance(seconds, bytes) else seconds
            if verdict == "ok":
                break
            wait = float(seconds) if seconds else None
            now = self._clock()
            if verdict == "day" or (wait is not None and now + wait > deadline):
                raise ThrottledLocally(tenant_id, verdict, wait)
            if wait is None and now >= deadline:
                raise ThrottledLocally(tenant_id, verdict, None)
            logger.debug("Pacing Xero calls for tenant %s: %s", tenant_id, verdict)
            self._sleep(wait if wait is not None else self.poll)
        try:
            yield
        finally:
            self.redis.zrem(keys[0], token)

    def observe(self, tenant_id: str, state: RateLimitState) -> None:
        """Share what Xero said about the budgets with every worker."""
        keys = self._keys(tenant_id)
        self._observe(
            keys=[keys[2], keys[3], keys[1]],
            args=[
                "" if state.day_remaining is None else state.day_remaining,
                "" if state.retry_after is None else state.retry_after,
                state.problem or "retry-after",
                "" if state.minute_remaining is None else state.minute_remaining,
                WINDOW_SECONDS,
            ],
        )

    def in_flight(self, tenant_id: str) -> int:
        return int(self.redis.zcard(self._keys(tenant_id)[0]))
