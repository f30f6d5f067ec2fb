"""A person in headless Chromium: sign in, connect Xero, pick the default accounts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.urls import reverse

from xero_integration.models import ConnectionStatus, XeroConnection

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}); apt-get install chromium to run this")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_sign_in_connect_xero_and_choose_the_payment_account(
    browser_page, live_server, xero_sandbox, settings, owner_credentials, monkeypatch
):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)
    callback = f"{live_server.url}{reverse('xero_integration:callback')}"
    xero_sandbox.register_app("crm-browser", "browser-secret", [callback])
    settings.XERO_CLIENT_ID = "crm-browser"
    settings.XERO_CLIENT_SECRET = "browser-secret"
    settings.XERO_LOGIN_URL = settings.XERO_IDENTITY_URL = settings.XERO_API_URL = xero_sandbox.url
    xero_sandbox.create_organisation(
        name="Browser Bikes Ltd", country_code="NZ", base_currency="NZD", multicurrency=True
    )
    email, password = owner_credentials
    page = browser_page

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    shot(page, "01-sign-in")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/**")

    page.goto(f"{live_server.url}/settings/integrations/")
    shot(page, "02-integrations")
    page.click(".xero-tile button:has-text('Connect')")

    page.wait_for_url(f"{xero_sandbox.url}/**")
    assert "Browser Bikes Ltd" in page.content()
    shot(page, "03-xero-consent")
    page.click("text=Allow access")

    page.wait_for_url(f"{live_server.url}{reverse('xero_integration:settings')}")
    assert "Browser Bikes Ltd" in page.content()
    assert "Connected" in page.content()
    shot(page, "04-connected")

    connection = XeroConnection.objects.get()
    bank = connection.payment_accounts()[0]
    page.select_option("select[name=payment_account_id]", bank["AccountID"])
    page.select_option("select[name=revenue_account_code]", index=1)
    page.click("text=Save accounts")
    page.wait_for_selector("text=Default accounts saved.")
    shot(page, "05-accounts-saved")

    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.payment_account_id == bank["AccountID"]
