"""Xero's arithmetic and wire format, as the sandbox must reproduce them (Xero's API documentation).

Over real HTTP against the ``xero_sandbox`` fixture: line amounts with discounts, tax per line
rounded then summed, ``unitdp``, line amount types; the envelope, Microsoft JSON dates,
ValidationException bodies, ``summarizeErrors``, ``Idempotency-Key``, ``Xero-Correlation-Id``.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import requests

from tests.sandbox.test_accounting_rules import (
    DUPLICATE_NAME,
    INVOICE_DATE,
    Org,
    assert_validation_error,
    dec,
    parse_ms_date,
    validation_messages,
)

MS_DATE_OUT = re.compile(r"/Date\(\d+\+0000\)/")
ENVELOPE_DATE = re.compile(r"/Date\(\d+\)/")
CONTACT_REQUIRED = (
    "The Contact must contain at least 1 of the following elements to identify the contact: "
    "Name, ContactID, ContactNumber"
)


def epoch_ms(day: str) -> int:
    moment = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@pytest.fixture
def customer(org: Org) -> dict:
    return org.create_contact("Wire Customer Ltd")


def one_line_invoice(org: Org, customer: dict, line: dict, amount_types: str = "Exclusive"):
    return org.create_invoice(customer["ContactID"], lines=[line], LineAmountTypes=amount_types)


# --------------------------------------------------------------------------- arithmetic


def test_line_amount_with_discount_rate(org: Org, customer):
    line = org.line(unit_amount="100.00", quantity="2", DiscountRate=10)
    del line["TaxType"]

    invoice = one_line_invoice(org, customer, line, "NoTax")

    (saved,) = invoice["LineItems"]
    assert dec(saved["LineAmount"]) == Decimal("180.00")
    assert dec(saved["DiscountRate"]) == Decimal("10")
    assert dec(invoice["SubTotal"]) == Decimal("180.00")
    assert dec(invoice["TotalTax"]) == 0
    assert dec(invoice["Total"]) == Decimal("180.00")


def test_line_amount_with_discount_amount(org: Org, customer):
    line = org.line(unit_amount="100.00", quantity="2", DiscountAmount=15)
    del line["TaxType"]

    invoice = one_line_invoice(org, customer, line, "NoTax")

    (saved,) = invoice["LineItems"]
    assert dec(saved["LineAmount"]) == Decimal("185.00")
    assert dec(invoice["Total"]) == Decimal("185.00")


def test_discounted_line_is_taxed_after_the_discount(org: Org, customer):
    line = org.line(unit_amount="100.00", quantity="2", DiscountRate=10)

    invoice = one_line_invoice(org, customer, line, "Exclusive")

    assert dec(invoice["LineItems"][0]["TaxAmount"]) == Decimal("27.00")
    assert dec(invoice["SubTotal"]) == Decimal("180.00")
    assert dec(invoice["TotalTax"]) == Decimal("27.00")
    assert dec(invoice["Total"]) == Decimal("207.00")


def test_tax_is_rounded_per_line_then_summed(org: Org, customer):
    """Xero's API documentation (rounding guide): 25.06/25.61/25.63 at 15% -> 11.44, not 11.45."""
    lines = [org.line(unit_amount=amount) for amount in ("25.06", "25.61", "25.63")]

    invoice = org.create_invoice(customer["ContactID"], lines=lines)

    assert [dec(li["TaxAmount"]) for li in invoice["LineItems"]] == [
        Decimal("3.76"),
        Decimal("3.84"),
        Decimal("3.84"),
    ]
    assert dec(invoice["SubTotal"]) == Decimal("76.30")
    assert dec(invoice["TotalTax"]) == Decimal("11.44")
    assert dec(invoice["Total"]) == Decimal("87.74")


def test_unitdp_4_keeps_four_decimals(org: Org, customer):
    body = org.invoice_body(
        customer["ContactID"], lines=[org.line(unit_amount="10.1234", quantity="3")]
    )

    created = org.ok(org.put("/Invoices", {"Invoices": [body]}, params={"unitdp": 4}))

    (line,) = created["Invoices"][0]["LineItems"]
    assert dec(line["UnitAmount"]) == Decimal("10.1234")
    assert dec(line["LineAmount"]) == Decimal("30.37")
    invoice_id = created["Invoices"][0]["InvoiceID"]
    fetched = org.ok(org.get(f"/Invoices/{invoice_id}", params={"unitdp": 4}))
    assert dec(fetched["Invoices"][0]["LineItems"][0]["UnitAmount"]) == Decimal("10.1234")


def test_without_unitdp_unit_amount_is_rounded_to_two_decimals(org: Org, customer):
    invoice = org.create_invoice(
        customer["ContactID"], lines=[org.line(unit_amount="10.1234", quantity="3")]
    )

    (line,) = invoice["LineItems"]
    assert dec(line["UnitAmount"]) == Decimal("10.12")
    assert dec(line["LineAmount"]) == Decimal("30.36")


def test_exclusive_adds_tax_on_top(org: Org, customer):
    invoice = one_line_invoice(org, customer, org.line(unit_amount="100.00"), "Exclusive")

    assert invoice["LineAmountTypes"] == "Exclusive"
    assert dec(invoice["LineItems"][0]["LineAmount"]) == Decimal("100.00")
    assert dec(invoice["LineItems"][0]["TaxAmount"]) == Decimal("15.00")
    assert dec(invoice["SubTotal"]) == Decimal("100.00")
    assert dec(invoice["TotalTax"]) == Decimal("15.00")
    assert dec(invoice["Total"]) == Decimal("115.00")


def test_exclusive_is_the_default(org: Org, customer):
    body = org.invoice_body(customer["ContactID"])
    del body["LineAmountTypes"]

    invoice = org.ok(org.put("/Invoices", {"Invoices": [body]}))["Invoices"][0]

    assert invoice["LineAmountTypes"] == "Exclusive"
    assert dec(invoice["Total"]) == Decimal("115.00")


def test_inclusive_takes_tax_out_of_the_line(org: Org, customer):
    invoice = one_line_invoice(org, customer, org.line(unit_amount="115.00"), "Inclusive")

    assert invoice["LineAmountTypes"] == "Inclusive"
    assert dec(invoice["LineItems"][0]["LineAmount"]) == Decimal("115.00")
    assert dec(invoice["LineItems"][0]["TaxAmount"]) == Decimal("15.00")
    assert dec(invoice["SubTotal"]) == Decimal("100.00")
    assert dec(invoice["TotalTax"]) == Decimal("15.00")
    assert dec(invoice["Total"]) == Decimal("115.00")


def test_inclusive_tax_is_rounded_per_line(org: Org, customer):
    lines = [org.line(unit_amount="10.00"), org.line(unit_amount="10.00")]

    invoice = org.create_invoice(customer["ContactID"], lines=lines, LineAmountTypes="Inclusive")

    # 10 - 10/1.15 = 1.3043 -> 1.30 per line
    assert [dec(li["TaxAmount"]) for li in invoice["LineItems"]] == [
        Decimal("1.30"),
        Decimal("1.30"),
    ]
    assert dec(invoice["TotalTax"]) == Decimal("2.60")
    assert dec(invoice["SubTotal"]) == Decimal("17.40")
    assert dec(invoice["Total"]) == Decimal("20.00")


def test_no_tax_charges_no_tax(org: Org, customer):
    line = org.line(unit_amount="100.00")
    del line["TaxType"]

    invoice = one_line_invoice(org, customer, line, "NoTax")

    assert invoice["LineAmountTypes"] == "NoTax"
    assert dec(invoice["LineItems"][0]["TaxAmount"]) == 0
    assert dec(invoice["TotalTax"]) == 0
    assert dec(invoice["SubTotal"]) == Decimal("100.00")
    assert dec(invoice["Total"]) == Decimal("100.00")


def test_new_approved_invoice_is_fully_due(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])

    assert dec(invoice["AmountDue"]) == dec(invoice["Total"]) == Decimal("115.00")
    assert dec(invoice["AmountPaid"]) == 0


def test_total_sent_by_the_client_is_ignored(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], Total=1.0, SubTotal=1.0, TotalTax=0.0)

    assert dec(invoice["Total"]) == Decimal("115.00")


# --------------------------------------------------------------------------- envelope and dates


def assert_envelope(body: dict) -> None:
    assert isinstance(body.get("Id"), str) and body["Id"], body
    assert body.get("Status") == "OK", body
    assert isinstance(body.get("ProviderName"), str), body
    assert ENVELOPE_DATE.fullmatch(body.get("DateTimeUTC", "")), body


def test_response_envelope_on_reads(org: Org):
    body = org.ok(org.get("/Organisation"))

    assert_envelope(body)
    assert isinstance(body["Organisations"], list)


def test_response_envelope_on_writes(org: Org):
    body = org.ok(org.put("/Contacts", {"Contacts": [{"Name": "Envelope Ltd"}]}))

    assert_envelope(body)
    assert body["Contacts"][0]["Name"] == "Envelope Ltd"


def test_dates_go_out_as_microsoft_json_dates(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], Date="2026-03-02", DueDate="2026-04-01")

    assert invoice["Date"] == f"/Date({epoch_ms('2026-03-02')}+0000)/"
    assert invoice["DueDate"] == f"/Date({epoch_ms('2026-04-01')}+0000)/"
    assert invoice["DateString"] == "2026-03-02T00:00:00"
    assert invoice["DueDateString"] == "2026-04-01T00:00:00"
    assert MS_DATE_OUT.fullmatch(invoice["UpdatedDateUTC"]), invoice["UpdatedDateUTC"]
    assert MS_DATE_OUT.fullmatch(customer["UpdatedDateUTC"]), customer["UpdatedDateUTC"]


def test_payment_dates_go_out_as_microsoft_json_dates(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"])

    payment = org.pay(invoice["InvoiceID"], "10.00")

    assert payment["Date"] == f"/Date({epoch_ms(INVOICE_DATE)}+0000)/"


@pytest.mark.parametrize("suffix", ["", "+0000"])
def test_microsoft_json_dates_are_accepted_in_request_bodies(org: Org, customer, suffix: str):
    date_in = f"/Date({epoch_ms('2026-01-05')}{suffix})/"
    due_in = f"/Date({epoch_ms('2026-02-05')}{suffix})/"

    invoice = org.create_invoice(customer["ContactID"], Date=date_in, DueDate=due_in)

    assert invoice["DateString"] == "2026-01-05T00:00:00"
    assert invoice["DueDateString"] == "2026-02-05T00:00:00"
    assert parse_ms_date(invoice["Date"]).date() == dt.date(2026, 1, 5)


def test_read_only_fields_in_request_bodies_are_tolerated(org: Org):
    body = org.ok(
        org.put(
            "/Contacts",
            {
                "Contacts": [
                    {
                        "Name": "SDK Shaped Ltd",
                        "HasAttachments": False,
                        "HasValidationErrors": False,
                    }
                ]
            },
        )
    )

    assert body["Contacts"][0]["ContactID"]


# --------------------------------------------------------------------------- validation bodies


def test_validation_exception_body_shape(org: Org):
    org.create_contact("Taken Name Ltd")

    response = org.put("/Contacts", {"Contacts": [{"Name": "Taken Name Ltd"}]})

    assert response.status_code == 400
    body = response.json()
    assert body["ErrorNumber"] == 10
    assert body["Type"] == "ValidationException"
    assert body["Message"] == "A validation exception occurred"
    (element,) = body["Elements"]
    assert element["Name"] == "Taken Name Ltd"
    assert [e["Message"] for e in element["ValidationErrors"]] == [
        DUPLICATE_NAME.format(name="Taken Name Ltd")
    ]


def test_line_item_errors_are_nested_in_the_line(org: Org, customer):
    lines = [org.line(), org.line(TaxType="NOSUCHTAX")]

    response = org.put_invoice(customer["ContactID"], lines=lines)

    assert_validation_error(response)
    (element,) = response.json()["Elements"]
    assert len(element["LineItems"]) == 2
    assert not element["LineItems"][0].get("ValidationErrors")
    nested = element["LineItems"][1]["ValidationErrors"]
    assert nested and all(e.get("Message") for e in nested), element


def test_invoice_contact_must_be_identified(org: Org):
    body = org.invoice_body("ignored")
    body["Contact"] = {}

    response = org.put("/Invoices", {"Invoices": [body]})

    assert_validation_error(response, CONTACT_REQUIRED)


def test_summarize_errors_false_reports_each_element(org: Org):
    org.create_contact("Existing Name Ltd")

    response = org.put(
        "/Contacts",
        {"Contacts": [{"Name": "Brand New Ltd"}, {"Name": "Existing Name Ltd"}]},
        params={"summarizeErrors": "false"},
    )

    assert response.status_code == 200, response.text
    good, bad = response.json()["Contacts"]
    assert good["StatusAttributeString"] == "OK"
    assert good["ContactID"]
    assert bad["StatusAttributeString"] == "ERROR"
    assert [e["Message"] for e in bad["ValidationErrors"]] == [
        DUPLICATE_NAME.format(name="Existing Name Ltd")
    ]
    found = org.ok(org.get("/Contacts", params={"where": 'Name=="Brand New Ltd"'}))
    assert [c["ContactID"] for c in found["Contacts"]] == [good["ContactID"]]


def test_summarize_errors_false_on_invoices(org: Org, customer):
    good = org.invoice_body(customer["ContactID"])
    bad = org.invoice_body(customer["ContactID"], lines=[org.line(TaxType="NOSUCHTAX")])

    response = org.put("/Invoices", {"Invoices": [good, bad]}, params={"summarizeErrors": "false"})

    assert response.status_code == 200, response.text
    ok_invoice, failed = response.json()["Invoices"]
    assert ok_invoice["StatusAttributeString"] == "OK"
    assert failed["StatusAttributeString"] == "ERROR"
    assert validation_messages(failed)
    assert not validation_messages(ok_invoice)
    listed = org.ok(org.get("/Invoices"))["Invoices"]
    assert [i["InvoiceID"] for i in listed] == [ok_invoice["InvoiceID"]]


def test_default_summarize_lists_failures_but_creates_valid_elements(org: Org):
    org.create_contact("Already Here Ltd")

    response = org.put(
        "/Contacts",
        {"Contacts": [{"Name": "Valid Newcomer Ltd"}, {"Name": "Already Here Ltd"}]},
    )

    assert_validation_error(response, DUPLICATE_NAME.format(name="Already Here Ltd"))
    elements = response.json()["Elements"]
    assert [e["Name"] for e in elements] == ["Already Here Ltd"]
    found = org.ok(org.get("/Contacts", params={"where": 'Name=="Valid Newcomer Ltd"'}))
    assert len(found["Contacts"]) == 1


def test_default_summarize_on_invoices_still_creates_the_valid_one(org: Org, customer):
    good = org.invoice_body(customer["ContactID"], InvoiceNumber="BATCH-GOOD")
    bad = org.invoice_body(
        customer["ContactID"], InvoiceNumber="BATCH-BAD", lines=[org.line(TaxType="NOSUCHTAX")]
    )

    response = org.put("/Invoices", {"Invoices": [good, bad]})

    assert_validation_error(response)
    assert len(response.json()["Elements"]) == 1
    listed = org.ok(org.get("/Invoices"))["Invoices"]
    assert [i["InvoiceNumber"] for i in listed] == ["BATCH-GOOD"]


# --------------------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_first_response(org: Org, customer):
    body = {"Invoices": [org.invoice_body(customer["ContactID"])]}
    headers = {"Idempotency-Key": "invoice-create-0001"}

    first = org.ok(org.put("/Invoices", body, headers=headers))
    second = org.ok(org.put("/Invoices", body, headers=headers))

    assert second["Invoices"][0]["InvoiceID"] == first["Invoices"][0]["InvoiceID"]
    assert len(org.ok(org.get("/Invoices"))["Invoices"]) == 1
    state = org.sandbox.organisation_state(org.tenant_id)
    assert len(state["invoices"]) == 1


def test_idempotency_key_with_a_different_body_is_refused(org: Org, customer):
    headers = {"Idempotency-Key": "invoice-create-0002"}
    org.ok(
        org.put(
            "/Invoices", {"Invoices": [org.invoice_body(customer["ContactID"])]}, headers=headers
        )
    )

    changed = {"Invoices": [org.invoice_body(customer["ContactID"], Reference="different")]}
    response = org.put("/Invoices", changed, headers=headers)

    assert response.status_code == 400, response.text
    assert len(org.ok(org.get("/Invoices"))["Invoices"]) == 1


def test_idempotency_key_of_128_chars_is_accepted(org: Org):
    response = org.put(
        "/Contacts", {"Contacts": [{"Name": "Key 128 Ltd"}]}, headers={"Idempotency-Key": "k" * 128}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("key", ["k" * 129, ""], ids=["129-chars", "empty"])
def test_idempotency_key_too_long_or_empty_is_refused(org: Org, key: str):
    response = org.put(
        "/Contacts", {"Contacts": [{"Name": "Bad Key Ltd"}]}, headers={"Idempotency-Key": key}
    )

    assert response.status_code == 400, response.text
    assert org.ok(org.get("/Contacts"))["Contacts"] == []


def test_idempotency_key_expires_after_six_minutes(org: Org, customer, xero_sandbox):
    body = {"Invoices": [org.invoice_body(customer["ContactID"])]}
    headers = {"Idempotency-Key": "invoice-create-0003"}
    first = org.ok(org.put("/Invoices", body, headers=headers))

    xero_sandbox.advance_clock(6 * 60 + 5)
    second = org.ok(org.put("/Invoices", body, headers=headers))

    assert second["Invoices"][0]["InvoiceID"] != first["Invoices"][0]["InvoiceID"]
    assert len(org.ok(org.get("/Invoices"))["Invoices"]) == 2


def test_idempotency_keys_are_per_app(org: Org, customer, xero_sandbox):
    xero_sandbox.register_app("second-app", client_secret="second-secret")
    other_token = xero_sandbox.issue_tokens("second-app", [org.tenant_id])["access_token"]
    other = Org(xero_sandbox, org.tenant_id, org.short_code, other_token)
    body = {"Invoices": [org.invoice_body(customer["ContactID"])]}
    headers = {"Idempotency-Key": "shared-key-0001"}

    first = org.ok(org.put("/Invoices", body, headers=headers))
    second = other.ok(other.put("/Invoices", body, headers=headers))

    assert second["Invoices"][0]["InvoiceID"] != first["Invoices"][0]["InvoiceID"]


# --------------------------------------------------------------------------- headers


def test_correlation_id_on_every_response(org: Org):
    ok = org.get("/Organisation")
    failed = org.put("/Contacts", {"Contacts": [{"Name": ""}]})

    assert ok.status_code == 200
    assert failed.status_code == 400
    first = ok.headers.get("Xero-Correlation-Id")
    second = failed.headers.get("Xero-Correlation-Id")
    assert first and second
    assert first != second


def test_accept_other_than_json_is_refused(org: Org, xero_sandbox):
    headers = {
        "Authorization": f"Bearer {org.access_token}",
        "xero-tenant-id": org.tenant_id,
    }
    url = f"{xero_sandbox.api_url}/Contacts"

    as_json = requests.get(url, headers={**headers, "Accept": "application/json"}, timeout=10)
    as_xml = requests.get(url, headers={**headers, "Accept": "application/xml"}, timeout=10)

    assert as_json.status_code == 200, as_json.text
    assert 400 <= as_xml.status_code < 500, (as_xml.status_code, as_xml.text)
