"""Connecting a CRM account to Xero through the sandbox's consent screen, over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from tests.integration.conftest import CALLBACK
from tests.integration.consent import consent
from xero_integration.models import ConnectAttempt, ConnectionStatus, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db


def start(client) -> str:
    """Click Connect; return the consent screen URL."""
    response = client.post(reverse("xero_integration:connect"))
    assert response.status_code == 302
    return response["Location"]


def come_back(client, redirect_url: str, capture):
    """Follow Xero's redirect back to the CRM, running the queued tasks."""
    parts = urlsplit(redirect_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    with capture(execute=True):
        response = client.get(parts.path, parse_qs(parts.query))
    return response


def connect(client, sandbox, capture, organisations: list[str] | None = None):
    """The whole flow: Connect, Allow access, back in the CRM; returns the final response."""
    response = come_back(client, consent(start(client), organisations=organisations), capture)
    if response.status_code == 302:
        response = client.get(response["Location"], follow=True)
    return response


def organisation(sandbox, name: str, **extra) -> str:
    values = {"country_code": "NZ", "base_currency": "NZD", "multicurrency": True} | extra
    return sandbox.create_organisation(name=name, **values)["tenant_id"]


def test_connect_asks_xero_for_consent_with_state_pkce_and_scopes(xero_app, owner_client):
    query = parse_qs(urlsplit(start(owner_client)).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [xero_app_client_id(xero_app)]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    scopes = query["scope"][0].split()
    for scope in ("offline_access", "accounting.contacts", "accounting.invoices", "openid"):
        assert scope in scopes


def xero_app_client_id(sandbox) -> str:
    from django.conf import settings

    return settings.XERO_CLIENT_ID


def test_web_app_connects_and_shows_the_organisation(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    tenant_id = organisation(xero_app, "Harbour Bikes Ltd")
    page = connect(owner_client, xero_app, django_capture_on_commit_callbacks)
    assert page.status_code == 200
    assert "Harbour Bikes Ltd" in page.content.decode()
    connection = XeroConnection.objects.get()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == tenant_id
    assert connection.connection_id and connection.short_code
    assert connection.access_token and connection.refresh_token
    assert "accounting.invoices" in connection.scopes
    assert connection.accounts_loaded_at is not None
    assert SyncLog.objects.filter(action="connect", outcome="ok").exists()


def test_pkce_app_connects(xero_pkce_app, owner_client, django_capture_on_commit_callbacks):
    organisation(xero_pkce_app, "Pkce Traders")
    connect(owner_client, xero_pkce_app, django_capture_on_commit_callbacks)
    assert XeroConnection.objects.get().tenant_name == "Pkce Traders"


def test_only_accounts_that_accept_payments_are_offered(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    organisation(xero_app, "Accounts Ltd")
    page = connect(owner_client, xero_app, django_capture_on_commit_callbacks)
    form = page.context["form"]
    connection = XeroConnection.objects.get()
    offered = {value for value, _ in form.fields["payment_account_id"].choices if value}
    expected = {
        a["AccountID"]
        for a in connection.accounts
        if a["Status"] == "ACTIVE" and (a["Type"] == "BANK" or a["EnablePaymentsToAccount"])
    }
    assert offered == expected and offered
    revenue = {a["AccountID"] for a in connection.accounts if a["Class"] == "REVENUE"}
    assert not offered & revenue

    bank = next(a for a in connection.accounts if a["AccountID"] in offered)
    sales = connection.revenue_accounts()[0]
    refused = owner_client.post(
        reverse("xero_integration:accounts"),
        {"payment_account_id": sales["AccountID"], "revenue_account_code": sales["Code"]},
    )
    assert refused.status_code == 400
    assert "payment_account_id" in refused.context["form"].errors
    saved = owner_client.post(
        reverse("xero_integration:accounts"),
        {"payment_account_id": bank["AccountID"], "revenue_account_code": sales["Code"]},
    )
    assert saved.status_code == 302
    connection.refresh_from_db()
    assert (connection.payment_account_id, connection.revenue_account_code) == (
        bank["AccountID"],
        sales["Code"],
    )


def test_no_payment_account_shows_how_to_enable_one(owner_client, owner_account_key):
    XeroConnection.objects.create(
        account_key=owner_account_key,
        status=ConnectionStatus.CONNECTED,
        tenant_name="No Bank Ltd",
        accounts=[
            {
                "AccountID": "a1",
                "Code": "200",
                "Name": "Sales",
                "Type": "REVENUE",
                "Class": "REVENUE",
                "Status": "ACTIVE",
                "EnablePaymentsToAccount": False,
            }
        ],
        accounts_loaded_at="2026-01-01T00:00:00Z",
    )
    page = owner_client.get(reverse("xero_integration:settings")).content.decode()
    assert "Enable payments to this account" in page


def test_tampered_or_missing_state_is_refused(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    organisation(xero_app, "State Ltd")
    redirect_url = consent(start(owner_client))
    query = parse_qs(urlsplit(redirect_url).query)
    tampered = owner_client.get(
        reverse("xero_integration:callback"), {"code": query["code"][0], "state": "forged"}
    )
    assert tampered.status_code == 400
    assert "does not match" in tampered.content.decode()
    missing = owner_client.get(reverse("xero_integration:callback"), {"code": query["code"][0]})
    assert missing.status_code == 400
    assert not ConnectAttempt.objects.exists()
    assert not XeroConnection.objects.exists()


def test_wrong_pkce_verifier_is_refused_by_xero(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    organisation(xero_app, "Verifier Ltd")
    authorize_url = start(owner_client)
    session = owner_client.session
    for stashed in session["xero_integration_oauth_states"].values():
        stashed["code_verifier"] = "x" * 64
    session.save()
    response = come_back(owner_client, consent(authorize_url), django_capture_on_commit_callbacks)
    page = owner_client.get(response["Location"])
    assert "did not connect" in page.content.decode()
    assert ConnectAttempt.objects.get().state == ConnectAttempt.State.FAILED
    assert not XeroConnection.objects.exists()


def test_cancel_on_the_consent_screen_changes_nothing(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    organisation(xero_app, "Cancel Ltd")
    redirect_url = consent(start(owner_client), allow=False)
    assert parse_qs(urlsplit(redirect_url).query)["error"] == ["access_denied"]
    response = come_back(owner_client, redirect_url, django_capture_on_commit_callbacks)
    page = owner_client.get(response["Location"]).content.decode()
    assert "cancelled" in page
    assert not XeroConnection.objects.exists()


def test_a_reused_code_is_refused(xero_app, owner_client, django_capture_on_commit_callbacks):
    organisation(xero_app, "Reuse Ltd")
    first = consent(start(owner_client))
    come_back(owner_client, first, django_capture_on_commit_callbacks)
    assert XeroConnection.objects.get().status == ConnectionStatus.CONNECTED
    # The same code again, carried by a fresh, valid state.
    fresh_state = parse_qs(urlsplit(start(owner_client)).query)["state"][0]
    code = parse_qs(urlsplit(first).query)["code"][0]
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.get(reverse("xero_integration:callback"), {"code": code, "state": fresh_state})
    assert ConnectAttempt.objects.first().state == ConnectAttempt.State.FAILED


def test_choosing_one_of_several_organisations_removes_the_others(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    first = organisation(xero_app, "First Org")
    second = organisation(xero_app, "Second Org")
    response = come_back(
        owner_client,
        consent(start(owner_client), organisations=[first, second]),
        django_capture_on_commit_callbacks,
    )
    page = owner_client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "First Org" in text and "Second Org" in text
    attempt = ConnectAttempt.objects.get()
    assert attempt.state == ConnectAttempt.State.CHOOSING
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("xero_integration:choose", args=[attempt.pk]), {"tenant_id": second}
        )
    connection = XeroConnection.objects.get()
    assert connection.tenant_id == second and connection.tenant_name == "Second Org"
    remaining = requests.get(
        f"{xero_app.url}/connections",
        headers={"Authorization": f"Bearer {connection.access_token}"},
        timeout=10,
    ).json()
    assert [c["tenantId"] for c in remaining] == [second]


def test_disconnect_removes_the_connection_in_xero_and_keeps_history(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    tenant_id = organisation(xero_app, "Leaving Ltd")
    connect(owner_client, xero_app, django_capture_on_commit_callbacks)
    connection = XeroConnection.objects.get()
    access_token = connection.access_token
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("xero_integration:disconnect"))
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.DISCONNECTED
    assert connection.access_token == "" and connection.refresh_token == ""
    assert connection.tenant_name == "Leaving Ltd"
    listed = requests.get(
        f"{xero_app.url}/connections",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    assert listed.status_code == 401 or tenant_id not in {c["tenantId"] for c in listed.json()}
    assert SyncLog.objects.filter(action="disconnect", outcome="ok").exists()
    assert SyncLog.objects.filter(action="connect").exists()
    page = owner_client.get(reverse("xero_integration:settings")).content.decode()
    assert "Reconnect to Xero" in page


def test_disconnect_in_xero_then_reconnect(
    xero_app, owner_client, django_capture_on_commit_callbacks
):
    tenant_id = organisation(xero_app, "Flaky Ltd")
    connect(owner_client, xero_app, django_capture_on_commit_callbacks)
    xero_app.disconnect(tenant_id)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("xero_integration:reload_accounts"))
    connection = XeroConnection.objects.get()
    assert connection.status == ConnectionStatus.NEEDS_RECONNECT
    page = owner_client.get(reverse("xero_integration:settings")).content.decode()
    assert "Needs reconnect" in page and "Reconnect to Xero" in page

    connect(owner_client, xero_app, django_capture_on_commit_callbacks, organisations=[tenant_id])
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == tenant_id


def test_a_member_who_is_not_an_admin_cannot_connect_or_disconnect(member_client):
    assert member_client.post(reverse("xero_integration:connect")).status_code == 403
    assert member_client.post(reverse("xero_integration:disconnect")).status_code == 403
    assert member_client.get(reverse("xero_integration:settings")).status_code == 200


def test_another_account_cannot_see_or_touch_this_connection(
    xero_app, owner_client, other_account_client, django_capture_on_commit_callbacks
):
    organisation(xero_app, "Private Ltd")
    connect(owner_client, xero_app, django_capture_on_commit_callbacks)
    attempt = ConnectAttempt.objects.get()
    page = other_account_client.get(reverse("xero_integration:settings")).content.decode()
    assert "Private Ltd" not in page
    assert other_account_client.post(reverse("xero_integration:disconnect")).status_code == 404
    assert (
        other_account_client.get(reverse("xero_integration:attempt", args=[attempt.pk])).status_code
        == 404
    )
    assert XeroConnection.objects.get().status == ConnectionStatus.CONNECTED


def test_pages_require_sign_in(client):
    for name in ("settings", "connect", "callback", "disconnect", "accounts"):
        response = client.get(reverse(f"xero_integration:{name}"))
        assert response.status_code in (302, 405)
        if response.status_code == 302:
            assert "/accounts/login/" in response["Location"]
