"""The Accounting API client: headers, token refresh, retries, paging, resources, logging."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from responses import matchers

from xero_integration import __version__
from xero_integration.xero import (
    InMemoryLimiter,
    NullLimiter,
    RateLimited,
    RateLimitState,
    ServerError,
    ThrottledLocally,
    TokenExpired,
    Unavailable,
    ValidationError,
    XeroAPIError,
    XeroTransportError,
)

from .conftest import BASE, TENANT

TOKEN_EXPIRED = {
    "Type": None,
    "Title": "Unauthorized",
    "Status": 401,
    "Detail": "TokenExpired: token expired at 04/09/2023 05:16:59",
    "Instance": "a2b8c0e4-0000-4000-8000-000000000000",
    "Extensions": {},
}
RATE_HEADERS = {
    "X-DayLimit-Remaining": "4984",
    "X-MinLimit-Remaining": "59",
    "X-AppMinLimit-Remaining": "9999",
    "Xero-Correlation-Id": "corr-1234",
}
VALIDATION_400 = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
    "Elements": [{"ValidationErrors": [{"Message": "Invoice # must be unique."}]}],
}


def query_of(call: Any) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(call.request.url).query).items()}


class RecordingLimiter(NullLimiter):
    """Lets every call through and remembers what the client told it."""

    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.observed: list[tuple[str, RateLimitState]] = []

    def acquire(self, tenant_id: str) -> Any:
        self.acquired.append(tenant_id)
        return super().acquire(tenant_id)

    def observe(self, tenant_id: str, state: RateLimitState) -> None:
        self.observed.append((tenant_id, state))


# -- what every call carries ----------------------------------------------------------------


def test_get_sends_xero_headers_and_a_timeout(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Organisation", json={"Organisations": [{"Name": "Demo"}]})
    make_client(timeout=(3, 20)).get("/Organisation")
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == "Bearer access-token-one"
    assert request.headers["xero-tenant-id"] == TENANT
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == f"xero-integration/{__version__}"
    assert "Content-Type" not in request.headers
    assert "Idempotency-Key" not in request.headers
    assert request.req_kwargs["timeout"] == (3, 20)


def test_default_timeout_is_bounded(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Currencies", json={"Currencies": []})
    make_client().currencies()
    assert mocked.calls[0].request.req_kwargs["timeout"] == (5.0, 30.0)


def test_put_sends_json_with_exact_amounts_and_the_idempotency_key(
    mocked: Any, make_client: Any
) -> None:
    mocked.put(f"{BASE}/Invoices", json={"Invoices": [{"InvoiceID": "i-1", "Total": 10.0}]})
    invoice = {"Type": "ACCREC", "LineItems": [{"UnitAmount": Decimal("12.3456")}]}
    result = make_client().put_invoices([invoice], idempotency_key="invoice:42:create")
    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "invoice:42:create"
    assert json.loads(request.body) == {
        "Invoices": [{"Type": "ACCREC", "LineItems": [{"UnitAmount": 12.3456}]}]
    }
    assert query_of(mocked.calls[0]) == {"summarizeErrors": "false", "unitdp": "4"}
    assert result == [{"InvoiceID": "i-1", "Total": Decimal("10.0")}]


@pytest.mark.parametrize("key", ["", " ", "x" * 129, "has space", "tab\there", "ключ"])
def test_bad_idempotency_keys_are_refused_before_any_call(
    mocked: Any, make_client: Any, key: str
) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        make_client().post("/Invoices", {"Invoices": []}, idempotency_key=key)
    assert len(mocked.calls) == 0


def test_longest_idempotency_key_is_accepted(mocked: Any, make_client: Any) -> None:
    mocked.post(f"{BASE}/Invoices", json={"Invoices": []})
    make_client().post("/Invoices", {"Invoices": []}, idempotency_key="k" * 128)
    assert mocked.calls[0].request.headers["Idempotency-Key"] == "k" * 128


def test_if_modified_since_header(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Contacts", json={"Contacts": []})
    since = datetime(2024, 6, 1, 8, 30, 0, tzinfo=UTC)
    page = make_client().contacts_page(1, 500, if_modified_since=since, include_archived=True)
    request = mocked.calls[0].request
    assert request.headers["If-Modified-Since"] == "2024-06-01T08:30:00"
    assert query_of(mocked.calls[0]) == {"page": "1", "pageSize": "500", "includeArchived": "true"}
    assert page.items == [] and page.is_last


def test_full_urls_must_stay_under_the_accounting_api(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Contacts/c-1", json={"Contacts": [{"ContactID": "c-1"}]})
    client = make_client()
    assert client.get(f"{BASE}/Contacts/c-1") == {"Contacts": [{"ContactID": "c-1"}]}
    with pytest.raises(ValueError, match="outside"):
        client.get("https://evil.example/api.xro/2.0/Contacts")
    assert len(mocked.calls) == 1


def test_rate_limit_headers_reach_the_limiter(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Accounts", json={"Accounts": []}, headers=RATE_HEADERS)
    limiter = RecordingLimiter()
    make_client(limiter=limiter).accounts()
    assert limiter.acquired == [TENANT]
    assert limiter.observed == [
        (TENANT, RateLimitState(day_remaining=4984, minute_remaining=59, app_minute_remaining=9999))
    ]


# -- token expiry --------------------------------------------------------------------------


def test_expired_token_is_refreshed_and_the_call_retried_once(
    mocked: Any, make_client: Any, tokens: Any
) -> None:
    mocked.get(f"{BASE}/Organisation", status=401, json=TOKEN_EXPIRED)
    mocked.get(f"{BASE}/Organisation", json={"Organisations": [{"Name": "Demo"}]})
    assert make_client().organisation() == {"Name": "Demo"}
    assert tokens.refresh_calls == ["access-token-one"]
    assert [c.request.headers["Authorization"] for c in mocked.calls] == [
        "Bearer access-token-one",
        "Bearer access-token-two",
    ]


def test_still_expired_after_refresh_raises(mocked: Any, make_client: Any, tokens: Any) -> None:
    mocked.get(f"{BASE}/Organisation", status=401, json=TOKEN_EXPIRED)
    with pytest.raises(TokenExpired):
        make_client().organisation()
    assert len(mocked.calls) == 2
    assert tokens.refresh_calls == ["access-token-one"]


def test_a_write_is_resent_after_token_refresh(mocked: Any, make_client: Any) -> None:
    # Xero rejected the first attempt before acting on it, so resending cannot duplicate.
    mocked.put(f"{BASE}/Contacts", status=401, json=TOKEN_EXPIRED)
    mocked.put(f"{BASE}/Contacts", json={"Contacts": [{"ContactID": "c-1"}]})
    assert make_client().create_contacts([{"Name": "Acme"}]) == [{"ContactID": "c-1"}]
    assert len(mocked.calls) == 2


def test_missing_scope_is_not_refreshed(mocked: Any, make_client: Any, tokens: Any) -> None:
    mocked.get(
        f"{BASE}/Invoices",
        status=401,
        json={**TOKEN_EXPIRED, "Detail": "AuthorizationUnsuccessful"},
    )
    with pytest.raises(XeroAPIError) as caught:
        make_client().get("/Invoices")
    assert caught.value.status == 401 and not isinstance(caught.value, TokenExpired)
    assert tokens.refresh_calls == []


# -- retries -------------------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(mocked: Any, make_client: Any, clock: Any) -> None:
    mocked.get(
        f"{BASE}/Contacts",
        status=429,
        headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"},
    )
    mocked.get(f"{BASE}/Contacts", json={"Contacts": [{"Name": "A"}]})
    page = make_client().contacts_page()
    assert [c["Name"] for c in page.items] == ["A"]
    assert clock.sleeps == [7.0]


def test_429_is_retried_even_for_a_write_without_key(
    mocked: Any, make_client: Any, clock: Any
) -> None:
    mocked.put(f"{BASE}/Payments", status=429, headers={"Retry-After": "2"})
    mocked.put(f"{BASE}/Payments", json={"Payments": [{"PaymentID": "p-1"}]})
    assert make_client().put_payments([{"Amount": Decimal("1.00")}]) == [{"PaymentID": "p-1"}]
    assert clock.sleeps == [2.0]


def test_long_retry_after_raises_and_pauses_the_tenant(
    mocked: Any, make_client: Any, clock: Any
) -> None:
    mocked.get(
        f"{BASE}/Contacts",
        status=429,
        headers={"Retry-After": "3600", "X-Rate-Limit-Problem": "day"},
    )
    client = make_client()
    with pytest.raises(RateLimited) as caught:
        client.get("/Contacts")
    assert caught.value.retry_after == 3600.0
    assert caught.value.problem == "day"
    assert clock.sleeps == []
    with pytest.raises(ThrottledLocally) as throttled:
        client.get("/Contacts")
    assert throttled.value.problem == "day"
    assert len(mocked.calls) == 1


def test_server_errors_on_reads_are_retried_with_capped_backoff(
    mocked: Any, make_client: Any, clock: Any
) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/TaxRates", status=500, json={"Message": "An error occurred"})
    mocked.get(f"{BASE}/TaxRates", json={"TaxRates": [{"TaxType": "OUTPUT"}]})
    rates = make_client(backoff_base=1.0, backoff_cap=3.0).tax_rates()
    assert rates == [{"TaxType": "OUTPUT"}]
    assert clock.sleeps == [1.0, 2.0, 3.0]


def test_backoff_jitter_stays_within_half_and_full_step(
    mocked: Any, make_client: Any, clock: Any
) -> None:
    mocked.get(f"{BASE}/TaxRates", status=503, body="The Xero API is temporarily unavailable")
    mocked.get(f"{BASE}/TaxRates", json={"TaxRates": []})
    make_client(jitter=lambda: 0.0, backoff_base=4.0).tax_rates()
    assert clock.sleeps == [2.0]


def test_retries_stop_after_max_retries(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Currencies", status=503, body="The Xero API is temporarily unavailable")
    with pytest.raises(Unavailable):
        make_client(max_retries=2).currencies()
    assert len(mocked.calls) == 3


def test_write_without_key_is_never_retried_after_a_server_error(
    mocked: Any, make_client: Any, clock: Any
) -> None:
    mocked.put(f"{BASE}/Invoices", status=500, json={"Message": "An error occurred"})
    with pytest.raises(ServerError):
        make_client().put_invoices([{"Type": "ACCREC"}])
    assert len(mocked.calls) == 1
    assert clock.sleeps == []


def test_write_without_key_is_never_retried_after_a_read_timeout(
    mocked: Any, make_client: Any
) -> None:
    mocked.post(f"{BASE}/Invoices/i-1", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(XeroTransportError) as caught:
        make_client().post_invoice({"InvoiceID": "i-1", "Status": "AUTHORISED"})
    assert caught.value.request_sent
    assert len(mocked.calls) == 1


def test_write_without_key_is_never_retried_after_a_dropped_connection(
    mocked: Any, make_client: Any
) -> None:
    mocked.put(f"{BASE}/Payments", body=requests.exceptions.ConnectionError("reset by peer"))
    with pytest.raises(XeroTransportError):
        make_client().put_payments([{"Amount": 1}])
    assert len(mocked.calls) == 1


def test_write_that_never_left_is_retried_even_without_key(mocked: Any, make_client: Any) -> None:
    mocked.put(f"{BASE}/Contacts", body=requests.exceptions.ConnectTimeout("no route"))
    mocked.put(f"{BASE}/Contacts", json={"Contacts": [{"ContactID": "c-9"}]})
    assert make_client().create_contacts([{"Name": "Acme"}]) == [{"ContactID": "c-9"}]
    assert len(mocked.calls) == 2


def test_write_with_key_is_retried_with_the_same_key(mocked: Any, make_client: Any) -> None:
    mocked.put(f"{BASE}/Invoices", status=503, body="The Xero API is temporarily unavailable")
    mocked.put(f"{BASE}/Invoices", body=requests.exceptions.ReadTimeout("slow"))
    mocked.put(f"{BASE}/Invoices", json={"Invoices": [{"InvoiceID": "i-7"}]})
    result = make_client().put_invoices([{"Type": "ACCREC"}], idempotency_key="inv-7-attempt-1")
    assert result == [{"InvoiceID": "i-7"}]
    assert [c.request.headers["Idempotency-Key"] for c in mocked.calls] == ["inv-7-attempt-1"] * 3
    assert len({c.request.body for c in mocked.calls}) == 1


def test_validation_errors_are_never_retried(mocked: Any, make_client: Any, clock: Any) -> None:
    mocked.put(f"{BASE}/Invoices", status=400, json=VALIDATION_400)
    with pytest.raises(ValidationError) as caught:
        make_client().put_invoices([{}], summarize_errors=True, idempotency_key="k")
    assert caught.value.summary() == "Invoice # must be unique."
    assert query_of(mocked.calls[0]) == {"unitdp": "4"}
    assert len(mocked.calls) == 1 and clock.sleeps == []


def test_get_transport_errors_are_retried(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Accounts", body=requests.exceptions.ConnectionError("dropped"))
    mocked.get(f"{BASE}/Accounts", json={"Accounts": [{"Code": "200"}]})
    assert make_client().accounts() == [{"Code": "200"}]


def test_non_json_success_reply_is_an_error(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Organisation", body="<Response><Status>OK</Status></Response>")
    with pytest.raises(XeroAPIError, match="not JSON"):
        make_client().get("/Organisation")


# -- paging --------------------------------------------------------------------------------


def page_reply(items: list[dict[str, Any]], page: int, count: int | None) -> dict[str, Any]:
    reply: dict[str, Any] = {"Contacts": items}
    if count is not None:
        reply["pagination"] = {"page": page, "pageSize": 2, "pageCount": count, "itemCount": 5}
    return reply


def test_paginate_stops_at_page_count(mocked: Any, make_client: Any) -> None:
    for number, items in enumerate([[{"n": 1}, {"n": 2}], [{"n": 3}, {"n": 4}], [{"n": 5}]], 1):
        mocked.get(
            f"{BASE}/Contacts",
            json=page_reply(items, number, 3),
            match=[matchers.query_param_matcher({"page": str(number), "pageSize": "2"})],
        )
    pages = list(make_client().paginate("/Contacts", page_size=2))
    assert [p.number for p in pages] == [1, 2, 3]
    assert [item["n"] for p in pages for item in p.items] == [1, 2, 3, 4, 5]
    assert pages[-1].page_count == 3 and pages[-1].item_count == 5
    assert len(mocked.calls) == 3


def test_paginate_stops_at_an_empty_page_and_not_at_a_short_one(
    mocked: Any, make_client: Any
) -> None:
    replies = [[{"n": 1}], [{"n": 2}], []]
    for number, items in enumerate(replies, 1):
        mocked.get(
            f"{BASE}/Invoices",
            json={"Invoices": items},
            match=[matchers.query_param_matcher({"page": str(number), "pageSize": "1000"})],
        )
    pages = list(make_client().paginate("/Invoices", key="Invoices"))
    assert [len(p.items) for p in pages] == [1, 1, 0]


def test_paginate_passes_filters_and_refuses_oversized_pages(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Contacts", json={"Contacts": []})
    list(make_client().paginate("/Contacts", {"includeArchived": True}, page_size=1000))
    assert query_of(mocked.calls[0]) == {
        "includeArchived": "true",
        "page": "1",
        "pageSize": "1000",
    }
    with pytest.raises(ValueError):
        list(make_client().paginate("/Contacts", page_size=1001))


# -- one call per resource ------------------------------------------------------------------


def test_organisation_actions_by_name(mocked: Any, make_client: Any) -> None:
    mocked.get(
        f"{BASE}/Organisation/Actions",
        json={
            "Actions": [
                {"Name": "UseMulticurrency", "Status": "NOT-ALLOWED"},
                {"Name": "CreateApprovedInvoice", "Status": "ALLOWED"},
            ]
        },
    )
    actions = make_client().organisation_actions()
    assert actions == {"UseMulticurrency": "NOT-ALLOWED", "CreateApprovedInvoice": "ALLOWED"}


def test_accounts_where_filter(mocked: Any, make_client: Any) -> None:
    mocked.get(f"{BASE}/Accounts", json={"Accounts": [{"Type": "BANK"}]})
    assert make_client().accounts(where='Status=="ACTIVE"') == [{"Type": "BANK"}]
    assert query_of(mocked.calls[0]) == {"where": 'Status=="ACTIVE"'}


def test_invoices_by_numbers_in_chunks(mocked: Any, make_client: Any) -> None:
    one_page = {"page": 1, "pageSize": 1000, "pageCount": 1, "itemCount": 1}
    mocked.get(
        f"{BASE}/Invoices",
        json={"Invoices": [{"InvoiceNumber": "INV-1"}], "pagination": one_page},
    )
    numbers = [f"INV-{n}" for n in range(45)] + ["INV-1"]
    found = make_client().invoices_by_numbers(numbers)
    assert len(mocked.calls) == 2  # 45 distinct numbers: two chunks of one page each
    first, second = (query_of(call) for call in mocked.calls)
    assert first["InvoiceNumbers"].split(",") == numbers[:40]
    assert second["InvoiceNumbers"].split(",") == numbers[40:45]
    assert first["unitdp"] == "4"
    assert found == [{"InvoiceNumber": "INV-1"}] * 2


def test_paginate_stops_when_the_server_ignores_the_page_number(
    mocked: Any, make_client: Any
) -> None:
    mocked.get(f"{BASE}/Contacts", json={"Contacts": [{"n": 1}]})
    pages = list(make_client().paginate("/Contacts"))
    assert [p.number for p in pages] == [1]
    assert len(mocked.calls) == 2


def test_invoice_numbers_with_commas_are_refused(make_client: Any) -> None:
    with pytest.raises(ValueError):
        make_client().invoices_by_numbers(["A,B"])


def test_post_invoice_updates_by_id(mocked: Any, make_client: Any) -> None:
    mocked.post(
        f"{BASE}/Invoices/i-1", json={"Invoices": [{"InvoiceID": "i-1", "Status": "VOIDED"}]}
    )
    result = make_client().post_invoice({"InvoiceID": "i-1", "Status": "VOIDED"})
    assert result["Status"] == "VOIDED"
    assert json.loads(mocked.calls[0].request.body) == {
        "Invoices": [{"InvoiceID": "i-1", "Status": "VOIDED"}]
    }


def test_delete_payment_posts_status_deleted(mocked: Any, make_client: Any) -> None:
    mocked.post(
        f"{BASE}/Payments/p-1", json={"Payments": [{"PaymentID": "p-1", "Status": "DELETED"}]}
    )
    assert make_client().delete_payment("p-1")["Status"] == "DELETED"
    assert json.loads(mocked.calls[0].request.body) == {"Status": "DELETED"}


def test_create_tax_rate_returns_the_assigned_tax_type(mocked: Any, make_client: Any) -> None:
    mocked.put(f"{BASE}/TaxRates", json={"TaxRates": [{"Name": "CA", "TaxType": "TAX002"}]})
    rate = {"Name": "CA", "TaxComponents": [{"Name": "State", "Rate": Decimal("2.25")}]}
    assert make_client().create_tax_rate(rate, idempotency_key="tax-ca")["TaxType"] == "TAX002"
    assert json.loads(mocked.calls[0].request.body) == {
        "TaxRates": [{"Name": "CA", "TaxComponents": [{"Name": "State", "Rate": 2.25}]}]
    }


def test_add_currency_sends_a_single_object(mocked: Any, make_client: Any) -> None:
    mocked.put(f"{BASE}/Currencies", json={"Currencies": [{"Code": "USD"}]})
    assert make_client().add_currency("usd", "United States Dollar") == {"Code": "USD"}
    assert json.loads(mocked.calls[0].request.body) == {
        "Code": "USD",
        "Description": "United States Dollar",
    }


def test_empty_reply_to_a_single_object_call_is_an_error(mocked: Any, make_client: Any) -> None:
    mocked.put(f"{BASE}/Currencies", json={"Currencies": []})
    with pytest.raises(XeroAPIError, match="no Currencies"):
        make_client().add_currency("USD")


def test_client_requires_tenant_and_token_source(tokens: Any) -> None:
    with pytest.raises(ValueError):
        from xero_integration.xero import XeroClient

        XeroClient(api_url="https://x", tenant_id="", token_source=tokens)


def test_default_limiter_is_in_memory(tokens: Any) -> None:
    from xero_integration.xero import XeroClient

    client = XeroClient(tenant_id=TENANT, token_source=tokens)
    assert isinstance(client.limiter, InMemoryLimiter)
    assert client.base_url == "https://api.xero.com/api.xro/2.0"


# -- logging -------------------------------------------------------------------------------


def test_calls_are_logged_without_tokens(
    mocked: Any, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(f"{BASE}/Organisation", status=401, json=TOKEN_EXPIRED)
    mocked.get(
        f"{BASE}/Organisation",
        json={"Organisations": [{"Name": "Demo"}]},
        headers=RATE_HEADERS,
    )
    mocked.put(f"{BASE}/Invoices", status=400, json=VALIDATION_400, headers=RATE_HEADERS)
    mocked.get(f"{BASE}/Accounts", body=requests.exceptions.ReadTimeout("slow"))
    client = make_client(max_retries=0)
    with caplog.at_level(logging.DEBUG, logger="xero_integration"):
        client.organisation()
        with pytest.raises(ValidationError) as validation:
            client.put_invoices([{}], idempotency_key="key-1")
        with pytest.raises(XeroTransportError) as transport:
            client.accounts()
    texts = [record.getMessage() for record in caplog.records]
    assert "Xero GET /api.xro/2.0/Organisation -> 200 in" in "\n".join(texts)
    assert any("/Invoices -> 400" in t and "corr-1234" in t for t in texts)
    everything = "\n".join(texts + [str(validation.value), str(transport.value)])
    for secret in ("access-token-one", "access-token-two", "Bearer"):
        assert secret not in everything
    for record in caplog.records:
        assert "access-token" not in repr(record.args)


def test_retry_after_on_a_503_is_honoured_for_reads(
    mocked: Any, make_client: Any, clock: Any
) -> None:
    mocked.get(
        f"{BASE}/Accounts",
        status=503,
        body="The Xero API is currently offline for maintenance",
        headers={"Retry-After": "12"},
    )
    mocked.get(f"{BASE}/Accounts", json={"Accounts": []})
    assert make_client().accounts() == []
    assert clock.sleeps == [12.0]


def test_query_in_the_path_is_kept_but_not_logged(
    mocked: Any, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(f"{BASE}/Contacts", json={"Contacts": []})
    with caplog.at_level(logging.DEBUG, logger="xero_integration"):
        make_client().get('/Contacts?where=EmailAddress=="a@example.com"', {"page": 2})
    assert query_of(mocked.calls[0]) == {"where": 'EmailAddress=="a@example.com"', "page": "2"}
    assert "a@example.com" not in caplog.text
