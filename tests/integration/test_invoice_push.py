"""The invoice push end to end against the sandbox: create, send, pay, void."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from crm_demo.crm.models import Invoice
from tests.factories import (
    AccountFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from tests.integration.conftest import make_connection
from xero_integration.models import InvoiceLink, SyncJob

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connected(xero_sandbox, xero_app):
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)")
    account = AccountFactory()
    connection = make_connection(xero_sandbox, xero_app, org["tenant_id"], str(account.pk))
    state = xero_sandbox.organisation_state(org["tenant_id"])
    bank = next(a for a in state["accounts"] if a["Type"] == "BANK")
    connection.payment_account_id = bank["AccountID"]
    connection.revenue_account_code = "200"
    connection.base_currency = "NZD"
    connection.country_code = "NZ"
    connection.save()
    return org["tenant_id"], account, connection


def test_sent_invoice_with_compound_tax_and_payment_reaches_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    tax = tax_with(account, "GST 5% + QST 9.975%", ("GST", "5", False), ("QST", "9.975", True))
    invoice = InvoiceFactory(account=account, currency="CAD", status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=invoice, quantity=Decimal("2"), unit_price=Decimal("100"), tax=tax)
    invoice.recalculate()
    invoice.status = Invoice.Status.SENT
    invoice.save()
    state = xero_sandbox.organisation_state(tenant_id)
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["Status"] == "AUTHORISED"
    assert xero_invoice["CurrencyCode"] == "CAD"
    assert Decimal(str(xero_invoice["Total"])) == invoice.total
    job = SyncJob.objects.get()
    assert job.state == SyncJob.State.DONE, job.error
    PaymentFactory(invoice=invoice, amount=Decimal("50.00"), date=datetime.date(2026, 11, 5))
    invoice.recalculate()
    state = xero_sandbox.organisation_state(tenant_id)
    (xero_invoice,) = state["invoices"]
    assert Decimal(str(xero_invoice["AmountPaid"])) == Decimal("50.00")
    assert len(state["payments"]) == 1
    invoice.status = Invoice.Status.VOID
    invoice.save()
    state = xero_sandbox.organisation_state(tenant_id)
    assert state["invoices"][0]["Status"] == "VOIDED"
    assert InvoiceLink.objects.get().xero_status == "VOIDED"
