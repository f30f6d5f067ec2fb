"""A newcomer's path in a real browser: sign in, Settings → Integrations → Xero → Connect,
allow access on the sandbox's consent page, choose the payment account, see it connected.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against pytest-django's live
server and the sandbox. Screenshots of each step go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CLIENT_ID = "crm-test-browser"
CLIENT_SECRET = "crm-test-browser-secret-0123456789"
ORG = "Demo Company (NZ)"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium; "
        ".ci/run installs it)",
    ),
]


@pytest.fixture
def browser_page(monkeypatch) -> Iterator[Any]:
    """A fresh Chromium page; Playwright's event loop must not stop Django's ORM in this thread."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread, which Django would otherwise take
    # for async code and refuse ORM calls from the test body.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def crm_on_live_server(live_server, settings, xero_sandbox, monkeypatch) -> str:
    """The CRM on the live server, with a Xero web app registered for its callback URL."""
    from django_q.conf import Conf

    redirect_uri = live_server.url + "/integrations/xero/callback/"
    xero_sandbox.register_app(CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[redirect_uri])
    settings.XERO_CLIENT_ID = CLIENT_ID
    settings.XERO_CLIENT_SECRET = CLIENT_SECRET
    settings.XERO_LOGIN_URL = xero_sandbox.url
    settings.XERO_IDENTITY_URL = xero_sandbox.url
    settings.XERO_API_URL = xero_sandbox.url
    settings.XERO_REDIRECT_URI = redirect_uri
    # Tasks run inline in the live server's thread, as a worker would run them at once.
    monkeypatch.setattr(Conf, "SYNC", True)
    return live_server.url


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


def test_connect_to_xero_in_a_browser(
    crm_on_live_server, xero_sandbox, owner_credentials, owner_account_key, browser_page
) -> None:
    # The database fixtures come before ``browser_page``: they are set up before Playwright starts.
    from xero_integration.models import ConnectionStatus, XeroConnection

    page = browser_page
    base = crm_on_live_server
    tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
    email, password = owner_credentials

    # Sign in through the allauth login page.
    page.goto(base + "/accounts/login/")
    shot(page, "01-sign-in")
    page.fill('input[name="login"]', email)
    page.fill('input[name="password"]', password)
    page.locator('form button[type="submit"], form input[type="submit"]').first.click()
    page.wait_for_load_state()
    assert "/accounts/login/" not in page.url, page.content()[:2000]

    # Settings → Integrations → the Xero tile's Connect.
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    shot(page, "02-integrations")
    tile = page.locator(".xero-tile")
    assert "Not connected" in tile.inner_text()
    tile.get_by_role("button", name="Connect").click()

    # The sandbox's consent page: tick the organisation, Allow access.
    page.wait_for_url(re.compile(re.escape(xero_sandbox.url) + r"/identity/connect/authorize.*"))
    shot(page, "03-consent")
    assert ORG in page.content()
    choice = page.locator(f'input[name="tenant_id"][value="{tenant_id}"]')
    if choice.count() and choice.first.get_attribute("type") in ("checkbox", "radio"):
        choice.first.check()
    page.locator('[name="decision"][value="allow"]').first.click()

    # Back in the CRM: the attempt page hands over to the settings page once connected.
    page.wait_for_url(re.compile(re.escape(base) + r"/integrations/xero/$"), timeout=30_000)
    shot(page, "04-connected")
    assert f"Connected to {ORG}." in page.content()

    # Choose the payment and revenue accounts.
    payment = page.locator('select[name="payment_account_id"]')
    options = [v for v in payment.locator("option").evaluate_all("os => os.map(o => o.value)") if v]
    assert options, "No payment account offered"
    payment.select_option(options[0])
    revenue = page.locator('select[name="revenue_account_code"]')
    codes = [v for v in revenue.locator("option").evaluate_all("os => os.map(o => o.value)") if v]
    revenue.select_option(codes[0])
    shot(page, "05-accounts")
    page.get_by_role("button", name="Save accounts").click()
    page.wait_for_load_state()
    assert "Default accounts saved." in page.content()

    # The tile shows the organisation as connected.
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    shot(page, "06-tile-connected")
    tile_text = page.locator(".xero-tile").inner_text()
    assert ORG in tile_text and "Connected" in tile_text

    connection = outside_the_event_loop(
        lambda: XeroConnection.objects.get(account_key=owner_account_key)
    )
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == tenant_id
    assert connection.payment_account_id == options[0]
