"""What the CRM itself gets wrong is stopped before Xero: the pre-flight check on the job and
on the CRM's pages, and an adapter that raises fails visibly instead of retrying for ever."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse

from crm_demo.crm import xero_adapter
from crm_demo.crm.models import Membership
from tests.factories import MembershipFactory
from tests.integration.invoicing import (
    API,
    assert_done,
    job_of,
    make_invoice,
    money,
    rerun,
    xero_invoice,
)
from xero_integration import connect, invoices
from xero_integration.models import SyncJob, SyncLog, XeroConnection
from xero_integration.preflight import check

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("client_retries_at_once"),
]


def invoice_calls(sandbox, tenant_id: str) -> list[dict]:
    return [r for r in sandbox.requests(tenant_id) if r["path"].startswith(f"{API}/Invoices")]


def test_an_invoice_xero_would_refuse_waits_for_a_fix_without_a_call(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(
        account, [{"unit_price": Decimal("40"), "discount_amount": Decimal("45")}]
    )

    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.NEEDS_FIX
    assert "discount 45.00 is larger than the line (40.00)" in job.error
    assert job.error_fields[0]["path"] == "lines[1].discount"
    assert invoice_calls(xero_sandbox, tenant_id) == []
    assert [p.field for p in check(invoice)] == ["lines[1].discount", "total"]

    with transaction.atomic():  # fixed in the CRM: the save sends it
        invoice.lines.update(discount_amount=Decimal("5"))
        invoice.recalculate()
    assert_done(invoice)
    assert money(xero_invoice(xero_sandbox, tenant_id, invoice.number)["Total"]) == invoice.total


def test_an_invoice_dated_inside_xeros_lock_date_is_never_sent(xero_sandbox, connected):
    tenant_id, account, connection = connected
    connection.period_lock_date = datetime.date(2026, 11, 15)
    connection.save()
    invoice = make_invoice(account, [{"unit_price": Decimal("40")}])
    job = job_of(invoice)
    assert job.reason == SyncJob.Reason.NEEDS_FIX and "lock date (15 Nov 2026)" in job.error
    assert invoice_calls(xero_sandbox, tenant_id) == []


def test_the_lock_dates_and_plan_are_read_when_connecting(xero_sandbox, xero_app):
    from tests.factories import AccountFactory
    from tests.integration.conftest import make_connection

    org = xero_sandbox.create_organisation(
        name="Locked Ltd", multicurrency=False, period_lock_date="2026-06-30"
    )
    account = AccountFactory()
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(account.pk))
    connect.load_reference_data(connection.pk)
    connection = XeroConnection.objects.get(pk=connection.pk)
    assert connection.period_lock_date == datetime.date(2026, 6, 30)
    assert connection.multicurrency is False


def test_the_crm_invoice_page_and_form_show_what_xero_would_refuse(
    xero_sandbox, connected, client_factory
):
    _, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("40"), "discount_percent": 150}])
    client = client_factory(MembershipFactory(account=account, role=Membership.Role.OWNER).user)
    for page in ("crm:invoice_detail", "crm:invoice_edit"):
        html = client.get(reverse(page, args=[invoice.pk])).content.decode()
        assert "Xero would refuse this invoice as it is" in html, page
        assert "a discount of 150.00% is not between 0% and 100%" in html, page


# ---- an adapter that raises ------------------------------------------------------------------


def test_an_adapter_that_raises_fails_visibly_after_a_few_tries(
    xero_sandbox, connected, monkeypatch
):
    tenant_id, account, _ = connected

    def broken(self, instance):
        raise ValueError("unknown status 'weird'")

    with monkeypatch.context() as patched:
        patched.setattr(xero_adapter.CrmXeroAdapter, "to_invoice", broken)
        invoice = make_invoice(account, [{"unit_price": Decimal("40")}])
        job = job_of(invoice)
        assert job.state == SyncJob.State.WAITING and job.attempts == 1
        assert job.error == "The CRM's adapter raised ValueError: unknown status 'weird'"
        for _ in range(invoices.ADAPTER_ATTEMPTS - 1):
            rerun(invoice)
        job = job_of(invoice)
        assert job.state == SyncJob.State.FAILED and job.reason == SyncJob.Reason.ADAPTER
        assert job.error.startswith("The CRM's adapter raised ValueError")
        assert invoice_calls(xero_sandbox, tenant_id) == []
        assert SyncLog.objects.filter(
            outcome=SyncLog.Outcome.FAILED, message__contains="adapter raised ValueError"
        ).exists()

    with transaction.atomic():  # the adapter is mended and the invoice saved again
        invoice.reference = "After the fix"
        invoice.save()
    assert_done(invoice)
    assert xero_invoice(xero_sandbox, tenant_id, invoice.number)["Reference"] == "After the fix"


def test_a_new_invoice_xero_would_refuse_is_shown_before_it_is_saved(
    xero_sandbox, connected, client_factory
):
    from crm_demo.crm.models import Invoice
    from tests.factories import ContactFactory

    _, account, _ = connected
    client = client_factory(MembershipFactory(account=account, role=Membership.Role.OWNER).user)
    form = {
        "number": "INV-PREFLIGHT",
        "contact": ContactFactory(account=account).pk,
        "currency": "NZD",
        "issue_date": "2026-11-20",
        "due_date": "2026-12-20",
        "reference": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-item_name": "Consulting " * 10,
        "lines-0-description": "d" * 3990,
        "lines-0-quantity": "1",
        "lines-0-unit_price": "100",
    }
    html = client.post(reverse("crm:invoice_create"), form).content.decode()
    assert "Xero would refuse this invoice as it is" in html
    assert "4,000 characters" in html or "4000 characters" in html
    assert 'name="save_anyway"' in html
    assert not Invoice.objects.filter(number="INV-PREFLIGHT").exists()  # not saved yet

    response = client.post(reverse("crm:invoice_create"), {**form, "save_anyway": "1"})
    assert response.status_code == 302
    saved = Invoice.objects.get(number="INV-PREFLIGHT")
    assert saved.lines.count() == 1
