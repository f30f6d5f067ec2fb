"""Invoices to Xero, exactly once: every field, taxes, currencies, statuses, payments,
the outbox and the faults, each checked against the sandbox's state afterwards.

Invoices are built inside ``transaction.atomic()`` so that the host's saves coalesce into one
sync job, pushed once when the transaction commits (django-q runs the task inline).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from crm_demo.crm.forms import PaymentForm
from crm_demo.crm.models import Invoice
from tests.factories import (
    AccountFactory,
    ContactFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from tests.integration.conftest import make_connection
from tests.integration.invoicing import rerun
from xero_integration import connect, invoices, outbox
from xero_integration.models import (
    ConnectionStatus,
    InvoiceLink,
    PaymentLink,
    SyncJob,
    SyncLog,
    TaxRateMapping,
    XeroConnection,
)
from xero_integration.xero.client import XeroClient
from xero_integration.xero.wire import parse_date

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api.xro/2.0"
ISSUED = datetime.date(2026, 11, 1)
DUE = datetime.date(2026, 11, 21)


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _client_retries_without_sleeping(monkeypatch) -> None:
    """The wire client's in-call retries (backoff, Retry-After) happen at once: the retry
    logic is the same, the suite stays fast."""
    monkeypatch.setattr(connect, "XeroClient", functools.partial(XeroClient, sleep=lambda s: None))


@pytest.fixture
def connect_org(xero_sandbox, xero_app) -> Callable[..., tuple[str, Any, XeroConnection]]:
    """An organisation in the sandbox and a CRM account connected to it (revenue account 200,
    a BANK account for payments)."""

    def make(
        country_code: str = "NZ", base_currency: str = "NZD", multicurrency: bool = True
    ) -> tuple[str, Any, XeroConnection]:
        org = xero_sandbox.create_organisation(
            name=f"Org {country_code}",
            country_code=country_code,
            base_currency=base_currency,
            multicurrency=multicurrency,
        )
        account = AccountFactory(base_currency=base_currency)
        connection = make_connection(
            xero_sandbox, xero_app, org["tenant_id"], str(account.pk), f"Org {country_code}"
        )
        state = xero_sandbox.organisation_state(org["tenant_id"])
        bank = next(a for a in state["accounts"] if a["Type"] == "BANK")
        connection.payment_account_id = bank["AccountID"]
        connection.revenue_account_code = "200"
        connection.base_currency = base_currency
        connection.country_code = country_code
        connection.save()
        return org["tenant_id"], account, connection

    return make


@pytest.fixture
def connected(connect_org) -> tuple[str, Any, XeroConnection]:
    return connect_org()


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


def pay(invoice: Invoice, amount: str, date: datetime.date = datetime.date(2026, 11, 5), **kw):
    with transaction.atomic():
        payment = PaymentFactory(invoice=invoice, amount=Decimal(amount), date=date, **kw)
        invoice.recalculate()
    return payment


def state_of(sandbox: Any, tenant_id: str) -> dict[str, Any]:
    return sandbox.organisation_state(tenant_id)


def the_invoice(sandbox: Any, tenant_id: str) -> dict[str, Any]:
    (xero_invoice,) = state_of(sandbox, tenant_id)["invoices"]
    return xero_invoice


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def writes(sandbox: Any, tenant_id: str, resource: str, methods=("PUT", "POST")) -> list[dict]:
    """Requests the sandbox received that write ``resource`` (e.g. "Invoices")."""
    return [
        r
        for r in sandbox.requests(tenant_id)
        if r["method"] in methods and r["path"].startswith(f"{API}/{resource}")
    ]


def job_of(invoice: Invoice) -> SyncJob:
    return SyncJob.objects.get(host_model="crm.invoice", host_id=str(invoice.pk))


def link_of(invoice: Invoice) -> InvoiceLink:
    return InvoiceLink.objects.get(host_model="crm.invoice", host_id=str(invoice.pk))


def assert_done(invoice: Invoice) -> SyncJob:
    job = job_of(invoice)
    assert job.state == SyncJob.State.DONE, (job.state, job.error)
    return job


def live_payments(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in state["payments"] if p.get("Status") != "DELETED"]


# ---- what Xero receives -----------------------------------------------------------------------


def test_every_field_reaches_xero(xero_sandbox, connected):
    tenant_id, account, connection = connected
    (existing_id,) = xero_sandbox.edit_contacts(tenant_id, [{"Name": "Harbour Cafe Ltd"}])
    contact = ContactFactory(account=account, name="Harbour Cafe Ltd", email="")
    gst = tax_with(account, "GST 15%", ("GST", "15", False))
    invoice = make_invoice(
        account,
        [
            {
                "item_name": "Espresso machine",
                "description": "Service, parts included",
                "quantity": Decimal("3"),
                "unit_price": Decimal("12.3457"),
                "discount_percent": Decimal("10"),
                "tax": gst,
            },
            {
                "item_name": "Beans",
                "description": "",
                "quantity": Decimal("2.5"),
                "unit_price": Decimal("40"),
                "discount_amount": Decimal("5.00"),
                "tax": gst,
            },
            {"item_name": "", "description": "Delivery", "unit_price": Decimal("15")},
        ],
        contact=contact,
        number="CRM-1001",
        reference="PO 778",
        currency="NZD",
        issue_date=ISSUED,
        due_date=DUE,
        tax_inclusive=False,
    )
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["Type"] == "ACCREC"
    assert xero_invoice["Contact"]["ContactID"] == existing_id  # matched, not created
    assert [c["Name"] for c in state["contacts"]].count("Harbour Cafe Ltd") == 1
    assert xero_invoice["InvoiceNumber"] == "CRM-1001"
    assert xero_invoice["Reference"] == "PO 778"
    assert parse_date(xero_invoice["Date"]) == ISSUED
    assert parse_date(xero_invoice["DueDate"]) == DUE
    assert xero_invoice["CurrencyCode"] == "NZD"
    assert xero_invoice["LineAmountTypes"] == "Exclusive"
    assert xero_invoice["Status"] == "AUTHORISED"
    first, second, third = xero_invoice["LineItems"]
    assert first["Description"] == "Espresso machine\nService, parts included"
    assert Decimal(str(first["Quantity"])) == Decimal("3")
    assert Decimal(str(first["UnitAmount"])) == Decimal("12.3457")  # 4 dp kept
    assert Decimal(str(first["DiscountRate"])) == Decimal("10")
    assert "DiscountAmount" not in first or first["DiscountAmount"] in (None, 0)
    assert first["AccountCode"] == "200"
    assert first["TaxType"] == "OUTPUT2"  # GST 15% matched the NZ rate
    assert money(first["LineAmount"]) == Decimal("33.33")
    assert second["Description"] == "Beans"
    assert Decimal(str(second["Quantity"])) == Decimal("2.5")
    assert money(second["DiscountAmount"]) == Decimal("5.00")
    assert money(second["LineAmount"]) == Decimal("95.00")
    assert third["Description"] == "Delivery"
    assert third["TaxType"] == "NONE"
    assert third["AccountCode"] == "200"
    invoice.refresh_from_db()
    assert money(xero_invoice["Total"]) == invoice.total
    link = link_of(invoice)
    assert link.xero_invoice_id == xero_invoice["InvoiceID"]
    assert link.total_mismatch is False
    assert link.crm_total == link.xero_total == invoice.total
    # No Xero Items are ever created.
    assert not [r for r in xero_sandbox.requests(tenant_id) if "/Items" in r["path"]]
    assert not state.get("items")
    # The create carried an Idempotency-Key.
    (create,) = writes(xero_sandbox, tenant_id, "Invoices")
    assert create["idempotency_key"]


def test_new_contact_is_created_and_inclusive_pricing_is_kept(xero_sandbox, connected):
    tenant_id, account, _ = connected
    gst = tax_with(account, "GST 15%", ("GST", "15", False))
    invoice = make_invoice(
        account,
        [{"quantity": Decimal("1"), "unit_price": Decimal("115"), "tax": gst}],
        tax_inclusive=True,
    )
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (xero_invoice,) = state["invoices"]
    (created,) = [c for c in state["contacts"] if c["Name"] == invoice.contact.name]
    assert xero_invoice["Contact"]["ContactID"] == created["ContactID"]
    assert xero_invoice["LineAmountTypes"] == "Inclusive"
    invoice.refresh_from_db()
    assert money(xero_invoice["Total"]) == invoice.total == Decimal("115.00")
    assert money(xero_invoice["TotalTax"]) == invoice.tax_total == Decimal("15.00")
    assert link_of(invoice).total_mismatch is False


# ---- taxes ------------------------------------------------------------------------------------


def test_multi_component_and_compound_taxes_are_created_once_and_reused(xero_sandbox, connected):
    tenant_id, account, _ = connected
    compound = tax_with(account, "GST 5% + QST 9.975%", ("GST", "5", False), ("QST", "9.975", True))
    multi = tax_with(account, "State 4% + City 2.5%", ("State", "4", False), ("City", "2.5", False))
    before = len(state_of(xero_sandbox, tenant_id)["tax_rates"])
    lines = [
        {"unit_price": Decimal("200"), "tax": compound},
        {"unit_price": Decimal("80"), "tax": multi},
    ]
    first = make_invoice(account, lines)
    assert_done(first)
    state = state_of(xero_sandbox, tenant_id)
    assert len(state["tax_rates"]) == before + 2
    rates = {r["Name"]: r for r in state["tax_rates"]}
    made = rates["GST 5% + QST 9.975%"]
    assert [
        (Decimal(str(c["Rate"])), bool(c.get("IsCompound"))) for c in made["TaxComponents"]
    ] == [
        (Decimal("5"), False),
        (Decimal("9.975"), True),
    ]
    assert made.get("ReportTaxType") == "OUTPUT"  # NZ needs one
    two = rates["State 4% + City 2.5%"]
    assert len(two["TaxComponents"]) == 2
    (xero_invoice,) = state["invoices"]
    assert [line["TaxType"] for line in xero_invoice["LineItems"]] == [
        made["TaxType"],
        two["TaxType"],
    ]
    first.refresh_from_db()
    assert money(xero_invoice["Total"]) == first.total
    assert link_of(first).total_mismatch is False
    mappings = {m.name: m for m in TaxRateMapping.objects.all()}
    assert mappings["GST 5% + QST 9.975%"].tax_type == made["TaxType"]
    assert mappings["GST 5% + QST 9.975%"].created_in_xero is True
    assert mappings["State 4% + City 2.5%"].tax_type == two["TaxType"]

    second = make_invoice(account, lines)
    assert_done(second)
    state = state_of(xero_sandbox, tenant_id)
    assert len(state["tax_rates"]) == before + 2
    assert len(writes(xero_sandbox, tenant_id, "TaxRates")) == 2
    by_number = {i["InvoiceNumber"]: i for i in state["invoices"]}
    assert [line["TaxType"] for line in by_number[second.number]["LineItems"]] == [
        made["TaxType"],
        two["TaxType"],
    ]


def test_existing_xero_rate_is_matched_by_components(xero_sandbox, connected):
    tenant_id, account, _ = connected
    # Named differently from Xero's "15% GST on Income": the components decide.
    gst = tax_with(account, "Goods and services", ("GST", "15", False))
    invoice = make_invoice(account, [{"tax": gst}])
    assert_done(invoice)
    assert the_invoice(xero_sandbox, tenant_id)["LineItems"][0]["TaxType"] == "OUTPUT2"
    assert not writes(xero_sandbox, tenant_id, "TaxRates")
    mapping = TaxRateMapping.objects.get(host_id=str(gst.pk))
    assert mapping.tax_type == "OUTPUT2"
    assert mapping.created_in_xero is False


def test_without_tax_creation_the_job_asks_for_a_mapping_then_staff_mapping_works(
    xero_sandbox, connected, settings
):
    tenant_id, account, _ = connected
    settings.XERO_CREATE_TAX_RATES = False
    luxury = tax_with(account, "Luxury 33%", ("Luxury", "33", False))
    invoice = make_invoice(account, [{"unit_price": Decimal("100"), "tax": luxury}])
    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED
    assert "Luxury 33%" in job.error and "map" in job.error.lower()
    state = state_of(xero_sandbox, tenant_id)
    assert state["invoices"] == []
    assert not writes(xero_sandbox, tenant_id, "TaxRates")
    mapping = TaxRateMapping.objects.get(host_id=str(luxury.pk))
    assert mapping.tax_type == ""

    # Staff map it by hand to an existing rate and retry.
    mapping.tax_type = "OUTPUT2"
    mapping.set_by_staff = True
    mapping.save()
    outbox.retry(SyncJob.objects.filter(pk=job.pk))
    assert_done(invoice)
    xero_invoice = the_invoice(xero_sandbox, tenant_id)
    assert xero_invoice["LineItems"][0]["TaxType"] == "OUTPUT2"
    assert not writes(xero_sandbox, tenant_id, "TaxRates")


# ---- lines -------------------------------------------------------------------------------------


def test_full_discount_zero_quantity_and_credit_lines(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(
        account,
        [
            {"item_name": "Paid work", "unit_price": Decimal("300")},
            {"item_name": "Free setup", "unit_price": Decimal("50"), "discount_percent": 100},
            {"item_name": "Not used", "quantity": Decimal("0"), "unit_price": Decimal("75")},
            {"item_name": "Credit", "description": "Goodwill", "unit_price": Decimal("-20")},
        ],
    )
    assert_done(invoice)
    xero_invoice = the_invoice(xero_sandbox, tenant_id)
    paid, free, unused, credit = xero_invoice["LineItems"]
    assert Decimal(str(free["DiscountRate"])) == Decimal("100")
    assert money(free["LineAmount"]) == Decimal("0.00")
    assert Decimal(str(unused["Quantity"])) == Decimal("0")
    assert money(unused["LineAmount"]) == Decimal("0.00")
    assert Decimal(str(credit["UnitAmount"])) == Decimal("-20")
    assert money(credit["LineAmount"]) == Decimal("-20.00")
    invoice.refresh_from_db()
    assert money(xero_invoice["Total"]) == invoice.total == Decimal("280.00")
    assert link_of(invoice).total_mismatch is False


def test_unicode_and_4000_character_descriptions_go_through(xero_sandbox, connected):
    tenant_id, account, _ = connected
    unicode_text = "Café crème — 日本語のテキスト ✓ Ünïcödé 🚀"
    long_text = ("Ωmega ü 🚀 " * 400)[:4000].strip()
    long_text = long_text + "x" * (4000 - len(long_text))
    assert len(long_text) == 4000
    invoice = make_invoice(
        account,
        [
            {"item_name": "Ärger-Zuschlag", "description": unicode_text},
            {"item_name": "", "description": long_text},
        ],
    )
    assert_done(invoice)
    first, second = the_invoice(xero_sandbox, tenant_id)["LineItems"]
    assert first["Description"] == f"Ärger-Zuschlag\n{unicode_text}"
    assert second["Description"] == long_text


def test_a_4001_character_description_is_refused_before_any_call(xero_sandbox, connected):
    tenant_id, account, _ = connected
    before = len(xero_sandbox.requests(tenant_id))
    item = "Widget"
    description = "d" * (4001 - len(item) - 1)  # "Widget\n" + description = 4,001
    invoice = make_invoice(account, [{}, {"item_name": item, "description": description}])
    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED
    assert "Line 2" in job.error and "4,001" in job.error, job.error
    assert any("lines[2]" in f["path"] for f in job.error_fields), job.error_fields
    assert len(xero_sandbox.requests(tenant_id)) == before  # not a single call
    assert state_of(xero_sandbox, tenant_id)["invoices"] == []


# ---- currencies --------------------------------------------------------------------------------


def test_a_foreign_currency_is_added_to_a_multicurrency_organisation(xero_sandbox, connected):
    tenant_id, account, connection = connected
    assert "EUR" not in {c["Code"] for c in state_of(xero_sandbox, tenant_id)["currencies"]}
    invoice = make_invoice(account, [{"unit_price": Decimal("99.99")}], currency="EUR")
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    assert "EUR" in {c["Code"] for c in state["currencies"]}
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["CurrencyCode"] == "EUR"
    assert money(xero_invoice["Total"]) == Decimal("99.99")
    connection.refresh_from_db()
    assert "EUR" in connection.currencies

    # The next EUR invoice does not add it again.
    assert_done(make_invoice(account, [{}], currency="EUR"))
    assert len(writes(xero_sandbox, tenant_id, "Currencies")) == 1


def test_a_currency_without_multicurrency_fails_with_the_explanation(xero_sandbox, connect_org):
    tenant_id, account, _ = connect_org(multicurrency=False)
    invoice = make_invoice(account, [{}], currency="USD")
    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED
    assert "Organisation is not subscribed to currency USD" in job.error
    assert "multi-currency" in job.error
    state = state_of(xero_sandbox, tenant_id)
    assert state["invoices"] == []
    assert "USD" not in {c["Code"] for c in state["currencies"]}
    # The org's plan cannot change in the sandbox: a retry fails the same way, readably.
    outbox.retry(SyncJob.objects.filter(pk=job.pk))
    job.refresh_from_db()
    assert job.state == SyncJob.State.FAILED
    assert "Organisation is not subscribed to currency USD" in job.error


# ---- statuses ----------------------------------------------------------------------------------


def test_a_draft_becomes_a_xero_draft(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], status=Invoice.Status.DRAFT)
    assert_done(invoice)
    xero_invoice = the_invoice(xero_sandbox, tenant_id)
    assert xero_invoice["Status"] == "DRAFT"
    assert not xero_invoice.get("SentToContact")
    assert link_of(invoice).xero_status == "DRAFT"


def test_drafts_wait_until_sent_when_the_setting_says_so(xero_sandbox, connected, settings):
    tenant_id, account, _ = connected
    settings.XERO_SYNC_DRAFTS = False
    invoice = make_invoice(account, [{}], status=Invoice.Status.DRAFT)
    assert state_of(xero_sandbox, tenant_id)["invoices"] == []
    assert not writes(xero_sandbox, tenant_id, "Invoices")
    invoice.status = Invoice.Status.SENT
    invoice.save()
    assert_done(invoice)
    xero_invoice = the_invoice(xero_sandbox, tenant_id)
    assert xero_invoice["Status"] == "AUTHORISED"
    assert xero_invoice["SentToContact"] is True


def test_sent_becomes_authorised_and_sent_to_contact(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], status=Invoice.Status.DRAFT)
    assert the_invoice(xero_sandbox, tenant_id)["Status"] == "DRAFT"
    invoice.status = Invoice.Status.SENT
    invoice.save()
    assert_done(invoice)
    xero_invoice = the_invoice(xero_sandbox, tenant_id)
    assert xero_invoice["Status"] == "AUTHORISED"
    assert xero_invoice["SentToContact"] is True
    assert money(xero_invoice["AmountDue"]) == Decimal("100.00")
    assert link_of(invoice).xero_status == "AUTHORISED"


def test_partial_then_full_payment(xero_sandbox, connected):
    tenant_id, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "30.00", reference="Deposit")
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["Status"] == "AUTHORISED"
    assert money(xero_invoice["AmountDue"]) == Decimal("70.00")
    assert money(xero_invoice["AmountPaid"]) == Decimal("30.00")
    (payment,) = live_payments(state)
    assert money(payment["Amount"]) == Decimal("30.00")
    assert payment["Account"]["AccountID"] == connection.payment_account_id
    assert payment["Invoice"]["InvoiceID"] == xero_invoice["InvoiceID"]
    assert payment.get("Reference") == "Deposit"
    assert parse_date(payment["Date"]) == datetime.date(2026, 11, 5)

    pay(invoice, "70.00", date=datetime.date(2026, 11, 9))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["Status"] == "PAID"
    assert money(xero_invoice["AmountDue"]) == Decimal("0.00")
    assert sorted(money(p["Amount"]) for p in live_payments(state)) == [
        Decimal("30.00"),
        Decimal("70.00"),
    ]
    link = link_of(invoice)
    assert link.xero_status == "PAID"
    assert link.xero_amount_due == Decimal("0.00")
    assert PaymentLink.objects.filter(state=PaymentLink.State.LINKED).count() == 2


def test_a_payment_over_the_amount_due_is_refused_by_the_crm(connected):
    _, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    form = PaymentForm(
        data={"amount": "100.01", "date": "2026-11-05", "reference": ""}, invoice=invoice
    )
    assert not form.is_valid()
    assert "more than the amount due" in str(form.errors["amount"])


def test_a_payment_deleted_in_the_crm_is_deleted_in_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    payment = pay(invoice, "40.00")
    assert money(the_invoice(xero_sandbox, tenant_id)["AmountDue"]) == Decimal("60.00")
    (xero_payment_id,) = PaymentLink.objects.values_list("xero_payment_id", flat=True)
    with transaction.atomic():
        payment.delete()
        invoice.recalculate()
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["Status"] == "AUTHORISED"
    assert money(xero_invoice["AmountDue"]) == Decimal("100.00")
    (xero_payment,) = [p for p in state["payments"] if p["PaymentID"] == xero_payment_id]
    assert xero_payment["Status"] == "DELETED"
    assert PaymentLink.objects.get().state == PaymentLink.State.DELETED


def test_voiding_a_partly_paid_invoice_removes_its_payments_first(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "25.00")
    assert money(the_invoice(xero_sandbox, tenant_id)["AmountPaid"]) == Decimal("25.00")
    invoice.status = Invoice.Status.VOID
    invoice.save()
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (xero_invoice,) = state["invoices"]
    assert xero_invoice["Status"] == "VOIDED"
    assert live_payments(state) == []
    log = SyncLog.objects.get(action="payments_removed")
    assert invoice.number in log.message and "1 payment" in log.message
    assert link_of(invoice).xero_status == "VOIDED"


def test_a_voided_draft_is_deleted_in_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], status=Invoice.Status.DRAFT)
    assert the_invoice(xero_sandbox, tenant_id)["Status"] == "DRAFT"
    invoice.status = Invoice.Status.VOID
    invoice.save()
    assert_done(invoice)
    assert the_invoice(xero_sandbox, tenant_id)["Status"] == "DELETED"
    assert link_of(invoice).xero_status == "DELETED"
    assert not SyncLog.objects.filter(action="payments_removed").exists()


@pytest.mark.parametrize(
    ("status", "paid", "expected"),
    [
        (Invoice.Status.DRAFT, None, "DELETED"),
        (Invoice.Status.SENT, None, "VOIDED"),
        (Invoice.Status.SENT, "10.00", "VOIDED"),
    ],
)
def test_an_invoice_deleted_in_the_crm_is_voided_or_deleted_in_xero(
    xero_sandbox, connected, status, paid, expected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}], status=status)
    if paid:
        pay(invoice, paid)
    host_id = str(invoice.pk)
    assert the_invoice(xero_sandbox, tenant_id)["Status"] != expected
    invoice.delete()  # its lines and payments go with it (cascade)
    job = SyncJob.objects.get(host_id=host_id)
    assert job.deleted is True
    assert job.state == SyncJob.State.DONE, job.error
    state = state_of(xero_sandbox, tenant_id)
    assert [i["Status"] for i in state["invoices"]] == [expected]
    assert live_payments(state) == []
    assert InvoiceLink.objects.get(host_id=host_id).xero_status == expected


def test_an_edit_of_an_authorised_invoice_is_pushed(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}], reference="First")
    before = the_invoice(xero_sandbox, tenant_id)
    with transaction.atomic():
        line = invoice.lines.get()
        line.quantity = Decimal("3")
        line.description = "Three hours"
        line.save()
        InvoiceLineFactory(invoice=invoice, position=1, item_name="Travel", unit_price=Decimal("9"))
        invoice.reference = "Second"
        invoice.recalculate()
    assert_done(invoice)
    after = the_invoice(xero_sandbox, tenant_id)
    assert after["InvoiceID"] == before["InvoiceID"]
    assert after["Status"] == "AUTHORISED"
    assert after["Reference"] == "Second"
    assert [line["Description"] for line in after["LineItems"]] == [
        "Consulting\nThree hours",
        "Travel\nHours",
    ]
    invoice.refresh_from_db()
    assert money(after["Total"]) == invoice.total == Decimal("309.00")
    link = link_of(invoice)
    assert link.xero_total == invoice.total and link.total_mismatch is False
    assert len(writes(xero_sandbox, tenant_id, "Invoices", ("PUT",))) == 1


def test_a_payment_changed_in_the_crm_is_replaced_in_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    payment = pay(invoice, "40.00")
    (first_id,) = [p["PaymentID"] for p in live_payments(state_of(xero_sandbox, tenant_id))]
    with transaction.atomic():
        payment.amount = Decimal("45.00")
        payment.save()
        invoice.recalculate()
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (current,) = live_payments(state)
    assert current["PaymentID"] != first_id
    assert money(current["Amount"]) == Decimal("45.00")
    assert money(state["invoices"][0]["AmountDue"]) == Decimal("55.00")


def test_a_total_that_differs_from_xeros_is_flagged_with_both_figures(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert link_of(invoice).total_mismatch is False
    # The CRM's stored total goes stale: the line changes without a recalculation.
    with transaction.atomic():
        line = invoice.lines.get()
        line.quantity = Decimal("2")
        line.save()
        invoice.save()
    assert_done(invoice)
    assert money(the_invoice(xero_sandbox, tenant_id)["Total"]) == Decimal("200.00")
    link = link_of(invoice)
    assert link.total_mismatch is True
    assert (link.crm_total, link.xero_total) == (Decimal("100.00"), Decimal("200.00"))
    log = SyncLog.objects.get(action="total_mismatch")
    assert "100.00" in log.message and "200.00" in log.message


def test_editing_the_lines_of_a_paid_invoice_is_stopped_before_xero(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "100.00")
    assert the_invoice(xero_sandbox, tenant_id)["Status"] == "PAID"
    updates_before = len(writes(xero_sandbox, tenant_id, "Invoices"))
    with transaction.atomic():
        line = invoice.lines.get()
        line.description = "Edited after payment"
        line.save()
        invoice.save()
    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED, "a refused edit must not be skipped silently"
    assert job.reason == SyncJob.Reason.NEEDS_FIX
    assert "refuses changes to its lines" in job.error, job.error
    assert len(writes(xero_sandbox, tenant_id, "Invoices")) == updates_before
    xero_invoice = the_invoice(xero_sandbox, tenant_id)
    assert xero_invoice["Status"] == "PAID"
    assert xero_invoice["LineItems"][0]["Description"] == "Consulting\nHours"


def test_an_unchanged_save_makes_no_invoice_call(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{}])
    assert_done(invoice)
    calls = len(writes(xero_sandbox, tenant_id, "Invoices"))
    invoice.save()
    job = assert_done(invoice)
    assert job.change_seq == job.done_seq
    assert len(writes(xero_sandbox, tenant_id, "Invoices")) == calls
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1


# ---- the outbox ----------------------------------------------------------------------------------


@contextlib.contextmanager
def app_switched_off() -> Iterator[None]:
    """Host saves as they are without the integration: its receivers record nothing."""
    from xero_integration import outbox

    recording = outbox.record_host_change
    outbox.record_host_change = lambda *args, **kwargs: False
    try:
        yield
    finally:
        outbox.record_host_change = recording


def _connected_account() -> Any:
    account = AccountFactory()
    XeroConnection.objects.create(
        account_key=str(account.pk), status=ConnectionStatus.CONNECTED, tenant_id="t-1"
    )
    return account


@pytest.mark.django_db(transaction=True)
def test_the_host_save_adds_one_statement(no_dispatch):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    invoice = InvoiceFactory(account=_connected_account())
    with app_switched_off(), CaptureQueriesContext(db) as without, transaction.atomic():
        invoice.save()

    SyncJob.objects.all().delete()
    with no_dispatch(), CaptureQueriesContext(db) as with_app, transaction.atomic():
        invoice.save()
    assert len(with_app) == len(without) + 1, [q["sql"] for q in with_app]
    # The save wrote the job; the push waits for the commit (never here).
    assert job_of(invoice).state == SyncJob.State.PENDING


@pytest.mark.django_db(transaction=True)
def test_a_form_save_of_an_invoice_and_its_totals_adds_one_statement(no_dispatch):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    def form_save(invoice: Invoice) -> None:
        with transaction.atomic():
            invoice.reference = "edited"
            invoice.save()
            InvoiceLineFactory(invoice=invoice)
            invoice.recalculate()  # saves the invoice again

    invoice = InvoiceFactory(account=_connected_account())
    with app_switched_off(), CaptureQueriesContext(db) as without:
        form_save(invoice)
    with no_dispatch(), CaptureQueriesContext(db) as with_app:
        form_save(invoice)
    assert len(with_app) == len(without) + 1, [q["sql"] for q in with_app]


@pytest.mark.django_db(transaction=False)
def test_repeated_saves_before_the_push_coalesce_into_one_job(
    django_capture_on_commit_callbacks,
):
    account = _connected_account()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invoice = InvoiceFactory(account=account)
        for _ in range(4):
            with transaction.atomic():
                invoice.save()
    jobs = SyncJob.objects.filter(host_id=str(invoice.pk))
    assert jobs.count() == 1
    job = jobs.get()
    assert job.change_seq == 1  # one transaction: its saves are one change
    assert job.state == SyncJob.State.PENDING
    assert callbacks  # the push is queued for after the commit


@pytest.mark.django_db(transaction=True)
def test_a_change_rolled_back_to_a_savepoint_is_recorded_again_by_the_next_save(no_dispatch):
    account = _connected_account()
    invoice = InvoiceFactory(account=account)
    SyncJob.objects.all().delete()
    with no_dispatch(), transaction.atomic():
        try:
            with transaction.atomic():
                invoice.save()
                raise RuntimeError("the form failed")
        except RuntimeError:
            pass
        assert not SyncJob.objects.filter(host_id=str(invoice.pk)).exists()
        invoice.save()
    assert job_of(invoice).state == SyncJob.State.PENDING


def test_saves_in_one_transaction_make_one_push(xero_sandbox, connected):
    tenant_id, account, _ = connected
    with transaction.atomic():
        invoice = InvoiceFactory(account=account, status=Invoice.Status.DRAFT)
        InvoiceLineFactory(invoice=invoice)
        invoice.recalculate()
        invoice.status = Invoice.Status.SENT
        invoice.save()
        invoice.reference = "changed again"
        invoice.save()
    job = assert_done(invoice)
    assert SyncJob.objects.count() == 1
    assert job.change_seq == 1  # written once in the transaction, however many saves
    assert len(writes(xero_sandbox, tenant_id, "Invoices")) == 1
    assert the_invoice(xero_sandbox, tenant_id)["Reference"] == "changed again"


# ---- faults: exactly one invoice, the right payments -----------------------------------------


def test_lost_response_on_invoice_creation_is_retried_with_the_same_key(xero_sandbox, connected):
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "lost_response", count=1)
    invoice = make_invoice(account, [{}])
    assert_done(invoice)
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1
    puts = writes(xero_sandbox, tenant_id, "Invoices", ("PUT",))
    assert len(puts) == 2 and puts[0]["idempotency_key"] == puts[1]["idempotency_key"]


def test_lost_responses_beyond_the_retries_are_reconciled_by_invoice_number(
    xero_sandbox, connected
):
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "lost_response", count=10)
    invoice = make_invoice(account, [{}])
    job = job_of(invoice)
    assert job.state == SyncJob.State.WAITING, job.error
    assert job.ambiguous is True
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1
    xero_sandbox.clear_faults()
    rerun(invoice)
    assert_done(invoice)
    (xero_invoice,) = state_of(xero_sandbox, tenant_id)["invoices"]
    assert link_of(invoice).xero_invoice_id == xero_invoice["InvoiceID"]
    assert xero_invoice["Status"] == "AUTHORISED"


def test_lost_response_on_payment_creation_makes_one_payment(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "lost_response", count=10)
    pay(invoice, "45.00")
    job = job_of(invoice)
    assert job.state == SyncJob.State.WAITING, job.error
    assert len(live_payments(state_of(xero_sandbox, tenant_id))) == 1
    xero_sandbox.clear_faults()
    rerun(invoice)
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    (payment,) = live_payments(state)
    assert money(payment["Amount"]) == Decimal("45.00")
    assert money(state["invoices"][0]["AmountDue"]) == Decimal("55.00")
    assert PaymentLink.objects.get().xero_payment_id == payment["PaymentID"]

    # A second payment after the trouble is made once too.
    pay(invoice, "55.00")
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    assert len(live_payments(state)) == 2
    assert state["invoices"][0]["Status"] == "PAID"


def test_server_errors_are_retried(xero_sandbox, connected):
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "500", count=2)
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "500", count=1)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "100.00")
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    assert len(state["invoices"]) == 1
    assert state["invoices"][0]["Status"] == "PAID"
    assert len(live_payments(state)) == 1


def test_persistent_server_errors_make_the_job_wait_then_finish(xero_sandbox, connected):
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "500", count=10)
    invoice = make_invoice(account, [{}])
    job = job_of(invoice)
    assert job.state == SyncJob.State.WAITING
    assert job.not_before is not None and job.not_before > timezone.now()
    xero_sandbox.clear_faults()
    # Not due yet: a run now does nothing.
    invoices.run(str(account.pk), "crm.invoice", str(invoice.pk))
    assert job_of(invoice).state == SyncJob.State.WAITING
    rerun(invoice)
    assert_done(invoice)
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1


def test_a_timeout_is_retried_without_a_second_invoice(xero_sandbox, connected, settings):
    tenant_id, account, _ = connected
    settings.XERO_REQUEST_TIMEOUT = 0.5
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "timeout", count=1, hold_seconds=1)
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "timeout", count=1, hold_seconds=1)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "60.00")
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    assert len(state["invoices"]) == 1
    (payment,) = live_payments(state)
    assert money(payment["Amount"]) == Decimal("60.00")
    assert money(state["invoices"][0]["AmountDue"]) == Decimal("40.00")


def test_a_429_storm_ends_with_one_invoice_and_the_right_payments(xero_sandbox, connected):
    tenant_id, account, _ = connected
    # More 429s (each with Retry-After: 1) than one call's retries absorb: the job waits.
    xero_sandbox.add_fault("*", f"{API}/*", "429", count=8)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    pay(invoice, "20.00", reference="a")
    pay(invoice, "30.00", reference="b")
    waits = 0
    for _ in range(10):
        job = job_of(invoice)
        if job.state == SyncJob.State.DONE:
            break
        assert job.state == SyncJob.State.WAITING, (job.state, job.error)
        assert "rate limit" in job.error.lower() or "429" in job.error, job.error
        waits += 1
        rerun(invoice)
    assert waits >= 1
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    assert len(state["invoices"]) == 1
    assert sorted(money(p["Amount"]) for p in live_payments(state)) == [
        Decimal("20.00"),
        Decimal("30.00"),
    ]
    assert money(state["invoices"][0]["AmountDue"]) == Decimal("50.00")
    assert any(r["status"] == 429 for r in xero_sandbox.requests(tenant_id))


def test_a_worker_killed_mid_job_is_finished_by_the_sweeper(xero_sandbox, connected):
    tenant_id, account, _ = connected
    # The worker's create reached Xero, then the worker died before it could record anything.
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "lost_response", count=10)
    invoice = make_invoice(account, [{}])
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1
    xero_sandbox.clear_faults()
    SyncJob.objects.filter(pk=job_of(invoice).pk).update(
        state=SyncJob.State.RUNNING,
        lease_until=timezone.now() - timedelta(seconds=1),
        not_before=None,
    )
    assert outbox.sweep() == 1
    assert_done(invoice)
    (xero_invoice,) = state_of(xero_sandbox, tenant_id)["invoices"]
    assert xero_invoice["Status"] == "AUTHORISED"
    assert link_of(invoice).xero_invoice_id == xero_invoice["InvoiceID"]


def test_a_job_whose_task_was_lost_is_dispatched_by_the_sweeper(
    xero_sandbox, connected, monkeypatch
):
    tenant_id, account, _ = connected
    from xero_integration import taskqueue

    with monkeypatch.context() as patched:
        patched.setattr(taskqueue, "send", lambda *args, **kwargs: None)  # the broker lost the task
        invoice = make_invoice(account, [{}])
    job = job_of(invoice)
    assert job.state == SyncJob.State.PENDING
    assert state_of(xero_sandbox, tenant_id)["invoices"] == []
    assert outbox.sweep() == 0  # still within its grace period
    SyncJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - outbox.SWEEP_GRACE * 2)
    assert outbox.sweep() == 1
    assert_done(invoice)
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1


@pytest.mark.postgres
def test_two_workers_running_the_same_job_make_one_invoice(xero_sandbox, connected, monkeypatch):
    if db_connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (concurrent transactions)")
    tenant_id, account, _ = connected
    from xero_integration import taskqueue

    monkeypatch.setattr(taskqueue, "send", lambda *args, **kwargs: None)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    PaymentFactory(invoice=invoice, amount=Decimal("10.00"))
    assert job_of(invoice).state == SyncJob.State.PENDING
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=10)
            invoices.run(str(account.pk), "crm.invoice", str(invoice.pk))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert_done(invoice)
    state = state_of(xero_sandbox, tenant_id)
    assert len(state["invoices"]) == 1
    assert len(live_payments(state)) == 1
    assert len(writes(xero_sandbox, tenant_id, "Invoices", ("PUT",))) == 1


@pytest.mark.postgres
def test_two_workers_on_a_job_with_an_expired_lease_make_one_invoice(
    xero_sandbox, connected, monkeypatch
):
    if db_connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (concurrent transactions)")
    tenant_id, account, _ = connected
    from xero_integration import taskqueue

    monkeypatch.setattr(taskqueue, "send", lambda *args, **kwargs: None)
    invoice = make_invoice(account, [{}])
    SyncJob.objects.filter(host_id=str(invoice.pk)).update(
        state=SyncJob.State.RUNNING, lease_until=timezone.now() - timedelta(seconds=5)
    )
    barrier = threading.Barrier(3)

    def worker() -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=10)
            invoices.run(str(account.pk), "crm.invoice", str(invoice.pk))
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert_done(invoice)
    assert len(state_of(xero_sandbox, tenant_id)["invoices"]) == 1


def test_invoices_pushed_together_survive_a_lost_response_once_each(
    xero_sandbox, connected, monkeypatch
):
    tenant_id, account, _ = connected
    from xero_integration import taskqueue

    with monkeypatch.context() as patched:
        patched.setattr(taskqueue, "send", lambda *args, **kwargs: None)
        first = make_invoice(account, [{"unit_price": Decimal("10")}])
        second = make_invoice(account, [{"unit_price": Decimal("20")}])
        pay(second, "5.00")
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "lost_response", count=10)
    invoices.run(str(account.pk), "crm.invoice", str(first.pk))
    assert {job_of(i).state for i in (first, second)} == {SyncJob.State.WAITING}
    xero_sandbox.clear_faults()
    SyncJob.objects.update(not_before=timezone.now() - timedelta(seconds=1))
    assert outbox.sweep() == 2
    assert_done(first)
    assert_done(second)
    state = state_of(xero_sandbox, tenant_id)
    totals = sorted((i["InvoiceNumber"], money(i["Total"])) for i in state["invoices"])
    assert totals == sorted([(first.number, Decimal("10.00")), (second.number, Decimal("20.00"))])
    (payment,) = live_payments(state)
    assert money(payment["Amount"]) == Decimal("5.00")
