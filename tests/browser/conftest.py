"""Fixtures of the browser tests: Chromium through Playwright, and the CRM on a live server."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.browser.support import CHROMIUM, ORG

CLIENT_ID = "crm-test-browser"
CLIENT_SECRET = "crm-test-browser-secret-0123456789"


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
def failed_tasks() -> Iterator[list[dict[str, Any]]]:
    """django-q stores a crashed task as failed instead of raising: collect them to report."""
    from django_q.signals import post_execute

    failures: list[dict[str, Any]] = []

    def record(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
        if not task.get("success"):
            failures.append(task)

    post_execute.connect(record, weak=False, dispatch_uid="browser-task-failures")
    try:
        yield failures
    finally:
        post_execute.disconnect(dispatch_uid="browser-task-failures")


@pytest.fixture
def crm_on_live_server(live_server, settings, xero_sandbox, monkeypatch, failed_tasks) -> str:
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


# Sync health, confirmations and layout: an account connected to ORG (no multi-currency), its
# default accounts chosen, and invoices in the three states people must tell apart.

#: The sandbox's invoices endpoint, where the fixtures inject Xero's 500s.
INVOICES_PATH = "/api.xro/2.0/Invoices"


@pytest.fixture
def connected_account(crm_on_live_server, xero_sandbox, owner, monkeypatch) -> dict[str, Any]:
    """The owner's account connected to ORG, its default accounts chosen; tasks run inline."""
    from django.utils import timezone

    from tests.integration.conftest import XeroApp, make_connection
    from xero_integration import connect
    from xero_integration.xero.client import XeroClient

    # The wire client's retries of a 500 happen at once: the same logic, a faster test.
    monkeypatch.setattr(connect, "XeroClient", functools.partial(XeroClient, sleep=lambda s: None))
    tenant_id = xero_sandbox.create_organisation(name=ORG, multicurrency=False)["tenant_id"]
    app = XeroApp(CLIENT_ID, CLIENT_SECRET, crm_on_live_server + "/integrations/xero/callback/")
    connection = make_connection(xero_sandbox, app, tenant_id, str(owner.account_id), ORG)
    state = xero_sandbox.organisation_state(tenant_id)
    connection.accounts = state["accounts"]
    connection.accounts_loaded_at = timezone.now()
    connection.payment_account_id = next(
        a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
    )
    connection.revenue_account_code = "200"
    connection.base_currency = "NZD"
    connection.country_code = "NZ"
    connection.short_code = "!demo"
    connection.save()
    return {"tenant_id": tenant_id, "connection": connection, "account": owner.account}


@pytest.fixture
def three_invoices(connected_account, xero_sandbox) -> dict[str, Any]:
    """OK-1 is in Xero; USD-1 was refused (USD is not enabled in the organisation); WAIT-1
    waits because Xero answers 500."""
    from tests.integration.invoicing import job_of, make_invoice
    from xero_integration.models import SyncJob

    account = connected_account["account"]
    synced = make_invoice(account, [{"unit_price": Decimal("80")}], number="OK-1")
    refused = make_invoice(account, [{"unit_price": Decimal("20")}], currency="USD", number="USD-1")
    xero_sandbox.add_fault("PUT", INVOICES_PATH, "500")
    waiting = make_invoice(account, [{"unit_price": Decimal("30")}], number="WAIT-1")
    assert job_of(synced).state == SyncJob.State.DONE
    assert job_of(refused).state == SyncJob.State.FAILED
    assert job_of(waiting).state == SyncJob.State.WAITING
    return {"synced": synced, "refused": refused, "waiting": waiting}
