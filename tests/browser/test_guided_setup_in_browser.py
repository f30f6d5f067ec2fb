"""A newcomer's set-up in a real browser: connect, be led to choose the default accounts, then
send the invoices created before connecting, with the call count and time the dry run gives,
a progress bar that follows the task's batches, and the result.

The sending task is run here step by step, as a worker would run it, so that the page's
progress bar can be seen between two batches (the page polls its section).
"""

from __future__ import annotations

import datetime
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

pytestmark = BROWSER_MARKS

EARLIER = 60


@pytest.fixture
def earlier_invoices(owner) -> list[Any]:
    """Sent invoices the owner's account had before it connected to Xero."""
    from crm_demo.crm.models import Invoice
    from tests.factories import ContactFactory, InvoiceFactory, InvoiceLineFactory

    people = [ContactFactory(account=owner.account) for _ in range(4)]
    made = []
    for n in range(EARLIER):
        invoice = InvoiceFactory(
            account=owner.account,
            contact=people[n % 4],
            number=f"OLD-{n + 1:03}",
            status=Invoice.Status.SENT,
            issue_date=datetime.date(2026, 1, 1) + datetime.timedelta(days=n),
            due_date=datetime.date(2026, 12, 31),
        )
        InvoiceLineFactory(invoice=invoice, unit_price=Decimal("50") + n)
        invoice.recalculate()
        made.append(invoice)
    return made


def test_a_newcomer_is_led_to_choose_accounts_then_sends_the_earlier_invoices(
    crm_on_live_server,
    xero_sandbox,
    owner_credentials,
    owner_account_key,
    earlier_invoices,
    failed_tasks,
    monkeypatch,
    browser_page,
) -> None:
    from django_q.conf import Conf

    from xero_integration import taskqueue, tasks
    from xero_integration.models import HistoryBackfill

    page = browser_page
    base = crm_on_live_server
    tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
    sign_in(page, base, *owner_credentials)
    page.get_by_role("link", name="Settings → Integrations").click()
    page.locator(".xero-tile").get_by_role("button", name="Connect").click()
    allow_access(page, base, xero_sandbox.url, tenant_id, "setup-01-")

    # Step 1: the page asks for the default accounts; nothing is counted before them.
    health = page.locator("#sync-health")
    assert "Choose the default accounts to start sending invoices to Xero." in health.inner_text()
    assert "xero-step--current" in (page.locator("#accounts").get_attribute("class") or "")
    assert "Once the default accounts are chosen" in page.locator("#history").inner_text()
    shot(page, "setup-02-choose-accounts")
    choose_accounts(page, "setup-03-")

    # Step 2: the dry run's count, calls and time, and the offer to send.
    history = page.locator("#history")
    text = " ".join(history.inner_text().split())
    assert f"{EARLIER} invoices were created in the CRM before it connected to {ORG}" in text
    assert re.search(
        r"Sending takes about \d+ calls to Xero: (under a minute|about \d+ minutes?)", text
    ), text
    shot(page, "setup-04-offer")

    # From here the test runs the sending task itself, one batch at a time.
    monkeypatch.setattr(Conf, "SYNC", False)
    queued: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        taskqueue, "send", lambda path, *args, **kwargs: queued.append((path, args))
    )
    history.get_by_role(
        "button", name=f"Send the {EARLIER} invoices created before connecting"
    ).click()
    page.wait_for_load_state()
    bar = page.locator("#history progress")
    assert bar.get_attribute("max") == str(EARLIER)
    assert bar.get_attribute("value") == "0"
    shot(page, "setup-05-starting")

    backfill_id = outside_the_event_loop(lambda: HistoryBackfill.objects.get().pk)
    assert queued == [("xero_integration.history.send", (backfill_id,))]
    outside_the_event_loop(lambda: tasks.send_history(backfill_id))  # the first 50
    page.wait_for_selector("#history >> text=50 of 60 sent", timeout=15_000)
    assert page.locator("#history progress").get_attribute("value") == "50"
    shot(page, "setup-06-progress")

    outside_the_event_loop(lambda: tasks.send_history(backfill_id))  # the last 10
    page.wait_for_selector("#history >> text=Done: 60 of 60", timeout=15_000)
    assert page.locator("#history progress").count() == 0
    shot(page, "setup-07-done")
    in_xero = xero_sandbox.organisation_state(tenant_id)["invoices"]
    assert sorted(i["InvoiceNumber"] for i in in_xero) == [i.number for i in earlier_invoices]
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]
