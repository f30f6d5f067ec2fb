"""The demo CRM and the Xero pages fit a 1,280 px window and a 390 px phone without sideways
scrolling, and their action buttons sit in one row; admin's sync log shows its message column
at 1,280 px."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.browser.support import BROWSER_MARKS, no_sideways_scroll, shot, sign_in

pytestmark = BROWSER_MARKS

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture
def pages(three_invoices, connected_account) -> dict[str, str]:
    """Every page of the demo and of the app that a user opens, with real content."""
    from crm_demo.crm.models import Invoice
    from tests.integration.invoicing import make_invoice, pay

    account = connected_account["account"]
    draft = make_invoice(
        account,
        [{"unit_price": Decimal("12.5"), "description": "A long description " * 8}] * 3,
        status=Invoice.Status.DRAFT,
        number="DRAFT-WITH-A-RATHER-LONG-NUMBER-2026-0001",
    )
    paid_part = three_invoices["synced"]
    pay(paid_part, "20.00")
    contact = paid_part.contact
    return {
        "home": "/",
        "contacts": "/contacts/",
        "contact": contact.get_absolute_url(),
        "invoices": "/invoices/",
        "new invoice": "/invoices/new/",
        "edit invoice": f"/invoices/{draft.pk}/edit/",
        "draft invoice": draft.get_absolute_url(),
        "paid invoice": paid_part.get_absolute_url(),
        "failed invoice": three_invoices["refused"].get_absolute_url(),
        "void confirmation": f"/invoices/{paid_part.pk}/void/",
        "integrations": "/settings/integrations/",
        "xero settings": "/integrations/xero/",
        "disconnect confirmation": "/integrations/xero/disconnect/",
    }


def rows_of(page: Any, selector: str) -> set[int]:
    """The distinct tops of the visible elements in ``selector`` (one row: one top)."""
    tops = page.locator(selector).evaluate_all(
        "els => els.filter(e => e.offsetParent !== null)"
        ".map(e => Math.round(e.getBoundingClientRect().top))"
    )
    return set(tops)


@pytest.mark.parametrize("size", list(WIDTHS))
def test_every_page_fits_the_window_without_sideways_scrolling(
    crm_on_live_server, owner_credentials, pages, failed_tasks, browser_page, size
) -> None:
    page = browser_page
    width, height = WIDTHS[size]
    page.set_viewport_size({"width": width, "height": height})
    base = crm_on_live_server
    sign_in(page, base, *owner_credentials)
    overflowing = {}
    for name, path in pages.items():
        page.goto(base + path)
        page.wait_for_load_state()
        if name == "new invoice":
            for _ in range(2):
                page.get_by_role("button", name="Add a line").click()
        shot(page, f"layout-{size}-{name.replace(' ', '-')}")
        scroll, client = no_sideways_scroll(page)
        if scroll > client:
            overflowing[name] = (scroll, client)
        header = page.locator("header.topbar").bounding_box()
        assert header and header["width"] >= client - 1, (name, header, client)
    assert overflowing == {}


@pytest.mark.parametrize("size", list(WIDTHS))
def test_action_buttons_sit_in_one_row(
    crm_on_live_server, owner_credentials, pages, failed_tasks, browser_page, size
) -> None:
    page = browser_page
    width, height = WIDTHS[size]
    page.set_viewport_size({"width": width, "height": height})
    base = crm_on_live_server
    sign_in(page, base, *owner_credentials)

    page.goto(base + pages["draft invoice"])
    assert page.locator("main > .actions .button").count() == 3  # Edit, Send, Void
    assert len(rows_of(page, "main > .actions .button")) == 1
    assert len(rows_of(page, ".xero-invoice-status .xero-actions .button")) == 1

    page.goto(base + pages["paid invoice"])
    assert page.locator(".xero-invoice-status .xero-actions .button").count() == 2
    assert len(rows_of(page, ".xero-invoice-status .xero-actions .button")) == 1

    page.goto(base + pages["xero settings"])
    assert len(rows_of(page, "#accounts .xero-actions .button")) == 1
    page.goto(base + pages["integrations"])
    assert len(rows_of(page, ".xero-tile-actions .button")) == 1


def test_admins_sync_log_shows_its_message_column_at_1280(
    crm_on_live_server,
    admin_user,
    three_invoices,
    browser_page,
) -> None:
    page = browser_page
    base = crm_on_live_server
    page.goto(base + "/admin/login/")
    page.fill('input[name="username"]', "admin")
    page.fill('input[name="password"]', "password")
    page.locator('input[type="submit"]').click()
    page.wait_for_load_state()
    page.goto(base + "/admin/xero_integration/synclog/")
    shot(page, "layout-admin-sync-log")
    header = page.locator("#result_list th.column-summary").bounding_box()
    assert header is not None
    assert header["x"] + header["width"] <= 1280
    results = page.locator("#changelist .results")
    scroll, client = results.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert scroll <= client
