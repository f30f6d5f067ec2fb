"""Sync health where people look for it, in a real browser: the tile counts the failed and
waiting invoices and links to them, the settings page lists each with one plain sentence, the
invoice list's Xero column gives the reason on hover, and fixing the invoice clears it."""

from __future__ import annotations

import re

from tests.browser.support import BROWSER_MARKS, outside_the_event_loop, shot, sign_in

pytestmark = BROWSER_MARKS

TRANSPORT = ("Xero answered", "correlation id", "api.xro", "PUT /", "retry after")


def test_a_failure_shows_on_the_tile_and_the_invoice_list_in_plain_words_until_fixed(
    crm_on_live_server,
    xero_sandbox,
    owner_credentials,
    three_invoices,
    failed_tasks,
    browser_page,
) -> None:
    from tests.integration.invoicing import job_of
    from xero_integration.models import SyncJob

    page = browser_page
    base = crm_on_live_server
    sign_in(page, base, *owner_credentials)

    # The tile: connected, but one invoice failed and one waits, each a link.
    page.get_by_role("link", name="Settings → Integrations").click()
    tile = page.locator(".xero-tile")
    shot(page, "health-01-tile")
    assert "Connected" in tile.inner_text()
    failed_link = tile.get_by_role("link", name="1 invoice failed")
    assert failed_link.get_attribute("href").endswith("/integrations/xero/#sync-problems")
    assert tile.get_by_role("link", name="1 waiting").count() == 1

    # The settings page: each problem in one plain sentence, with a link to the invoice.
    failed_link.click()
    page.wait_for_load_state()
    problems = page.locator("#sync-problems")
    text = problems.inner_text()
    shot(page, "health-02-settings")
    assert (
        "USD-1" in text
        and "This invoice is in USD, which the Xero organisation has not added." in text
    )
    assert "WAIT-1" in text and "Xero is not answering right now." in text
    for detail in TRANSPORT:
        assert detail not in text
    activity = page.locator("table.xero-log").inner_text()
    assert "Invoice sent to Xero" in activity and "/api.xro/" not in activity

    # The invoice list: a Xero column, the reason on hover.
    page.get_by_role("link", name="Invoices").click()
    page.wait_for_load_state()
    shot(page, "health-03-invoice-list")
    headers = page.locator("table.invoice-list th").all_inner_texts()
    assert headers == [
        "Number",
        "Contact",
        "Issued",
        "Due date",
        "Total",
        "Amount due",
        "Status",
        "Xero",
    ]
    states = {}
    for row in page.locator("table.invoice-list tbody tr").all():
        number = row.locator("td").first.inner_text()
        badge = row.locator(".xero-sync")
        states[number] = (badge.inner_text(), badge.get_attribute("title") or "")
    assert states["OK-1"][0] == "Synced"
    assert states["USD-1"][0] == "Failed"
    assert states["USD-1"][1].startswith("This invoice is in USD")
    assert states["WAIT-1"][0] == "Waiting"
    assert states["WAIT-1"][1].startswith("Xero is not answering right now.")
    page.locator("table.invoice-list .xero-sync--failed").hover()

    # Xero answers again; fixing the refused one: it goes in NZD, and is in Xero at once.
    xero_sandbox.clear_faults()
    page.get_by_role("link", name="USD-1").click()
    page.wait_for_load_state()
    box = page.locator(".xero-invoice-status")
    assert "Not in Xero as it is in the CRM." in box.inner_text()
    page.get_by_role("link", name="Edit").click()
    page.select_option('select[name="currency"]', "NZD")
    page.get_by_role("button", name="Save invoice").click()
    page.wait_for_load_state()
    shot(page, "health-04-fixed")
    assert re.search(r"In Xero: Authorised", page.locator(".xero-invoice-status").inner_text())
    assert (
        outside_the_event_loop(lambda: job_of(three_invoices["refused"]).state)
        == SyncJob.State.DONE
    )

    # Sync now sends the one that waited.
    page.goto(base + three_invoices["waiting"].get_absolute_url())
    page.get_by_role("button", name="Sync now").click()
    page.wait_for_load_state()
    page.get_by_role("link", name="Settings → Integrations").click()
    tile_text = page.locator(".xero-tile").inner_text()
    shot(page, "health-05-tile-clear")
    assert "failed" not in tile_text and "waiting" not in tile_text
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]
