"""An invoice's way to Xero in a real browser (issue 6): sign in, connect through the sandbox's
consent page and choose the payment account (as in test_connect_in_browser.py), then create an
invoice with a taxed line through the CRM's form, send it, record a partial payment, and see it
on the sandbox's organisation page with the right number, total, status and amount due.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against pytest-django's live
server and the sandbox; django-q tasks run inline in the live server's thread. Screenshots of
each step go to test-artifacts/browser/ (prefixed "invoice-").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CLIENT_ID = "crm-test-browser-invoices"
CLIENT_SECRET = "crm-test-browser-invoices-secret-0123456789"
ORG = "Demo Company (NZ)"
NUMBER = "INV-BROWSER-1"

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

    post_execute.connect(record, weak=False, dispatch_uid="browser-invoice-task-failures")
    try:
        yield failures
    finally:
        post_execute.disconnect(dispatch_uid="browser-invoice-task-failures")


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


@pytest.fixture
def customer_and_tax(owner) -> tuple[Any, Any]:
    """A contact to invoice and a GST 15% tax in the owner's account (made before the browser
    starts, as database fixtures must be)."""
    from tests.factories import ContactFactory, tax_with

    contact = ContactFactory(account=owner.account, name="Harbour Cafe Ltd")
    gst = tax_with(owner.account, "GST 15%", ("GST", "15", False))
    return contact, gst


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"invoice-{name}.png"), full_page=True)


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


def connect_and_choose_accounts(page: Any, base: str, sandbox_url: str, tenant_id: str) -> None:
    """Settings → Integrations → Connect, Allow on the consent page, choose the accounts."""
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    page.locator(".xero-tile").get_by_role("button", name="Connect").click()
    page.wait_for_url(re.compile(re.escape(sandbox_url) + r"/identity/connect/authorize.*"))
    shot(page, "02-consent")
    choice = page.locator(f'input[name="tenant_id"][value="{tenant_id}"]')
    if choice.count() and choice.first.get_attribute("type") in ("checkbox", "radio"):
        choice.first.check()
    page.locator('[name="decision"][value="allow"]').first.click()
    page.wait_for_url(re.compile(re.escape(base) + r"/integrations/xero/$"), timeout=30_000)
    assert f"Connected to {ORG}." in page.content()

    payment = page.locator('select[name="payment_account_id"]')
    accounts = option_values(payment)
    assert accounts, "No payment account offered"
    payment.select_option(accounts[0])
    revenue = page.locator('select[name="revenue_account_code"]')
    codes = option_values(revenue)
    revenue.select_option("200" if "200" in codes else codes[0])
    shot(page, "03-accounts")
    page.get_by_role("button", name="Save accounts").click()
    page.wait_for_load_state()
    assert "Default accounts saved." in page.content()


def test_an_invoice_made_sent_and_partly_paid_in_the_crm_shows_in_the_sandbox(
    crm_on_live_server,
    xero_sandbox,
    owner_credentials,
    owner_account_key,
    customer_and_tax,
    failed_tasks,
    browser_page,
) -> None:
    # The database fixtures come before ``browser_page``: they are set up before Playwright starts.
    from xero_integration.models import InvoiceLink, SyncJob

    page = browser_page
    base = crm_on_live_server
    contact, gst = customer_and_tax
    tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
    email, password = owner_credentials

    # Sign in, connect, choose the payment account.
    page.goto(base + "/accounts/login/")
    page.fill('input[name="login"]', email)
    page.fill('input[name="password"]', password)
    page.locator('form button[type="submit"], form input[type="submit"]').first.click()
    page.wait_for_load_state()
    assert "/accounts/login/" not in page.url, page.content()[:2000]
    shot(page, "01-signed-in")
    connect_and_choose_accounts(page, base, xero_sandbox.url, tenant_id)

    # A new invoice through the CRM's form: one line, 2 × 50.00 with GST 15%.
    page.goto(base + "/invoices/new/")
    page.fill('input[name="number"]', NUMBER)
    page.select_option('select[name="contact"]', str(contact.pk))
    page.select_option('select[name="currency"]', "NZD")
    page.fill('input[name="issue_date"]', "2026-11-01")
    page.fill('input[name="due_date"]', "2026-11-21")
    page.fill('input[name="lines-0-item_name"]', "Espresso machine service")
    page.fill('textarea[name="lines-0-description"]', "Parts and labour")
    page.fill('input[name="lines-0-quantity"]', "2")
    page.fill('input[name="lines-0-unit_price"]', "50")
    page.select_option('select[name="lines-0-tax"]', str(gst.pk))
    shot(page, "04-new-invoice")
    page.get_by_role("button", name="Save invoice").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/invoices/\d+/$"))
    assert f"Invoice {NUMBER} saved." in page.content()
    assert "115.00" in page.content()
    shot(page, "05-draft-saved")

    # Send it, then record a partial payment.
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_load_state()
    assert f"Invoice {NUMBER} sent." in page.content()
    page.fill('input[name="amount"]', "40.00")
    page.fill('input[name="date"]', "2026-11-05")
    page.fill('input[name="reference"]', "Bank transfer")
    shot(page, "06-sent")
    page.get_by_role("button", name="Record payment").click()
    page.wait_for_load_state()
    assert "Payment of 40.00 recorded." in page.content()
    shot(page, "07-partly-paid")
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]

    # The CRM's invoice page shows where it stands in Xero.
    xero_box = page.locator(".xero-invoice-status")
    assert "In Xero: Authorised, 75.00 due" in xero_box.inner_text(), xero_box.inner_text()

    # The sandbox's organisation page shows the invoice as Xero has it.
    page.goto(f"{xero_sandbox.url}/_sandbox/org/{tenant_id}")
    page.wait_for_load_state()
    shot(page, "08-sandbox-organisation")
    rows = page.locator("table tr").filter(has_text=NUMBER)
    invoice_row = rows.first
    cells = invoice_row.locator("td").all_inner_texts()
    assert cells[0] == NUMBER, cells
    assert cells[1] == contact.name, cells
    assert cells[3].startswith("AUTHORISED"), cells
    assert cells[4] == "NZD", cells
    assert (cells[5], cells[6], cells[7]) == ("100.00", "15.00", "115.00"), cells
    assert (cells[8], cells[9]) == ("40.00", "75.00"), cells
    assert "OUTPUT2" in cells[10], cells
    (payment_cells,) = [
        row.locator("td").all_inner_texts() for row in rows.all() if row.locator("td").count() == 5
    ]
    assert payment_cells[0] == NUMBER and payment_cells[2] == "40.00", payment_cells
    assert payment_cells[4] == "Bank transfer", payment_cells

    # And the integration's own records agree.
    def records() -> tuple[str, str, Decimal | None]:
        job = SyncJob.objects.get(account_key=owner_account_key)
        link = InvoiceLink.objects.get(account_key=owner_account_key)
        return job.state, link.xero_status, link.xero_amount_due

    assert outside_the_event_loop(records) == (SyncJob.State.DONE, "AUTHORISED", Decimal("75.00"))
