"""An independent client: Xero's official SDK ``xero_python`` pointed at the sandbox.

Xero accepts what its own SDK sends, so the sandbox must too: ``/Connections`` with a capital C,
bare (unwrapped) bodies on ``POST /Payments`` and ``PUT /Currencies``, ``/Date(ms)/`` dates and
read-only fields such as ``HasAttachments`` inside request bodies, ``True``/``False`` in query
strings. The answers are checked against the figures Xero's documentation gives for discounted
line amounts, per-line tax, payments and amount due.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from xero_python.accounting import AccountingApi
from xero_python.accounting.models import (
    Account,
    Contact,
    Contacts,
    Currency,
    CurrencyCode,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    Payment,
    Payments,
)
from xero_python.api_client import ApiClient
from xero_python.api_client.configuration import Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.api_client.serializer import serialize
from xero_python.exceptions import AccountingBadRequestException
from xero_python.identity import IdentityApi

CLIENT_ID = "xero-python-sdk-app"
CLIENT_SECRET = "xero-python-sdk-secret"
INVOICE_DATE = dt.date(2026, 3, 2)
DUE_DATE = dt.date(2026, 4, 1)


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


class Sdk:
    """The SDK's own objects, wired to one sandbox organisation."""

    def __init__(self, sandbox, tenant_id: str, token: dict) -> None:
        self.sandbox = sandbox
        self.tenant_id = tenant_id
        self._token = {
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token"),
            "id_token": token.get("id_token"),
            "token_type": token.get("token_type", "Bearer"),
            "expires_in": token["expires_in"],
            "scope": str(token["scope"]).split(),
        }
        configuration = Configuration()
        # ``Configuration`` is a process-wide singleton copied on construction (its metaclass
        # ignores constructor arguments after the first call): set the token on the copy.
        configuration.oauth2_token = OAuth2Token(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        self.api_client = ApiClient(
            configuration,
            oauth2_token_getter=lambda: self._token,
            oauth2_token_saver=self._token.update,
            pool_threads=1,
        )
        self.accounting = AccountingApi(self.api_client, base_url=f"{sandbox.url}/api.xro/2.0")
        self.identity = IdentityApi(self.api_client, base_url=sandbox.url)

    def sent(self) -> list[dict]:
        return self.sandbox.requests(self.tenant_id)


@pytest.fixture
def make_sdk(xero_sandbox):
    xero_sandbox.register_app(CLIENT_ID, client_secret=CLIENT_SECRET)

    def make(**options) -> Sdk:
        created = xero_sandbox.create_organisation(**options)
        token = xero_sandbox.issue_tokens(CLIENT_ID, [created["tenant_id"]])
        return Sdk(xero_sandbox, created["tenant_id"], token)

    return make


@pytest.fixture
def sdk(make_sdk) -> Sdk:
    return make_sdk(
        name="SDK Demo Company (NZ)", country_code="NZ", base_currency="NZD", multicurrency=True
    )


def revenue_account(sdk: Sdk) -> Account:
    accounts = sdk.accounting.get_accounts(sdk.tenant_id, where='Status=="ACTIVE"').accounts
    for account in accounts:
        if str(getattr(account._class, "value", account._class)) == "REVENUE" and account.code:
            return account
    raise AssertionError(accounts)


def bank_account(sdk: Sdk) -> Account:
    accounts = sdk.accounting.get_accounts(sdk.tenant_id, where='Type=="BANK"').accounts
    assert accounts, "no BANK account"
    return accounts[0]


def gst_on_income(sdk: Sdk):
    """NZ's standard 15% sales rate, found by what it is rather than by a guessed code."""
    rates = sdk.accounting.get_tax_rates(sdk.tenant_id).tax_rates
    for rate in rates:
        if (
            rate.status == "ACTIVE"
            and rate.can_apply_to_revenue
            and money(rate.effective_rate) == Decimal("15.00")
        ):
            return rate
    raise AssertionError([(r.name, r.tax_type, r.effective_rate, r.status) for r in rates])


# --------------------------------------------------------------------------- identity


def test_get_connections_with_capital_c(sdk: Sdk):
    connections = sdk.identity.get_connections()
    assert [str(c.tenant_id) for c in connections] == [sdk.tenant_id]
    connection = connections[0]
    assert connection.tenant_type == "ORGANISATION"
    assert connection.tenant_name == "SDK Demo Company (NZ)"
    assert connection.created_date_utc is not None

    assert connection.auth_event_id
    by_event = sdk.identity.get_connections(auth_event_id=str(connection.auth_event_id))
    assert [str(c.id) for c in by_event] == [str(connection.id)]

    # the SDK's own spelling is what went over the wire, and the sandbox answered it
    sent = [(r["method"], r["path"], r["status"]) for r in sdk.sandbox.requests()]
    assert ("GET", "/Connections", 200) in sent, sent


# --------------------------------------------------------------------------- contacts


def test_create_contact_put_and_post(sdk: Sdk):
    created = sdk.accounting.create_contacts(
        sdk.tenant_id,
        Contacts(contacts=[Contact(name="SDK Customer Ltd", email_address="ap@sdk.example")]),
        summarize_errors=True,  # the SDK sends "True" in the query string
    ).contacts[0]
    assert created.contact_id
    assert created.name == "SDK Customer Ltd"
    assert created.contact_status == "ACTIVE"

    posted = sdk.accounting.update_or_create_contacts(
        sdk.tenant_id,
        Contacts(contacts=[Contact(contact_id=created.contact_id, first_name="Ada")]),
        summarize_errors=False,
    ).contacts[0]
    assert posted.contact_id == created.contact_id
    assert posted.first_name == "Ada"

    fetched = sdk.accounting.get_contact(sdk.tenant_id, created.contact_id).contacts[0]
    assert fetched.email_address == "ap@sdk.example"

    queries = [r["query"] for r in sdk.sent() if r["path"].endswith("/Contacts")]
    flat = str(queries)
    assert "True" in flat and "False" in flat, queries


def test_duplicate_contact_name_is_refused_with_xero_message(sdk: Sdk):
    sdk.accounting.create_contacts(sdk.tenant_id, Contacts(contacts=[Contact(name="Twin Ltd")]))
    with pytest.raises(AccountingBadRequestException) as caught:
        sdk.accounting.create_contacts(sdk.tenant_id, Contacts(contacts=[Contact(name="Twin Ltd")]))
    assert caught.value.status == 400
    assert "The contact name Twin Ltd is already assigned to another contact." in str(
        caught.value.error_data or caught.value.body
    )


# --------------------------------------------------------------------------- invoices and payments


def _invoice(sdk: Sdk, contact: Contact, tax_type: str, number: str) -> Invoice:
    code = revenue_account(sdk).code
    return Invoice(
        type="ACCREC",
        contact=Contact(contact_id=contact.contact_id),
        date=INVOICE_DATE,  # serialised by the SDK as /Date(ms)/
        due_date=DUE_DATE,
        invoice_number=number,
        reference="SDK order 7",
        line_amount_types=LineAmountTypes.EXCLUSIVE,
        status="AUTHORISED",
        line_items=[
            LineItem(
                description="Consulting, 10% off",
                quantity=2.0,
                unit_amount=100.00,
                discount_rate=10.0,
                account_code=code,
                tax_type=tax_type,
            ),
            LineItem(
                description="Per-line rounding",
                quantity=1.0,
                unit_amount=25.06,
                account_code=code,
                tax_type=tax_type,
            ),
        ],
    )


def test_invoice_with_discount_and_tax_then_payments(sdk: Sdk):
    tax_rate = gst_on_income(sdk)
    contact = sdk.accounting.create_contacts(
        sdk.tenant_id, Contacts(contacts=[Contact(name="Invoice SDK Ltd")])
    ).contacts[0]

    to_send = _invoice(sdk, contact, tax_rate.tax_type, "SDK-0001")
    assert serialize(to_send)["Date"].startswith("/Date("), serialize(to_send)
    invoice = sdk.accounting.create_invoices(
        sdk.tenant_id,
        Invoices(invoices=[to_send]),
        summarize_errors=False,
        unitdp=4,
    ).invoices[0]
    assert not invoice.has_errors, invoice.validation_errors
    # Xero's API documentation: LineAmount = Quantity × UnitAmount × (100 − DiscountRate) / 100;
    # tax per line, rounded to 2 dp, then summed.
    # line 1: 2 × 100.00 × 0.90 = 180.00, tax 27.00; line 2: 25.06, tax 3.759 → 3.76.
    assert [money(li.line_amount) for li in invoice.line_items] == [
        Decimal("180.00"),
        Decimal("25.06"),
    ]
    assert [money(li.tax_amount) for li in invoice.line_items] == [
        Decimal("27.00"),
        Decimal("3.76"),
    ]
    assert money(invoice.sub_total) == Decimal("205.06")
    assert money(invoice.total_tax) == Decimal("30.76")
    assert money(invoice.total) == Decimal("235.82")
    assert money(invoice.amount_due) == Decimal("235.82")
    assert money(invoice.amount_paid) == Decimal("0.00")
    assert invoice.status == "AUTHORISED"
    assert invoice.date == INVOICE_DATE
    assert invoice.due_date == DUE_DATE
    assert invoice.invoice_number == "SDK-0001"

    bank = bank_account(sdk)
    # create_payment: POST /Payments with a bare Payment body; the SDK's Invoice model sends
    # read-only fields (HasAttachments, ...) and the date as /Date(ms)/.
    payment = Payment(
        invoice=Invoice(invoice_id=invoice.invoice_id),
        account=Account(account_id=bank.account_id),
        date=INVOICE_DATE,
        amount=100.00,
        reference="SDK part payment",
    )
    wire = serialize(payment)
    assert "Payments" not in wire and wire["Date"].startswith("/Date("), wire
    assert "HasAttachments" in wire["Invoice"], wire
    partial = sdk.accounting.create_payment(sdk.tenant_id, payment).payments[0]
    assert partial.status == "AUTHORISED"
    assert money(partial.amount) == Decimal("100.00")
    assert partial.payment_type == "ACCRECPAYMENT"

    after_partial = sdk.accounting.get_invoice(sdk.tenant_id, invoice.invoice_id).invoices[0]
    # Xero's API documentation: a partial payment leaves the invoice AUTHORISED with the rest due
    assert after_partial.status == "AUTHORISED"
    assert money(after_partial.amount_paid) == Decimal("100.00")
    assert money(after_partial.amount_due) == Decimal("135.82")

    # create_payments: PUT /Payments with the wrapped array
    rest = sdk.accounting.create_payments(
        sdk.tenant_id,
        Payments(
            payments=[
                Payment(
                    invoice=Invoice(invoice_id=invoice.invoice_id),
                    account=Account(account_id=bank.account_id),
                    date=DUE_DATE,
                    amount=135.82,
                )
            ]
        ),
        summarize_errors=True,
    ).payments[0]
    assert rest.status == "AUTHORISED"

    paid = sdk.accounting.get_invoice(sdk.tenant_id, invoice.invoice_id).invoices[0]
    # full payment: PAID, nothing due, FullyPaidOnDate set
    assert paid.status == "PAID"
    assert money(paid.amount_due) == Decimal("0.00")
    assert money(paid.amount_paid) == Decimal("235.82")
    assert paid.fully_paid_on_date is not None
    assert len(paid.payments or []) == 2

    sent = {(r["method"], r["path"]) for r in sdk.sent()}
    assert ("POST", "/api.xro/2.0/Payments") in sent
    assert ("PUT", "/api.xro/2.0/Payments") in sent


def test_overpayment_is_refused_with_xero_message(sdk: Sdk):
    tax_rate = gst_on_income(sdk)
    contact = sdk.accounting.create_contacts(
        sdk.tenant_id, Contacts(contacts=[Contact(name="Overpay SDK Ltd")])
    ).contacts[0]
    invoice = sdk.accounting.create_invoices(
        sdk.tenant_id, Invoices(invoices=[_invoice(sdk, contact, tax_rate.tax_type, "SDK-0002")])
    ).invoices[0]
    with pytest.raises(AccountingBadRequestException) as caught:
        sdk.accounting.create_payment(
            sdk.tenant_id,
            Payment(
                invoice=Invoice(invoice_id=invoice.invoice_id),
                account=Account(account_id=bank_account(sdk).account_id),
                date=INVOICE_DATE,
                amount=1000.00,
            ),
        )
    assert "Payment amount exceeds the amount outstanding on this document" in str(
        caught.value.error_data or caught.value.body
    )


# --------------------------------------------------------------------------- settings


def test_read_tax_rates(sdk: Sdk):
    rates = sdk.accounting.get_tax_rates(sdk.tenant_id).tax_rates
    gst = gst_on_income(sdk)
    assert gst.name and gst.tax_type
    assert money(gst.display_tax_rate) == Decimal("15.00")
    assert [money(c.rate) for c in gst.tax_components] == [Decimal("15.00")]
    assert all(r.status in {"ACTIVE", "DELETED", "ARCHIVED", "PENDING"} for r in rates)


def test_currencies_read_and_create_on_multicurrency_org(sdk: Sdk):
    actions = sdk.accounting.get_organisation_actions(sdk.tenant_id).actions
    assert any(a.name == "UseMulticurrency" and a.status == "ALLOWED" for a in actions)

    codes = [c.code for c in sdk.accounting.get_currencies(sdk.tenant_id).currencies]
    assert CurrencyCode.NZD in codes

    # create_currency: PUT /Currencies with a bare Currency body
    currency = Currency(code=CurrencyCode.USD, description="United States Dollar")
    assert serialize(currency) == {"Code": "USD", "Description": "United States Dollar"}
    added = sdk.accounting.create_currency(sdk.tenant_id, currency).currencies
    assert [c.code for c in added] == [CurrencyCode.USD]

    codes = [c.code for c in sdk.accounting.get_currencies(sdk.tenant_id).currencies]
    assert CurrencyCode.NZD in codes and CurrencyCode.USD in codes
    assert ("PUT", "/api.xro/2.0/Currencies") in {(r["method"], r["path"]) for r in sdk.sent()}


def test_get_organisation(sdk: Sdk):
    organisation = sdk.accounting.get_organisations(sdk.tenant_id).organisations[0]
    assert str(organisation.organisation_id) == sdk.tenant_id
    assert organisation.base_currency == CurrencyCode.NZD
    assert organisation.name == "SDK Demo Company (NZ)"
