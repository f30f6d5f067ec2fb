"""What one run must do with an invoice and its payments in Xero, decided from plain values.

The executor (``xero_integration.invoices``) reads the CRM's invoice, our records of what was
sent to this organisation (links) and, when needed, Xero's copy, then asks these functions what
to do. Three rules run through them:

- Xero is the other ledger: people work in it too. We only change what we wrote; an invoice
  or payment Xero holds is taken as ours only when our own records prove it (a create sent
  without an answer, and Xero's copy matching what was sent).
- Every write whose answer was lost is settled from Xero's side before anything is sent again.
- Money is compared to the cent: a difference that no change in Xero explains is drift.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from xero_integration.data import HostInvoice, HostPayment, InvoiceStatus
from xero_integration.rules.invoices import cents, four, goes_to_xero
from xero_integration.xero.wire import parse_date

#: Payment link states (mirrors ``PaymentLink.State``; the rules take plain strings).
SENDING, LINKED, DELETING, DELETED = "sending", "linked", "deleting", "deleted"
#: Who made a payment in Xero (mirrors ``PaymentLink.Origin``).
FROM_CRM, FROM_XERO = "crm", "xero"


# ---- invoices -------------------------------------------------------------------------------


class Step(StrEnum):
    """What a run does with an invoice in Xero."""

    WRITE = "write"  # create it, or update it, then its payments
    REMOVE = "remove"  # void it (delete a draft) once any unanswered create is settled
    REFUSE = "refuse"  # someone voided or deleted it in Xero: staff decide
    NOTHING = "nothing"


@dataclass(frozen=True)
class InvoiceStep:
    step: Step
    why: str = ""


def invoice_step(
    invoice: HostInvoice | None,
    deleted_in_crm: bool,
    in_xero: bool,
    removed_in_xero: bool,
    sync_drafts: bool,
) -> InvoiceStep:
    """The step for a CRM invoice (None: not for Xero, says the host), given whether Xero has
    our copy (``in_xero``) and whether someone voided or deleted it there."""
    if deleted_in_crm:
        return InvoiceStep(Step.REMOVE, "The invoice was deleted in the CRM.")
    if invoice is None:
        return InvoiceStep(Step.NOTHING)
    if invoice.status == InvoiceStatus.VOID:
        return InvoiceStep(Step.REMOVE, "The invoice was voided in the CRM.")
    if not goes_to_xero(invoice, sync_drafts, in_xero=in_xero):
        return InvoiceStep(Step.NOTHING)
    if in_xero and removed_in_xero:
        return InvoiceStep(Step.REFUSE)
    return InvoiceStep(Step.WRITE)


def invoice_fingerprint(invoice: dict[str, Any]) -> str:
    """What identifies an invoice as the one we sent: contact, number, currency, date, amounts
    type and every line. Works on a payload we send and on Xero's copy of it alike."""
    lines = []
    for line in invoice.get("LineItems") or []:
        lines.append(
            [
                str(line.get("Description") or "").strip(),
                _four(line.get("Quantity")),
                _four(line.get("UnitAmount")),
                str(line.get("AccountCode") or ""),
                str(line.get("TaxType") or ""),
                _cents(line.get("DiscountRate")),
                _cents(line.get("DiscountAmount")),
            ]
        )
    parts = [
        str((invoice.get("Contact") or {}).get("ContactID") or ""),
        str(invoice.get("InvoiceNumber") or "").strip().lower(),
        str(invoice.get("CurrencyCode") or "").upper(),
        str(parse_date(invoice.get("Date")) or ""),
        str(invoice.get("LineAmountTypes") or "Exclusive"),
        lines,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _four(value: Any) -> str:
    try:
        return str(four(Decimal(str(value)))) if value not in (None, "") else ""
    except InvalidOperation:
        return str(value)


def _cents(value: Any) -> str:
    try:
        amount = cents(Decimal(str(value))) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return str(value)
    return str(amount) if amount else ""


@dataclass(frozen=True)
class Found:
    """What to make of an invoice Xero already holds under the number we want."""

    adopt: dict[str, Any] | None = None
    conflict: dict[str, Any] | None = None


def settle_existing_number(
    found: Sequence[dict[str, Any]], number: str, unanswered_creates: Sequence[str]
) -> Found:
    """Among Xero's invoices of this number (any contact, any status), the one an unanswered
    create of ours made, if our records prove it; otherwise the one standing in the way.

    A deleted invoice no longer holds its number. Without an unanswered create on record there
    is nothing to prove: the invoice is someone else's, typed in Xero or sent by another CRM
    invoice of the same number.
    """
    wanted = number.strip().lower()
    same_number = [
        invoice
        for invoice in found
        if invoice.get("Type", "ACCREC") == "ACCREC"
        and invoice.get("Status") != "DELETED"
        and str(invoice.get("InvoiceNumber") or "").strip().lower() == wanted
    ]
    proofs = set(unanswered_creates)
    for invoice in same_number:
        if invoice_fingerprint(invoice) in proofs:
            return Found(adopt=invoice)
    return Found(conflict=same_number[0] if same_number else None)


def describe_xero_invoice(invoice: dict[str, Any]) -> str:
    """ "INV-7 for Acme Ltd (AUTHORISED, total 115.00, InvoiceID …)", for messages to staff."""
    contact = (invoice.get("Contact") or {}).get("Name") or "another contact"
    total = invoice.get("Total")
    amount = f", total {cents(Decimal(str(total)))}" if total not in (None, "") else ""
    return (
        f"{invoice.get('InvoiceNumber') or 'an invoice'} for {contact} "
        f"({invoice.get('Status') or 'unknown status'}{amount}, InvoiceID "
        f"{invoice.get('InvoiceID') or '?'})"
    )


def number_taken_message(number: str, conflict: dict[str, Any]) -> str:
    return (
        f"Xero already has invoice number {number}: {describe_xero_invoice(conflict)}. It was "
        "not sent by this CRM invoice, so it is left as it is. Either give the CRM invoice "
        "another number, or, if that Xero invoice is this one, choose “Link to the invoice "
        "already in Xero” on the sync job in admin; then retry."
    )


def removed_in_xero_message(status: str, crm_change: str = "changed") -> str:
    what = "deleted" if status == "DELETED" else "voided"
    if status == "DELETED":
        remedy = (
            "To send it to Xero again as a new invoice, choose “Send again as a new Xero "
            "invoice” on its sync job in admin."
        )
    else:
        remedy = (
            "Xero keeps a voided invoice's number: create a new invoice in the CRM with another "
            "number."
        )
    return (
        f"This invoice was {what} in Xero, so Xero accepts no change to it; it was {crm_change} "
        f"in the CRM since. {remedy}"
    )


# ---- payments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRecord:
    """A payment link as the rules see it."""

    host_model: str
    host_id: str
    xero_payment_id: str
    state: str
    origin: str
    amount: Decimal
    date: datetime.date
    reference: str = ""
    account_id: str = ""

    @property
    def host_key(self) -> tuple[str, str]:
        return (self.host_model, self.host_id)

    def same_as(self, payment: HostPayment) -> bool:
        return (
            cents(self.amount) == cents(payment.amount)
            and self.date == payment.date
            and (self.reference or "") == (payment.reference or "")[:255]
        )


@dataclass(frozen=True)
class XeroPayment:
    """A payment on an invoice as Xero holds it."""

    payment_id: str
    amount: Decimal
    date: datetime.date | None
    reference: str = ""
    account_id: str = ""
    status: str = "AUTHORISED"
    is_reconciled: bool = False

    @property
    def active(self) -> bool:
        return self.status != "DELETED"

    def describe(self) -> str:
        reference = f", reference “{self.reference}”" if self.reference else ""
        return f"{cents(self.amount)} on {self.date}{reference}"


def xero_payments(invoice: dict[str, Any]) -> list[XeroPayment]:
    """The payments listed on Xero's copy of an invoice."""
    payments = []
    for item in invoice.get("Payments") or []:
        if not item.get("PaymentID"):
            continue
        try:
            amount = cents(Decimal(str(item.get("Amount"))))
        except InvalidOperation:
            continue
        payments.append(
            XeroPayment(
                payment_id=str(item["PaymentID"]),
                amount=amount,
                date=parse_date(item.get("Date")),
                reference=str(item.get("Reference") or ""),
                account_id=str((item.get("Account") or {}).get("AccountID") or ""),
                status=str(item.get("Status") or "AUTHORISED"),
                is_reconciled=bool(item.get("IsReconciled")),
            )
        )
    return payments


def matches_sent(record: PaymentRecord, payment: XeroPayment) -> bool:
    """Whether a payment in Xero is the one a record says we sent: amount, date, reference,
    and the account when Xero names it."""
    return (
        payment.active
        and cents(payment.amount) == cents(record.amount)
        and payment.date == record.date
        and (payment.reference or "") == (record.reference or "")
        and (
            not payment.account_id
            or not record.account_id
            or payment.account_id == record.account_id
        )
    )


def needs_xero_payments(records: Iterable[PaymentRecord]) -> bool:
    """A payment write went unanswered: read the invoice's payments in Xero before any other
    payment write."""
    return any(record.state in (SENDING, DELETING) for record in records)


@dataclass
class PaymentPlan:
    """The payment work of one run, in the order it is done."""

    #: Unanswered creates Xero did apply: (record, the PaymentID found).
    adopt: list[tuple[PaymentRecord, str]] = field(default_factory=list)
    #: Unanswered creates Xero never applied: their records go.
    forget: list[PaymentRecord] = field(default_factory=list)
    #: Unanswered deletes Xero did apply (or payments already gone from Xero).
    confirm_deleted: list[PaymentRecord] = field(default_factory=list)
    #: Payments of ours to delete in Xero (no longer in the CRM, or changed there).
    delete: list[PaymentRecord] = field(default_factory=list)
    #: CRM payments to create in Xero.
    create: list[HostPayment] = field(default_factory=list)
    #: Why the CRM's payments cannot all be brought to Xero (a payment recorded in Xero that
    #: the CRM changed or removed: only Xero's side may change it).
    refusals: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return bool(self.delete or self.create)


def plan_payments(
    wanted: Sequence[HostPayment],
    records: Sequence[PaymentRecord],
    xero: Sequence[XeroPayment] | None = None,
) -> PaymentPlan:
    """Bring Xero's payments of an invoice to the CRM's, touching only payments we made.

    ``records`` are this organisation's payment links of the invoice; ``xero`` the invoice's
    payments as Xero holds them now, required when a record is SENDING or DELETING (see
    needs_xero_payments). A changed payment is deleted and made again: Xero accepts only a
    status change on a payment.
    """
    plan = PaymentPlan()
    current: list[PaymentRecord] = []
    claimed = {r.xero_payment_id for r in records if r.state in (LINKED, DELETING)}
    by_id = {p.payment_id: p for p in xero or ()}
    for record in records:
        if record.state == SENDING:
            if xero is None:
                raise ValueError("Xero's payments are needed to settle an unanswered create.")
            match = next(
                (p for p in xero if p.payment_id not in claimed and matches_sent(record, p)),
                None,
            )
            if match is None:
                plan.forget.append(record)
                continue
            claimed.add(match.payment_id)
            plan.adopt.append((record, match.payment_id))
            current.append(_linked(record, match.payment_id))
        elif record.state == DELETING:
            if xero is None:
                raise ValueError("Xero's payments are needed to settle an unanswered delete.")
            in_xero = by_id.get(record.xero_payment_id)
            if in_xero is None or not in_xero.active:
                plan.confirm_deleted.append(record)
            else:
                current.append(_linked(record, record.xero_payment_id))
        elif record.state == LINKED:
            if xero is not None and record.xero_payment_id not in by_id:
                # Xero read: a payment gone from the invoice is deleted there already.
                plan.confirm_deleted.append(record)
                continue
            if xero is not None and not by_id[record.xero_payment_id].active:
                plan.confirm_deleted.append(record)
                continue
            current.append(record)
    kept: set[int] = set()
    for payment in wanted:
        same_key = [i for i, r in enumerate(current) if r.host_key == _key(payment)]
        exact = next((i for i in same_key if i not in kept and current[i].same_as(payment)), None)
        if exact is not None:
            kept.add(exact)
            continue
        if any(current[i].origin == FROM_XERO for i in same_key):
            plan.refusals.append(
                f"The payment of {cents(payment.amount)} on {payment.date} was recorded in Xero; "
                "change it in Xero (the CRM follows), not in the CRM."
            )
            kept.update(same_key)
            continue
        plan.create.append(payment)
    for index, record in enumerate(current):
        if index in kept:
            continue
        if record.origin == FROM_XERO:
            plan.refusals.append(
                f"The payment of {cents(record.amount)} on {record.date} was recorded in Xero and "
                "removed in the CRM; remove it in Xero instead (the CRM follows)."
            )
            continue
        plan.delete.append(record)
    return plan


def _key(payment: HostPayment) -> tuple[str, str]:
    return (payment.host_model, payment.host_id)


def _linked(record: PaymentRecord, payment_id: str) -> PaymentRecord:
    return PaymentRecord(
        host_model=record.host_model,
        host_id=record.host_id,
        xero_payment_id=payment_id,
        state=LINKED,
        origin=record.origin,
        amount=record.amount,
        date=record.date,
        reference=record.reference,
        account_id=record.account_id,
    )


def foreign_payments(
    xero: Sequence[XeroPayment], records: Sequence[PaymentRecord]
) -> list[XeroPayment]:
    """Payments on Xero's invoice that we did not make (a person recorded them in Xero)."""
    ours = {r.xero_payment_id for r in records if r.origin == FROM_CRM and r.xero_payment_id}
    return [p for p in xero if p.active and p.payment_id not in ours]


def void_refused_message(foreign: Sequence[XeroPayment]) -> str:
    listed = "; ".join(p.describe() for p in foreign)
    plural = "payments" if len(foreign) > 1 else "a payment"
    return (
        f"Xero has {plural} on this invoice that did not come from the CRM ({listed}). Xero "
        "voids an invoice only once its payments are removed, and payments recorded in Xero "
        "are left to the people who recorded them: remove them in Xero (or refund), then retry."
    )


# ---- Xero's side, back in the CRM -----------------------------------------------------------


def crm_paid(invoice: HostInvoice) -> Decimal:
    return cents(sum((p.amount for p in invoice.payments), Decimal(0)))


def expected_status(invoice: HostInvoice) -> str:
    """The Xero status a CRM invoice should have once everything is in Xero."""
    if invoice.status == InvoiceStatus.DRAFT:
        return "DRAFT"
    if invoice.status == InvoiceStatus.VOID:
        return "VOIDED"
    total = cents(invoice.total)
    if total > 0 and crm_paid(invoice) >= total:
        return "PAID"
    return "AUTHORISED"


def drift(
    invoice: HostInvoice,
    xero_status: str,
    xero_total: Decimal | None,
    xero_paid: Decimal | None,
) -> str:
    """What differs between the CRM's invoice and Xero's copy once nothing is waiting to be
    sent; empty when they agree. Xero's own changes (payments recorded there) are already in
    the CRM by the time this is asked, so what is left is unexplained."""
    problems = []
    if xero_total is not None and cents(invoice.total) != cents(xero_total):
        problems.append(f"total: CRM {cents(invoice.total)}, Xero {cents(xero_total)}")
    if xero_paid is not None and crm_paid(invoice) != cents(xero_paid):
        problems.append(f"amount paid: CRM {crm_paid(invoice)}, Xero {cents(xero_paid)}")
    wanted = expected_status(invoice)
    if (
        xero_status
        and xero_status != wanted
        and not (wanted == "VOIDED" and xero_status == "DELETED")
    ):
        problems.append(f"status: CRM {invoice.status.value}, Xero {xero_status}")
    return "; ".join(problems)
