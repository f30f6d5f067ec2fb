"""Void and Disconnect ask first, in a dialog that says what happens in Xero; Cancel changes
nothing, and confirming does what it said."""

from __future__ import annotations

from tests.browser.support import BROWSER_MARKS, ORG, outside_the_event_loop, shot, sign_in

pytestmark = BROWSER_MARKS


def test_void_asks_in_a_dialog_that_says_what_happens_in_xero(
    crm_on_live_server,
    xero_sandbox,
    owner_credentials,
    connected_account,
    three_invoices,
    failed_tasks,
    browser_page,
) -> None:
    from crm_demo.crm.models import Invoice

    page = browser_page
    base = crm_on_live_server
    invoice = three_invoices["synced"]
    sign_in(page, base, *owner_credentials)
    page.goto(base + invoice.get_absolute_url())

    page.get_by_role("link", name="Void").click()
    dialog = page.locator("dialog#void-dialog")
    dialog.wait_for(state="visible")
    text = " ".join(dialog.inner_text().split())
    shot(page, "confirm-01-void")
    assert "Void invoice OK-1?" in text
    assert "In Xero: The invoice is voided there too" in text
    assert "Xero keeps its number" in text
    dialog.get_by_role("link", name="Cancel").click()
    dialog.wait_for(state="hidden")
    status = lambda: Invoice.objects.get(pk=invoice.pk).status  # noqa: E731
    assert outside_the_event_loop(status) == "sent"
    assert "/void/" not in page.url

    page.get_by_role("link", name="Void").click()
    dialog.get_by_role("button", name="Void invoice").click()
    page.wait_for_load_state()
    shot(page, "confirm-02-voided")
    assert outside_the_event_loop(status) == "void"
    in_xero = {
        i["InvoiceNumber"]: i["Status"]
        for i in xero_sandbox.organisation_state(connected_account["tenant_id"])["invoices"]
    }
    assert in_xero["OK-1"] == "VOIDED"

    # An invoice Xero never took: the dialog says nothing changes there.
    page.goto(base + three_invoices["refused"].get_absolute_url())
    page.get_by_role("link", name="Void").click()
    text = page.locator("dialog#void-dialog").inner_text()
    assert "It is not in Xero yet, so nothing changes there." in text
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]


def test_disconnect_asks_in_a_dialog_that_says_what_happens_in_xero(
    crm_on_live_server,
    xero_sandbox,
    owner_credentials,
    owner_account_key,
    connected_account,
    failed_tasks,
    browser_page,
) -> None:
    from xero_integration.models import XeroConnection

    page = browser_page
    base = crm_on_live_server
    sign_in(page, base, *owner_credentials)
    page.goto(base + "/integrations/xero/")

    page.get_by_role("link", name="Disconnect from Xero").click()
    dialog = page.locator("dialog#xero-disconnect-dialog")
    dialog.wait_for(state="visible")
    text = " ".join(dialog.inner_text().split())
    shot(page, "confirm-03-disconnect")
    assert f"Disconnect from {ORG}?" in text
    assert f"In Xero: this CRM is removed from {ORG}'s connected apps." in text
    assert "Nothing in Xero is deleted" in text
    assert "Invoices saved from now on wait" in text
    status = lambda: XeroConnection.objects.get(account_key=owner_account_key).status  # noqa: E731

    dialog.get_by_role("link", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert outside_the_event_loop(status) == "connected"

    page.get_by_role("link", name="Disconnect from Xero").click()
    dialog.get_by_role("button", name="Disconnect").click()
    page.wait_for_load_state()
    shot(page, "confirm-04-disconnected")
    assert f"Disconnected from {ORG}." in page.content()
    assert outside_the_event_loop(status) == "disconnected"
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]
