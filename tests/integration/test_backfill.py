"""``manage.py xero_backfill``: existing invoices reach Xero in batches, once."""

from __future__ import annotations

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from crm_demo.crm.models import Invoice
from tests.factories import (
    AccountFactory,
    ContactFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from tests.integration.conftest import make_connection
from xero_integration.models import SyncJob

pytestmark = pytest.mark.django_db(transaction=True)


def history(account, count: int, contacts: int = 5) -> list[Invoice]:
    """Invoices made before the account connected to Xero: sent, some paid."""
    people = [ContactFactory(account=account) for _ in range(contacts)]
    gst = tax_with(account, "GST 15%", ("GST", "15", False))
    made = []
    for n in range(count):
        invoice = InvoiceFactory(
            account=account,
            contact=people[n % contacts],
            issue_date=datetime.date(2026, 1, 1) + datetime.timedelta(days=n % 300),
            due_date=datetime.date(2026, 12, 31),
        )
        InvoiceLineFactory(invoice=invoice, unit_price=Decimal("100") + n, tax=gst)
        invoice.recalculate()
        invoice.status = Invoice.Status.SENT
        invoice.save()
        if n % 3 == 0:
            PaymentFactory(
                invoice=invoice, amount=Decimal("20.00"), date=datetime.date(2026, 12, 1)
            )
            invoice.recalculate()
        made.append(invoice)
    return made


def connect_with_defaults(xero_sandbox, xero_app, account, name: str) -> str:
    """Connect the account to a new organisation, its default accounts chosen; its tenant."""
    org = xero_sandbox.create_organisation(name=name)
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(account.pk))
    state = xero_sandbox.organisation_state(org["tenant_id"])
    connection.payment_account_id = next(
        a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
    )
    connection.revenue_account_code = "200"
    connection.base_currency, connection.country_code = "NZD", "NZ"
    connection.save()
    return org["tenant_id"]


@pytest.fixture
def account_with_history(xero_sandbox, xero_app):
    account = AccountFactory()
    invoices = history(account, 120)
    return connect_with_defaults(xero_sandbox, xero_app, account, "Backfill Ltd"), account, invoices


def api_calls(xero_sandbox, tenant_id: str) -> list[dict]:
    return [r for r in xero_sandbox.requests(tenant_id) if r["path"].startswith("/api.xro/2.0/")]


def test_dry_run_prints_the_plan_and_sends_nothing(xero_sandbox, account_with_history):
    tenant_id, account, invoices = account_with_history
    out = StringIO()
    call_command("xero_backfill", "--account", str(account.pk), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "120 invoices to send" in text
    assert "40 payments" in text
    assert invoices[0].number in text
    assert "Dry run: nothing was sent." in text
    assert api_calls(xero_sandbox, tenant_id) == []
    assert not SyncJob.objects.exists()


def test_backfill_sends_every_invoice_once_in_batches(xero_sandbox, account_with_history):
    tenant_id, account, invoices = account_with_history
    call_command("xero_backfill", "--account", str(account.pk), stdout=StringIO())
    state = xero_sandbox.organisation_state(tenant_id)
    numbers = sorted(i["InvoiceNumber"] for i in state["invoices"])
    assert numbers == sorted(i.number for i in invoices)
    by_number = {i["InvoiceNumber"]: i for i in state["invoices"]}
    for invoice in invoices:
        xero = by_number[invoice.number]
        assert Decimal(str(xero["Total"])) == invoice.total
        assert Decimal(str(xero["AmountDue"])) == invoice.amount_due
    assert len([p for p in state["payments"] if p["Status"] == "AUTHORISED"]) == 40
    calls = api_calls(xero_sandbox, tenant_id)
    invoice_puts = [c for c in calls if c["method"] == "PUT" and c["path"].endswith("/Invoices")]
    payment_puts = [c for c in calls if c["method"] == "PUT" and c["path"].endswith("/Payments")]
    assert len(invoice_puts) == 3  # 120 invoices, 50 a call
    assert len(payment_puts) == 3  # payments follow each batch of invoices
    # Five new contacts (a lookup and a create each) and one read of the tax rates besides.
    assert len(calls) <= 3 + 3 + 5 * 2 + 1
    assert set(SyncJob.objects.values_list("state", flat=True)) == {SyncJob.State.DONE}


def test_a_second_backfill_sends_nothing_more(xero_sandbox, account_with_history):
    tenant_id, account, _ = account_with_history
    call_command("xero_backfill", "--account", str(account.pk), stdout=StringIO())
    before = len(api_calls(xero_sandbox, tenant_id))
    out = StringIO()
    call_command("xero_backfill", "--account", str(account.pk), stdout=out)
    assert "0 invoices to send" in out.getvalue()
    assert len(api_calls(xero_sandbox, tenant_id)) == before
    assert len(xero_sandbox.organisation_state(tenant_id)["invoices"]) == 120


def test_since_limits_the_backfill_to_recent_invoices(xero_sandbox, account_with_history):
    tenant_id, account, invoices = account_with_history
    since = datetime.date(2026, 9, 1)
    call_command(
        "xero_backfill",
        "--account",
        str(account.pk),
        "--since",
        since.isoformat(),
        stdout=StringIO(),
    )
    sent = {i["InvoiceNumber"] for i in xero_sandbox.organisation_state(tenant_id)["invoices"]}
    assert sent == {i.number for i in invoices if i.issue_date >= since}


def test_bad_arguments_are_clear_errors(account_with_history):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("xero_backfill", "--since", "yesterday", stdout=StringIO())
    with pytest.raises(CommandError, match="Not connected to Xero: nope"):
        call_command("xero_backfill", "--account", "nope", stdout=StringIO())


def test_a_backfill_stops_for_the_day_and_continues_after_the_reset(
    xero_sandbox, account_with_history
):
    """On a plan with few calls a day, the backfill waits for Xero's daily reset, not fails."""
    from django.utils import timezone

    from xero_integration import backfill, services
    from xero_integration.models import XeroConnection

    tenant_id, account, invoices = account_with_history
    xero_sandbox.set_limits(tenant_id, per_day=8)
    connection = XeroConnection.objects.get(account_key=str(account.pk))
    plan = backfill.plan(connection, None)
    backfill.queue(connection, plan)
    pauses: list[float] = []

    def next_day(seconds: float) -> None:
        pauses.append(seconds)
        xero_sandbox.advance_clock(24 * 3600)  # Xero's day resets
        services.reset_limiter()  # a new day's budget, as the worker learns from the headers
        SyncJob.objects.filter(state=SyncJob.State.WAITING).update(not_before=timezone.now())

    backfill.drain(connection, lambda *args: None, sleep=next_day)
    assert pauses, "the daily budget never ran out"
    assert not SyncJob.objects.filter(state=SyncJob.State.FAILED).exists()
    numbers = {i["InvoiceNumber"] for i in xero_sandbox.organisation_state(tenant_id)["invoices"]}
    assert numbers == {i.number for i in invoices}
    assert xero_sandbox.sandbox.limit_refusals == [] or all(
        problem == "day" for _, _, problem in xero_sandbox.sandbox.limit_refusals
    )


def test_a_backlogs_new_contacts_are_created_together_not_batch_by_batch(xero_sandbox, xero_app):
    """150 invoices, a customer new to Xero every five, saved while no worker ran: the first
    batch settles the contacts of the invoices after it too, so the drain creates all 30 in
    one call rather than ten in each of three batches."""
    from xero_integration import invoices as sync_runs

    account = AccountFactory()
    made = history(account, 150, contacts=1)
    people = [ContactFactory(account=account) for _ in range(30)]
    for n, invoice in enumerate(made):
        Invoice.objects.filter(pk=invoice.pk).update(contact=people[n // 5])
    tenant_id = connect_with_defaults(xero_sandbox, xero_app, account, "Backlog Ltd")
    for invoice in made:
        SyncJob.objects.record_change(str(account.pk), "crm.invoice", str(invoice.pk), "", False)
    while sync_runs.run_batch(str(account.pk), queue_rest=False):
        pass
    calls = api_calls(xero_sandbox, tenant_id)
    contact_puts = [c for c in calls if c["method"] == "PUT" and c["path"].endswith("/Contacts")]
    assert len(contact_puts) == 1
    state = xero_sandbox.organisation_state(tenant_id)
    assert len(state["contacts"]) >= 30
    assert sorted(i["InvoiceNumber"] for i in state["invoices"]) == sorted(i.number for i in made)
    assert set(SyncJob.objects.values_list("state", flat=True)) == {SyncJob.State.DONE}
