"""Shared fakes for the wire-layer tests: a token source, a clock and a client factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import responses

from xero_integration.xero import InMemoryLimiter, XeroClient

API = "https://api.xero.test"
BASE = API + "/api.xro/2.0"
TENANT = "7e8a5c1b-0000-4000-8000-000000000001"


class FakeTokenSource:
    """Hands out tokens and records every refresh it is asked for."""

    def __init__(
        self, token: str = "access-token-one", refreshed: str = "access-token-two"
    ) -> None:
        self.token = token
        self.refreshed = refreshed
        self.refresh_calls: list[str] = []

    def access_token(self) -> str:
        return self.token

    def refreshed_access_token(self, stale: str) -> str:
        self.refresh_calls.append(stale)
        self.token = self.refreshed
        return self.token


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def tokens() -> FakeTokenSource:
    return FakeTokenSource()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mocked() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def make_client(tokens: FakeTokenSource, clock: FakeClock) -> Callable[..., XeroClient]:
    def factory(**kwargs: Any) -> XeroClient:
        options: dict[str, Any] = {
            "api_url": API,
            "tenant_id": TENANT,
            "token_source": tokens,
            "sleep": clock.sleep,
            "clock": clock,
            "jitter": lambda: 1.0,
        }
        options.setdefault("limiter", InMemoryLimiter(clock=clock, sleep=clock.sleep))
        options.update(kwargs)
        return XeroClient(**options)

    return factory
