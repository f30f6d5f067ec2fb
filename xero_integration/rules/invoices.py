"""Invoice rules: what Xero must receive for a CRM invoice, and which calls a change needs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from xero_integration.data import HostInvoice, HostPayment, HostTax, InvoiceStatus

#: Xero keeps line descriptions to 4,000 characters.
DESCRIPTION_MAX = 4000
INVOICE_NUMBER_MAX = 255
REFERENCE_MAX = 255
FOUR_PLACES = Decimal("0.0001")
CENT = Decimal("0.01")


class InvoiceNotSendable(ValueError):
    """The CRM invoice cannot go to Xero as it is; the message says which field and why."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def four(value: Decimal) -> Decimal:
    return Decimal(value).quantize(FOUR_PLACES, rounding=ROUND_HALF_UP)


def cents(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def xero_status(status: InvoiceStatus) -> str:
    """The Xero status a CRM status asks for (PAID comes from payments, never sent)."""
    if status == InvoiceStatus.DRAFT:
        return "DRAFT"
    if status == InvoiceStatus.VOID:
        return "VOIDED"
    return "AUTHORISED"


def goes_to_xero(invoice: HostInvoice, sync_drafts: bool, in_xero: bool = False) -> bool:
    """Whether the invoice is written to Xero (created or updated): never a void one (a void
    removes it there), and a draft only when drafts are synced or Xero already has it."""
    if invoice.status == InvoiceStatus.VOID:
        return False
    return invoice.status != InvoiceStatus.DRAFT or sync_drafts or in_xero


def line_description(item_name: str, description: str) -> str:
    """Xero lines have one description: the item name, then the CRM's description."""
    item_name, description = item_name.strip(), description.strip()
    if item_name and description and description != item_name:
        return f"{item_name}\n{description}"
    return item_name or description


def check_sendable(invoice: HostInvoice) -> None:
    """Refuse, before any call, what Xero would refuse for the CRM's data alone."""
    if not invoice.number.strip():
        raise InvoiceNotSendable("The invoice has no number.", "number")
    if len(invoice.number) > INVOICE_NUMBER_MAX:
        raise InvoiceNotSendable("Xero allows invoice numbers of 255 characters.", "number")
    if not invoice.lines:
        raise InvoiceNotSendable("Xero needs at least one line on an invoice.", "lines")
    if invoice.status != InvoiceStatus.DRAFT and invoice.due_date is None:
        raise InvoiceNotSendable("Xero needs a due date to approve an invoice.", "due_date")
    for number, line in enumerate(invoice.lines, start=1):
        text = line_description(line.item_name, line.description)
        if not text:
            raise InvoiceNotSendable(
                f"Line {number} needs an item name or a description.", f"lines[{number}]"
            )
        if len(text) > DESCRIPTION_MAX:
            raise InvoiceNotSendable(
                f"Line {number}: Xero allows {DESCRIPTION_MAX:,} characters for the item name "
                f"and description together; this line has {len(text):,}.",
                f"lines[{number}].description",
            )


def tax_signature(components: list[tuple[Decimal, bool]]) -> tuple[tuple[str, bool], ...]:
    """Components compared as Xero stores them (4 dp rates, compound flags), in order."""
    return tuple((str(four(rate)), bool(compound)) for rate, compound in components)


def host_tax_signature(tax: HostTax) -> tuple[tuple[str, bool], ...]:
    return tax_signature([(c.rate, c.compound) for c in tax.components])


def xero_tax_signature(rate: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    return tax_signature(
        [
            (Decimal(str(c.get("Rate", 0))), bool(c.get("IsCompound")))
            for c in rate.get("TaxComponents") or []
        ]
    )


#: The "no tax" rates Xero itself uses for untaxed sales, by country, in order of preference;
#: elsewhere ``NONE``. Australia has no ``NONE``: GST-free income, else BAS excluded.
UNTAXED_TAX_TYPES = {"AU": ("EXEMPTOUTPUT", "BASEXCLUDED")}
UNTAXED_NAMES = ("no gst", "no vat", "no tax", "tax exempt", "gst free", "exempt")


def _revenue_rates(rates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in rates
        if r.get("Status") == "ACTIVE" and r.get("CanApplyToRevenue", True) is not False
    ]


def _rate_of(rate: dict[str, Any]) -> Decimal:
    try:
        return four(Decimal(str(rate["EffectiveRate"])))
    except (KeyError, ArithmeticError):
        return effective_rate([(Decimal(r), c) for r, c in xero_tax_signature(rate)])


def untaxed_rate(rates: list[dict[str, Any]], country_code: str) -> dict[str, Any] | None:
    """The organisation's own rate for lines without a tax: the 0% revenue rate Xero uses for
    "no tax" in its country (``NONE``; in Australia ``EXEMPTOUTPUT``, else ``BASEXCLUDED``),
    else a 0% rate named as such ("No GST", "Tax Exempt"...). Never a zero-rated export rate,
    which a tax return reports differently."""
    zero = [r for r in _revenue_rates(rates) if _rate_of(r) == 0]
    by_type = {str(r.get("TaxType")): r for r in zero}
    for tax_type in (*UNTAXED_TAX_TYPES.get(country_code.upper(), ()), "NONE"):
        if tax_type in by_type:
            return by_type[tax_type]
    for rate in zero:
        name = str(rate.get("Name", "")).strip().lower()
        if any(name.startswith(word) for word in UNTAXED_NAMES):
            return rate
    return None


def match_tax_rate(
    tax: HostTax, rates: list[dict[str, Any]], untaxed: str = ""
) -> dict[str, Any] | None:
    """An ACTIVE Xero tax rate for a CRM tax: same components (rates and compound flags), else
    the same name. Rates that cannot apply to revenue are skipped. A CRM tax of 0% is the
    Xero 0% rate of its name, else the organisation's untaxed rate (``untaxed``): among
    several 0% rates, the components say nothing."""
    usable = _revenue_rates(rates)
    if effective_rate([(c.rate, c.compound) for c in tax.components]) == 0:
        zero = [r for r in usable if _rate_of(r) == 0]
        named = [r for r in zero if _same_name(r, tax.name)]
        chosen = named or [r for r in zero if r.get("TaxType") == untaxed]
        return chosen[0] if chosen else None
    wanted = host_tax_signature(tax)
    by_components = [r for r in usable if xero_tax_signature(r) == wanted]
    if by_components:
        same_name = [r for r in by_components if r.get("Name", "").lower() == tax.name.lower()]
        return (same_name or by_components)[0]
    # By name only when the rate also comes out the same (the same tax written as components
    # one way in the CRM and another in Xero); a same-named rate of another size is not it.
    wanted_rate = effective_rate([(c.rate, c.compound) for c in tax.components])
    for rate in usable:
        if _same_name(rate, tax.name) and _rate_of(rate) == wanted_rate:
            return rate
    return None


def _same_name(rate: dict[str, Any], name: str) -> bool:
    return str(rate.get("Name", "")).strip().lower() == name.strip().lower()


def distinct_tax_name(tax: HostTax) -> str:
    """A tax rate name that says its rate, for when Xero has the plain name already."""
    rate = effective_rate([(c.rate, c.compound) for c in tax.components]).normalize()
    suffix = f" ({rate:f}%)"
    return tax.name[: 50 - len(suffix)] + suffix


def effective_rate(components: list[tuple[Decimal, bool]]) -> Decimal:
    """The overall rate of components: compound ones apply on top of the simple ones."""
    simple = sum((Decimal(rate) for rate, compound in components if not compound), Decimal(0))
    on_top = sum(
        (Decimal(rate) * (100 + simple) / 100 for rate, compound in components if compound),
        Decimal(0),
    )
    return four(simple + on_top)


REPORT_TAX_TYPES = {"AU": "OUTPUT", "NZ": "OUTPUT", "GB": "OUTPUT", "UK": "OUTPUT"}


def new_tax_rate(tax: HostTax, country_code: str) -> dict[str, Any]:
    """The tax rate to create for a CRM tax that matches none of the organisation's."""
    rate: dict[str, Any] = {
        "Name": tax.name[:50],
        "TaxComponents": [
            {
                "Name": c.name[:50] or tax.name[:50],
                "Rate": str(four(c.rate)),
                "IsCompound": c.compound,
            }
            for c in tax.components
        ],
    }
    report = REPORT_TAX_TYPES.get(country_code.upper())
    if report:
        rate["ReportTaxType"] = report
    return rate


def invoice_payload(
    invoice: HostInvoice,
    contact_id: str,
    revenue_account_code: str,
    tax_types: dict[str, str],
    untaxed_tax_type: str = "NONE",
) -> dict[str, Any]:
    """The Xero invoice for a CRM invoice (amounts as strings, 4 dp unit prices)."""
    lines = []
    for line in invoice.lines:
        item: dict[str, Any] = {
            "Description": line_description(line.item_name, line.description),
            "Quantity": str(four(line.quantity)),
            "UnitAmount": str(four(line.unit_price)),
            "AccountCode": revenue_account_code,
            "TaxType": tax_types[line.tax.host_id] if line.tax else untaxed_tax_type,
        }
        if line.discount_percent:
            item["DiscountRate"] = str(cents(line.discount_percent))
        elif line.discount_amount:
            item["DiscountAmount"] = str(cents(line.discount_amount))
        lines.append(item)
    status = xero_status(invoice.status)
    payload: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "InvoiceNumber": invoice.number,
        "Reference": invoice.reference[:REFERENCE_MAX],
        "Date": invoice.issue_date.isoformat(),
        "CurrencyCode": invoice.currency,
        "LineAmountTypes": "Inclusive" if invoice.tax_inclusive else "Exclusive",
        "LineItems": lines,
        "Status": status,
    }
    if invoice.due_date:
        payload["DueDate"] = invoice.due_date.isoformat()
    if status == "AUTHORISED":
        payload["SentToContact"] = True
    return payload


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PaymentPlan:
    """What to do with payments: Xero payments to delete (by PaymentID) and CRM payments to
    create."""

    delete: tuple[str, ...]
    create: tuple[HostPayment, ...]


def plan_payments(
    wanted: tuple[HostPayment, ...], linked: dict[tuple[str, str], dict[str, Any]]
) -> PaymentPlan:
    """Compare the CRM's payments with those pushed before.

    ``linked`` maps (host_model, host_id) to the pushed payment (``xero_payment_id``,
    ``amount``, ``date``, ``reference``). A changed payment is deleted and made again: Xero
    accepts only a status change on a payment.
    """
    keep: set[tuple[str, str]] = set()
    create = []
    for payment in wanted:
        key = (payment.host_model, payment.host_id)
        pushed = linked.get(key)
        if (
            pushed
            and cents(pushed["amount"]) == cents(payment.amount)
            and pushed["date"] == payment.date
            and (pushed.get("reference") or "") == (payment.reference or "")[:255]
        ):
            keep.add(key)
        else:
            create.append(payment)
    delete = tuple(pushed["xero_payment_id"] for key, pushed in linked.items() if key not in keep)
    return PaymentPlan(delete=delete, create=tuple(create))


def payment_payload(payment: HostPayment, invoice_id: str, account_id: str) -> dict[str, Any]:
    return {
        "Invoice": {"InvoiceID": invoice_id},
        "Account": {"AccountID": account_id},
        "Date": payment.date.isoformat(),
        "Amount": str(cents(payment.amount)),
        "Reference": (payment.reference or "")[:255],
    }


def same_payment(xero_payment: dict[str, Any], payment: HostPayment) -> bool:
    """Whether a payment Xero holds is this CRM payment (for reconciling after a lost answer)."""
    from xero_integration.xero.wire import parse_date

    try:
        amount = cents(Decimal(str(xero_payment.get("Amount"))))
    except ArithmeticError:
        return False
    return (
        amount == cents(payment.amount)
        and parse_date(xero_payment.get("Date")) == payment.date
        and (xero_payment.get("Reference") or "") == (payment.reference or "")[:255]
        and xero_payment.get("Status", "AUTHORISED") != "DELETED"
    )
