"""The connect, choose-organisation, reference-data and disconnect flows.

Views only record what the user did and queue a task; the functions here that talk to Xero run in
those tasks, so no web request ever waits on Xero.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from xero_integration import app_settings, services, signals, tokens
from xero_integration.calllog import CallRecorder
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import (
    ConnectAttempt,
    ConnectionStatus,
    SyncLog,
    XeroConnection,
)
from xero_integration.tokens import ConnectionTokenSource
from xero_integration.xero.client import XeroClient
from xero_integration.xero.errors import Forbidden, XeroError

logger = logging.getLogger(__name__)


def _fail(attempt: ConnectAttempt, message: str) -> None:
    attempt.state = ConnectAttempt.State.FAILED
    attempt.error = message
    attempt.forget_secrets()
    attempt.save()
    SyncLog.objects.create(
        account_key=attempt.account_key,
        action="connect",
        outcome=SyncLog.Outcome.FAILED,
        message=message,
    )


def exchange_code(attempt_id: str) -> None:
    """Exchange the authorisation code and find which organisations the user connected."""
    attempt = ConnectAttempt.objects.get(pk=attempt_id)
    if attempt.state != ConnectAttempt.State.EXCHANGING:
        return
    oauth = services.oauth_client(attempt.redirect_uri)
    try:
        token_set = oauth.exchange_code(attempt.code, attempt.code_verifier or None)
        connections = oauth.connections(token_set.access_token, token_set.auth_event_id)
    except XeroError as exc:
        _fail(attempt, f"Xero did not complete the connection: {exc}")
        return
    tenants = [
        {
            "connection_id": c.id,
            "tenant_id": c.tenant_id,
            "tenant_name": c.tenant_name,
            "tenant_type": c.tenant_type,
        }
        for c in connections
        if c.tenant_type == "ORGANISATION"
    ]
    attempt.code = ""
    attempt.code_verifier = ""
    attempt.access_token = token_set.access_token
    attempt.refresh_token = token_set.refresh_token or ""
    attempt.access_token_expires_at = token_set.expires_at
    attempt.scopes = " ".join(token_set.scope)
    attempt.tenants = tenants
    if not tenants:
        _fail(attempt, "No Xero organisation was selected on Xero's consent screen.")
        return
    if len(tenants) == 1:
        attempt.chosen_tenant_id = tenants[0]["tenant_id"]
        attempt.state = ConnectAttempt.State.FINISHING
        attempt.save()
        finish(str(attempt.pk))
        return
    attempt.state = ConnectAttempt.State.CHOOSING
    attempt.save()


def finish(attempt_id: str) -> None:
    """Keep the chosen organisation, remove the others in Xero, and save the connection."""
    attempt = ConnectAttempt.objects.get(pk=attempt_id)
    if attempt.state != ConnectAttempt.State.FINISHING:
        return
    chosen = next((t for t in attempt.tenants if t["tenant_id"] == attempt.chosen_tenant_id), None)
    if chosen is None:
        _fail(attempt, "The chosen organisation is not one of those connected.")
        return
    oauth = services.oauth_client(attempt.redirect_uri)
    # One Xero organisation per CRM account: drop the other organisations ticked on the consent
    # screen, so Xero's "connected apps" list matches what the CRM shows.
    for tenant in attempt.tenants:
        if tenant["tenant_id"] == chosen["tenant_id"]:
            continue
        try:
            oauth.delete_connection(attempt.access_token, tenant["connection_id"])
        except XeroError as exc:
            logger.warning(
                "Could not remove extra Xero connection %s: %s", tenant["tenant_id"], exc
            )
    with transaction.atomic():
        connection, _ = XeroConnection.objects.select_for_update().get_or_create(
            account_key=attempt.account_key
        )
        if connection.tenant_id != chosen["tenant_id"]:
            # Another organisation: what was read from the previous one means nothing here.
            # Links and mappings are kept per organisation (history, and a switch back), and
            # the contact import starts afresh for this one.
            connection.switch_organisation(chosen["tenant_id"])
            connection.contact_imports.all().delete()
        connection.status = ConnectionStatus.CONNECTED
        connection.status_reason = ""
        connection.tenant_name = chosen["tenant_name"]
        connection.tenant_type = chosen["tenant_type"]
        connection.connection_id = chosen["connection_id"]
        connection.scopes = attempt.scopes
        connection.access_token = attempt.access_token
        connection.refresh_token = attempt.refresh_token
        connection.access_token_expires_at = attempt.access_token_expires_at
        connection.tokens_refreshed_at = timezone.now()
        connection.token_generation += 1
        connection.connected_by = attempt.user
        connection.connected_at = timezone.now()
        connection.disconnected_at = None
        connection.save()
        attempt.state = ConnectAttempt.State.DONE
        attempt.forget_secrets()
        attempt.save()
        SyncLog.objects.create(
            connection=connection,
            account_key=connection.account_key,
            action="connect",
            message=f"Connected to {connection.tenant_name}.",
        )
    signals.connected.send(sender=XeroConnection, connection=connection)
    load_reference_data(connection.pk)


def api_client(connection: XeroConnection, recorder: CallRecorder | None = None) -> XeroClient:
    """A wire client for the connection's organisation, drawing on the process's shared
    per-organisation rate limiter; ``recorder`` collects the calls for the sync log."""
    session = services.new_session()
    if recorder is not None:
        recorder.attach(session)
    return XeroClient(
        api_url=app_settings.API_URL,
        tenant_id=connection.tenant_id,
        token_source=ConnectionTokenSource(connection.pk),
        session=session,
        limiter=services.limiter(),
        timeout=app_settings.REQUEST_TIMEOUT,
    )


def confirm_still_connected(connection: XeroConnection) -> bool:
    """After Xero refused the tenant (403), ask ``/connections`` whether it is still connected.

    A tenant missing from the list was disconnected in Xero: the connection is marked
    needs-reconnect and its work waits.
    """
    try:
        current = services.oauth_client().connections(tokens.access_token(connection.pk))
    except ConnectionNotReady:
        return False
    if any(c.tenant_id == connection.tenant_id for c in current):
        return True
    tokens.mark_needs_reconnect(
        connection,
        f"{connection.tenant_name or 'The organisation'} is no longer connected to this app in "
        "Xero (it was disconnected in Xero). Reconnect to resume syncing.",
    )
    return False


def load_reference_data(connection_id: int) -> None:
    """Read the organisation's details and ACTIVE accounts into the connection."""
    connection = XeroConnection.objects.get(pk=connection_id)
    if not connection.is_connected:
        return
    client = api_client(connection)
    try:
        organisation: dict[str, Any] = client.organisation()
        accounts = client.accounts(where='Status=="ACTIVE"')
    except ConnectionNotReady:
        return
    except Forbidden:
        confirm_still_connected(connection)
        return
    except XeroError as exc:
        SyncLog.objects.create(
            connection=connection,
            account_key=connection.account_key,
            action="load_accounts",
            outcome=SyncLog.Outcome.FAILED,
            message=str(exc),
        )
        return
    connection.tenant_name = organisation.get("Name") or connection.tenant_name
    connection.short_code = organisation.get("ShortCode") or ""
    connection.base_currency = organisation.get("BaseCurrency") or ""
    connection.country_code = organisation.get("CountryCode") or ""
    connection.accounts = [
        {
            key: account.get(key)
            for key in (
                "AccountID",
                "Code",
                "Name",
                "Type",
                "Class",
                "Status",
                "EnablePaymentsToAccount",
                "BankAccountType",
                "CurrencyCode",
            )
        }
        for account in accounts
    ]
    connection.accounts_loaded_at = timezone.now()
    payment_ids = {a["AccountID"] for a in connection.payment_accounts()}
    if connection.payment_account_id not in payment_ids:
        connection.payment_account_id = ""
    revenue_codes = {a["Code"] for a in connection.revenue_accounts()}
    if connection.revenue_account_code not in revenue_codes:
        connection.revenue_account_code = ""
    connection.save()


def disconnect(connection: XeroConnection, user: Any = None) -> None:
    """Let go of the organisation in the CRM now; Xero is told by a task (disconnect_in_xero)."""
    connection.status = ConnectionStatus.DISCONNECTED
    connection.status_reason = ""
    connection.disconnected_at = timezone.now()
    connection.save(update_fields=["status", "status_reason", "disconnected_at", "updated_at"])
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action="disconnect_requested",
        outcome=SyncLog.Outcome.INFO,
        message=f"Disconnect requested by {user}." if user else "Disconnect requested.",
    )
    signals.disconnected.send(sender=XeroConnection, connection=connection)


def disconnect_in_xero(connection_id: int, token_generation: int) -> None:
    """Remove the connection in Xero, revoke the tokens, then wipe them.

    Runs only if nothing reconnected the account since the disconnect (same token generation),
    so a quick reconnect never loses its fresh tokens.
    """
    with transaction.atomic():
        connection = XeroConnection.objects.select_for_update().get(pk=connection_id)
        if (
            connection.status != ConnectionStatus.DISCONNECTED
            or connection.token_generation != token_generation
            or not connection.refresh_token
        ):
            return
        access_token, refresh_token = connection.access_token, connection.refresh_token
        access_token_fresh = connection.access_token_is_fresh()
        connection.wipe_tokens()
        connection.save(
            update_fields=["access_token", "refresh_token", "access_token_expires_at", "updated_at"]
        )
    oauth = services.oauth_client()
    messages: list[str] = []
    try:
        if not access_token_fresh:
            token_set = oauth.refresh(refresh_token)
            access_token, refresh_token = token_set.access_token, token_set.refresh_token
        if connection.connection_id:
            oauth.delete_connection(access_token, connection.connection_id)
    except XeroError as exc:
        messages.append(f"Removing the connection in Xero failed: {exc}")
    try:
        oauth.revoke(refresh_token)
    except XeroError as exc:
        messages.append(f"Revoking the authorisation failed: {exc}")
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action="disconnect",
        outcome=SyncLog.Outcome.FAILED if messages else SyncLog.Outcome.OK,
        message=" ".join(messages) or f"Disconnected from {connection.tenant_name} in Xero.",
    )
