"""The invoice push end to end against the sandbox: create, send, pay, void."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from crm_demo.crm.models import Invoice
from tests.factories import (
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from xero_integration.models import InvoiceLink, SyncJob

pytestmark = pytest.mark.django_db(transaction=True)


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


def test_a_tax_rate_deleted_in_xero_is_matched_again(xero_sandbox, connected):
    """Cached reference data is refreshed when Xero says it is stale."""
    from xero_integration.models import TaxRateMapping

    tenant_id, account, connection = connected
    tax = tax_with(account, "City levy 3%", ("Levy", "3", False))
    first = InvoiceFactory(account=account, status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=first, tax=tax)
    first.recalculate()
    first.status = Invoice.Status.SENT
    first.save()
    mapping = TaxRateMapping.objects.get(host_id=str(tax.pk))
    assert mapping.created_in_xero
    tokens = xero_sandbox.issue_tokens("crm-test-web", [tenant_id])
    deleted = xero_sandbox.api(
        "POST",
        "/TaxRates",
        tenant_id,
        tokens["access_token"],
        json={"TaxRates": [{"TaxType": mapping.tax_type, "Status": "DELETED"}]},
    )
    assert deleted.status_code == 200, deleted.text
    second = InvoiceFactory(account=account, status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=second, tax=tax)
    second.recalculate()
    second.status = Invoice.Status.SENT
    second.save()
    job = SyncJob.objects.get(host_id=str(second.pk))
    assert job.state == SyncJob.State.WAITING
    assert "tax rates changed" in job.error
    SyncJob.objects.filter(pk=job.pk).update(not_before=None, state=SyncJob.State.PENDING)
    from xero_integration import invoices

    invoices.run(job.account_key, job.host_model, job.host_id)
    job.refresh_from_db()
    assert job.state == SyncJob.State.DONE, job.error
    new_type = TaxRateMapping.objects.get(host_id=str(tax.pk)).tax_type
    assert new_type != mapping.tax_type
    xero = next(
        i
        for i in xero_sandbox.organisation_state(tenant_id)["invoices"]
        if i["InvoiceNumber"] == second.number
    )
    assert xero["LineItems"][0]["TaxType"] == new_type


def test_a_crm_tax_whose_rate_changed_is_matched_again(xero_sandbox, connected):
    from crm_demo.crm.models import TaxComponent
    from xero_integration.models import TaxRateMapping

    tenant_id, account, _ = connected
    tax = tax_with(account, "Levy", ("Levy", "3", False))
    first = InvoiceFactory(account=account, status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=first, tax=tax)
    first.recalculate()
    first.status = Invoice.Status.SENT
    first.save()
    old_type = TaxRateMapping.objects.get(host_id=str(tax.pk)).tax_type
    TaxComponent.objects.filter(tax=tax).update(rate=Decimal("4"))
    second = InvoiceFactory(account=account, status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=second, tax=tax)
    second.recalculate()
    second.status = Invoice.Status.SENT
    second.save()
    new_type = TaxRateMapping.objects.get(host_id=str(tax.pk)).tax_type
    assert new_type != old_type
    xero = {i["InvoiceNumber"]: i for i in xero_sandbox.organisation_state(tenant_id)["invoices"]}
    assert Decimal(str(xero[second.number]["Total"])) == second.total
    assert xero[second.number]["LineItems"][0]["TaxType"] == new_type
