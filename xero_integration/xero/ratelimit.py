"""Xero's rate limits: the limit headers, and the Limiter protocol the client calls around each
request. InMemoryLimiter serves one process; a shared store (database, Redis) implements the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from xero_integration.xero.errors import ThrottledLocally
from xero_integration.xero.wire import header, parse_int, parse_retry_after

logger = logging.getLogger(__name__)

#: Xero's published limits per app per tenant (and per app across tenants).
CONCURRENT_LIMIT = 5
MINUTE_LIMIT = 60
DAY_LIMIT = 5000
APP_MINUTE_LIMIT = 10000
#: Xero counts a minute's calls as they arrive, a limiter as they start: the window is a
#: little longer than Xero's so that a call held up between the two (a busy process, a slow
#: network) never lands inside Xero's minute of the calls before it.
WINDOW_SECONDS = 62.0


@dataclass(frozen=True)
class RateLimitState:
    """What one reply said about the remaining budgets (None where the header was absent)."""

    day_remaining: int | None = None
    minute_remaining: int | None = None
    app_minute_remaining: int | None = None
    retry_after: float | None = None
    problem: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitState:
        """Read ``X-DayLimit-Remaining``, ``X-MinLimit-Remaining``, ``X-AppMinLimit-Remaining``,
        ``Retry-After`` and ``X-Rate-Limit-Problem`` (names are case-insensitive)."""
        problem = header(headers, "X-Rate-Limit-Problem")
        return cls(
            day_remaining=parse_int(header(headers, "X-DayLimit-Remaining")),
            minute_remaining=parse_int(header(headers, "X-MinLimit-Remaining")),
            app_minute_remaining=parse_int(header(headers, "X-AppMinLimit-Remaining")),
            retry_after=parse_retry_after(header(headers, "Retry-After")),
            problem=problem.strip().lower() if problem else None,
        )

    @property
    def is_empty(self) -> bool:
        """True when the reply carried none of the rate-limit headers."""
        return self == RateLimitState()


@runtime_checkable
class Limiter(Protocol):
    """Keeps calls to one tenant within Xero's limits; shared by every client of that tenant.

    ``acquire`` wraps one HTTP call: it returns once the call may go (blocking a bounded time)
    or raises ThrottledLocally with ``retry_after`` when the call must wait longer.
    ``observe`` is given the budget state read from each reply (429s included).
    """

    def acquire(
        self, tenant_id: str, max_wait: float | None = None
    ) -> AbstractContextManager[None]:
        """A context manager held while the call is in flight; ``max_wait`` shortens the
        limiter's own bound on waiting."""
        ...

    def observe(self, tenant_id: str, state: RateLimitState) -> None:
        """Learn from a reply's rate-limit headers."""
        ...


class NullLimiter:
    """A limiter that never waits; for tenantless calls or when limits are enforced elsewhere."""

    @contextmanager
    def acquire(self, tenant_id: str, max_wait: float | None = None) -> Iterator[None]:
        """Let the call go at once."""
        yield

    def observe(self, tenant_id: str, state: RateLimitState) -> None:
        """Ignore the reply's budget."""


@dataclass
class _TenantBudget:
    in_flight: int = 0
    started: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0
    pause_problem: str = "retry-after"
    day_remaining: int | None = None
    day_learnt_at: float = 0.0


class InMemoryLimiter:
    """A thread-safe limiter for one process.

    Per tenant: at most ``concurrent`` calls in flight, at most ``per_minute`` calls started in any
    rolling minute, no call while a ``Retry-After`` pause runs, and none while the daily budget
    learnt from ``X-DayLimit-Remaining`` is spent. Waits up to ``max_wait`` seconds, then raises
    ThrottledLocally so the caller can reschedule instead of holding a worker.
    """

    def __init__(
        self,
        *,
        concurrent: int = CONCURRENT_LIMIT,
        per_minute: int = MINUTE_LIMIT,
        day_reserve: int = 0,
        day_recheck: float = 900.0,
        max_wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``day_reserve`` calls of the daily budget are kept back (for example for user-facing
        work); once the budget is spent, one probe call is let through every ``day_recheck``
        seconds, because Xero resets the day at a tenant-specific time it does not announce."""
        if concurrent < 1 or per_minute < 1:
            raise ValueError("Limits must be at least 1")
        self.concurrent = concurrent
        self.per_minute = per_minute
        self.day_reserve = day_reserve
        self.day_recheck = day_recheck
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._condition = threading.Condition()
        self._tenants: dict[str, _TenantBudget] = {}

    def _budget(self, tenant_id: str) -> _TenantBudget:
        budget = self._tenants.get(tenant_id)
        if budget is None:
            budget = self._tenants[tenant_id] = _TenantBudget()
        return budget

    def _time_wait(self, budget: _TenantBudget, now: float) -> tuple[float, str]:
        """Seconds until a call may start as far as time-based budgets go, and which budget."""
        while budget.started and budget.started[0] <= now - WINDOW_SECONDS:
            budget.started.popleft()
        waits = [(0.0, "")]
        if budget.paused_until > now:
            waits.append((budget.paused_until - now, budget.pause_problem))
        if len(budget.started) >= self.per_minute:
            oldest = budget.started[len(budget.started) - self.per_minute]
            waits.append((oldest + WINDOW_SECONDS - now, "minute"))
        return max(waits)

    def _day_spent(self, budget: _TenantBudget, now: float) -> float | None:
        """Seconds until the next probe when the daily budget is spent, else None."""
        if budget.day_remaining is None or budget.day_remaining > self.day_reserve:
            return None
        until_recheck = budget.day_learnt_at + self.day_recheck - now
        return until_recheck if until_recheck > 0 else None

    @contextmanager
    def acquire(self, tenant_id: str, max_wait: float | None = None) -> Iterator[None]:
        """Wait for a slot for ``tenant_id`` (bounded by ``max_wait``), hold it during the call."""
        deadline = self._clock() + min(self.max_wait, max_wait if max_wait is not None else 1e18)
        while True:
            with self._condition:
                now = self._clock()
                budget = self._budget(tenant_id)
                day_wait = self._day_spent(budget, now)
                if day_wait is not None:
                    raise ThrottledLocally(tenant_id, "day", day_wait)
                wait, problem = self._time_wait(budget, now)
                if wait <= 0:
                    if budget.in_flight < self.concurrent:
                        budget.in_flight += 1
                        budget.started.append(now)
                        if budget.day_remaining is not None:
                            if budget.day_remaining <= self.day_reserve:
                                # The probe: let one call through, then wait for its headers.
                                budget.day_learnt_at = now
                            budget.day_remaining -= 1
                        break
                    if now >= deadline:
                        raise ThrottledLocally(tenant_id, "concurrent", None)
                    # A finishing call notifies; the timeout only bounds a fake or stalled clock.
                    self._condition.wait(timeout=min(deadline - now, 1.0))
                    continue
            if now + wait > deadline:
                raise ThrottledLocally(tenant_id, problem, wait)
            logger.debug("Pacing Xero calls for tenant %s: %s, %.1f s", tenant_id, problem, wait)
            self._sleep(wait)
        try:
            yield
        finally:
            with self._condition:
                budget.in_flight -= 1
                self._condition.notify_all()

    def observe(self, tenant_id: str, state: RateLimitState) -> None:
        """Adopt the budgets Xero reported, and pause the tenant when Xero asked for a pause."""
        with self._condition:
            now = self._clock()
            budget = self._budget(tenant_id)
            if state.day_remaining is not None:
                budget.day_remaining = state.day_remaining
                budget.day_learnt_at = now
            pause = None
            problem = state.problem or "retry-after"
            if state.retry_after is not None:
                pause = state.retry_after
            elif state.minute_remaining is not None and state.minute_remaining <= 0:
                # Other processes used the minute up. The first slot frees when our oldest call in
                # the window turns a minute old; with none of ours in it, a full minute.
                while budget.started and budget.started[0] <= now - WINDOW_SECONDS:
                    budget.started.popleft()
                oldest = budget.started[0] if budget.started else now
                pause = oldest + WINDOW_SECONDS - now
                problem = "minute"
            if pause is not None and now + pause > budget.paused_until:
                budget.paused_until = now + pause
                budget.pause_problem = problem
            self._condition.notify_all()

    def in_flight(self, tenant_id: str) -> int:
        """How many calls to the tenant are in flight now."""
        with self._condition:
            return self._budget(tenant_id).in_flight


__all__ = [
    "APP_MINUTE_LIMIT",
    "CONCURRENT_LIMIT",
    "DAY_LIMIT",
    "MINUTE_LIMIT",
    "InMemoryLimiter",
    "Limiter",
    "NullLimiter",
    "RateLimitState",
]
