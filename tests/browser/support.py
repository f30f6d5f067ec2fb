"""What the browser tests share: Chromium, screenshots, the CRM's sign-in and connect steps."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
ORG = "Demo Company (NZ)"

#: Every browser test module's ``pytestmark``.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium; "
        ".ci/run installs it)",
    ),
]


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def outside_the_event_loop(work: Callable[[], Any]) -> Any:
    """Run ORM code in a plain thread and close its connection.

    While Playwright runs, this thread looks asynchronous to Django, which would give the ORM a
    separate, never-closed connection (PostgreSQL then refuses to drop the test database).
    """
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


def option_values(select: Any) -> list[str]:
    return [v for v in select.locator("option").evaluate_all("os => os.map(o => o.value)") if v]


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    """Through the allauth login page."""
    page.goto(base + "/accounts/login/")
    page.fill('input[name="login"]', email)
    page.fill('input[name="password"]', password)
    page.locator('form button[type="submit"], form input[type="submit"]').first.click()
    page.wait_for_load_state()
    assert "/accounts/login/" not in page.url, page.content()[:2000]


def allow_access(page: Any, base: str, sandbox_url: str, tenant_id: str, prefix: str) -> None:
    """On the sandbox's consent page: tick the organisation, Allow access, back to the CRM."""
    page.wait_for_url(re.compile(re.escape(sandbox_url) + r"/identity/connect/authorize.*"))
    shot(page, f"{prefix}consent")
    assert ORG in page.content()
    choice = page.locator(f'input[name="tenant_id"][value="{tenant_id}"]')
    if choice.count() and choice.first.get_attribute("type") in ("checkbox", "radio"):
        choice.first.check()
    page.locator('[name="decision"][value="allow"]').first.click()
    # The attempt page hands over to the settings page once connected.
    page.wait_for_url(re.compile(re.escape(base) + r"/integrations/xero/$"), timeout=30_000)
    assert f"Connected to {ORG}." in page.content()


def choose_accounts(page: Any, prefix: str) -> str:
    """Choose the payment account and revenue account 200; the payment account's id."""
    payment = page.locator('select[name="payment_account_id"]')
    accounts = option_values(payment)
    assert accounts, "No payment account offered"
    payment.select_option(accounts[0])
    revenue = page.locator('select[name="revenue_account_code"]')
    codes = option_values(revenue)
    revenue.select_option("200" if "200" in codes else codes[0])
    shot(page, f"{prefix}accounts")
    page.get_by_role("button", name="Save accounts").click()
    page.wait_for_load_state()
    assert "Default accounts saved." in page.content()
    return accounts[0]


def no_sideways_scroll(page: Any) -> tuple[int, int]:
    """The page's scroll width and its viewport width (equal when nothing overflows)."""
    return page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
