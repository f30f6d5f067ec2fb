"""Several CRM accounts connected by the same Xero user share one Xero authorisation (Xero's
tokens are per user per app, and revoking one removes every connection of that user to the
app). One account's disconnect, choice of organisation or abandoned consent never breaks
another account's connection, and one Xero organisation serves one CRM account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from crm_demo.crm.models import Membership
from tests.factories import MembershipFactory
from tests.integration.conftest import XeroApp, callback_path, start_connect
from tests.integration.consent import consent
from xero_integration import connect, tokens
from xero_integration.models import ConnectAttempt, ConnectionStatus, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db(transaction=True)

ALPHA, BETA, GAMMA = "Alpha Traders", "Beta Builders", "Gamma Goods"


@pytest.fixture
def tenants(xero_sandbox) -> dict[str, str]:
    """Three organisations the sandbox's Xero user may connect, by name."""
    return {
        name: xero_sandbox.create_organisation(name=name)["tenant_id"]
        for name in (ALPHA, BETA, GAMMA)
    }


@pytest.fixture
def second_owner() -> Membership:
    """The owner of a second CRM account, who signs in to Xero as the same Xero user."""
    return MembershipFactory(role=Membership.Role.OWNER)


@pytest.fixture
def second_client(second_owner, client_factory):
    return client_factory(second_owner.user)


def connection_of(membership: Membership) -> XeroConnection:
    return XeroConnection.objects.get(account_key=str(membership.account_id))


def calls(xero_sandbox: Any, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in xero_sandbox.requests() if r["method"] == method and r["path"] == path]


def tenants_connected(xero_sandbox: Any, app: XeroApp) -> set[str]:
    """The organisations connected to the app in Xero, seen through a token of its own."""
    issued = xero_sandbox.issue_tokens(app.client_id, [])
    listed = requests.get(
        xero_sandbox.url + "/connections",
        headers={"Authorization": f"Bearer {issued['access_token']}", "Accept": "application/json"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    return {c["tenantId"] for c in listed.json()}


def still_works(membership: Membership) -> bool:
    """The account's connection is connected and Xero still refreshes its tokens."""
    tokens.refresh_access_token(connection_of(membership).pk, force=True)
    return connection_of(membership).status == ConnectionStatus.CONNECTED


def consent_to(client: Any, organisations: list[str]) -> Any:
    """Connect → consent with ``organisations`` ticked → back in the CRM; the attempt page."""
    start = start_connect(client)
    location = consent(start.authorize_url, allow=True, organisations=organisations)
    response = client.get(callback_path(location))
    assert response.status_code == 302, response.content.decode()[:2000]
    return client.get(response["Location"])


def choose(client: Any, attempt: ConnectAttempt, tenant_id: str) -> Any:
    response = client.post(
        reverse("xero_integration:choose", args=[attempt.pk]), {"tenant_id": tenant_id}
    )
    assert response.status_code == 302
    return client.get(response["Location"], follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# Disconnect ------------------------------------------------------------------------------------


def test_a_disconnect_leaves_another_account_of_the_same_xero_user_connected(
    xero_app, tenants, xero_sandbox, owner, owner_client, second_owner, second_client
) -> None:
    consent_to(owner_client, [ALPHA])
    consent_to(second_client, [BETA])
    beta_connection_id = connection_of(second_owner).connection_id

    second_client.post(reverse("xero_integration:disconnect"))

    # Only the second account's connection is removed; the authorisation stays for the first.
    deletes = calls(xero_sandbox, "DELETE", f"/connections/{beta_connection_id}")
    assert [r["status"] for r in deletes] == [204]
    assert calls(xero_sandbox, "POST", "/connect/revocation") == []
    assert tenants_connected(xero_sandbox, xero_app) == {tenants[ALPHA]}
    assert still_works(owner)
    log = SyncLog.objects.get(account_key=str(second_owner.account_id), action="disconnect")
    assert log.outcome == SyncLog.Outcome.OK, log.message
    assert "another account in this CRM" in log.message
    assert connection_of(second_owner).refresh_token == ""

    # The last account to let go revokes the authorisation.
    owner_client.post(reverse("xero_integration:disconnect"))
    assert [r["status"] for r in calls(xero_sandbox, "POST", "/connect/revocation")] == [200]
    assert tenants_connected(xero_sandbox, xero_app) == set()


# Choosing among several organisations -------------------------------------------------------------


def test_choosing_never_removes_an_organisation_another_account_uses(
    xero_app, tenants, xero_sandbox, owner, owner_client, second_owner, second_client
) -> None:
    consent_to(owner_client, [ALPHA])
    alpha_connection_id = connection_of(owner).connection_id

    page = consent_to(second_client, [ALPHA, BETA])
    attempt = page.context["attempt"]
    assert "connected to another account in this CRM" in page.content.decode()
    choose(second_client, attempt, tenants[BETA])

    assert connection_of(second_owner).tenant_id == tenants[BETA]
    assert calls(xero_sandbox, "DELETE", f"/connections/{alpha_connection_id}") == []
    assert tenants_connected(xero_sandbox, xero_app) == {tenants[ALPHA], tenants[BETA]}
    assert still_works(owner)


def test_choosing_removes_only_organisations_this_consent_connected(
    xero_app, tenants, xero_sandbox, owner, owner_client
) -> None:
    # Gamma was connected to the app before (by no account of this CRM).
    xero_sandbox.issue_tokens(xero_app.client_id, [tenants[GAMMA]])

    page = consent_to(owner_client, [ALPHA, BETA, GAMMA])
    choose(owner_client, page.context["attempt"], tenants[BETA])

    assert connection_of(owner).tenant_id == tenants[BETA]
    assert tenants_connected(xero_sandbox, xero_app) == {tenants[BETA], tenants[GAMMA]}


# One organisation, one CRM account ---------------------------------------------------------------


def test_an_organisation_another_account_uses_is_refused_with_a_clear_message(
    xero_app, tenants, xero_sandbox, owner, owner_client, second_owner, second_client
) -> None:
    consent_to(owner_client, [ALPHA])

    page = consent_to(second_client, [ALPHA])
    assert page.status_code == 200
    text = page.content.decode()
    assert "Xero did not connect" in text
    assert f"{ALPHA} is already connected to another account in this CRM" in text
    assert not XeroConnection.objects.filter(
        account_key=str(second_owner.account_id), status=ConnectionStatus.CONNECTED
    ).exists()
    failed = ConnectAttempt.objects.get(account_key=str(second_owner.account_id))
    assert failed.state == ConnectAttempt.State.FAILED and failed.refresh_token == ""

    # Picked among several, the same organisation is refused and the others stay on offer.
    page = consent_to(second_client, [ALPHA, BETA])
    attempt = page.context["attempt"]
    refused = choose(second_client, attempt, tenants[ALPHA])
    assert any("already connected to another account" in m for m in messages_of(refused))
    attempt.refresh_from_db()
    assert attempt.state == ConnectAttempt.State.CHOOSING
    choose(second_client, attempt, tenants[BETA])
    assert connection_of(second_owner).tenant_id == tenants[BETA]

    assert calls(xero_sandbox, "POST", "/connect/revocation") == []
    assert still_works(owner)
    assert connection_of(owner).tenant_id == tenants[ALPHA]


def test_an_organisation_is_free_again_once_its_account_disconnected(
    xero_app, tenants, owner_client, second_owner, second_client
) -> None:
    consent_to(owner_client, [ALPHA])
    owner_client.post(reverse("xero_integration:disconnect"))

    consent_to(second_client, [ALPHA])
    assert connection_of(second_owner).status == ConnectionStatus.CONNECTED
    assert connection_of(second_owner).tenant_id == tenants[ALPHA]


# Abandoned consent --------------------------------------------------------------------------------


def let_an_hour_pass(xero_sandbox: Any) -> None:
    """Two hours go by, in the sandbox and for the open consents."""
    xero_sandbox.advance_clock(2 * 3600)
    past = timezone.now() - timedelta(hours=2)
    ConnectAttempt.objects.update(updated_at=past, access_token_expires_at=past)


def test_an_abandoned_choice_is_cancelled_and_xero_told(
    xero_app, tenants, xero_sandbox, owner_client, owner
) -> None:
    page = consent_to(owner_client, [ALPHA, BETA])
    attempt = page.context["attempt"]
    held_refresh_token = ConnectAttempt.objects.get(pk=attempt.pk).refresh_token
    assert tenants_connected(xero_sandbox, xero_app) == {tenants[ALPHA], tenants[BETA]}

    assert connect.expire_stale_attempts() == 0  # not stale yet
    let_an_hour_pass(xero_sandbox)
    assert connect.expire_stale_attempts() == 1

    attempt.refresh_from_db()
    assert attempt.state == ConnectAttempt.State.FAILED
    assert "not finished" in attempt.error
    assert (attempt.access_token, attempt.refresh_token) == ("", "")
    assert tenants_connected(xero_sandbox, xero_app) == set()
    refused = requests.post(
        xero_sandbox.url + "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": held_refresh_token},
        auth=(xero_app.client_id, xero_app.client_secret),
        timeout=10,
    )
    assert refused.json().get("error") == "invalid_grant"
    assert not XeroConnection.objects.exists()

    # Coming back to the page later says what happened.
    back = owner_client.get(reverse("xero_integration:attempt", args=[attempt.pk]))
    assert back.status_code == 200 and "Start again" in back.content.decode()
    assert connect.expire_stale_attempts() == 0


def test_an_abandoned_choice_never_breaks_another_accounts_connection(
    xero_app, tenants, xero_sandbox, owner, owner_client, second_client
) -> None:
    consent_to(owner_client, [ALPHA])
    consent_to(second_client, [ALPHA, BETA])  # left at "choose an organisation"

    let_an_hour_pass(xero_sandbox)
    assert connect.expire_stale_attempts() == 1

    assert tenants_connected(xero_sandbox, xero_app) == {tenants[ALPHA]}
    assert calls(xero_sandbox, "POST", "/connect/revocation") == []
    assert still_works(owner)


# The rule in the database ------------------------------------------------------------------------


def test_the_database_keeps_one_live_connection_per_organisation() -> None:
    from django.db import IntegrityError, transaction

    XeroConnection.objects.create(
        account_key="1", tenant_id="tenant-a", status=ConnectionStatus.CONNECTED
    )
    for status in (ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECT):
        with pytest.raises(IntegrityError), transaction.atomic():
            XeroConnection.objects.create(account_key="2", tenant_id="tenant-a", status=status)
    # A disconnected account keeps its history of the organisation.
    XeroConnection.objects.create(
        account_key="2", tenant_id="tenant-a", status=ConnectionStatus.DISCONNECTED
    )


def test_the_migration_disconnects_later_accounts_sharing_an_organisation() -> None:
    from django.db import connection as db_connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("xero_integration", "0009_organisation_scoped_links")]
    executor = MigrationExecutor(db_connection)
    # Back to the latest migration afterwards, so that the tests after this one find every
    # table.
    after = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "xero_integration"]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps.get_model(
            "xero_integration", "XeroConnection"
        )
        now = timezone.now()
        for key, minutes_ago in (("first", 20), ("second", 10), ("third", 5)):
            old.objects.create(
                account_key=key,
                status="connected",
                tenant_id="shared",
                tenant_name="Shared Ltd",
                connected_at=now - timedelta(minutes=minutes_ago),
            )
        old.objects.create(account_key="alone", status="connected", tenant_id="own")
    finally:
        executor = MigrationExecutor(db_connection)
        executor.migrate(after)

    statuses = dict(XeroConnection.objects.values_list("account_key", "status"))
    assert statuses == {
        "first": ConnectionStatus.CONNECTED,
        "second": ConnectionStatus.DISCONNECTED,
        "third": ConnectionStatus.DISCONNECTED,
        "alone": ConnectionStatus.CONNECTED,
    }
    second = XeroConnection.objects.get(account_key="second")
    assert "connected to another account in this CRM" in second.status_reason
    assert SyncLog.objects.filter(account_key="second", action="disconnect").exists()
