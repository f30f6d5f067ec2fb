"""Xero's accounting rules, as the sandbox must enforce them (Xero's API documentation).

One rule per test, over real HTTP against the ``xero_sandbox`` fixture. Every test builds its own
organisation through the control API and calls the Accounting API with a real access token.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest

CLIENT_ID = "rules-test-app"
CLIENT_SECRET = "rules-test-secret"

DUPLICATE_NAME = (
    "The contact name {name} is already assigned to another contact. "
    "The contact name must be unique across all active contacts."
)
ARCHIVED_CONTACT = (
    "The contact with the specified contact details has been archived. "
    "The contact must be un-archived before creating new invoices or credit notes."
)
DUPLICATE_INVOICE_NUMBER = "Invoice # must be unique."
INVALID_STATUS = "Invoice not of valid status for modification"
PAYMENT_ALLOCATED = (
    "This document cannot be edited as it has a payment or credit note allocated to it."
)
OVERPAYMENT = "Payment amount exceeds the amount outstanding on this document"

INVOICE_DATE = "2026-03-02"
DUE_DATE = "2026-04-01"


# --------------------------------------------------------------------------- helpers


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def validation_messages(body: Any) -> list[str]:
    """Every ``ValidationErrors[].Message`` anywhere in a Xero body (they nest at every level)."""
    found: list[str] = []
    if isinstance(body, dict):
        for error in body.get("ValidationErrors") or []:
            if isinstance(error, dict) and error.get("Message"):
                found.append(error["Message"])
        for key, value in body.items():
            if key != "ValidationErrors":
                found.extend(validation_messages(value))
    elif isinstance(body, list):
        for item in body:
            found.extend(validation_messages(item))
    return found


def assert_validation_error(response, message: str | None = None) -> list[str]:
    """A 400 ValidationException (ErrorNumber 10); optionally carrying ``message``."""
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert body.get("ErrorNumber") == 10, body
    assert body.get("Type") == "ValidationException", body
    messages = validation_messages(body)
    assert messages, body
    if message is not None:
        assert message in messages, messages
    return messages


def assert_tax_rate_refused(response) -> None:
    """Xero's texts for a TaxType it will not take (Xero's API documentation)."""
    messages = assert_validation_error(response)
    assert any(
        m == "Tax rate must be valid."
        or (m.startswith("The TaxType code") and "cannot be used" in m)
        for m in messages
    ), messages


def parse_ms_date(value: str) -> dt.datetime:
    match = re.fullmatch(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/", value)
    assert match, value
    return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, tz=dt.UTC)


class Org:
    """One sandbox organisation with a connected app and an access token."""

    def __init__(self, sandbox, tenant_id: str, short_code: str, access_token: str) -> None:
        self.sandbox = sandbox
        self.tenant_id = tenant_id
        self.short_code = short_code
        self.access_token = access_token
        self._accounts: list[dict] | None = None
        self._tax_rates: list[dict] | None = None

    # raw calls
    def call(self, method: str, path: str, json=None, params=None, headers=None):
        return self.sandbox.api(
            method,
            path,
            self.tenant_id,
            self.access_token,
            json=json,
            params=params,
            headers=headers,
        )

    def get(self, path: str, params=None, headers=None):
        return self.call("GET", path, params=params, headers=headers)

    def put(self, path: str, json, params=None, headers=None):
        return self.call("PUT", path, json=json, params=params, headers=headers)

    def post(self, path: str, json, params=None, headers=None):
        return self.call("POST", path, json=json, params=params, headers=headers)

    def ok(self, response) -> dict:
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    # chart of accounts and tax rates, as the API shows them
    @property
    def accounts(self) -> list[dict]:
        if self._accounts is None:
            self._accounts = self.ok(self.get("/Accounts"))["Accounts"]
        return self._accounts

    @property
    def tax_rates(self) -> list[dict]:
        if self._tax_rates is None:
            self._tax_rates = self.ok(self.get("/TaxRates"))["TaxRates"]
        return self._tax_rates

    def revenue_code(self) -> str:
        for account in self.accounts:
            if (
                account.get("Class") == "REVENUE"
                and account.get("Status") == "ACTIVE"
                and account.get("Code")
            ):
                return account["Code"]
        raise AssertionError(f"no active revenue account with a code: {self.accounts}")

    def bank_account(self) -> dict:
        for account in self.accounts:
            if account.get("Type") == "BANK" and account.get("Status") == "ACTIVE":
                return account
        raise AssertionError(f"no BANK account: {self.accounts}")

    def payments_enabled_account(self) -> dict:
        for account in self.accounts:
            if (
                account.get("Type") != "BANK"
                and account.get("EnablePaymentsToAccount") is True
                and account.get("Status") == "ACTIVE"
            ):
                return account
        raise AssertionError(f"no payments-enabled non-bank account: {self.accounts}")

    def non_payment_account(self) -> dict:
        """An active account with a code that is neither BANK nor payments-enabled."""
        for account in self.accounts:
            if (
                account.get("Type") != "BANK"
                and not account.get("EnablePaymentsToAccount")
                and account.get("Status") == "ACTIVE"
                and account.get("Code")
            ):
                return account
        raise AssertionError(f"no plain account: {self.accounts}")

    def non_revenue_code(self) -> str:
        """An active expense account's code (any non-bank, non-revenue one failing that)."""
        candidates = [
            a
            for a in self.accounts
            if a.get("Class") not in ("REVENUE", None)
            and a.get("Type") != "BANK"
            and a.get("Status") == "ACTIVE"
            and a.get("Code")
        ]
        candidates.sort(key=lambda a: a.get("Class") != "EXPENSE")
        if not candidates:
            raise AssertionError(f"no non-revenue account with a code: {self.accounts}")
        return candidates[0]["Code"]

    def state(self) -> dict:
        return self.sandbox.organisation_state(self.tenant_id)

    def archived_revenue_code(self) -> str | None:
        for account in self.accounts + self.state()["accounts"]:
            if (
                account.get("Class") == "REVENUE"
                and account.get("Status") == "ARCHIVED"
                and account.get("Code")
            ):
                return account["Code"]
        return None

    def archived_tax_type(self) -> str | None:
        for tax_rate in self.tax_rates + self.state()["tax_rates"]:
            if tax_rate.get("Status") == "ARCHIVED":
                return tax_rate["TaxType"]
        return None

    def sales_tax_type(self, rate: str = "15") -> str:
        for tax_rate in self.tax_rates:
            if (
                tax_rate.get("Status") == "ACTIVE"
                and tax_rate.get("CanApplyToRevenue") is not False
                and dec(tax_rate.get("EffectiveRate", "-1")) == Decimal(rate)
            ):
                return tax_rate["TaxType"]
        raise AssertionError(f"no active {rate}% revenue tax rate: {self.tax_rates}")

    # documents
    def create_contact(self, name: str, **fields) -> dict:
        body = self.ok(self.put("/Contacts", {"Contacts": [{"Name": name, **fields}]}))
        return body["Contacts"][0]

    def archive_contact(self, contact_id: str) -> dict:
        body = self.ok(
            self.post(
                f"/Contacts/{contact_id}",
                {"Contacts": [{"ContactID": contact_id, "ContactStatus": "ARCHIVED"}]},
            )
        )
        return body["Contacts"][0]

    def line(self, unit_amount="100.00", quantity="1", **fields) -> dict:
        line = {
            "Description": "Consulting",
            "Quantity": float(quantity),
            "UnitAmount": float(unit_amount),
            "AccountCode": self.revenue_code(),
            "TaxType": self.sales_tax_type(),
        }
        line.update(fields)
        return line

    def invoice_body(self, contact_id: str, status: str = "AUTHORISED", lines=None, **fields):
        invoice = {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact_id},
            "Date": INVOICE_DATE,
            "DueDate": DUE_DATE,
            "LineAmountTypes": "Exclusive",
            "Status": status,
            "LineItems": lines if lines is not None else [self.line()],
        }
        invoice.update(fields)
        return invoice

    def put_invoice(self, contact_id: str, status: str = "AUTHORISED", lines=None, **fields):
        return self.put(
            "/Invoices",
            {"Invoices": [self.invoice_body(contact_id, status, lines, **fields)]},
        )

    def create_invoice(self, contact_id: str, status: str = "AUTHORISED", lines=None, **fields):
        return self.ok(self.put_invoice(contact_id, status, lines, **fields))["Invoices"][0]

    def get_invoice(self, invoice_id: str) -> dict:
        return self.ok(self.get(f"/Invoices/{invoice_id}"))["Invoices"][0]

    def update_invoice(self, invoice_id: str, **fields):
        return self.post(
            f"/Invoices/{invoice_id}",
            {"Invoices": [{"InvoiceID": invoice_id, **fields}]},
        )

    def put_payment(self, invoice_id: str, amount, account: dict | None = None, **fields):
        if account is None:
            account = {"AccountID": self.bank_account()["AccountID"]}
        payment = {
            "Invoice": {"InvoiceID": invoice_id},
            "Account": account,
            "Date": INVOICE_DATE,
            "Amount": float(amount),
        }
        payment.update(fields)
        return self.put("/Payments", {"Payments": [payment]})

    def pay(self, invoice_id: str, amount, account: dict | None = None) -> dict:
        return self.ok(self.put_payment(invoice_id, amount, account))["Payments"][0]


@pytest.fixture
def customer(org: Org) -> dict:
    return org.create_contact("Rules Customer Ltd")


# --------------------------------------------------------------------------- organisation


def test_organisation_reports_the_tenant_it_was_created_as(org: Org):
    body = org.ok(org.get("/Organisation"))
    (organisation,) = body["Organisations"]
    assert organisation["OrganisationID"] == org.tenant_id
    assert organisation["BaseCurrency"] == "NZD"
    assert organisation["CountryCode"] == "NZ"
    if org.short_code:
        assert organisation["ShortCode"] == org.short_code


def test_organisation_actions_follow_the_multicurrency_flag(make_org):
    with_mc = make_org(multicurrency=True)
    without_mc = make_org(name="Single Currency Ltd", multicurrency=False)

    def use_multicurrency(org: Org) -> str:
        actions = org.ok(org.get("/Organisation/Actions"))["Actions"]
        return {a["Name"]: a["Status"] for a in actions}["UseMulticurrency"]

    assert use_multicurrency(with_mc) == "ALLOWED"
    assert use_multicurrency(without_mc) == "NOT-ALLOWED"


# --------------------------------------------------------------------------- contacts


def test_contact_name_must_be_unique_among_active_contacts(org: Org):
    org.create_contact("Buzz Lightyear")

    response = org.put("/Contacts", {"Contacts": [{"Name": "Buzz Lightyear"}]})

    assert_validation_error(response, DUPLICATE_NAME.format(name="Buzz Lightyear"))
    names = [c["Name"] for c in org.ok(org.get("/Contacts"))["Contacts"]]
    assert names.count("Buzz Lightyear") == 1


def test_archived_contact_name_can_be_reused(org: Org):
    first = org.create_contact("Woody Pride")
    archived = org.archive_contact(first["ContactID"])
    assert archived["ContactStatus"] == "ARCHIVED"

    second = org.create_contact("Woody Pride")

    assert second["ContactID"] != first["ContactID"]
    assert second["ContactStatus"] == "ACTIVE"


@pytest.mark.parametrize("flag", ["true", "True"])
def test_archived_contacts_are_listed_only_with_include_archived(org: Org, flag: str):
    active = org.create_contact("Still Trading Ltd")
    gone = org.create_contact("Wound Up Ltd")
    org.archive_contact(gone["ContactID"])

    default_ids = {c["ContactID"] for c in org.ok(org.get("/Contacts"))["Contacts"]}
    all_ids = {
        c["ContactID"]
        for c in org.ok(org.get("/Contacts", params={"includeArchived": flag}))["Contacts"]
    }

    assert active["ContactID"] in default_ids
    assert gone["ContactID"] not in default_ids
    assert {active["ContactID"], gone["ContactID"]} <= all_ids


def test_contacts_are_paged_with_a_pagination_block(make_org):
    org = make_org(contacts=5)

    pages = []
    for page in (1, 2, 3):
        body = org.ok(org.get("/Contacts", params={"page": page, "pageSize": 2}))
        assert body["pagination"] == {
            "page": page,
            "pageSize": 2,
            "pageCount": 3,
            "itemCount": 5,
        }
        pages.append([c["ContactID"] for c in body["Contacts"]])

    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({cid for p in pages for cid in p}) == 5
    past_the_end = org.ok(org.get("/Contacts", params={"page": 4, "pageSize": 2}))
    assert past_the_end["Contacts"] == []


def test_page_defaults_to_100_per_page(make_org):
    org = make_org(contacts=3)

    body = org.ok(org.get("/Contacts", params={"page": 1}))

    assert body["pagination"]["pageSize"] == 100
    assert body["pagination"]["itemCount"] == 3
    assert body["pagination"]["pageCount"] == 1


@pytest.mark.parametrize("page_size", [1001, 0])
def test_page_size_outside_1_to_1000_is_refused(org: Org, page_size: int):
    response = org.get("/Contacts", params={"page": 1, "pageSize": page_size})
    assert response.status_code == 400, response.text


def test_page_size_of_1000_is_allowed(org: Org):
    body = org.ok(org.get("/Contacts", params={"page": 1, "pageSize": 1000}))
    assert body["pagination"]["pageSize"] == 1000


def test_where_name_equals_filters_contacts(org: Org):
    wanted = org.create_contact("Acme Widgets")
    org.create_contact("Acme Widgets Holdings")
    org.create_contact("Bolt Industries")

    body = org.ok(org.get("/Contacts", params={"where": 'Name=="Acme Widgets"'}))

    assert [c["ContactID"] for c in body["Contacts"]] == [wanted["ContactID"]]


def test_contacts_ids_filter(org: Org):
    a = org.create_contact("Alpha Ltd")
    org.create_contact("Beta Ltd")
    c = org.create_contact("Gamma Ltd")

    body = org.ok(org.get("/Contacts", params={"IDs": f"{a['ContactID']},{c['ContactID']}"}))

    assert {x["ContactID"] for x in body["Contacts"]} == {a["ContactID"], c["ContactID"]}


def test_contacts_search_term_is_case_insensitive_over_name_and_email(org: Org):
    acme = org.create_contact("Acme Widgets", EmailAddress="sales@acme.example")
    bolt = org.create_contact("Bolt Industries", EmailAddress="hello@bolt.example")

    by_name = org.ok(org.get("/Contacts", params={"searchTerm": "aCmE"}))["Contacts"]
    by_email = org.ok(org.get("/Contacts", params={"searchTerm": "HELLO@BOLT"}))["Contacts"]

    assert [c["ContactID"] for c in by_name] == [acme["ContactID"]]
    assert [c["ContactID"] for c in by_email] == [bolt["ContactID"]]


def _clock_now(xero_sandbox) -> dt.datetime:
    now = xero_sandbox.sandbox.clock.now()
    if isinstance(now, int | float):
        return dt.datetime.fromtimestamp(now, tz=dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(dt.UTC)


def test_if_modified_since_returns_only_later_contacts(org: Org, xero_sandbox):
    old = org.create_contact("Old Contact Ltd")
    xero_sandbox.advance_clock(30)
    cutoff = _clock_now(xero_sandbox)
    xero_sandbox.advance_clock(30)
    new = org.create_contact("New Contact Ltd")

    assert parse_ms_date(old["UpdatedDateUTC"]) < cutoff < parse_ms_date(new["UpdatedDateUTC"])
    body = org.ok(
        org.get(
            "/Contacts", headers={"If-Modified-Since": cutoff.replace(microsecond=0).isoformat()}
        )
    )

    assert [c["ContactID"] for c in body["Contacts"]] == [new["ContactID"]]


def test_if_modified_since_returns_only_later_invoices(org: Org, customer, xero_sandbox):
    old = org.create_invoice(customer["ContactID"], status="DRAFT")
    xero_sandbox.advance_clock(30)
    cutoff = _clock_now(xero_sandbox)
    xero_sandbox.advance_clock(30)
    new = org.create_invoice(customer["ContactID"], status="DRAFT")

    body = org.ok(
        org.get(
            "/Invoices", headers={"If-Modified-Since": cutoff.replace(microsecond=0).isoformat()}
        )
    )

    ids = [i["InvoiceID"] for i in body["Invoices"]]
    assert new["InvoiceID"] in ids
    assert old["InvoiceID"] not in ids


# --------------------------------------------------------------------------- accounts


def test_accounts_where_type_equals_bank(org: Org):
    body = org.ok(org.get("/Accounts", params={"where": 'Type=="BANK"'}))

    assert body["Accounts"]
    assert {a["Type"] for a in body["Accounts"]} == {"BANK"}
    assert len(body["Accounts"]) == sum(1 for a in org.accounts if a["Type"] == "BANK")


def test_accounts_where_payments_enabled(org: Org):
    body = org.ok(org.get("/Accounts", params={"where": "EnablePaymentsToAccount==true"}))

    assert body["Accounts"]
    assert all(a["EnablePaymentsToAccount"] is True for a in body["Accounts"])
    assert any(a["Type"] != "BANK" for a in body["Accounts"])


def test_accounts_where_status_active(org: Org):
    body = org.ok(org.get("/Accounts", params={"where": 'Status=="ACTIVE"'}))

    assert body["Accounts"]
    assert {a["Status"] for a in body["Accounts"]} == {"ACTIVE"}


# --------------------------------------------------------------------------- invoice queries


def test_invoices_where_status_equals(org: Org, customer):
    draft = org.create_invoice(customer["ContactID"], status="DRAFT")
    authorised = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    body = org.ok(org.get("/Invoices", params={"where": 'Status=="DRAFT"'}))

    ids = {i["InvoiceID"] for i in body["Invoices"]}
    assert draft["InvoiceID"] in ids
    assert authorised["InvoiceID"] not in ids


def test_invoices_ids_filter(org: Org, customer):
    a = org.create_invoice(customer["ContactID"], status="DRAFT")
    org.create_invoice(customer["ContactID"], status="DRAFT")
    c = org.create_invoice(customer["ContactID"], status="DRAFT")

    body = org.ok(org.get("/Invoices", params={"IDs": f"{a['InvoiceID']},{c['InvoiceID']}"}))

    assert {i["InvoiceID"] for i in body["Invoices"]} == {a["InvoiceID"], c["InvoiceID"]}
    # documented choice: with IDs the invoices carry their line items
    assert all(i.get("LineItems") for i in body["Invoices"])


def test_invoices_invoice_numbers_filter(org: Org, customer):
    org.create_invoice(customer["ContactID"], status="DRAFT", InvoiceNumber="RULE-001")
    org.create_invoice(customer["ContactID"], status="DRAFT", InvoiceNumber="RULE-002")
    org.create_invoice(customer["ContactID"], status="DRAFT", InvoiceNumber="RULE-003")

    body = org.ok(org.get("/Invoices", params={"InvoiceNumbers": "RULE-001,RULE-003"}))

    assert sorted(i["InvoiceNumber"] for i in body["Invoices"]) == ["RULE-001", "RULE-003"]


def test_invoices_statuses_filter(org: Org, customer):
    draft = org.create_invoice(customer["ContactID"], status="DRAFT")
    submitted = org.create_invoice(customer["ContactID"], status="SUBMITTED")
    authorised = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    body = org.ok(org.get("/Invoices", params={"Statuses": "DRAFT,AUTHORISED"}))

    ids = {i["InvoiceID"] for i in body["Invoices"]}
    assert ids == {draft["InvoiceID"], authorised["InvoiceID"]}
    assert submitted["InvoiceID"] not in ids


def test_invoices_search_term_matches_number_and_reference(org: Org, customer):
    by_number = org.create_invoice(
        customer["ContactID"], status="DRAFT", InvoiceNumber="ZX-4711", Reference="plain"
    )
    by_reference = org.create_invoice(
        customer["ContactID"], status="DRAFT", InvoiceNumber="ZX-4712", Reference="PO-Kiwi-99"
    )

    found_number = org.ok(org.get("/Invoices", params={"searchTerm": "zx-4711"}))["Invoices"]
    found_ref = org.ok(org.get("/Invoices", params={"searchTerm": "po-kiwi"}))["Invoices"]

    assert [i["InvoiceID"] for i in found_number] == [by_number["InvoiceID"]]
    assert [i["InvoiceID"] for i in found_ref] == [by_reference["InvoiceID"]]


def test_invoices_are_paged_and_pages_carry_line_items(org: Org, customer):
    for _ in range(3):
        org.create_invoice(customer["ContactID"], status="DRAFT")

    body = org.ok(org.get("/Invoices", params={"page": 2, "pageSize": 2}))

    assert body["pagination"] == {"page": 2, "pageSize": 2, "pageCount": 2, "itemCount": 3}
    assert len(body["Invoices"]) == 1
    assert body["Invoices"][0]["LineItems"]


# --------------------------------------------------------------------------- invoice rules


def test_no_invoice_for_an_archived_contact(org: Org):
    contact = org.create_contact("Closed Down Ltd")
    org.archive_contact(contact["ContactID"])

    response = org.put_invoice(contact["ContactID"])

    assert_validation_error(response, ARCHIVED_CONTACT)


def test_invoice_number_must_be_unique(org: Org, customer):
    org.create_invoice(customer["ContactID"], InvoiceNumber="INV-UNIQ-1")

    response = org.put_invoice(customer["ContactID"], InvoiceNumber="INV-UNIQ-1")

    assert_validation_error(response, DUPLICATE_INVOICE_NUMBER)
    body = org.ok(org.get("/Invoices", params={"InvoiceNumbers": "INV-UNIQ-1"}))
    assert len(body["Invoices"]) == 1


def test_invoice_number_is_generated_when_omitted(org: Org, customer):
    first = org.create_invoice(customer["ContactID"])
    second = org.create_invoice(customer["ContactID"])

    assert first["InvoiceNumber"]
    assert second["InvoiceNumber"]
    assert first["InvoiceNumber"] != second["InvoiceNumber"]


def test_draft_to_authorised_to_voided(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="DRAFT")
    assert invoice["Status"] == "DRAFT"

    authorised = org.ok(org.update_invoice(invoice["InvoiceID"], Status="AUTHORISED"))
    assert authorised["Invoices"][0]["Status"] == "AUTHORISED"

    voided = org.ok(org.update_invoice(invoice["InvoiceID"], Status="VOIDED"))
    assert voided["Invoices"][0]["Status"] == "VOIDED"
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "VOIDED"


def test_draft_to_submitted_to_authorised(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="DRAFT")

    submitted = org.ok(org.update_invoice(invoice["InvoiceID"], Status="SUBMITTED"))
    assert submitted["Invoices"][0]["Status"] == "SUBMITTED"
    authorised = org.ok(org.update_invoice(invoice["InvoiceID"], Status="AUTHORISED"))
    assert authorised["Invoices"][0]["Status"] == "AUTHORISED"


def test_draft_can_be_deleted(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="DRAFT")

    deleted = org.ok(org.update_invoice(invoice["InvoiceID"], Status="DELETED"))

    assert deleted["Invoices"][0]["Status"] == "DELETED"
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "DELETED"


def test_authorised_invoice_cannot_be_deleted(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    response = org.update_invoice(invoice["InvoiceID"], Status="DELETED")

    assert_validation_error(response, INVALID_STATUS)
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_draft_cannot_be_voided(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="DRAFT")

    response = org.update_invoice(invoice["InvoiceID"], Status="VOIDED")

    assert_validation_error(response, INVALID_STATUS)
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "DRAFT"


def test_authorised_invoice_cannot_go_back_to_draft(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    response = org.update_invoice(invoice["InvoiceID"], Status="DRAFT")

    assert_validation_error(response, INVALID_STATUS)
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_paid_status_cannot_be_sent(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    response = org.update_invoice(invoice["InvoiceID"], Status="PAID")

    assert response.status_code == 400, response.text
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_invoice_with_a_payment_cannot_be_voided(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    org.pay(invoice["InvoiceID"], "10.00")

    response = org.update_invoice(invoice["InvoiceID"], Status="VOIDED")

    assert_validation_error(response)
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "AUTHORISED"


def test_paid_invoice_cannot_be_edited(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    org.pay(invoice["InvoiceID"], invoice["Total"])
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "PAID"

    response = org.update_invoice(invoice["InvoiceID"], LineItems=[org.line(unit_amount="999.00")])

    messages = assert_validation_error(response)
    assert INVALID_STATUS in messages or PAYMENT_ALLOCATED in messages, messages
    after = org.get_invoice(invoice["InvoiceID"])
    assert after["Status"] == "PAID"
    assert dec(after["Total"]) == dec(invoice["Total"])


def test_sent_to_contact_refused_on_a_draft(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="DRAFT")

    response = org.update_invoice(invoice["InvoiceID"], SentToContact=True)

    assert_validation_error(response)
    assert not org.get_invoice(invoice["InvoiceID"]).get("SentToContact")


def test_sent_to_contact_allowed_once_authorised(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    body = org.ok(org.update_invoice(invoice["InvoiceID"], SentToContact=True))

    assert body["Invoices"][0]["SentToContact"] is True
    assert org.get_invoice(invoice["InvoiceID"])["SentToContact"] is True


def test_unknown_account_code_is_refused(org: Org, customer):
    response = org.put_invoice(customer["ContactID"], lines=[org.line(AccountCode="NOPE9")])

    messages = assert_validation_error(response)
    assert any("Account code 'NOPE9'" in m for m in messages), messages
    assert org.ok(org.get("/Invoices"))["Invoices"] == []


def test_non_revenue_account_is_refused_on_a_sales_invoice(org: Org, customer):
    code = org.non_revenue_code()

    response = org.put_invoice(customer["ContactID"], lines=[org.line(AccountCode=code)])

    messages = assert_validation_error(response)
    assert any(f"Account code '{code}'" in m for m in messages), messages
    assert org.ok(org.get("/Invoices"))["Invoices"] == []


def test_archived_account_code_is_refused(org: Org, customer):
    code = org.archived_revenue_code()
    if code is None:
        pytest.skip("the organisation has no archived revenue account to try")

    response = org.put_invoice(customer["ContactID"], lines=[org.line(AccountCode=code)])

    assert_validation_error(response)


def test_approved_invoice_needs_an_account_code_on_every_line(org: Org, customer):
    line = org.line()
    del line["AccountCode"]

    response = org.put_invoice(customer["ContactID"], lines=[org.line(), line])

    assert_validation_error(response)


def test_approved_invoice_needs_a_due_date(org: Org, customer):
    body = org.invoice_body(customer["ContactID"])
    del body["DueDate"]

    response = org.put("/Invoices", {"Invoices": [body]})

    assert_validation_error(response)


def test_unknown_tax_type_is_refused(org: Org, customer):
    response = org.put_invoice(customer["ContactID"], lines=[org.line(TaxType="NOSUCHTAX")])

    assert_tax_rate_refused(response)
    assert org.ok(org.get("/Invoices"))["Invoices"] == []


def test_archived_tax_type_is_refused(org: Org, customer):
    tax_type = org.archived_tax_type()
    if tax_type is None:
        pytest.skip("the organisation has no archived tax rate to try")

    response = org.put_invoice(customer["ContactID"], lines=[org.line(TaxType=tax_type)])

    assert_tax_rate_refused(response)
    assert org.ok(org.get("/Invoices"))["Invoices"] == []


def test_deleted_tax_type_is_refused(org: Org, customer):
    created = org.ok(
        org.put(
            "/TaxRates",
            {
                "TaxRates": [
                    {
                        "Name": "Short-lived Rate",
                        "ReportTaxType": "OUTPUT",
                        "TaxComponents": [{"Name": "GST", "Rate": 7.5}],
                    }
                ]
            },
        )
    )["TaxRates"][0]
    tax_type = created["TaxType"]
    retired = org.ok(
        org.post(
            "/TaxRates",
            {
                "TaxRates": [
                    {
                        "Name": "Short-lived Rate",
                        "TaxType": tax_type,
                        "ReportTaxType": "OUTPUT",
                        "Status": "DELETED",
                    }
                ]
            },
        )
    )["TaxRates"][0]
    assert retired["Status"] in ("DELETED", "ARCHIVED")

    response = org.put_invoice(customer["ContactID"], lines=[org.line(TaxType=tax_type)])

    assert_tax_rate_refused(response)


# --------------------------------------------------------------------------- currencies


def test_document_in_an_unsubscribed_currency_is_refused(org: Org, customer):
    response = org.put_invoice(customer["ContactID"], CurrencyCode="EUR", CurrencyRate=0.55)

    assert_validation_error(response, "Organisation is not subscribed to currency EUR")


def test_put_currencies_with_a_bare_body_adds_the_currency(org: Org, customer):
    body = org.ok(org.put("/Currencies", {"Code": "USD", "Description": "United States Dollar"}))
    assert [c["Code"] for c in body["Currencies"]] == ["USD"]

    codes = {c["Code"] for c in org.ok(org.get("/Currencies"))["Currencies"]}
    assert {"NZD", "USD"} <= codes

    invoice = org.create_invoice(customer["ContactID"], CurrencyCode="USD", CurrencyRate=0.6)
    assert invoice["CurrencyCode"] == "USD"


def test_put_currencies_refused_without_multicurrency(make_org):
    org = make_org(name="Single Currency Ltd", multicurrency=False)

    response = org.put("/Currencies", {"Code": "USD", "Description": "United States Dollar"})

    assert_validation_error(response)
    codes = {c["Code"] for c in org.ok(org.get("/Currencies"))["Currencies"]}
    assert "USD" not in codes


# --------------------------------------------------------------------------- payments


def test_payment_refused_on_a_draft_invoice(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="DRAFT")

    response = org.put_payment(invoice["InvoiceID"], "10.00")

    assert_validation_error(response)
    assert org.ok(org.get("/Payments"))["Payments"] == []


def test_payment_refused_to_an_account_that_takes_no_payments(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    account = org.non_payment_account()

    response = org.put_payment(invoice["InvoiceID"], "10.00", account={"Code": account["Code"]})

    assert_validation_error(response)
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountPaid"]) == 0


def test_payment_accepted_to_a_payments_enabled_account(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    account = org.payments_enabled_account()

    payment = org.pay(invoice["InvoiceID"], "10.00", account={"AccountID": account["AccountID"]})

    assert payment["PaymentID"]
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountPaid"]) == Decimal("10.00")


def test_payment_may_not_exceed_the_amount_due(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    assert dec(invoice["Total"]) == Decimal("115.00")

    response = org.put_payment(invoice["InvoiceID"], "115.01")

    assert_validation_error(response, OVERPAYMENT)
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountDue"]) == Decimal("115.00")


def test_second_payment_may_not_exceed_what_is_left(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    org.pay(invoice["InvoiceID"], "100.00")

    response = org.put_payment(invoice["InvoiceID"], "20.00")

    assert_validation_error(response, OVERPAYMENT)


def test_partial_payment_leaves_the_invoice_authorised(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")

    payment = org.pay(invoice["InvoiceID"], "40.00")

    assert payment["Status"] == "AUTHORISED"
    after = org.get_invoice(invoice["InvoiceID"])
    assert after["Status"] == "AUTHORISED"
    assert dec(after["AmountPaid"]) == Decimal("40.00")
    assert dec(after["AmountDue"]) == Decimal("75.00")


def test_full_payment_marks_the_invoice_paid(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    org.pay(invoice["InvoiceID"], "40.00")

    org.pay(invoice["InvoiceID"], "75.00")

    after = org.get_invoice(invoice["InvoiceID"])
    assert after["Status"] == "PAID"
    assert dec(after["AmountDue"]) == 0
    assert dec(after["AmountPaid"]) == Decimal("115.00")
    assert after.get("FullyPaidOnDate")


def test_payment_by_invoice_number_and_bare_post_body(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], InvoiceNumber="PAY-BY-NUM")

    body = org.ok(
        org.post(
            "/Payments",
            {
                "Invoice": {"InvoiceNumber": "PAY-BY-NUM"},
                "Account": {"AccountID": org.bank_account()["AccountID"]},
                "Date": INVOICE_DATE,
                "Amount": 15.0,
            },
        )
    )

    assert body["Payments"][0]["PaymentID"]
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountDue"]) == Decimal("100.00")


def test_deleting_a_payment_restores_the_amount_due(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    payment = org.pay(invoice["InvoiceID"], invoice["Total"])
    assert org.get_invoice(invoice["InvoiceID"])["Status"] == "PAID"

    body = org.ok(org.post(f"/Payments/{payment['PaymentID']}", {"Status": "DELETED"}))

    assert body["Payments"][0]["Status"] == "DELETED"
    after = org.get_invoice(invoice["InvoiceID"])
    assert after["Status"] == "AUTHORISED"
    assert dec(after["AmountDue"]) == Decimal("115.00")
    assert dec(after["AmountPaid"]) == 0


def test_payment_update_accepts_only_status(org: Org, customer):
    invoice = org.create_invoice(customer["ContactID"], status="AUTHORISED")
    payment = org.pay(invoice["InvoiceID"], "10.00")

    response = org.post(f"/Payments/{payment['PaymentID']}", {"Amount": 5.0})

    assert response.status_code == 400, response.text
    assert dec(org.get_invoice(invoice["InvoiceID"])["AmountPaid"]) == Decimal("10.00")


# --------------------------------------------------------------------------- tax rates


def test_tax_rate_with_compound_component(make_org):
    org = make_org(name="Compound Co", country_code="US", base_currency="USD")

    body = org.ok(
        org.put(
            "/TaxRates",
            {
                "TaxRates": [
                    {
                        "Name": "GST + QST",
                        "TaxComponents": [
                            {"Name": "GST", "Rate": 5},
                            {"Name": "QST", "Rate": 9.975, "IsCompound": True},
                        ],
                    }
                ]
            },
        )
    )

    (rate,) = body["TaxRates"]
    assert dec(rate["EffectiveRate"]) == Decimal("15.4738")
    assert rate["TaxType"]
    assert rate["Status"] == "ACTIVE"
    assert [c["Name"] for c in rate["TaxComponents"]] == ["GST", "QST"]
    listed = org.ok(org.get(f"/TaxRates/{rate['TaxType']}"))["TaxRates"][0]
    assert dec(listed["EffectiveRate"]) == Decimal("15.4738")


def test_tax_rate_components_add_up(make_org):
    org = make_org(name="Simple Tax Co", country_code="US", base_currency="USD")

    body = org.ok(
        org.put(
            "/TaxRates",
            {
                "TaxRates": [
                    {
                        "Name": "CA State + City",
                        "TaxComponents": [
                            {"Name": "State Tax", "Rate": 2.25},
                            {"Name": "City Tax", "Rate": 5},
                        ],
                    }
                ]
            },
        )
    )

    assert dec(body["TaxRates"][0]["EffectiveRate"]) == Decimal("7.25")


def test_new_tax_rate_is_usable_on_an_invoice(org: Org, customer):
    rate = org.ok(
        org.put(
            "/TaxRates",
            {
                "TaxRates": [
                    {
                        "Name": "Special 10",
                        "ReportTaxType": "OUTPUT",
                        "TaxComponents": [{"Name": "GST", "Rate": 10}],
                    }
                ]
            },
        )
    )["TaxRates"][0]

    invoice = org.create_invoice(customer["ContactID"], lines=[org.line(TaxType=rate["TaxType"])])

    assert dec(invoice["TotalTax"]) == Decimal("10.00")


@pytest.mark.parametrize(("country", "currency"), [("AU", "AUD"), ("NZ", "NZD"), ("GB", "GBP")])
def test_report_tax_type_required_in_au_nz_uk(make_org, country: str, currency: str):
    org = make_org(name=f"{country} Tax Co", country_code=country, base_currency=currency)
    rate = {"Name": "No Report Type", "TaxComponents": [{"Name": "Tax", "Rate": 3}]}

    response = org.put("/TaxRates", {"TaxRates": [rate]})

    assert_validation_error(response)
    with_report = org.put("/TaxRates", {"TaxRates": [{**rate, "ReportTaxType": "OUTPUT"}]})
    assert with_report.status_code == 200, with_report.text


def test_report_tax_type_refused_in_the_us(make_org):
    org = make_org(name="US Tax Co", country_code="US", base_currency="USD")
    rate = {"Name": "With Report Type", "TaxComponents": [{"Name": "Tax", "Rate": 3}]}

    response = org.put("/TaxRates", {"TaxRates": [{**rate, "ReportTaxType": "OUTPUT"}]})

    assert_validation_error(response)
    without = org.put("/TaxRates", {"TaxRates": [rate]})
    assert without.status_code == 200, without.text


# --------------------------------------------------------------------------- lock date


LOCK_DATE = "2025-12-31"


@pytest.fixture
def locked_org(make_org) -> Org:
    return make_org(name="Locked Books Ltd", period_lock_date=LOCK_DATE)


def test_organisation_shows_its_period_lock_date(locked_org: Org):
    (organisation,) = locked_org.ok(locked_org.get("/Organisation"))["Organisations"]
    assert parse_ms_date(organisation["PeriodLockDate"]).date() == dt.date(2025, 12, 31)


@pytest.mark.parametrize("date", ["2025-12-31", "2025-11-15"])
def test_documents_on_or_before_the_lock_date_are_refused(locked_org: Org, date: str):
    contact = locked_org.create_contact("Late Filer Ltd")

    response = locked_org.put_invoice(contact["ContactID"], Date=date, DueDate="2026-02-01")

    messages = assert_validation_error(response)
    assert any("lock date" in m.lower() for m in messages), messages


def test_documents_after_the_lock_date_are_accepted(locked_org: Org):
    contact = locked_org.create_contact("On Time Ltd")

    invoice = locked_org.create_invoice(contact["ContactID"], Date="2026-01-01")

    assert invoice["Status"] == "AUTHORISED"
