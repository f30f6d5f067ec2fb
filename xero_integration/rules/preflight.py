"""What Xero would refuse in an invoice, found before any call: from the CRM's invoice and what
is already known of the organisation (no network). Each problem names the field and says, in
plain words, what to change."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from xero_integration.data import HostInvoice, InvoiceStatus
from xero_integration.rules.invoices import (
    DESCRIPTION_MAX,
    INVOICE_NUMBER_MAX,
    cents,
    four,
    line_description,
)


@dataclass(frozen=True)
class Problem:
    """One thing Xero would refuse: the field (``lines[2].discount``...) and what to do."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.field, "message": self.message}


@dataclass(frozen=True)
class Organisation:
    """What the integration knows of the connected organisation, read when it connected."""

    base_currency: str = ""
    currencies: tuple[str, ...] = ()
    multicurrency: bool | None = None
    lock_date: datetime.date | None = None
    revenue_account_code: str = ""
    payment_account_id: str = ""


@dataclass(frozen=True)
class InXero:
    """What Xero holds of this invoice already, as last known."""

    exists: bool = False
    has_payments: bool = False
    lines_fingerprint: str = ""


def lines_fingerprint(invoice: HostInvoice) -> str:
    """The lines as Xero sees them (amounts to its precision), to tell a line edit."""
    lines = [
        [
            line_description(line.item_name, line.description),
            str(four(line.quantity)),
            str(four(line.unit_price)),
            str(cents(line.discount_percent or Decimal(0))),
            str(cents(line.discount_amount or Decimal(0))),
            line.tax.host_id if line.tax else "",
        ]
        for line in invoice.lines
    ]
    payload = [lines, invoice.tax_inclusive, invoice.currency]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def problems(
    invoice: HostInvoice, organisation: Organisation | None = None, in_xero: InXero | None = None
) -> list[Problem]:
    """Everything Xero would refuse in ``invoice``, in the order a person would fix it."""
    found: list[Problem] = []
    number = invoice.number.strip()
    if not number:
        found.append(Problem("number", "The invoice has no number; Xero needs one."))
    elif len(invoice.number) > INVOICE_NUMBER_MAX:
        found.append(
            Problem("number", f"Xero allows invoice numbers of {INVOICE_NUMBER_MAX} characters.")
        )
    if not invoice.lines:
        found.append(Problem("lines", "Xero needs at least one line on an invoice."))
    if invoice.status != InvoiceStatus.DRAFT and invoice.due_date is None:
        found.append(Problem("due_date", "Xero needs a due date to approve an invoice."))
    for position, line in enumerate(invoice.lines, start=1):
        where = f"lines[{position}]"
        text = line_description(line.item_name, line.description)
        if not text:
            found.append(Problem(where, f"Line {position} needs an item name or a description."))
        elif len(text) > DESCRIPTION_MAX:
            found.append(
                Problem(
                    f"{where}.description",
                    f"Line {position}: Xero allows {DESCRIPTION_MAX:,} characters for the item "
                    f"name and description together; this line has {len(text):,}.",
                )
            )
        gross = cents(line.quantity * line.unit_price)
        if line.discount_percent is not None and not 0 <= line.discount_percent <= 100:
            found.append(
                Problem(
                    f"{where}.discount",
                    f"Line {position}: a discount of {line.discount_percent}% is not between 0% "
                    "and 100%.",
                )
            )
        if line.discount_amount and abs(line.discount_amount) > abs(gross):
            found.append(
                Problem(
                    f"{where}.discount",
                    f"Line {position}: the discount {cents(line.discount_amount)} is larger "
                    f"than the line ({gross}); Xero refuses it.",
                )
            )
    if invoice.total < 0:
        found.append(
            Problem(
                "total",
                f"The total is {cents(invoice.total)}; Xero refuses an invoice below zero "
                "(record a credit note in Xero instead).",
            )
        )
    if organisation is not None:
        found += _against_the_organisation(invoice, organisation)
    if (
        in_xero is not None
        and in_xero.exists
        and in_xero.has_payments
        and in_xero.lines_fingerprint
        and in_xero.lines_fingerprint != lines_fingerprint(invoice)
    ):
        found.append(
            Problem(
                "lines",
                "Xero has payments on this invoice and refuses changes to its lines: remove "
                "the payments first, or put the lines back as they were.",
            )
        )
    return found


def _against_the_organisation(invoice: HostInvoice, organisation: Organisation) -> list[Problem]:
    found = []
    if not organisation.revenue_account_code:
        found.append(
            Problem(
                "revenue_account_code",
                "Choose the revenue account for invoice lines in Settings → Integrations → Xero.",
            )
        )
    if invoice.payments and not organisation.payment_account_id:
        found.append(
            Problem(
                "payment_account_id",
                "Choose the account payments go to in Settings → Integrations → Xero.",
            )
        )
    lock = organisation.lock_date
    if lock is not None and invoice.issue_date <= lock:
        found.append(
            Problem(
                "issue_date",
                f"The invoice date {invoice.issue_date:%d %b %Y} is on or before Xero's lock "
                f"date ({lock:%d %b %Y}); Xero refuses it. Date it after the lock date, or ask "
                "your accountant to move the lock date.",
            )
        )
    currency = invoice.currency.upper()
    if (
        organisation.base_currency
        and currency != organisation.base_currency
        and currency not in organisation.currencies
        and organisation.multicurrency is False
    ):
        found.append(
            Problem(
                "currency",
                f"The organisation's Xero plan has no multi-currency, so it takes invoices in "
                f"{organisation.base_currency} only, not {currency}.",
            )
        )
    return found
