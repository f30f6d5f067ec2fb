"""Contract test: the sandbox's wire traffic against Xero's own OpenAPI description.

Every endpoint the integration uses is called over real HTTP against the ``xero_sandbox`` fixture,
and both the request we sent and the answer the sandbox gave are validated with openapi-core
against Xero's published files in ``../shared/xero-openapi/`` (read at test time, never copied).
The sandbox is served on a loopback port; each exchange is mapped onto Xero's server URLs
(``https://api.xero.com/api.xro/2.0`` and ``https://api.xero.com``) before validation.

Xero's description documents no 429 and few 404 responses: those are checked against
Xero's API documentation instead.
"""

from __future__ import annotations

import copy
import functools
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIResponse
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "xero-openapi"
ACCOUNTING_SERVER = "https://api.xero.com/api.xro/2.0"
IDENTITY_SERVER = "https://api.xero.com"

CLIENT_ID = "contract-test-app"
CLIENT_SECRET = "contract-test-secret"
INVOICE_DATE = "2026-03-02"
DUE_DATE = "2026-04-01"


# --------------------------------------------------------------------------- loading the spec


def _load_yaml(name: str) -> dict:
    path = SPEC_DIR / name
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe loader


# Xero's own files do not pass openapi-spec-validator: e.g. ``Account.HasAttachments`` declares
# ``type: boolean`` with ``default: 'false'`` (a string). That is a flaw of the description, not of
# any message, so only the up-front check of the description itself is switched off; every request
# and response below is still validated against the schemas in full.
_CONFIG = Config(spec_validator_cls=None)


@functools.cache
def accounting_spec() -> OpenAPI:
    return OpenAPI.from_dict(_load_yaml("xero_accounting.yaml"), config=_CONFIG)


# Xero's /connections dates are documented (spec example and Xero's API documentation) as
# "2019-12-07T18:46:19.5165400": UTC with no offset, which is not an RFC 3339 ``date-time`` as the
# same spec declares. Only for those two fields, ``format: date-time`` is replaced by a pattern of
# the shape Xero documents (still a strict check of what the sandbox sends).
XERO_CONNECTION_DATE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?$"


@functools.cache
def identity_spec() -> OpenAPI:
    data = copy.deepcopy(_load_yaml("xero-identity.yaml"))
    properties = data["components"]["schemas"]["Connection"]["properties"]
    for name in ("createdDateUtc", "updatedDateUtc"):
        assert properties[name].get("format") == "date-time", properties[name]
        properties[name].pop("format")
        properties[name]["pattern"] = XERO_CONNECTION_DATE
    return OpenAPI.from_dict(data, config=_CONFIG)


# openapi-core cannot check ``type: oauth2`` security schemes and warns on each request; the
# sandbox's bearer-token checks are covered by test_oauth.py.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@pytest.fixture(scope="module", autouse=True)
def _spec_folder() -> None:
    if not SPEC_DIR.is_dir():
        pytest.skip(
            f"Xero's OpenAPI files are not present at {SPEC_DIR} (../shared/xero-openapi/ beside "
            "the repository); the contract test validates against them and has nothing to check."
        )


# --------------------------------------------------------------------------- wire mapping


class XeroRequest:
    """An HTTP request sent to the sandbox, seen as if it had been sent to Xero's host.

    Implements openapi-core's ``Request`` protocol. ``sandbox_prefix`` (e.g.
    ``http://127.0.0.1:PORT/api.xro/2.0``) is replaced by ``xero_prefix``.
    """

    def __init__(self, prepared: requests.PreparedRequest, sandbox_prefix: str, xero_prefix: str):
        assert prepared.url and prepared.url.startswith(sandbox_prefix), (
            prepared.url,
            sandbox_prefix,
        )
        self.prepared = prepared
        rest = prepared.url[len(sandbox_prefix) :]
        parts = urlsplit(xero_prefix + rest)
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.method = (prepared.method or "").lower()
        body = prepared.body
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = prepared.headers.get("Content-Type") or "application/json"
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(
                [(k, v) for k, values in parse_qs(parts.query).items() for v in values]
            ),
            header=Headers(dict(prepared.headers)),
            cookie=ImmutableMultiDict(),
        )

    @property
    def full_url(self) -> str:
        return self.host_url + self.path


def _errors(exc: BaseException) -> str:
    """openapi-core wraps the schema errors; walk the chain to show what was actually wrong."""
    lines = [f"{type(exc).__name__}: {exc}"]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error in getattr(current, "schema_errors", None) or []:
            lines.append(f"  - {list(error.absolute_path)}: {error.message}")
        current = current.__cause__ or current.__context__
        if current is not None:
            lines.append(f"caused by {type(current).__name__}: {current}")
    return "\n".join(lines)


class Contract:
    """Calls the sandbox and validates each exchange against Xero's OpenAPI description."""

    def __init__(self, sandbox, tenant_id: str, access_token: str) -> None:
        self.sandbox = sandbox
        self.tenant_id = tenant_id
        self.access_token = access_token
        self.checked: list[tuple[str, str, int]] = []

    # raw HTTP
    def send(self, method: str, path: str, json: Any = None, params=None, tenant: bool = True):
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        if tenant:
            headers["xero-tenant-id"] = self.tenant_id
        return self.sandbox.http.request(
            method,
            f"{self.sandbox.url}{path}",
            json=json,
            params=params,
            headers=headers,
            timeout=30,
        )

    def validate(self, response: requests.Response, spec: OpenAPI, sandbox_prefix: str, xero):
        request = XeroRequest(response.request, sandbox_prefix, xero)
        try:
            spec.validate_request(request)
        except Exception as exc:  # openapi-core raises several unrelated exception types
            raise AssertionError(
                f"request {request.method.upper()} {request.full_url} does not match Xero's "
                f"OpenAPI description:\n{_errors(exc)}\nbody: {request.body!r}"
            ) from exc
        try:
            spec.validate_response(request, RequestsOpenAPIResponse(response))
        except Exception as exc:
            raise AssertionError(
                f"response {response.status_code} to {request.method.upper()} {request.full_url} "
                f"does not match Xero's OpenAPI description:\n{_errors(exc)}\n"
                f"body: {response.text[:3000]}"
            ) from exc
        self.checked.append((request.method.upper(), request.path, response.status_code))
        return response

    # Accounting API (``/api.xro/2.0``)
    def api(self, method: str, path: str, json: Any = None, params=None, status: int = 200):
        response = self.send(method, f"/api.xro/2.0{path}", json=json, params=params)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        self.validate(
            response, accounting_spec(), f"{self.sandbox.url}/api.xro/2.0", ACCOUNTING_SERVER
        )
        return response.json() if response.content else None

    # Identity API (``/connections``). Xero's description spells the path ``/Connections``; our
    # client uses ``/connections`` as Xero's documentation does. Xero's paths are case-insensitive
    # (the official SDK sends the capital C), so the lower-case spelling is mapped onto the
    # described path before validation.
    def identity(self, method: str, path: str, params=None, status: int = 200):
        response = self.send(method, path, params=params, tenant=False)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        prepared = response.request.copy()
        assert prepared.url is not None
        prefix = self.sandbox.url
        rest = prepared.url[len(prefix) :]
        if rest.lower().startswith("/connections"):
            prepared.url = prefix + "/Connections" + rest[len("/connections") :]
        copied = requests.Response()
        copied.__dict__.update(response.__dict__)
        copied.request = prepared
        self.validate(copied, identity_spec(), prefix, IDENTITY_SERVER)
        return response.json() if response.content else None


@pytest.fixture
def contract(xero_sandbox) -> Contract:
    xero_sandbox.register_app(CLIENT_ID, client_secret=CLIENT_SECRET)
    created = xero_sandbox.create_organisation(
        name="Contract Test Ltd", country_code="NZ", base_currency="NZD", multicurrency=True
    )
    tokens = xero_sandbox.issue_tokens(CLIENT_ID, [created["tenant_id"]])
    return Contract(xero_sandbox, created["tenant_id"], tokens["access_token"])


# --------------------------------------------------------------------------- helpers


def _revenue_code(contract: Contract) -> str:
    accounts = contract.api("GET", "/Accounts", params={"where": 'Status=="ACTIVE"'})["Accounts"]
    for account in accounts:
        if account.get("Class") == "REVENUE" and account.get("Code"):
            return account["Code"]
    raise AssertionError(accounts)


def _bank_account(contract: Contract) -> dict:
    accounts = contract.api("GET", "/Accounts", params={"where": 'Type=="BANK"'})["Accounts"]
    assert accounts, "the sandbox organisation has no BANK account"
    return accounts[0]


def _sales_tax_type(contract: Contract) -> str:
    rates = contract.api("GET", "/TaxRates")["TaxRates"]
    for rate in rates:
        taxed = any(component.get("Rate") for component in rate.get("TaxComponents") or [])
        if rate.get("Status") == "ACTIVE" and rate.get("CanApplyToRevenue") and taxed:
            return rate["TaxType"]
    raise AssertionError(rates)


def _contact(contract: Contract, name: str) -> dict:
    body = {
        "Contacts": [
            {
                "Name": name,
                "EmailAddress": "ap@example.com",
                "ContactNumber": f"CRM-{uuid.uuid4().hex[:8]}",
                "Addresses": [
                    {"AddressType": "STREET", "AddressLine1": "1 Queen St", "City": "Auckland"}
                ],
                "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "555 0100"}],
            }
        ]
    }
    return contract.api("PUT", "/Contacts", json=body)["Contacts"][0]


def _invoice_body(contact_id: str, code: str, tax_type: str, number: str, **extra) -> dict:
    return {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Date": INVOICE_DATE,
        "DueDate": DUE_DATE,
        "InvoiceNumber": number,
        "LineAmountTypes": "Exclusive",
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "Description": "Consulting",
                "Quantity": 2,
                "UnitAmount": 100.00,
                "DiscountRate": 10,
                "AccountCode": code,
                "TaxType": tax_type,
            }
        ],
        **extra,
    }


# --------------------------------------------------------------------------- tests


def test_organisation_and_actions(contract: Contract):
    body = contract.api("GET", "/Organisation")
    assert body["Organisations"][0]["OrganisationID"] == contract.tenant_id
    actions = contract.api("GET", "/Organisation/Actions")["Actions"]
    assert any(a["Name"] == "UseMulticurrency" for a in actions), actions


def test_organisation_with_period_lock_date(xero_sandbox):
    xero_sandbox.register_app(CLIENT_ID, client_secret=CLIENT_SECRET)
    created = xero_sandbox.create_organisation(
        name="Locked Ltd", multicurrency=False, period_lock_date="2025-12-31"
    )
    tokens = xero_sandbox.issue_tokens(CLIENT_ID, [created["tenant_id"]])
    contract = Contract(xero_sandbox, created["tenant_id"], tokens["access_token"])
    organisation = contract.api("GET", "/Organisation")["Organisations"][0]
    assert organisation["PeriodLockDate"].startswith("/Date("), organisation
    actions = contract.api("GET", "/Organisation/Actions")["Actions"]
    assert {"Name": "UseMulticurrency", "Status": "NOT-ALLOWED"} in actions


def test_accounts_with_where(contract: Contract):
    accounts = contract.api("GET", "/Accounts", params={"where": 'Status=="ACTIVE"'})["Accounts"]
    assert accounts and all(a["Status"] == "ACTIVE" for a in accounts)
    banks = contract.api("GET", "/Accounts", params={"where": 'Type=="BANK"'})["Accounts"]
    assert banks and all(a["Type"] == "BANK" for a in banks)
    enabled = contract.api("GET", "/Accounts", params={"where": "EnablePaymentsToAccount==true"})[
        "Accounts"
    ]
    assert enabled and all(a["EnablePaymentsToAccount"] is True for a in enabled)


def test_contacts_put_post_get(contract: Contract):
    created = _contact(contract, "Contract Contact Ltd")
    contact_id = created["ContactID"]

    updated = contract.api(
        "POST",
        "/Contacts",
        json={"Contacts": [{"ContactID": contact_id, "FirstName": "Ada", "LastName": "Lovelace"}]},
    )["Contacts"][0]
    assert updated["ContactID"] == contact_id
    assert updated["FirstName"] == "Ada"

    one = contract.api("GET", f"/Contacts/{contact_id}")["Contacts"]
    assert [c["ContactID"] for c in one] == [contact_id]

    listed = contract.api("GET", "/Contacts", params={"page": 1, "pageSize": 100})
    assert contact_id in [c["ContactID"] for c in listed["Contacts"]]
    filtered = contract.api("GET", "/Contacts", params={"where": 'Name=="Contract Contact Ltd"'})[
        "Contacts"
    ]
    assert [c["ContactID"] for c in filtered] == [contact_id]
    by_ids = contract.api("GET", "/Contacts", params={"IDs": contact_id, "includeArchived": "true"})
    assert [c["ContactID"] for c in by_ids["Contacts"]] == [contact_id]
    searched = contract.api("GET", "/Contacts", params={"searchTerm": "contract contact"})
    assert contact_id in [c["ContactID"] for c in searched["Contacts"]]

    # POST also creates when nothing matches (updateOrCreateContacts)
    upserted = contract.api(
        "POST", "/Contacts", json={"Contacts": [{"Name": "Posted New Contact"}]}
    )["Contacts"][0]
    assert upserted["ContactID"] != contact_id

    # summarizeErrors=false: a batch with a failing element still answers 200
    batch = contract.api(
        "PUT",
        "/Contacts",
        params={"summarizeErrors": "false"},
        json={"Contacts": [{"Name": "Batch OK Contact"}, {"Name": "Contract Contact Ltd"}]},
    )["Contacts"]
    assert [c.get("StatusAttributeString") for c in batch] == ["OK", "ERROR"]


def test_invoices_put_post_get(contract: Contract):
    code = _revenue_code(contract)
    tax_type = _sales_tax_type(contract)
    contact = _contact(contract, "Invoice Contract Ltd")

    created = contract.api(
        "PUT",
        "/Invoices",
        json={"Invoices": [_invoice_body(contact["ContactID"], code, tax_type, "CT-1")]},
    )["Invoices"][0]
    invoice_id = created["InvoiceID"]
    assert created["Status"] == "AUTHORISED"

    one = contract.api("GET", f"/Invoices/{invoice_id}")["Invoices"]
    assert [i["InvoiceID"] for i in one] == [invoice_id]
    one_4dp = contract.api("GET", f"/Invoices/{invoice_id}", params={"unitdp": 4})["Invoices"]
    assert one_4dp[0]["InvoiceID"] == invoice_id

    listed = contract.api(
        "GET",
        "/Invoices",
        params={"Statuses": "AUTHORISED,DRAFT", "page": 1, "pageSize": 50, "unitdp": 4},
    )["Invoices"]
    assert invoice_id in [i["InvoiceID"] for i in listed]
    by_number = contract.api("GET", "/Invoices", params={"InvoiceNumbers": "CT-1"})["Invoices"]
    assert [i["InvoiceID"] for i in by_number] == [invoice_id]
    by_id = contract.api("GET", "/Invoices", params={"IDs": invoice_id})["Invoices"]
    assert [i["InvoiceID"] for i in by_id] == [invoice_id]
    by_where = contract.api("GET", "/Invoices", params={"where": 'Status=="AUTHORISED"'})[
        "Invoices"
    ]
    assert invoice_id in [i["InvoiceID"] for i in by_where]

    draft = contract.api(
        "POST",
        "/Invoices",
        json={
            "Invoices": [
                _invoice_body(contact["ContactID"], code, tax_type, "CT-2", Status="DRAFT")
            ]
        },
    )["Invoices"][0]
    assert draft["Status"] == "DRAFT"
    updated = contract.api(
        "POST",
        "/Invoices",
        json={"Invoices": [{"InvoiceID": draft["InvoiceID"], "Reference": "PO-42"}]},
    )["Invoices"][0]
    assert updated["Reference"] == "PO-42"
    voided = contract.api(
        "POST",
        f"/Invoices/{invoice_id}",
        json={"Invoices": [{"InvoiceID": invoice_id, "Status": "VOIDED"}]},
    )["Invoices"][0]
    assert voided["Status"] == "VOIDED"


def test_invoices_summarize_errors_false(contract: Contract):
    code = _revenue_code(contract)
    tax_type = _sales_tax_type(contract)
    contact = _contact(contract, "Batch Invoice Ltd")
    good = _invoice_body(contact["ContactID"], code, tax_type, "CT-B1")
    duplicate = _invoice_body(contact["ContactID"], code, tax_type, "CT-B1")
    results = contract.api(
        "PUT",
        "/Invoices",
        params={"summarizeErrors": "false"},
        json={"Invoices": [good, duplicate]},
    )["Invoices"]
    assert [r.get("StatusAttributeString") for r in results] == ["OK", "ERROR"]
    assert "Invoice # must be unique." in [
        e["Message"] for e in results[1].get("ValidationErrors") or []
    ]


def test_invoice_validation_exception_400(contract: Contract):
    code = _revenue_code(contract)
    tax_type = _sales_tax_type(contract)
    contact = _contact(contract, "Invalid Invoice Ltd")
    bad = _invoice_body(contact["ContactID"], code, tax_type, "CT-E1")
    bad["Contact"] = {}
    body = contract.api("PUT", "/Invoices", json={"Invoices": [bad]}, status=400)
    assert body["ErrorNumber"] == 10
    assert body["Type"] == "ValidationException"
    assert body["Elements"], body


def test_payments_put_post_and_delete(contract: Contract):
    code = _revenue_code(contract)
    tax_type = _sales_tax_type(contract)
    bank = _bank_account(contract)
    contact = _contact(contract, "Payer Ltd")
    invoice = contract.api(
        "PUT",
        "/Invoices",
        json={"Invoices": [_invoice_body(contact["ContactID"], code, tax_type, "CT-P1")]},
    )["Invoices"][0]
    total = invoice["Total"]

    put = contract.api(
        "PUT",
        "/Payments",
        json={
            "Payments": [
                {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"AccountID": bank["AccountID"]},
                    "Date": INVOICE_DATE,
                    "Amount": 10.00,
                    "Reference": "part one",
                }
            ]
        },
    )["Payments"][0]
    assert put["Status"] == "AUTHORISED"

    # POST /Payments takes a single, unwrapped Payment (createPayment)
    posted = contract.api(
        "POST",
        "/Payments",
        json={
            "Invoice": {"InvoiceNumber": "CT-P1"},
            "Account": {"AccountID": bank["AccountID"]},
            "Date": INVOICE_DATE,
            "Amount": 5.00,
        },
    )["Payments"][0]
    assert posted["Status"] == "AUTHORISED"

    deleted = contract.api("POST", f"/Payments/{posted['PaymentID']}", json={"Status": "DELETED"})[
        "Payments"
    ][0]
    assert deleted["Status"] == "DELETED"

    after = contract.api("GET", f"/Invoices/{invoice['InvoiceID']}")["Invoices"][0]
    assert round(after["AmountDue"], 2) == round(total - 10.00, 2)


def test_tax_rates_get_put(contract: Contract):
    rates = contract.api("GET", "/TaxRates")["TaxRates"]
    assert rates
    created = contract.api(
        "PUT",
        "/TaxRates",
        json={
            "TaxRates": [
                {
                    "Name": "Contract Levy",
                    "ReportTaxType": "OUTPUT",
                    "TaxComponents": [{"Name": "Levy", "Rate": 2.5, "IsCompound": False}],
                }
            ]
        },
    )["TaxRates"][0]
    assert created["TaxType"]
    assert created["Status"] == "ACTIVE"
    filtered = contract.api(
        "GET", "/TaxRates", params={"where": f'TaxType=="{created["TaxType"]}"'}
    )["TaxRates"]
    assert [r["TaxType"] for r in filtered] == [created["TaxType"]]


def test_currencies_get_put(contract: Contract):
    before = contract.api("GET", "/Currencies")["Currencies"]
    assert "NZD" in [c["Code"] for c in before]
    # createCurrency takes a single, unwrapped Currency
    added = contract.api(
        "PUT", "/Currencies", json={"Code": "USD", "Description": "United States Dollar"}
    )["Currencies"]
    assert [c["Code"] for c in added] == ["USD"]
    after = contract.api("GET", "/Currencies")["Currencies"]
    assert {"NZD", "USD"} <= {c["Code"] for c in after}


def test_connections_get_and_delete(contract: Contract):
    connections = contract.identity("GET", "/connections")
    assert [c["tenantId"] for c in connections] == [contract.tenant_id]
    by_event = contract.identity(
        "GET", "/connections", params={"authEventId": connections[0]["authEventId"]}
    )
    assert [c["id"] for c in by_event] == [connections[0]["id"]]

    assert contract.identity("DELETE", f"/connections/{connections[0]['id']}", status=204) is None
    assert contract.identity("GET", "/connections") == []
    # Unknown id: 404, as the identity description documents.
    contract.identity("DELETE", f"/connections/{uuid.uuid4()}", status=404)


# --------------------------------------------------------------------------- not in the spec


def test_unknown_ids_answer_404(contract: Contract):
    """Unknown id → 404 (body undocumented). The spec lists no 404 for these."""
    for path in (f"/Invoices/{uuid.uuid4()}", f"/Contacts/{uuid.uuid4()}"):
        response = contract.send("GET", f"/api.xro/2.0{path}")
        assert response.status_code == 404, (path, response.status_code, response.text)
        # the request itself is still one Xero describes
        request = XeroRequest(
            response.request, f"{contract.sandbox.url}/api.xro/2.0", ACCOUNTING_SERVER
        )
        accounting_spec().validate_request(request)


def test_rate_limit_429_headers(contract: Contract):
    """Xero's API documentation: 429 with ``X-Rate-Limit-Problem`` and ``Retry-After`` (seconds)."""
    contract.sandbox.set_limits(contract.tenant_id, per_minute=3)
    statuses = []
    response = None
    for _ in range(6):
        response = contract.send("GET", "/api.xro/2.0/Organisation")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert response is not None and response.status_code == 429, statuses
    assert statuses[:3] == [200, 200, 200], statuses
    assert response.headers.get("X-Rate-Limit-Problem", "").lower() == "minute", response.headers
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0, (
        response.headers
    )
    # The 429 is not in Xero's description; openapi-core must agree it is undocumented.
    request = XeroRequest(
        response.request, f"{contract.sandbox.url}/api.xro/2.0", ACCOUNTING_SERVER
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 - any openapi-core "response not found"
        accounting_spec().validate_response(request, RequestsOpenAPIResponse(response))
