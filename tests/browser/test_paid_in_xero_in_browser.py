"""Xero's side comes back, in a real browser: sign in, connect through the sandbox's consent
page, create and send an invoice in the CRM; then, as a person working in Xero, open it from
the CRM's "Open in Xero" link on the sandbox's organisation page and record the full payment
with the page's form. Xero's INVOICE webhook reaches the CRM (registered at the live server's
webhook URL), and the CRM's invoice page shows it Paid, the payment "Recorded in Xero".

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against pytest-django's live
server and the sandbox; django-q tasks run inline in the live server's thread. Screenshots of
each step go to test-artifacts/browser/ (prefixed "paid-in-xero-").
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from tests.browser.support import (
    BROWSER_MARKS,
    ORG,
    allow_access,
    choose_accounts,
    outside_the_event_loop,
    shot,
    sign_in,
)

NUMBER = "INV-PAID-IN-XERO-1"
WEBHOOK_KEY = "browser-webhook-signing-key-0123456789abcdef"
#: How long Xero's webhook may take to reach the CRM and change its invoice page.
WEBHOOK_DEADLINE_SECONDS = 30

pytestmark = BROWSER_MARKS


@pytest.fixture
def customer_and_tax(owner) -> tuple[Any, Any]:
    """A contact to invoice and a GST 15% tax in the owner's account (made before the browser
    starts, as database fixtures must be)."""
    from tests.factories import ContactFactory, tax_with

    contact = ContactFactory(account=owner.account, name="Harbour Cafe Ltd")
    gst = tax_with(owner.account, "GST 15%", ("GST", "15", False))
    return contact, gst


def status_badge(page: Any) -> str:
    return page.locator("h1 .status").inner_text().strip()


def reload_until_paid(page: Any, deadline_seconds: float) -> None:
    """Reload the CRM's invoice page until its status badge reads Paid, or fail at the
    deadline with what it shows."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        page.reload()
        page.wait_for_load_state()
        if status_badge(page) == "Paid":
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"The CRM's invoice still reads {status_badge(page)!r} "
                f"{deadline_seconds} s after the payment was recorded in Xero."
            )
        page.wait_for_timeout(250)


def test_a_payment_recorded_in_xero_shows_the_crm_invoice_paid(
    crm_on_live_server,
    xero_sandbox,
    settings,
    owner_credentials,
    owner_account_key,
    customer_and_tax,
    failed_tasks,
    browser_page,
) -> None:
    # The database fixtures come before ``browser_page``: they are set up before Playwright starts.
    from crm_demo.crm.models import Invoice, Payment
    from xero_integration.models import InvoiceLink, PaymentLink

    page = browser_page
    base = crm_on_live_server
    contact, gst = customer_and_tax
    tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
    email, password = owner_credentials

    # Sign in, connect, choose the payment account.
    sign_in(page, base, email, password)
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    page.locator(".xero-tile").get_by_role("button", name="Connect").click()
    allow_access(page, base, xero_sandbox.url, tenant_id, "paid-in-xero-01-")
    choose_accounts(page, "paid-in-xero-02-")

    # A new invoice through the CRM's form (2 × 50.00 with GST 15%: 115.00), then sent.
    page.goto(base + "/invoices/new/")
    page.fill('input[name="number"]', NUMBER)
    page.select_option('select[name="contact"]', str(contact.pk))
    page.select_option('select[name="currency"]', "NZD")
    page.fill('input[name="issue_date"]', "2026-11-01")
    page.fill('input[name="due_date"]', "2026-11-21")
    page.fill('input[name="lines-0-item_name"]', "Espresso machine service")
    page.fill('input[name="lines-0-quantity"]', "2")
    page.fill('input[name="lines-0-unit_price"]', "50")
    page.select_option('select[name="lines-0-tax"]', str(gst.pk))
    page.get_by_role("button", name="Save invoice").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/invoices/\d+/$"))
    invoice_url = page.url
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_load_state()
    assert f"Invoice {NUMBER} sent." in page.content()
    assert status_badge(page) == "Sent"
    xero_box = page.locator(".xero-invoice-status")
    assert "In Xero: Authorised, 115.00 due" in xero_box.inner_text(), xero_box.inner_text()
    shot(page, "paid-in-xero-03-sent")
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]

    # Xero's webhooks now reach the CRM's webhook URL on the live server.
    settings.XERO_WEBHOOK_KEY = WEBHOOK_KEY
    registered = xero_sandbox.register_webhook(
        base + reverse("xero_integration:webhook"), WEBHOOK_KEY
    )
    assert registered["status"] == "OK", registered
    app_writes = [r for r in xero_sandbox.requests(tenant_id) if r["method"] in ("PUT", "POST")]

    # "Open in Xero" leads to the invoice on the sandbox's organisation page.
    xero_link = xero_box.get_by_role("link", name="Open in Xero").get_attribute("href")
    assert xero_link and xero_link.startswith(f"{xero_sandbox.url}/_sandbox/org/{tenant_id}#")
    page.goto(xero_link)
    page.wait_for_load_state()
    row = page.locator("#invoices tr").filter(has_text=NUMBER)
    assert "AUTHORISED" in row.inner_text()

    # As a person in Xero: record the full amount due, which the form offers.
    row.get_by_text("Record a payment").click()
    amount = row.locator('input[name="amount"]')
    assert amount.input_value() == "115.00"
    row.locator('input[name="reference"]').fill("Bank feed 2231")
    shot(page, "paid-in-xero-04-record-a-payment")
    row.get_by_role("button", name="Record payment").click()
    page.wait_for_load_state()
    notice = page.locator(".notice").inner_text()
    assert f"Payment of 115.00 NZD recorded against {NUMBER}." in notice, notice
    assert "PAID" in page.locator("#invoices tr").filter(has_text=NUMBER).inner_text()
    shot(page, "paid-in-xero-05-paid-in-xero")

    # Back in the CRM, the webhook's effect shows on the invoice page.
    page.goto(invoice_url)
    reload_until_paid(page, WEBHOOK_DEADLINE_SECONDS)
    shot(page, "paid-in-xero-06-paid-in-the-crm")
    payments = page.locator("table.list").filter(has_text="Recorded in Xero")
    payment_row = payments.locator("tbody tr").filter(has_text="Bank feed 2231")
    assert "115.00" in payment_row.inner_text(), payment_row.inner_text()
    assert "Recorded in Xero" in payment_row.inner_text()
    assert "In Xero: Paid" in page.locator(".xero-invoice-status").inner_text()
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]

    # The CRM's records agree, and nothing was written back to Xero.
    def records() -> tuple[str, Decimal, list[tuple[Decimal, bool]], str, str]:
        invoice = Invoice.objects.get(number=NUMBER)
        payments = [(p.amount, p.recorded_in_xero) for p in Payment.objects.filter(invoice=invoice)]
        link = InvoiceLink.objects.get(account_key=owner_account_key)
        payment_link = PaymentLink.objects.get()
        return invoice.status, invoice.amount_due, payments, link.xero_status, payment_link.origin

    assert outside_the_event_loop(records) == (
        Invoice.Status.PAID,
        Decimal("0.00"),
        [(Decimal("115.00"), True)],
        "PAID",
        PaymentLink.Origin.XERO,
    )
    assert [
        r for r in xero_sandbox.requests(tenant_id) if r["method"] in ("PUT", "POST")
    ] == app_writes
