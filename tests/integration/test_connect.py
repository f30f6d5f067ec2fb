"""Connecting a CRM account to Xero through the sandbox: consent, callback, choose, disconnect.

Every test drives the CRM with Django's test client and the sandbox over real HTTP; background
tasks run inline (see conftest), so each page already shows the task's outcome.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.urls import reverse

from tests.integration.conftest import (
    TEST_REDIRECT_URI,
    XeroApp,
    callback_path,
    start_connect,
)
from tests.integration.consent import consent, fetch
from xero_integration.models import ConnectAttempt, ConnectionStatus, SyncLog, XeroConnection
from xero_integration.oauth_state import SESSION_KEY
from xero_integration.xero.oauth import new_code_verifier

pytestmark = pytest.mark.django_db(transaction=True)

ORG = "Demo Company (NZ)"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def text(response: Any) -> str:
    return response.content.decode()


def follow(client: Any, response: Any, limit: int = 5) -> Any:
    """Follow redirects inside the CRM (never to the sandbox)."""
    for _ in range(limit):
        if response.status_code not in (301, 302, 303):
            return response
        location = response["Location"]
        assert location.startswith("/"), f"Redirected out of the CRM to {location}"
        response = client.get(location)
    raise AssertionError("Too many redirects")


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def connection_for(account_key: str) -> XeroConnection:
    return XeroConnection.objects.get(account_key=account_key)


def sandbox_requests(xero_sandbox: Any, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in xero_sandbox.requests() if r["method"] == method and r["path"] == path]


def connections_seen_by(xero_sandbox: Any, access_token: str) -> list[dict[str, Any]]:
    response = requests.get(
        xero_sandbox.url + "/connections",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


# The whole flow ----------------------------------------------------------------------------------


def test_connect_flow_end_to_end(
    any_app: XeroApp, organisation, owner, owner_client, owner_account_key, xero_sandbox
) -> None:
    integrations = owner_client.get(reverse("crm:integrations"))
    assert integrations.status_code == 200
    assert "Not connected" in text(integrations)
    assert reverse("xero_integration:connect") in text(integrations)

    # Connect: off to Xero's consent page with state and an S256 challenge.
    start = start_connect(owner_client)
    assert start.authorize_url.startswith(xero_sandbox.url + "/identity/connect/authorize?")
    params = start.params
    assert params["client_id"] == any_app.client_id
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == TEST_REDIRECT_URI
    assert params["scope"].split() == xero_sandbox.default_scope.split()
    assert len(params["state"]) >= 32
    assert params["code_challenge_method"] == "S256"
    verifier = owner_client.session[SESSION_KEY][params["state"]]["code_verifier"]
    assert params["code_challenge"] == s256(verifier)

    page = fetch(start.authorize_url)
    assert page.status == 200 and page.form is not None, page.html[:2000]
    assert ORG in page.organisations or any(ORG in name for name in page.organisations)

    # Allow access: the sandbox sends the browser back with a code and our state.
    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    assert location.startswith(TEST_REDIRECT_URI)
    back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert back["state"] == params["state"] and back["code"]

    response = owner_client.get(callback_path(location))
    assert response.status_code == 302
    attempt = ConnectAttempt.objects.get(account_key=owner_account_key)
    assert response["Location"] == reverse("xero_integration:attempt", args=[attempt.pk])

    response = owner_client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"] == reverse("xero_integration:settings")
    settings_page = owner_client.get(response["Location"])
    assert settings_page.status_code == 200
    assert f"Connected to {ORG}." in messages_of(settings_page)
    assert ORG in text(settings_page) and "Connected" in text(settings_page)

    connection = connection_for(owner_account_key)
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == organisation["tenant_id"]
    assert connection.tenant_name == ORG
    assert connection.connection_id
    assert connection.connected_by == owner.user
    assert set(connection.scopes.split()) >= {"accounting.invoices", "offline_access"}
    assert connection.access_token and connection.refresh_token
    assert connection.accounts_loaded_at is not None

    exchanges = sandbox_requests(xero_sandbox, "POST", "/connect/token")
    assert [r["status"] for r in exchanges] == [200]

    attempt.refresh_from_db()
    assert attempt.state == ConnectAttempt.State.DONE
    assert not (attempt.code or attempt.access_token or attempt.refresh_token)

    # The tile on Settings → Integrations shows the organisation and the status.
    tile = text(owner_client.get(reverse("crm:integrations")))
    assert ORG in tile
    assert "xero-status--connected" in tile and ">Connected<" in tile


# Default accounts ------------------------------------------------------------------------------


def _eligible(accounts: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    payments = {
        a["AccountID"]
        for a in accounts
        if a.get("Status") == "ACTIVE"
        and (a.get("Type") == "BANK" or a.get("EnablePaymentsToAccount"))
    }
    revenue = {
        a["Code"]
        for a in accounts
        if a.get("Status") == "ACTIVE" and a.get("Class") == "REVENUE" and a.get("Code")
    }
    return payments, revenue


def _choices(form: Any, name: str) -> set[str]:
    return {value for value, _ in form.fields[name].choices if value}


def test_default_accounts_offered_are_payable_and_revenue_accounts(
    xero_app, organisation, owner_client, owner_account_key, xero_sandbox, connect_through_sandbox
) -> None:
    response = connect_through_sandbox(owner_client, organisations=[ORG])
    assert response.status_code == 302
    page = owner_client.get(reverse("xero_integration:settings"))
    form = page.context["form"]
    assert form is not None, "The default-accounts form is missing after connecting"

    accounts = xero_sandbox.organisation_state(organisation["tenant_id"])["accounts"]
    payments, revenue = _eligible(accounts)
    assert payments and revenue, "The sandbox's chart of accounts should have both kinds"
    assert _choices(form, "payment_account_id") == payments
    assert _choices(form, "revenue_account_code") == revenue
    by_id = {a["AccountID"]: a for a in accounts}
    kinds = {by_id[i]["Type"] == "BANK" for i in payments}
    assert kinds == {True, False}, "Expected both a bank and a payments-enabled non-bank account"
    assert "enable-payments-help" not in text(page)

    # A payments-enabled account that is not a bank account can be chosen...
    non_bank = next(i for i in payments if by_id[i]["Type"] != "BANK")
    code = sorted(revenue)[0]
    saved = owner_client.post(
        reverse("xero_integration:accounts"),
        {"payment_account_id": non_bank, "revenue_account_code": code},
    )
    assert saved.status_code == 302
    connection = connection_for(owner_account_key)
    assert (connection.payment_account_id, connection.revenue_account_code) == (non_bank, code)

    # ...an account that accepts no payments cannot.
    ineligible = next(
        a["AccountID"] for a in accounts if a["AccountID"] not in payments and a.get("Code")
    )
    refused = owner_client.post(
        reverse("xero_integration:accounts"),
        {"payment_account_id": ineligible, "revenue_account_code": code},
    )
    assert refused.status_code == 400
    assert connection_for(owner_account_key).payment_account_id == non_bank


def _make_ineligible(xero_sandbox: Any, app: XeroApp, tenant_id: str, account: dict) -> str:
    """Stop ``account`` accepting payments in the sandbox; a reason to skip when it cannot."""
    issued = xero_sandbox.issue_tokens(app.client_id, [tenant_id])
    change = (
        {"AccountID": account["AccountID"], "Status": "ARCHIVED"}
        if account.get("Type") == "BANK"
        else {"AccountID": account["AccountID"], "EnablePaymentsToAccount": False}
    )
    response = xero_sandbox.api(
        "POST",
        f"/Accounts/{account['AccountID']}",
        tenant_id,
        issued["access_token"],
        json={"Accounts": [change]},
    )
    if response.status_code != 200:
        return (
            "the sandbox offers no way to make an account stop accepting payments: its control "
            "API has no accounts endpoint and POST /Accounts/{id} answered "
            f"{response.status_code}"
        )
    return ""


def test_no_payment_account_shows_the_enable_payments_help(
    xero_app, organisation, owner_client, owner_account_key, xero_sandbox, connect_through_sandbox
) -> None:
    tenant_id = organisation["tenant_id"]
    accounts = xero_sandbox.organisation_state(tenant_id)["accounts"]
    payable = [
        a
        for a in accounts
        if a.get("Status") == "ACTIVE"
        and (a.get("Type") == "BANK" or a.get("EnablePaymentsToAccount"))
    ]
    for account in payable:
        reason = _make_ineligible(xero_sandbox, xero_app, tenant_id, account)
        if reason:
            pytest.skip(reason)
    accounts = xero_sandbox.organisation_state(tenant_id)["accounts"]
    assert not _eligible(accounts)[0], "Every payment account should now be ineligible"

    connect_through_sandbox(owner_client, organisations=[ORG])
    page = owner_client.get(reverse("xero_integration:settings"))
    assert page.status_code == 200
    body = text(page)
    assert "enable-payments-help" in body
    assert "Enable payments to this account" in body
    assert _choices(page.context["form"], "payment_account_id") == set()


# Errors on the way back from Xero ----------------------------------------------------------------


def test_tampered_state_is_a_clear_400_and_changes_nothing(
    xero_app, organisation, owner_client, owner_account_key
) -> None:
    start = start_connect(owner_client)
    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    query = parse_qs(urlsplit(location).query)
    last = "A" if start.state[-1] != "A" else "B"
    query["state"] = [start.state[:-1] + last]  # one character changed
    tampered = owner_client.get(reverse("xero_integration:callback") + "?" + urlencode(query, True))
    assert tampered.status_code == 400
    assert "This Xero connection request is not valid" in text(tampered)
    assert not ConnectAttempt.objects.exists()
    assert not XeroConnection.objects.filter(account_key=owner_account_key).exists()


def test_missing_state_is_a_clear_400(xero_app, organisation, owner_client) -> None:
    start = start_connect(owner_client)
    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = owner_client.get(
        reverse("xero_integration:callback") + "?" + urlencode({"code": code})
    )
    assert response.status_code == 400
    assert "not valid" in text(response)
    assert not ConnectAttempt.objects.exists()


def test_state_from_another_browser_is_rejected(
    xero_app, organisation, owner, owner_client, client_factory
) -> None:
    start = start_connect(owner_client)
    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    elsewhere = client_factory(owner.user)  # same user, another session
    response = elsewhere.get(callback_path(location))
    assert response.status_code == 400
    assert "not valid" in text(response)
    assert not ConnectAttempt.objects.exists()


def test_cancel_at_consent_is_a_clear_message(
    any_app, organisation, owner_client, owner_account_key
) -> None:
    start = start_connect(owner_client)
    location = consent(start.authorize_url, allow=False)
    back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert back.get("error") == "access_denied" and back.get("state") == start.state
    response = owner_client.get(callback_path(location))
    assert response.status_code == 302
    page = follow(owner_client, response)
    assert page.status_code == 200
    assert "You cancelled on Xero's screen; nothing was changed." in messages_of(page)
    assert not XeroConnection.objects.filter(account_key=owner_account_key).exists()


def test_reused_code_is_a_clear_error(
    any_app, organisation, owner_client, owner_account_key, xero_sandbox
) -> None:
    start = start_connect(owner_client)
    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    follow(owner_client, owner_client.get(callback_path(location)))
    assert connection_for(owner_account_key).status == ConnectionStatus.CONNECTED

    # The same callback again: its state was used up.
    replay = owner_client.get(callback_path(location))
    assert replay.status_code == 400
    assert "not valid" in text(replay)

    # The same code with a fresh state: Xero refuses the code, the CRM says so clearly.
    again = start_connect(owner_client)
    code = parse_qs(urlsplit(location).query)["code"][0]
    query = urlencode({"code": code, "state": again.state})
    response = owner_client.get(reverse("xero_integration:callback") + "?" + query)
    assert response.status_code == 302
    page = follow(owner_client, response)
    assert page.status_code == 200
    assert "Xero did not connect" in text(page)
    assert "Xero did not complete the connection" in text(page)
    failed = ConnectAttempt.objects.get(state=ConnectAttempt.State.FAILED)
    assert failed.error and not failed.code
    statuses = [r["status"] for r in sandbox_requests(xero_sandbox, "POST", "/connect/token")]
    assert statuses[0] == 200 and statuses[-1] == 400, statuses


def test_wrong_pkce_verifier_is_rejected(
    any_app, organisation, owner_client, owner_account_key, xero_sandbox
) -> None:
    start = start_connect(owner_client)
    session = owner_client.session
    states = session[SESSION_KEY]
    states[start.state]["code_verifier"] = new_code_verifier()
    session[SESSION_KEY] = states
    session.save()

    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    page = follow(owner_client, owner_client.get(callback_path(location)))
    assert page.status_code == 200
    assert "Xero did not connect" in text(page)
    assert not XeroConnection.objects.filter(account_key=owner_account_key).exists()
    statuses = [r["status"] for r in sandbox_requests(xero_sandbox, "POST", "/connect/token")]
    assert statuses == [400]


# Several organisations --------------------------------------------------------------------------


def test_several_organisations_choose_one_and_the_others_are_removed(
    any_app, owner_client, owner_account_key, xero_sandbox
) -> None:
    tenants = {
        name: xero_sandbox.create_organisation(name=name)["tenant_id"]
        for name in ("Alpha Traders", "Beta Builders", "Gamma Goods")
    }
    start = start_connect(owner_client)
    location = consent(
        start.authorize_url, allow=True, organisations=["Alpha Traders", "Beta Builders"]
    )
    response = owner_client.get(callback_path(location))
    choosing = owner_client.get(response["Location"])
    assert choosing.status_code == 200
    body = text(choosing)
    assert "Alpha Traders" in body and "Beta Builders" in body and "Gamma Goods" not in body
    attempt = choosing.context["attempt"]
    assert attempt.state == ConnectAttempt.State.CHOOSING
    assert not XeroConnection.objects.filter(account_key=owner_account_key).exists()

    # Only the organisations on offer can be chosen.
    wrong = owner_client.post(
        reverse("xero_integration:choose", args=[attempt.pk]),
        {"tenant_id": tenants["Gamma Goods"]},
    )
    assert "Choose one of the organisations listed." in messages_of(follow(owner_client, wrong))

    chosen = owner_client.post(
        reverse("xero_integration:choose", args=[attempt.pk]),
        {"tenant_id": tenants["Beta Builders"]},
    )
    page = follow(owner_client, chosen)
    assert page.status_code == 200
    assert "Connected to Beta Builders." in messages_of(page)

    connection = connection_for(owner_account_key)
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == tenants["Beta Builders"]
    assert connection.tenant_name == "Beta Builders"

    alpha = next(t for t in attempt.tenants if t["tenant_name"] == "Alpha Traders")
    deletes = sandbox_requests(xero_sandbox, "DELETE", f"/connections/{alpha['connection_id']}")
    assert [r["status"] for r in deletes] in ([200], [204])
    assert not sandbox_requests(xero_sandbox, "DELETE", f"/connections/{connection.connection_id}")
    remaining = connections_seen_by(xero_sandbox, connection.access_token)
    assert [c["tenantId"] for c in remaining] == [tenants["Beta Builders"]]


# Disconnect and reconnect ------------------------------------------------------------------------


def test_disconnect_removes_revokes_wipes_and_keeps_history(
    any_app,
    organisation,
    owner_client,
    owner_account_key,
    xero_sandbox,
    connect_through_sandbox,
) -> None:
    connect_through_sandbox(owner_client, organisations=[ORG])
    before = connection_for(owner_account_key)
    connection_id, refresh_token = before.connection_id, before.refresh_token

    response = owner_client.post(reverse("xero_integration:disconnect"))
    assert response.status_code == 302
    page = follow(owner_client, response)
    assert f"Disconnected from {ORG}." in messages_of(page)
    assert "Reconnect to Xero" in text(page)

    deletes = sandbox_requests(xero_sandbox, "DELETE", f"/connections/{connection_id}")
    assert [r["status"] for r in deletes] in ([200], [204]), xero_sandbox.requests()
    revocations = sandbox_requests(xero_sandbox, "POST", "/connect/revocation")
    assert [r["status"] for r in revocations] == [200], xero_sandbox.requests()

    after = connection_for(owner_account_key)
    assert after.status == ConnectionStatus.DISCONNECTED
    assert after.access_token == "" and after.refresh_token == ""
    assert after.access_token_expires_at is None
    assert after.tenant_name == ORG and after.disconnected_at is not None
    actions = set(SyncLog.objects.filter(connection=after).values_list("action", flat=True))
    assert {"connect", "disconnect_requested", "disconnect"} <= actions
    log = SyncLog.objects.get(connection=after, action="disconnect")
    assert log.outcome == SyncLog.Outcome.OK, log.message

    # The old refresh token is dead in Xero.
    refused = requests.post(
        xero_sandbox.url + "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token}
        | ({"client_id": any_app.client_id} if any_app.is_pkce else {}),
        auth=None if any_app.is_pkce else (any_app.client_id, any_app.client_secret),
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json().get("error") == "invalid_grant"

    tile = text(owner_client.get(reverse("crm:integrations")))
    assert "Disconnected" in tile and "Reconnect" in tile

    # Reconnect works and the history is still there.
    page = follow(owner_client, connect_through_sandbox(owner_client, organisations=[ORG]))
    assert f"Connected to {ORG}." in messages_of(page)
    again = connection_for(owner_account_key)
    assert again.pk == after.pk and again.status == ConnectionStatus.CONNECTED
    assert SyncLog.objects.filter(connection=again, action="disconnect").exists()


def test_disconnect_made_in_xero_needs_reconnect_then_reconnect_works(
    any_app,
    organisation,
    owner_client,
    owner_account_key,
    xero_sandbox,
    connect_through_sandbox,
) -> None:
    connect_through_sandbox(owner_client, organisations=[ORG])
    xero_sandbox.disconnect(organisation["tenant_id"])

    # The next use of the connection finds out.
    response = owner_client.post(reverse("xero_integration:reload_accounts"))
    assert response.status_code == 302
    connection = connection_for(owner_account_key)
    assert connection.status == ConnectionStatus.NEEDS_RECONNECT, connection.status_reason
    assert "disconnected in Xero" in connection.status_reason

    page = owner_client.get(reverse("xero_integration:settings"))
    assert "Needs reconnect" in text(page) and "Reconnect to Xero" in text(page)
    tile = text(owner_client.get(reverse("crm:integrations")))
    assert "Xero no longer accepts this connection" in tile and "Reconnect" in tile

    page = follow(owner_client, connect_through_sandbox(owner_client, organisations=[ORG]))
    assert f"Connected to {ORG}." in messages_of(page)
    connection = connection_for(owner_account_key)
    assert connection.status == ConnectionStatus.CONNECTED and connection.status_reason == ""
    assert connection.accounts_loaded_at is not None
    assert page.context["form"] is not None


# Who may do what -------------------------------------------------------------------------------


def test_member_cannot_connect_or_disconnect(
    xero_app, organisation, owner_client, member_client, owner_account_key, connect_through_sandbox
) -> None:
    assert member_client.post(reverse("xero_integration:connect")).status_code == 403
    page = member_client.get(reverse("xero_integration:settings"))
    assert page.status_code == 200
    assert "Ask an owner or admin" in text(page)

    connect_through_sandbox(owner_client, organisations=[ORG])
    assert member_client.post(reverse("xero_integration:disconnect")).status_code == 403
    assert member_client.post(reverse("xero_integration:reload_accounts")).status_code == 403
    assert member_client.post(reverse("xero_integration:accounts"), {}).status_code == 403
    page = text(member_client.get(reverse("xero_integration:settings")))
    assert ORG in page  # members see the connection...
    assert reverse("xero_integration:disconnect") not in page  # ...but cannot change it
    assert connection_for(owner_account_key).status == ConnectionStatus.CONNECTED


def test_another_account_cannot_see_or_touch_the_connection(
    xero_app,
    organisation,
    owner_client,
    other_account_client,
    owner_account_key,
    connect_through_sandbox,
) -> None:
    connect_through_sandbox(owner_client, organisations=[ORG])
    attempt = ConnectAttempt.objects.get(account_key=owner_account_key)

    page = other_account_client.get(reverse("xero_integration:settings"))
    assert page.status_code == 200
    assert ORG not in text(page) and page.context["connection"] is None
    assert ORG not in text(other_account_client.get(reverse("crm:integrations")))
    assert other_account_client.post(reverse("xero_integration:disconnect")).status_code == 404
    assert (
        other_account_client.get(reverse("xero_integration:attempt", args=[attempt.pk])).status_code
        == 404
    )
    assert (
        other_account_client.post(
            reverse("xero_integration:choose", args=[attempt.pk]), {"tenant_id": "x"}
        ).status_code
        == 404
    )
    assert connection_for(owner_account_key).status == ConnectionStatus.CONNECTED


def test_another_account_cannot_use_this_accounts_callback(
    xero_app, organisation, owner_client, other_account_client, owner_account_key
) -> None:
    start = start_connect(owner_client)
    location = consent(start.authorize_url, allow=True, organisations=[ORG])
    response = other_account_client.get(callback_path(location))
    assert response.status_code == 400
    assert not ConnectAttempt.objects.exists()


def test_login_required(client, xero_app) -> None:
    login = reverse("account_login")
    for method, name in [
        ("get", "settings"),
        ("post", "connect"),
        ("get", "callback"),
        ("post", "disconnect"),
        ("post", "reload_accounts"),
        ("post", "accounts"),
    ]:
        response = getattr(client, method)(reverse(f"xero_integration:{name}"))
        assert response.status_code == 302, name
        assert response["Location"].startswith(login), (name, response["Location"])
