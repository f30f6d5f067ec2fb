"""What Xero would refuse, found before any call (rules.preflight): each problem names its field."""

from __future__ import annotations

import datetime
from decimal import Decimal

from xero_integration.data import HostContact, HostInvoice, HostLine, HostPayment, InvoiceStatus
from xero_integration.rules.preflight import InXero, Organisation, lines_fingerprint, problems

READY = Organisation(
    base_currency="NZD",
    currencies=("NZD", "AUD"),
    multicurrency=False,
    revenue_account_code="200",
    payment_account_id="BANK",
)


def invoice(*lines: HostLine, **fields) -> HostInvoice:
    values = {
        "host_model": "crm.invoice",
        "host_id": "1",
        "account_key": "1",
        "number": "INV-1",
        "contact": HostContact("crm.contact", "1", "Acme"),
        "currency": "NZD",
        "issue_date": datetime.date(2026, 11, 1),
        "due_date": datetime.date(2026, 11, 30),
        "tax_inclusive": False,
        "status": InvoiceStatus.SENT,
        "lines": lines or (line(),),
        "total": Decimal("100"),
    }
    values.update(fields)
    return HostInvoice(**values)


def line(quantity: str = "1", price: str = "100", **fields) -> HostLine:
    return HostLine("Work", "", Decimal(quantity), Decimal(price), **fields)


def fields_of(found) -> list[str]:
    return [problem.field for problem in found]


def test_a_ready_invoice_has_no_problems():
    assert problems(invoice(), READY, InXero()) == []


def test_a_negative_total_is_refused_with_what_to_do_instead():
    (problem,) = problems(invoice(line(price="-50"), total=Decimal("-50")), READY)
    assert problem.field == "total" and "credit note" in problem.message


def test_a_discount_larger_than_its_line():
    found = problems(
        invoice(
            line(price="40", discount_amount=Decimal("45")),
            line(price="10", discount_percent=Decimal("120")),
        ),
        READY,
    )
    assert fields_of(found) == ["lines[1].discount", "lines[2].discount"]
    assert "45.00 is larger than the line (40.00)" in found[0].message


def test_a_description_over_4000_characters_and_an_empty_line():
    found = problems(
        invoice(HostLine("", "x" * 4001, Decimal(1), Decimal(1)), HostLine("", "", Decimal(1), 1))
    )
    assert fields_of(found) == ["lines[1].description", "lines[2]"]


def test_a_date_inside_the_lock_date():
    locked = Organisation(**{**READY.__dict__, "lock_date": datetime.date(2026, 11, 1)})
    (problem,) = problems(invoice(), locked)
    assert problem.field == "issue_date" and "01 Nov 2026" in problem.message


def test_a_currency_the_plan_cannot_take_but_one_already_added_is_fine():
    (problem,) = problems(invoice(currency="USD"), READY)
    assert problem.field == "currency" and "multi-currency" in problem.message
    assert problems(invoice(currency="AUD"), READY) == []
    allowed = Organisation(**{**READY.__dict__, "multicurrency": True})
    assert problems(invoice(currency="USD"), allowed) == []


def test_missing_default_accounts():
    bare = Organisation(base_currency="NZD")
    paid = invoice(payments=(HostPayment("crm.payment", "1", Decimal(10), datetime.date.today()),))
    assert fields_of(problems(paid, bare)) == ["revenue_account_code", "payment_account_id"]


def test_a_line_edit_of_an_invoice_paid_in_xero():
    sent = invoice()
    paid = InXero(exists=True, has_payments=True, lines_fingerprint=lines_fingerprint(sent))
    assert problems(sent, READY, paid) == []
    edited = invoice(line(quantity="2"))
    (problem,) = problems(edited, READY, paid)
    assert problem.field == "lines" and "payments" in problem.message
    unpaid = InXero(exists=True, has_payments=False, lines_fingerprint=lines_fingerprint(sent))
    assert problems(edited, READY, unpaid) == []
