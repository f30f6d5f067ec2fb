"""An invoice's way to Xero in a real browser: sign in, connect through the sandbox's
consent page and choose the payment account (as in test_connect_in_browser.py), then create an
invoice with a taxed line through the CRM's form, send it, record a partial payment, and see it
on the sandbox's organisation page with the right number, total, status and amount due.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against pytest-django's live
server and the sandbox; django-q tasks run inline in the live server's thread. Screenshots of
each step go to test-artifacts/browser/ (prefixed "invoice-").
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from tests.browser.support import (
    BROWSER_MARKS,
    ORG,
    allow_access,
    choose_accounts,
    outside_the_event_loop,
    shot,
    sign_in,
)

NUMBER = "INV-BROWSER-1"

pytestmark = BROWSER_MARKS


@pytest.fixture
def customer_and_tax(owner) -> tuple[Any, Any]:
    """A contact to invoice and a GST 15% tax in the owner's account (made before the browser
    starts, as database fixtures must be)."""
    from tests.factories import ContactFactory, tax_with

    contact = ContactFactory(account=owner.account, name="Harbour Cafe Ltd")
    gst = tax_with(owner.account, "GST 15%", ("GST", "15", False))
    return contact, gst


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
    sign_in(page, base, email, password)
    shot(page, "invoice-01-signed-in")
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    page.locator(".xero-tile").get_by_role("button", name="Connect").click()
    allow_access(page, base, xero_sandbox.url, tenant_id, "invoice-02-")
    choose_accounts(page, "invoice-03-")

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
    shot(page, "invoice-04-new-invoice")
    page.get_by_role("button", name="Save invoice").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/invoices/\d+/$"))
    assert f"Invoice {NUMBER} saved." in page.content()
    assert "115.00" in page.content()
    shot(page, "invoice-05-draft-saved")

    # Send it, then record a partial payment.
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_load_state()
    assert f"Invoice {NUMBER} sent." in page.content()
    page.fill('input[name="amount"]', "40.00")
    page.fill('input[name="date"]', "2026-11-05")
    page.fill('input[name="reference"]', "Bank transfer")
    shot(page, "invoice-06-sent")
    page.get_by_role("button", name="Record payment").click()
    page.wait_for_load_state()
    assert "Payment of 40.00 recorded." in page.content()
    shot(page, "invoice-07-partly-paid")
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]

    # The CRM's invoice page shows where it stands in Xero.
    xero_box = page.locator(".xero-invoice-status")
    assert "In Xero: Authorised, 40.00 paid, 75.00 due" in xero_box.inner_text(), (
        xero_box.inner_text()
    )

    # The sandbox's organisation page shows the invoice as Xero has it.
    page.goto(f"{xero_sandbox.url}/_sandbox/org/{tenant_id}")
    page.wait_for_load_state()
    shot(page, "invoice-08-sandbox-organisation")
    invoice_row = page.locator("#invoices tr").filter(has_text=NUMBER)
    cells = invoice_row.locator("td").all_inner_texts()
    assert cells[0] == NUMBER, cells
    assert cells[1] == contact.name, cells
    assert cells[3].startswith("AUTHORISED"), cells
    assert cells[4] == "NZD", cells
    assert (cells[5], cells[6], cells[7]) == ("100.00", "15.00", "115.00"), cells
    assert (cells[8], cells[9]) == ("40.00", "75.00"), cells
    assert "OUTPUT2" in cells[10], cells
    (payment_cells,) = [
        row.locator("td").all_inner_texts()
        for row in page.locator("#payments tr").filter(has_text=NUMBER).all()
    ]
    assert payment_cells[0] == NUMBER and payment_cells[2] == "40.00", payment_cells
    assert payment_cells[4] == "Bank transfer", payment_cells

    # And the integration's own records agree.
    def records() -> tuple[str, str, Decimal | None]:
        job = SyncJob.objects.get(account_key=owner_account_key)
        link = InvoiceLink.objects.get(account_key=owner_account_key)
        return job.state, link.xero_status, link.xero_amount_due

    assert outside_the_event_loop(records) == (SyncJob.State.DONE, "AUTHORISED", Decimal("75.00"))
