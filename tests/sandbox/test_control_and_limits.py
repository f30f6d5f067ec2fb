"""The sandbox's control API and Xero's rate limits (Xero's API documentation), over real HTTP.

Control-API tests call `/_sandbox/...` directly with `requests`, so they check the exact shapes
the sandbox promises, not the fixture's helpers. Time moves only through the sandbox clock.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests

TIMEOUT = 10

CLIENT = "limits-crm-web"
SECRET = "limits-crm-secret-0123456789"
REDIRECT = "http://localhost:8000/xero/callback"
SCOPE = (
    "openid profile email offline_access accounting.contacts accounting.settings "
    "accounting.invoices accounting.payments"
)
DAY = 24 * 3600


# --------------------------------------------------------------------------- helpers


def ctl(xs, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
    """A raw call to the control API under /_sandbox/."""
    return requests.request(
        method, f"{xs.url}/_sandbox/{path.lstrip('/')}", json=body, timeout=TIMEOUT, **kwargs
    )


def call(
    xs,
    token: str,
    tenant_id: str,
    path: str = "/Organisation",
    method: str = "GET",
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    all_headers = {
        "Authorization": f"Bearer {token}",
        "xero-tenant-id": tenant_id,
        "Accept": "application/json",
    }
    all_headers.update(headers or {})
    return requests.request(
        method, xs.api_url + path, json=json, headers=all_headers, timeout=timeout
    )


def add_fault(xs, **body: Any) -> None:
    response = ctl(xs, "POST", "faults", body)
    assert response.ok, (response.status_code, response.text)


def set_limits(xs, tenant_id: str, **limits: int) -> None:
    response = ctl(xs, "POST", "limits", {"tenant_id": tenant_id, **limits})
    assert response.ok, (response.status_code, response.text)


def advance(xs, seconds: float) -> requests.Response:
    response = ctl(xs, "POST", "clock", {"advance_seconds": seconds})
    assert response.ok, (response.status_code, response.text)
    return response


def new_org(xs, **fields: Any) -> dict[str, Any]:
    body = {"name": "Demo Company (NZ)", "country_code": "NZ", "base_currency": "NZD"}
    body["multicurrency"] = True
    body.update(fields)
    response = ctl(xs, "POST", "organisations", body)
    assert response.status_code in (200, 201), (response.status_code, response.text)
    return response.json()


def state_of(xs, tenant_id: str) -> dict[str, Any]:
    response = ctl(xs, "GET", f"organisations/{tenant_id}")
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def fresh_token(xs, *tenant_ids: str) -> str:
    return xs.issue_tokens(CLIENT, list(tenant_ids), scope=SCOPE)["access_token"]


def seconds_of(delta: Any) -> float:
    return delta.total_seconds() if isinstance(delta, timedelta) else float(delta)


def rate_of(tax_rate: dict[str, Any]) -> float:
    for field in ("EffectiveRate", "DisplayTaxRate"):
        if tax_rate.get(field) is not None:
            return float(tax_rate[field])
    return float(sum(c["Rate"] for c in tax_rate.get("TaxComponents") or []))


def int_header(response: requests.Response, name: str) -> int:
    assert name in response.headers, f"{name} missing: {dict(response.headers)}"
    return int(response.headers[name])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def xs(xero_sandbox):
    xero_sandbox.register_app(
        CLIENT, client_secret=SECRET, redirect_uris=(REDIRECT,), name="Limits CRM"
    )
    return xero_sandbox


@pytest.fixture
def org(xs) -> str:
    return new_org(xs)["tenant_id"]


@pytest.fixture
def org2(xs) -> str:
    return new_org(xs, name="Second Company (NZ)")["tenant_id"]


@pytest.fixture
def token(xs, org) -> str:
    return fresh_token(xs, org)


# --------------------------------------------------------------------------- reset, organisations


def test_reset_empties_state(xs, org, token):
    assert call(xs, token, org).status_code == 200
    response = ctl(xs, "POST", "reset")
    assert response.ok, response.text
    assert ctl(xs, "GET", f"organisations/{org}").status_code == 404
    log = ctl(xs, "GET", "requests")
    assert log.status_code == 200
    assert log.json() == []


def test_create_organisation_returns_tenant_id_and_short_code(xs):
    first = new_org(xs)
    second = new_org(xs, name="Other Company (NZ)")
    assert set(first) >= {"tenant_id", "short_code"}
    uuid.UUID(first["tenant_id"])
    assert isinstance(first["short_code"], str) and first["short_code"]
    assert first["tenant_id"] != second["tenant_id"]
    assert first["short_code"] != second["short_code"]


def test_organisation_state_has_every_collection(xs):
    created = new_org(
        xs, name="Aussie Pty Ltd", country_code="AU", base_currency="AUD", multicurrency=False
    )
    state = state_of(xs, created["tenant_id"])
    assert set(state) == {
        "organisation",
        "contacts",
        "invoices",
        "payments",
        "tax_rates",
        "currencies",
        "accounts",
    }
    organisation = state["organisation"]
    assert organisation["Name"] == "Aussie Pty Ltd"
    assert organisation["CountryCode"] == "AU"
    assert organisation["BaseCurrency"] == "AUD"
    assert organisation["ShortCode"] == created["short_code"]
    assert state["contacts"] == [] and state["invoices"] == [] and state["payments"] == []
    assert "AUD" in [c["Code"] for c in state["currencies"]]


def test_organisation_state_of_unknown_tenant_is_404(xs):
    assert ctl(xs, "GET", f"organisations/{uuid.uuid4()}").status_code == 404


def test_new_organisation_has_a_realistic_chart_of_accounts(xs, org):
    accounts = state_of(xs, org)["accounts"]
    active = [a for a in accounts if a["Status"] == "ACTIVE"]
    banks = [a for a in active if a["Type"] == "BANK"]
    payable_non_bank = [
        a for a in active if a["Type"] != "BANK" and a.get("EnablePaymentsToAccount") is True
    ]
    revenue = [a for a in active if a["Class"] == "REVENUE" and a.get("Code")]
    assert banks, "no BANK account"
    assert payable_non_bank, "no payments-enabled non-bank account"
    assert len(revenue) >= 2, "fewer than two revenue accounts"
    ids = [a["AccountID"] for a in accounts]
    for account_id in ids:
        uuid.UUID(account_id)
    assert len(set(ids)) == len(ids)
    codes = [a["Code"] for a in accounts if a.get("Code")]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    ("country", "currency", "standard_rate"),
    [("NZ", "NZD", 15.0), ("AU", "AUD", 10.0), ("GB", "GBP", 20.0), ("US", "USD", None)],
)
def test_new_organisation_has_its_countrys_tax_rates(xs, country, currency, standard_rate):
    created = new_org(xs, name=f"Company {country}", country_code=country, base_currency=currency)
    tax_rates = state_of(xs, created["tenant_id"])["tax_rates"]
    active = [t for t in tax_rates if t["Status"] == "ACTIVE"]
    assert active
    for tax_rate in active:
        assert tax_rate["TaxType"] and tax_rate["Name"]
    if standard_rate is not None:
        assert standard_rate in [rate_of(t) for t in active], [
            (t["Name"], rate_of(t)) for t in active
        ]
        # ReportTaxType is required for AU/NZ/UK rates.
        assert all(t.get("ReportTaxType") for t in active)
    else:
        assert not any(t.get("ReportTaxType") for t in active)


def test_new_organisation_seeds_active_contacts(xs):
    created = new_org(xs, contacts=3)
    contacts = state_of(xs, created["tenant_id"])["contacts"]
    assert len(contacts) == 3
    assert all(c["ContactStatus"] == "ACTIVE" for c in contacts)
    assert len({c["Name"] for c in contacts}) == 3


def test_control_page_lists_organisations(xs, org):
    response = ctl(xs, "GET", "")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Demo Company (NZ)" in response.text


# --------------------------------------------------------------------------- apps, tokens


def test_apps_registers_a_web_app(xs, org):
    response = ctl(
        xs,
        "POST",
        "apps",
        {"client_id": "raw-app", "client_secret": "raw-secret", "redirect_uris": [REDIRECT]},
    )
    assert response.ok, response.text
    page = requests.get(
        xs.url + "/identity/connect/authorize",
        params={
            "response_type": "code",
            "client_id": "raw-app",
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": "s",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert page.status_code == 200


def test_tokens_gives_a_token_response_and_connects(xs, org, org2):
    response = ctl(
        xs, "POST", "tokens", {"client_id": CLIENT, "tenant_ids": [org, org2], "scope": SCOPE}
    )
    assert response.ok, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert set(body["scope"].split()) == set(SCOPE.split())
    assert body["access_token"] and body["refresh_token"] and body["id_token"]
    connections = requests.get(
        xs.url + "/connections",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=TIMEOUT,
    ).json()
    assert {c["tenantId"] for c in connections} == {org, org2}
    for tenant in (org, org2):
        assert call(xs, body["access_token"], tenant).status_code == 200


def test_disconnect_makes_the_tenant_403(xs, org, token):
    response = ctl(xs, "POST", "disconnect", {"tenant_id": org})
    assert response.ok, response.text
    refused = call(xs, token, org)
    assert refused.status_code == 403
    assert refused.json()["Detail"] == "AuthenticationUnsuccessful"


# --------------------------------------------------------------------------- requests log


def test_requests_log_records_every_api_request_in_order(xs, org, token):
    assert call(xs, token, org, "/Organisation").status_code == 200
    assert call(xs, token, org, "/Contacts?page=1").status_code == 200
    created = call(
        xs,
        token,
        org,
        "/Contacts",
        "PUT",
        json={"Contacts": [{"Name": "Logged Ltd"}]},
        headers={"Idempotency-Key": "log-key-1"},
    )
    assert created.status_code == 200, created.text
    assert call(xs, token, org, f"/Contacts/{uuid.uuid4()}").status_code == 404

    response = ctl(xs, "GET", "requests", params={"tenant_id": org})
    assert response.status_code == 200
    log = response.json()
    for entry in log:
        assert set(entry) >= {"method", "path", "query", "status", "tenant_id", "idempotency_key"}
    assert [(e["method"], e["status"]) for e in log] == [
        ("GET", 200),
        ("GET", 200),
        ("PUT", 200),
        ("GET", 404),
    ]
    assert log[0]["path"].endswith("/Organisation")
    assert log[1]["path"].endswith("/Contacts")
    assert "page" in str(log[1]["query"])
    assert log[2]["path"].endswith("/Contacts")
    assert all(e["tenant_id"] == org for e in log)
    assert log[0]["idempotency_key"] is None
    assert log[2]["idempotency_key"] == "log-key-1"


def test_requests_log_filters_by_tenant(xs, org, org2):
    token = fresh_token(xs, org, org2)
    assert call(xs, token, org).status_code == 200
    assert call(xs, token, org2).status_code == 200
    assert call(xs, token, org).status_code == 200
    only_org2 = ctl(xs, "GET", "requests", params={"tenant_id": org2}).json()
    assert [e["tenant_id"] for e in only_org2] == [org2]
    everything = ctl(xs, "GET", "requests").json()
    assert [e["tenant_id"] for e in everything] == [org, org2, org]


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("kind", ["500", "503"])
def test_fault_answers_with_its_status_count_times(xs, org, token, kind):
    add_fault(xs, method="GET", path="/api.xro/2.0/Contacts*", kind=kind, count=2)
    assert call(xs, token, org, "/Contacts").status_code == int(kind)
    assert call(xs, token, org, "/Contacts").status_code == int(kind)
    assert call(xs, token, org, "/Contacts").status_code == 200


def test_fault_matches_method_and_path(xs, org, token):
    add_fault(xs, method="POST", path="/api.xro/2.0/Contacts*", kind="500")
    add_fault(xs, method="*", path="/api.xro/2.0/Invoices*", kind="503")
    assert call(xs, token, org, "/Contacts").status_code == 200
    assert call(xs, token, org, "/Organisation").status_code == 200
    assert call(xs, token, org, "/Invoices").status_code == 503
    posted = call(xs, token, org, "/Contacts", "POST", json={"Contacts": [{"Name": "Faulted"}]})
    assert posted.status_code == 500
    assert state_of(xs, org)["contacts"] == []


def test_injected_429_has_rate_limit_headers(xs, org, token):
    add_fault(xs, method="GET", path="/api.xro/2.0/Contacts*", kind="429", count=1)
    response = call(xs, token, org, "/Contacts")
    assert response.status_code == 429
    assert response.headers["X-Rate-Limit-Problem"] == "minute"
    assert response.headers["Retry-After"] == "1"


def test_injected_429_retry_after_is_settable(xs, org, token):
    add_fault(xs, method="GET", path="/api.xro/2.0/Contacts*", kind="429", count=1, retry_after=7)
    response = call(xs, token, org, "/Contacts")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_timeout_fault_holds_the_request_past_the_client_timeout(xs, org, token):
    add_fault(
        xs, method="GET", path="/api.xro/2.0/Contacts*", kind="timeout", count=1, hold_seconds=1
    )
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(xs, token, org, "/Contacts", timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert call(xs, token, org, "/Contacts").status_code == 200


def test_timeout_fault_closes_without_answering(xs, org, token):
    add_fault(
        xs, method="GET", path="/api.xro/2.0/Contacts*", kind="timeout", count=1, hold_seconds=0.3
    )
    with pytest.raises(requests.exceptions.ConnectionError) as raised:
        call(xs, token, org, "/Contacts", timeout=5)
    assert not isinstance(raised.value, requests.exceptions.Timeout)


def test_lost_response_applies_the_write_and_drops_the_connection(xs, org, token):
    add_fault(xs, method="PUT", path="/api.xro/2.0/Contacts*", kind="lost_response", count=1)
    with pytest.raises(requests.exceptions.RequestException) as raised:
        call(xs, token, org, "/Contacts", "PUT", json={"Contacts": [{"Name": "Lost Ltd"}]})
    assert not isinstance(raised.value, requests.exceptions.Timeout)
    assert [c["Name"] for c in state_of(xs, org)["contacts"]] == ["Lost Ltd"]
    again = call(xs, token, org, "/Contacts", "PUT", json={"Contacts": [{"Name": "Kept Ltd"}]})
    assert again.status_code == 200, again.text


def test_short_answer_applies_the_write_and_leaves_the_last_element_out(xs, org, token):
    add_fault(xs, method="PUT", path="/api.xro/2.0/Contacts*", kind="short_answer", count=1)
    names = ["First Ltd", "Second Ltd", "Third Ltd"]
    response = call(
        xs, token, org, "/Contacts", "PUT", json={"Contacts": [{"Name": n} for n in names]}
    )
    assert response.status_code == 200, response.text
    assert [c["Name"] for c in response.json()["Contacts"]] == names[:2]
    assert sorted(c["Name"] for c in state_of(xs, org)["contacts"]) == sorted(names)
    again = call(xs, token, org, "/Contacts", "PUT", json={"Contacts": [{"Name": "Kept Ltd"}]})
    assert [c["Name"] for c in again.json()["Contacts"]] == ["Kept Ltd"]


def test_delete_faults_clears_them(xs, org, token):
    add_fault(xs, method="*", path="/api.xro/2.0/*", kind="500")
    assert call(xs, token, org).status_code == 500
    assert call(xs, token, org).status_code == 500
    response = ctl(xs, "DELETE", "faults")
    assert response.ok, response.text
    assert call(xs, token, org).status_code == 200


@pytest.mark.parametrize(("probability", "expected"), [(0.0, 200), (1.0, 503)])
def test_fault_probability(xs, org, token, probability, expected):
    add_fault(xs, method="GET", path="/api.xro/2.0/*", kind="503", probability=probability)
    assert [call(xs, token, org).status_code for _ in range(5)] == [expected] * 5


# --------------------------------------------------------------------------- clock


def test_clock_advances_sandbox_time(xs, org, token):
    before = xs.sandbox.clock.now()
    advance(xs, 3600)
    after = xs.sandbox.clock.now()
    assert 3600 <= seconds_of(after - before) < 3610
    # ... and the sandbox's rules see it: the 30-minute access token has expired.
    assert call(xs, token, org).status_code == 401


# --------------------------------------------------------------------------- rate-limit headers


def test_rate_headers_count_down_on_successful_calls(xs, org, token):
    first = call(xs, token, org)
    assert first.status_code == 200
    assert int_header(first, "X-DayLimit-Remaining") == 4999
    assert int_header(first, "X-MinLimit-Remaining") == 59
    app_first = int_header(first, "X-AppMinLimit-Remaining")
    assert 9990 <= app_first <= 9999

    second = call(xs, token, org, "/Contacts")
    assert second.status_code == 200
    assert int_header(second, "X-DayLimit-Remaining") == 4998
    assert int_header(second, "X-MinLimit-Remaining") == 58
    assert int_header(second, "X-AppMinLimit-Remaining") == app_first - 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", f"/Contacts/{uuid.UUID(int=1)}", None, 404, id="404-unknown-id"),
        pytest.param("GET", "/NoSuchEndpoint", None, 404, id="404-unknown-endpoint"),
        pytest.param("PUT", "/Contacts", {"Contacts": [{"Name": ""}]}, 400, id="400-validation"),
    ],
)
def test_rate_headers_on_error_responses_too(xs, org, token, method, path, body, status):
    """Xero's API documentation: the three headers come on every tenant-scoped response."""
    assert call(xs, token, org).status_code == 200
    failed = call(xs, token, org, path, method, json=body)
    assert failed.status_code == status, failed.text
    assert int_header(failed, "X-DayLimit-Remaining") == 4998
    assert int_header(failed, "X-MinLimit-Remaining") == 58
    int_header(failed, "X-AppMinLimit-Remaining")


def test_connections_carry_only_the_app_limit_header(xs, org, token):
    response = requests.get(
        xs.url + "/connections", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    int_header(response, "X-AppMinLimit-Remaining")
    assert "X-DayLimit-Remaining" not in response.headers
    assert "X-MinLimit-Remaining" not in response.headers


def test_daily_limit_set_at_creation(xs):
    tenant = new_org(xs, name="Starter Plan Ltd", daily_limit=1000)["tenant_id"]
    response = call(xs, fresh_token(xs, tenant), tenant)
    assert int_header(response, "X-DayLimit-Remaining") == 999


# --------------------------------------------------------------------------- minute limit


def test_minute_limit_answers_429_minute_with_retry_after(xs, org, token):
    set_limits(xs, org, per_minute=3)
    remaining = [int_header(call(xs, token, org), "X-MinLimit-Remaining") for _ in range(3)]
    assert remaining == [2, 1, 0]
    refused = call(xs, token, org)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int_header(refused, "Retry-After") <= 60
    assert int_header(refused, "X-MinLimit-Remaining") == 0


def test_minute_limit_frees_up_after_a_minute(xs, org, token):
    set_limits(xs, org, per_minute=3)
    for _ in range(3):
        assert call(xs, token, org).status_code == 200
    assert call(xs, token, org).status_code == 429
    assert call(xs, token, org).status_code == 429
    advance(xs, 61)
    # Refused calls did not use up the next minute's quota.
    assert [call(xs, token, org).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_minute_limit_is_a_rolling_window(xs, org, token):
    set_limits(xs, org, per_minute=3)
    assert call(xs, token, org).status_code == 200
    assert call(xs, token, org).status_code == 200
    advance(xs, 30)
    assert call(xs, token, org).status_code == 200
    assert call(xs, token, org).status_code == 429
    advance(xs, 31)  # the first two calls are now more than 60 s old, the third is not
    assert [call(xs, token, org).status_code for _ in range(3)] == [200, 200, 429]


def test_default_minute_limit_is_60(xs, org, token):
    statuses = [call(xs, token, org).status_code for _ in range(61)]
    assert statuses == [200] * 60 + [429]


def test_minute_limit_is_per_tenant(xs, org, org2):
    token = fresh_token(xs, org, org2)
    set_limits(xs, org, per_minute=2)
    assert [call(xs, token, org).status_code for _ in range(3)] == [200, 200, 429]
    other = call(xs, token, org2)
    assert other.status_code == 200
    assert int_header(other, "X-MinLimit-Remaining") == 59


# --------------------------------------------------------------------------- daily limit


def test_daily_limit_answers_429_day(xs, org, token):
    set_limits(xs, org, per_day=3)
    remaining = [int_header(call(xs, token, org), "X-DayLimit-Remaining") for _ in range(3)]
    assert remaining == [2, 1, 0]
    refused = call(xs, token, org)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert 60 < int_header(refused, "Retry-After") <= DAY
    advance(xs, 61)
    still = call(xs, token, org)
    assert still.status_code == 429
    assert still.headers["X-Rate-Limit-Problem"] == "day"


def test_daily_limit_resets_a_day_after_creation(xs, org, token):
    set_limits(xs, org, per_day=2)
    assert [call(xs, token, org).status_code for _ in range(3)] == [200, 200, 429]
    advance(xs, DAY + 1)
    token = fresh_token(xs, org)  # the old access token expired long ago
    response = call(xs, token, org)
    assert response.status_code == 200, response.text
    assert int_header(response, "X-DayLimit-Remaining") == 1


# --------------------------------------------------------------------------- concurrent limit

#: Long enough for the refusal to be seen on a busy machine.
HOLD_SECONDS = 5


def _hold_requests(xs, token: str, tenant: str, n: int) -> tuple[list[threading.Thread], list]:
    outcomes: list = []

    def held() -> None:
        try:
            outcomes.append(call(xs, token, tenant, "/Contacts", timeout=10).status_code)
        except requests.exceptions.RequestException as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=held, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def _first_refusal_while_held(xs, token: str, tenant: str, held: int = 1) -> requests.Response:
    """Once the held requests are in flight in the sandbox, make one more call."""
    deadline = time.monotonic() + HOLD_SECONDS - 0.5
    while time.monotonic() < deadline:
        in_flight = sum(window.in_flight for window in xs.sandbox.rate_windows.values())
        if in_flight >= held:
            break
        time.sleep(0.02)
    return call(xs, token, tenant, "/Organisation")


@pytest.mark.parametrize("concurrent", [2, None], ids=["set-to-2", "default-5"])
def test_concurrent_limit(xs, org, token, concurrent):
    in_flight = concurrent or 5
    if concurrent is not None:
        set_limits(xs, org, concurrent=concurrent)
    add_fault(
        xs,
        method="GET",
        path="/api.xro/2.0/Contacts*",
        kind="timeout",
        count=in_flight,
        hold_seconds=HOLD_SECONDS,
    )
    threads, outcomes = _hold_requests(xs, token, org, in_flight)
    refused = _first_refusal_while_held(xs, token, org, in_flight)
    for thread in threads:
        thread.join(timeout=HOLD_SECONDS + 5)
    assert refused.status_code == 429, "no 429 while the limit's worth of calls were in flight"
    assert refused.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert "Retry-After" not in refused.headers
    assert len(outcomes) == in_flight
    # Once the held calls are over, calls go through again.
    assert call(xs, token, org).status_code == 200


def test_fewer_calls_than_the_concurrent_limit_go_through(xs, org, token):
    set_limits(xs, org, concurrent=3)
    add_fault(
        xs, method="GET", path="/api.xro/2.0/Contacts*", kind="timeout", count=2, hold_seconds=1
    )
    threads, _ = _hold_requests(xs, token, org, 2)
    response = _first_refusal_while_held(xs, token, org, held=2)  # the two are in flight
    for thread in threads:
        thread.join(timeout=5)
    assert response.status_code == 200, response.text
