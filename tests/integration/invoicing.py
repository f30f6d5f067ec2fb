"""What the invoice-sync tests share: CRM invoices and payments made as the demo CRM makes
them, a look at the sync job and links, and a person working in Xero beside the CRM."""

from __future__ import annotations

import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from crm_demo.crm.models import Invoice, Payment
from tests.factories import InvoiceFactory, InvoiceLineFactory, PaymentFactory
from xero_integration import invoices, services
from xero_integration.models import InvoiceLink, PaymentLink, SyncJob

API = "/api.xro/2.0"
ISSUED = datetime.date(2026, 11, 1)
PAID_ON = datetime.date(2026, 11, 5)


def make_invoice(
    account: Any,
    lines: list[dict[str, Any]] | None = None,
    status: str = Invoice.Status.SENT,
    **fields: Any,
) -> Invoice:
    """An invoice with its lines, saved in one transaction: one push after the commit."""
    with transaction.atomic():
        invoice = InvoiceFactory(account=account, status=status, **fields)
        for position, line in enumerate(lines or [{}]):
            InvoiceLineFactory(invoice=invoice, position=position, **line)
        invoice.recalculate()
    return invoice


def pay(invoice: Invoice, amount: str, date: datetime.date = PAID_ON, **fields: Any) -> Payment:
    with transaction.atomic():
        payment = PaymentFactory(invoice=invoice, amount=Decimal(amount), date=date, **fields)
        invoice.recalculate()
    return payment


def unpay(payment: Payment) -> None:
    """Remove a payment in the CRM, as its Remove button does."""
    with transaction.atomic():
        invoice = payment.invoice
        payment.delete()
        invoice.recalculate()


def void(invoice: Invoice) -> None:
    with transaction.atomic():
        invoice.status = Invoice.Status.VOID
        invoice.save()


def job_of(invoice: Invoice) -> SyncJob:
    return SyncJob.objects.get(host_model="crm.invoice", host_id=str(invoice.pk))


def link_of(invoice: Invoice, tenant_id: str | None = None) -> InvoiceLink:
    links = InvoiceLink.objects.filter(host_model="crm.invoice", host_id=str(invoice.pk))
    if tenant_id is not None:
        links = links.filter(tenant_id=tenant_id)
    return links.get()


def payment_links(invoice: Invoice) -> list[PaymentLink]:
    return list(PaymentLink.objects.filter(invoice_host_id=str(invoice.pk)).order_by("pk"))


def assert_done(invoice: Invoice) -> SyncJob:
    job = job_of(invoice)
    assert job.state == SyncJob.State.DONE, (job.state, job.error)
    return job


def run_due(account: Any) -> None:
    """Run every job of the account as if its wait were over (the sweeper's next round)."""
    SyncJob.objects.filter(account_key=str(account.pk)).exclude(
        state__in=(SyncJob.State.DONE, SyncJob.State.FAILED, SyncJob.State.RESOLVED)
    ).update(not_before=timezone.now() - timedelta(seconds=1))
    while invoices.run_batch(str(account.pk)):
        SyncJob.objects.filter(account_key=str(account.pk), state=SyncJob.State.WAITING).update(
            not_before=timezone.now() + timedelta(hours=1)
        )


def rerun(invoice: Invoice) -> None:
    """Run a job that waits for its time, as if that time had come (and with it the end of
    any pause Xero's rate limit put on the organisation)."""
    SyncJob.objects.filter(host_id=str(invoice.pk)).update(
        not_before=timezone.now() - timedelta(seconds=1)
    )
    services.reset_limiter()
    invoices.run(str(invoice.account_id), "crm.invoice", str(invoice.pk))


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def xero_invoice(sandbox: Any, tenant_id: str, number: str) -> dict[str, Any]:
    (found,) = [
        i
        for i in sandbox.organisation_state(tenant_id)["invoices"]
        if i["InvoiceNumber"] == number and i["Status"] != "DELETED"
    ]
    return found


def live_payments(sandbox: Any, tenant_id: str, invoice_id: str | None = None) -> list[dict]:
    """The payments Xero holds (not deleted), of one invoice when ``invoice_id`` is given."""
    return [
        p
        for p in sandbox.organisation_state(tenant_id)["payments"]
        if p.get("Status") != "DELETED"
        and (invoice_id is None or p["Invoice"]["InvoiceID"] == invoice_id)
    ]


class XeroUser:
    """A person working in the organisation in Xero itself: typing invoices, recording
    payments from the bank feed, voiding and deleting. Goes through the sandbox's control
    API, which fires the webhook events Xero would."""

    def __init__(self, sandbox: Any, tenant_id: str) -> None:
        self.sandbox = sandbox
        self.tenant_id = tenant_id

    def bank_account_id(self) -> str:
        state = self.sandbox.organisation_state(self.tenant_id)
        return next(a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK")

    def create_invoice(self, **invoice: Any) -> dict[str, Any]:
        (created,) = self.sandbox.xero_user_invoices(
            self.tenant_id, [{"Type": "ACCREC", **invoice}]
        )
        return created

    def edit_invoice(self, invoice_id: str, **changes: Any) -> dict[str, Any]:
        (edited,) = self.sandbox.xero_user_invoices(
            self.tenant_id, [{"InvoiceID": invoice_id, **changes}]
        )
        return edited

    def pay(
        self,
        invoice_id: str,
        amount: str,
        date: datetime.date = PAID_ON,
        reference: str = "Bank feed",
        reconciled: bool = False,
    ) -> dict[str, Any]:
        (payment,) = self.sandbox.xero_user_payments(
            self.tenant_id,
            [
                {
                    "Invoice": {"InvoiceID": invoice_id},
                    "Account": {"AccountID": self.bank_account_id()},
                    "Date": date.isoformat(),
                    "Amount": amount,
                    "Reference": reference,
                    "IsReconciled": reconciled,
                }
            ],
        )
        return payment

    def delete_payment(self, payment_id: str) -> None:
        self.sandbox.xero_user_delete_payment(self.tenant_id, payment_id)
