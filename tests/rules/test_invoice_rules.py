"""The pure invoice rules: the Xero invoice for a CRM invoice, what cannot be sent, which Xero
tax rate a CRM tax is (or the one to create), and which payment calls a change needs."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from xero_integration.data import (
    HostContact,
    HostInvoice,
    HostLine,
    HostPayment,
    HostTax,
    HostTaxComponent,
    InvoiceStatus,
)
from xero_integration.rules import invoices as rules
from xero_integration.sandbox.seed import tax_rates_for

ISSUED = datetime.date(2026, 11, 1)
DUE = datetime.date(2026, 11, 21)


def tax(name: str, *components: tuple[str, str, bool], host_id: str = "7") -> HostTax:
    return HostTax(
        host_id=host_id,
        name=name,
        components=tuple(
            HostTaxComponent(name=n, rate=Decimal(rate), compound=compound)
            for n, rate, compound in components
        ),
    )


GST = tax("GST 15%", ("GST", "15", False))


def line(**overrides: Any) -> HostLine:
    values: dict[str, Any] = {
        "item_name": "Consulting",
        "description": "Hours",
        "quantity": Decimal("1"),
        "unit_price": Decimal("100"),
    }
    values.update(overrides)
    return HostLine(**values)


def invoice(**overrides: Any) -> HostInvoice:
    values: dict[str, Any] = {
        "host_model": "crm.invoice",
        "host_id": "1",
        "account_key": "9",
        "number": "INV-001",
        "contact": HostContact(host_model="crm.contact", host_id="3", name="Acme"),
        "currency": "NZD",
        "issue_date": ISSUED,
        "due_date": DUE,
        "tax_inclusive": False,
        "status": InvoiceStatus.SENT,
        "lines": (line(),),
        "total": Decimal("100"),
        "reference": "PO 1",
    }
    values.update(overrides)
    return HostInvoice(**values)


def payload(inv: HostInvoice | None = None, tax_types: dict[str, str] | None = None) -> dict:
    return rules.invoice_payload(inv or invoice(), "contact-id", "200", tax_types or {})


def payment(host_id: str = "p1", amount: str = "10.00", **overrides: Any) -> HostPayment:
    values: dict[str, Any] = {
        "host_model": "crm.payment",
        "host_id": host_id,
        "amount": Decimal(amount),
        "date": datetime.date(2026, 11, 5),
        "reference": "",
    }
    values.update(overrides)
    return HostPayment(**values)


def pushed(xero_id: str, p: HostPayment) -> dict[str, Any]:
    return {
        "xero_payment_id": xero_id,
        "amount": p.amount,
        "date": p.date,
        "reference": p.reference,
    }


# ---- invoice_payload --------------------------------------------------------------------------


def test_payload_carries_every_field():
    body = payload(
        invoice(
            lines=(
                line(
                    quantity=Decimal("3"),
                    unit_price=Decimal("12.34565"),
                    discount_percent=Decimal("10"),
                    tax=GST,
                ),
            )
        ),
        {"7": "OUTPUT2"},
    )
    assert body == {
        "Type": "ACCREC",
        "Contact": {"ContactID": "contact-id"},
        "InvoiceNumber": "INV-001",
        "Reference": "PO 1",
        "Date": "2026-11-01",
        "DueDate": "2026-11-21",
        "CurrencyCode": "NZD",
        "LineAmountTypes": "Exclusive",
        "Status": "AUTHORISED",
        "SentToContact": True,
        "LineItems": [
            {
                "Description": "Consulting\nHours",
                "Quantity": "3.0000",
                "UnitAmount": "12.3457",  # 4 dp, halves up
                "DiscountRate": "10.00",
                "AccountCode": "200",
                "TaxType": "OUTPUT2",
            }
        ],
    }


def test_no_items_are_referenced():
    (item,) = payload()["LineItems"]
    assert "ItemCode" not in item and "Item" not in item


def test_inclusive_pricing():
    assert payload(invoice(tax_inclusive=True))["LineAmountTypes"] == "Inclusive"


def test_discount_amount_and_a_line_without_tax():
    (item,) = payload(invoice(lines=(line(discount_amount=Decimal("5")),)))["LineItems"]
    assert item["DiscountAmount"] == "5.00"
    assert "DiscountRate" not in item
    assert item["TaxType"] == "NONE"


def test_a_line_never_carries_both_discounts():
    (item,) = payload(
        invoice(lines=(line(discount_percent=Decimal("10"), discount_amount=Decimal("5")),))
    )["LineItems"]
    assert "DiscountRate" in item and "DiscountAmount" not in item


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"discount_percent": Decimal("100")}, {"DiscountRate": "100.00"}),
        ({"quantity": Decimal("0")}, {"Quantity": "0.0000"}),
        ({"unit_price": Decimal("-20")}, {"UnitAmount": "-20.0000"}),
    ],
)
def test_full_discount_zero_quantity_and_credit_lines(kwargs, expected):
    (item,) = payload(invoice(lines=(line(**kwargs),)))["LineItems"]
    assert expected.items() <= item.items()


@pytest.mark.parametrize(
    ("status", "xero_status", "sent"),
    [
        (InvoiceStatus.DRAFT, "DRAFT", False),
        (InvoiceStatus.SENT, "AUTHORISED", True),
        (InvoiceStatus.PARTIALLY_PAID, "AUTHORISED", True),
        (InvoiceStatus.PAID, "AUTHORISED", True),  # PAID comes from payments, never sent
        (InvoiceStatus.VOID, "VOIDED", False),
    ],
)
def test_status(status, xero_status, sent):
    body = payload(invoice(status=status))
    assert body["Status"] == xero_status
    assert body.get("SentToContact", False) is sent


def test_a_draft_without_a_due_date_leaves_it_out():
    body = payload(invoice(status=InvoiceStatus.DRAFT, due_date=None))
    assert "DueDate" not in body


def test_reference_is_cut_to_xeros_length():
    assert len(payload(invoice(reference="r" * 300))["Reference"]) == 255


@pytest.mark.parametrize(
    ("item_name", "description", "expected"),
    [
        ("Consulting", "Hours", "Consulting\nHours"),
        ("Consulting", "", "Consulting"),
        ("", "Hours", "Hours"),
        ("Consulting", "Consulting", "Consulting"),
        ("  Consulting ", " Hours  ", "Consulting\nHours"),
        ("Ärger", "日本語 🚀", "Ärger\n日本語 🚀"),
    ],
)
def test_line_description(item_name, description, expected):
    assert rules.line_description(item_name, description) == expected


def test_payload_hash_is_stable_and_sees_changes():
    body = payload()
    assert rules.payload_hash(body) == rules.payload_hash(dict(reversed(list(body.items()))))
    assert rules.payload_hash(body) != rules.payload_hash(payload(invoice(reference="other")))


# ---- check_sendable ---------------------------------------------------------------------------


def test_a_complete_invoice_is_sendable():
    rules.check_sendable(invoice())
    rules.check_sendable(invoice(status=InvoiceStatus.DRAFT, due_date=None))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"number": "  "}, "number"),
        ({"number": "N" * 256}, "number"),
        ({"lines": ()}, "lines"),
        ({"due_date": None}, "due_date"),
        ({"lines": (line(item_name="", description="  "),)}, "lines[1]"),
    ],
)
def test_not_sendable(overrides, field):
    with pytest.raises(rules.InvoiceNotSendable) as caught:
        rules.check_sendable(invoice(**overrides))
    assert caught.value.field == field
    assert str(caught.value)


def test_descriptions_of_4000_characters_pass_and_4001_are_refused_naming_the_line():
    emoji = "🚀" * 4000  # characters, not bytes, count
    rules.check_sendable(invoice(lines=(line(item_name="", description=emoji),)))
    too_long = line(item_name="Widget", description="d" * (4001 - len("Widget\n")))
    with pytest.raises(rules.InvoiceNotSendable) as caught:
        rules.check_sendable(invoice(lines=(line(), too_long)))
    assert caught.value.field == "lines[2].description"
    assert "Line 2" in str(caught.value)
    assert "4,001" in str(caught.value) and "4,000" in str(caught.value)


# ---- match_tax_rate ---------------------------------------------------------------------------


NZ_RATES = tax_rates_for("NZ")


def test_an_existing_rate_is_matched_by_its_components():
    # INPUT2 has the same 15% but cannot apply to revenue; OUTPUT2 is the sales rate.
    assert rules.match_tax_rate(tax("Goods tax", ("GST", "15", False)), NZ_RATES)["TaxType"] == (
        "OUTPUT2"
    )


def test_among_rates_with_the_same_components_the_same_name_wins():
    # "Zero Rated" and "No GST" are both 0%.
    match = rules.match_tax_rate(tax("No GST", ("None", "0", False)), NZ_RATES)
    assert match["TaxType"] == "NONE"


def test_archived_rates_are_not_matched():
    # "Old 12.5% GST" is ARCHIVED.
    assert rules.match_tax_rate(tax("GST 12.5%", ("GST", "12.5", False)), NZ_RATES) is None


def test_a_name_matches_when_the_rate_comes_out_the_same():
    # The CRM keeps GST + QST as one 15.4738% component; Xero as 5% and a compound 9.975%.
    rates = [*NZ_RATES, _xero_rate("GST + QST", "TAX001", ("5", False), ("9.975", True))]
    match = rules.match_tax_rate(tax("gst + qst ", ("Both", "15.4738", False)), rates)
    assert match["TaxType"] == "TAX001"


def test_a_name_of_another_rate_does_not_match():
    rates = [*NZ_RATES, _xero_rate("Special levy", "TAX001", ("7", False))]
    assert rules.match_tax_rate(tax("Special levy", ("Levy", "8", False)), rates) is None


def test_a_taken_name_gets_its_rate_in_the_new_name():
    assert rules.distinct_tax_name(tax("Levy", ("Levy", "4", False))) == "Levy (4%)"


def test_compound_flags_and_rates_must_agree():
    compound = tax("GST + QST", ("GST", "5", False), ("QST", "9.975", True))
    simple_rate = _xero_rate("Other", "TAX002", ("5", False), ("9.975", False))
    compound_rate = _xero_rate("Other 2", "TAX003", ("5", False), ("9.975", True))
    assert rules.match_tax_rate(compound, [simple_rate]) is None
    assert rules.match_tax_rate(compound, [simple_rate, compound_rate])["TaxType"] == "TAX003"


def test_rates_compare_at_four_places():
    rate = _xero_rate("QST", "TAX004", ("9.9750", False))
    assert rules.match_tax_rate(tax("x", ("QST", "9.975", False)), [rate])["TaxType"] == "TAX004"


def _xero_rate(name: str, tax_type: str, *components: tuple[str, bool]) -> dict[str, Any]:
    return {
        "Name": name,
        "TaxType": tax_type,
        "Status": "ACTIVE",
        "CanApplyToRevenue": True,
        "TaxComponents": [
            {"Name": f"c{i}", "Rate": rate, "IsCompound": compound}
            for i, (rate, compound) in enumerate(components)
        ],
    }


# ---- new_tax_rate -----------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["NZ", "AU", "GB", "UK", "nz"])
def test_new_rates_carry_a_report_tax_type_where_the_country_needs_it(country):
    body = rules.new_tax_rate(GST, country)
    assert body["ReportTaxType"] == "OUTPUT"


def test_new_rates_in_the_us_carry_no_report_tax_type():
    assert "ReportTaxType" not in rules.new_tax_rate(GST, "US")


def test_new_compound_rate():
    body = rules.new_tax_rate(tax("GST + QST", ("GST", "5", False), ("QST", "9.975", True)), "NZ")
    assert body["Name"] == "GST + QST"
    assert body["TaxComponents"] == [
        {"Name": "GST", "Rate": "5.0000", "IsCompound": False},
        {"Name": "QST", "Rate": "9.9750", "IsCompound": True},
    ]


def test_new_rate_names_fit_xero_and_components_fall_back_to_the_tax_name():
    body = rules.new_tax_rate(tax("T" * 80, ("", "3", False)), "US")
    assert body["Name"] == "T" * 50
    assert body["TaxComponents"][0]["Name"] == "T" * 50


# ---- payments ---------------------------------------------------------------------------------


def test_new_payments_are_created():
    first, second = payment("p1"), payment("p2", "20.00")
    plan = rules.plan_payments((first, second), {})
    assert plan.create == (first, second) and plan.delete == ()


def test_pushed_payments_that_did_not_change_need_nothing():
    p = payment("p1", reference="r")
    plan = rules.plan_payments((p,), {("crm.payment", "p1"): pushed("x1", p)})
    assert plan.create == () and plan.delete == ()


def test_a_payment_removed_in_the_crm_is_deleted():
    kept, gone = payment("p1"), payment("p2")
    linked = {("crm.payment", "p1"): pushed("x1", kept), ("crm.payment", "p2"): pushed("x2", gone)}
    plan = rules.plan_payments((kept,), linked)
    assert plan.delete == ("x2",) and plan.create == ()


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal("11.00")},
        {"date": datetime.date(2026, 11, 6)},
        {"reference": "changed"},
    ],
)
def test_a_changed_payment_is_deleted_and_made_again(change):
    before = payment("p1")
    after = payment("p1", **{"amount": "10.00", **change})
    plan = rules.plan_payments((after,), {("crm.payment", "p1"): pushed("x1", before)})
    assert plan.delete == ("x1",)
    assert plan.create == (after,)


def test_amounts_compare_to_the_cent_and_references_as_cut():
    p = payment("p1", "10", reference="r" * 300)
    linked = {
        ("crm.payment", "p1"): {
            "xero_payment_id": "x1",
            "amount": Decimal("10.00"),
            "date": p.date,
            "reference": "r" * 255,
        }
    }
    plan = rules.plan_payments((p,), linked)
    assert plan.create == () and plan.delete == ()


def test_payment_payload():
    body = rules.payment_payload(payment("p1", "12.5", reference="Deposit"), "inv-1", "acc-1")
    assert body == {
        "Invoice": {"InvoiceID": "inv-1"},
        "Account": {"AccountID": "acc-1"},
        "Date": "2026-11-05",
        "Amount": "12.50",
        "Reference": "Deposit",
    }


@pytest.mark.parametrize(
    ("xero", "same"),
    [
        ({"Amount": 12.5, "Date": "/Date(1793836800000+0000)/", "Reference": "Deposit"}, True),
        ({"Amount": 12.5, "Date": "2026-11-05T00:00:00", "Reference": "Deposit"}, True),
        ({"Amount": 12.51, "Date": "2026-11-05", "Reference": "Deposit"}, False),
        ({"Amount": 12.5, "Date": "2026-11-06", "Reference": "Deposit"}, False),
        ({"Amount": 12.5, "Date": "2026-11-05", "Reference": "Other"}, False),
        (
            {"Amount": 12.5, "Date": "2026-11-05", "Reference": "Deposit", "Status": "DELETED"},
            False,
        ),
        ({"Amount": None, "Date": "2026-11-05", "Reference": "Deposit"}, False),
    ],
)
def test_same_payment_for_reconciling(xero, same):
    assert rules.same_payment(xero, payment("p1", "12.50", reference="Deposit")) is same


@pytest.mark.parametrize(
    ("status", "sync_drafts", "in_xero", "written"),
    [
        (InvoiceStatus.SENT, False, False, True),
        (InvoiceStatus.PAID, False, True, True),
        (InvoiceStatus.VOID, True, True, False),
        (InvoiceStatus.DRAFT, False, False, False),
        (InvoiceStatus.DRAFT, True, False, True),
        # A draft again in the CRM after Xero had it: Xero's copy follows.
        (InvoiceStatus.DRAFT, False, True, True),
    ],
)
def test_which_invoices_are_written_to_xero(status, sync_drafts, in_xero, written):
    assert rules.goes_to_xero(invoice(status=status), sync_drafts, in_xero) is written
