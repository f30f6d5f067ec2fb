"""Exactly once when workers overlap, numbers clash or answers go missing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from crm_demo.crm.models import Invoice
from tests.factories import ContactFactory, InvoiceFactory, InvoiceLineFactory
from xero_integration import invoices, outbox
from xero_integration.models import SyncJob

pytestmark = pytest.mark.django_db(transaction=True)


def sent_invoice(account, number: str | None = None, **kwargs) -> Invoice:
    invoice = InvoiceFactory(account=account, status=Invoice.Status.DRAFT, **kwargs)
    if number:
        Invoice.objects.filter(pk=invoice.pk).update(number=number)
        invoice.refresh_from_db()
    InvoiceLineFactory(invoice=invoice, unit_price=Decimal("80"))
    invoice.recalculate()
    invoice.status = Invoice.Status.SENT
    invoice.save()
    return invoice


def xero_invoices(xero_sandbox, tenant_id: str) -> list[dict]:
    return xero_sandbox.organisation_state(tenant_id)["invoices"]


def test_a_worker_whose_lease_was_taken_over_stops_touching_the_job(connected, monkeypatch):
    from xero_integration import taskqueue

    _, account, _ = connected
    monkeypatch.setattr(taskqueue, "send", lambda *args, **kwargs: None)
    invoice = sent_invoice(account)
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    first = invoices.claim(job.account_key, job.host_model, job.host_id)
    assert first is not None
    SyncJob.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    second = invoices.claim(job.account_key, job.host_model, job.host_id)
    assert second is not None and second.claim_token != first.claim_token
    with pytest.raises(invoices.LostClaim):
        invoices.keep_claim(first)
    jobs = SyncJob.objects.filter(pk=job.pk)
    # The first worker ends late: whatever it reports changes nothing.
    assert jobs.held(first.claim_token).finish(first.change_seq) == 0
    assert jobs.held(first.claim_token).fail("late", [], SyncJob.Reason.REFUSED) == 0
    assert jobs.get().state == SyncJob.State.RUNNING
    assert jobs.get().claim_token == second.claim_token
    assert jobs.held(second.claim_token).finish(second.change_seq) == 1
    assert jobs.get().state == SyncJob.State.DONE


def test_an_invoice_number_xero_has_for_another_contact_is_not_taken_over(xero_sandbox, connected):
    tenant_id, account, _ = connected
    tokens = xero_sandbox.issue_tokens("crm-test-web", [tenant_id])
    someone = xero_sandbox.api(
        "PUT",
        "/Contacts",
        tenant_id,
        tokens["access_token"],
        json={"Contacts": [{"Name": "Somebody Else Ltd"}]},
    ).json()["Contacts"][0]
    theirs = xero_sandbox.api(
        "PUT",
        "/Invoices",
        tenant_id,
        tokens["access_token"],
        json={
            "Invoices": [
                {
                    "Type": "ACCREC",
                    "InvoiceNumber": "INV-CLASH",
                    "Contact": {"ContactID": someone["ContactID"]},
                    "LineItems": [{"Description": "Their work", "Quantity": 1, "UnitAmount": 5}],
                }
            ]
        },
    ).json()["Invoices"][0]
    invoice = sent_invoice(account, number="INV-CLASH", contact=ContactFactory(account=account))
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    assert job.state == SyncJob.State.FAILED
    assert "Xero already has invoice number INV-CLASH" in job.error
    assert theirs["InvoiceID"] in job.error
    (kept,) = [
        i for i in xero_invoices(xero_sandbox, tenant_id) if i["InvoiceNumber"] == "INV-CLASH"
    ]
    assert kept["InvoiceID"] == theirs["InvoiceID"]
    assert kept["Contact"]["ContactID"] == someone["ContactID"]
    assert (
        Decimal(str(kept["Total"])) != invoice.total
        or kept["LineItems"][0]["Description"] == "Their work"
    )


def test_an_invoice_voided_after_an_unanswered_create_is_voided_in_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("PUT", "/api.xro/2.0/Invoices", "lost_response", count=4)
    invoice = sent_invoice(account)
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    assert job.state == SyncJob.State.WAITING and job.ambiguous
    assert len(xero_invoices(xero_sandbox, tenant_id)) == 1  # made, but the answer was lost
    xero_sandbox.clear_faults()
    invoice.status = Invoice.Status.VOID
    invoice.save()
    SyncJob.objects.filter(pk=job.pk).update(not_before=timezone.now())
    outbox.sweep()
    (xero,) = xero_invoices(xero_sandbox, tenant_id)
    # The unanswered create was of the draft (the send waited behind it): a draft in Xero is
    # deleted rather than voided.
    assert xero["Status"] == "DELETED"
    assert SyncJob.objects.get(pk=job.pk).state == SyncJob.State.DONE


def test_a_job_waiting_for_a_reconnect_runs_once_connected(xero_sandbox, connected, monkeypatch):
    tenant_id, account, connection = connected
    invoice = sent_invoice(account)
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    SyncJob.objects.filter(pk=job.pk).update(state=SyncJob.State.WAITING, not_before=None)
    assert outbox.sweep() == 1
    assert SyncJob.objects.get(pk=job.pk).state == SyncJob.State.DONE


def test_retry_uses_new_idempotency_keys(xero_sandbox, connected):
    """After staff fix something in Xero, Retry sends the write under a new key: Xero would
    replay its earlier refusal for the old one."""
    from tests.integration.invoicing import XeroUser

    tenant_id, account, _ = connected
    person = XeroUser(xero_sandbox, tenant_id)
    (someone,) = xero_sandbox.edit_contacts(tenant_id, [{"Name": "Somebody Else Ltd"}])
    theirs = person.create_invoice(
        InvoiceNumber="INV-KEY",
        Contact={"ContactID": someone},
        LineItems=[
            {"Description": "Typed in Xero", "Quantity": 1, "UnitAmount": 5, "AccountCode": "200"}
        ],
    )
    invoice = sent_invoice(account, number="INV-KEY")
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    assert job.state == SyncJob.State.FAILED

    person.edit_invoice(theirs["InvoiceID"], Status="DELETED")  # staff free the number in Xero
    outbox.retry(SyncJob.objects.filter(pk=job.pk))

    assert SyncJob.objects.get(pk=job.pk).state == SyncJob.State.DONE
    creates = [
        r
        for r in xero_sandbox.requests(tenant_id)
        if r["method"] == "PUT" and r["path"].endswith("/Invoices")
    ]
    *refused, after_retry = [r["idempotency_key"] for r in creates]
    assert refused and after_retry not in refused
    numbers = [i["InvoiceNumber"] for i in xero_invoices(xero_sandbox, tenant_id)]
    assert numbers.count("INV-KEY") == 2  # theirs (deleted) and ours
