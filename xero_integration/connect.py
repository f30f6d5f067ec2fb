"""The connect, choose-organisation, reference-data and disconnect flows.

Views only record what the user did and queue a task; the functions here that talk to Xero run in
those tasks, so no web request ever waits on Xero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from xero_integration import app_settings, outcomes, services, signals, tokens
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
from xero_integration.xero.errors import NotFound, XeroError
from xero_integration.xero.oauth import OAuthClient
from xero_integration.xero.wire import parse_date

logger = logging.getLogger(__name__)

#: A consent left at "choose an organisation" (or whose task was lost) is cancelled after this
#: long, and what it holds in Xero let go.
STALE_ATTEMPT_AFTER = timedelta(hours=1)
OPEN_ATTEMPT_STATES = (
    ConnectAttempt.State.EXCHANGING,
    ConnectAttempt.State.CHOOSING,
    ConnectAttempt.State.FINISHING,
)
EXPIRED_MESSAGE = (
    "This connection was not finished within an hour, so it was cancelled and the "
    "organisations it connected were disconnected in Xero again. Start again from Settings → "
    "Integrations → Xero."
)


def organisation_taken_message(tenant_name: str) -> str:
    """What a user reads when the organisation serves another CRM account already."""
    return (
        f"{tenant_name or 'This organisation'} is already connected to another account in this "
        "CRM. A Xero organisation can be connected to one CRM account only: disconnect it "
        "there first, or choose another organisation."
    )


def tenants_taken(account_key: str) -> set[str]:
    """Organisations other CRM accounts are connected to (or must reconnect to): this account
    cannot connect them."""
    return set(
        XeroConnection.objects.exclude(account_key=account_key)
        .exclude(status=ConnectionStatus.DISCONNECTED)
        .exclude(tenant_id="")
        .values_list("tenant_id", flat=True)
    )


def tenants_in_use(*, except_connection: int | None = None, except_attempt: Any = None) -> set[str]:
    """Organisations whose Xero connection something in this CRM relies on: a stored
    connection that is not disconnected, or a consent still waiting to finish. Their
    connections are never deleted, and a grant that reaches one of them is never revoked."""
    stored = (
        XeroConnection.objects.exclude(status=ConnectionStatus.DISCONNECTED)
        .exclude(tenant_id="")
        .exclude(pk=except_connection)
        .values_list("tenant_id", flat=True)
    )
    open_attempts = (
        ConnectAttempt.objects.filter(
            state__in=(ConnectAttempt.State.CHOOSING, ConnectAttempt.State.FINISHING)
        )
        .exclude(pk=except_attempt)
        .values_list("tenants", flat=True)
    )
    pending = {t.get("tenant_id") for tenants in open_attempts for t in tenants or []}
    return set(stored) | (pending - {None})


@dataclass
class Release:
    """What letting go of a Xero authorisation did."""

    problems: list[str] = field(default_factory=list)
    #: The grant also reaches organisations in use here, so it was not revoked.
    kept_for_others: bool = False
    revoked: bool = False


def let_go(
    oauth: OAuthClient,
    access_token: str,
    refresh_token: str,
    *,
    access_token_fresh: bool,
    drop: list[str],
    in_use: set[str],
) -> Release:
    """Delete the Xero connections ``drop`` names, then revoke the authorisation unless it
    still reaches an organisation in ``in_use``.

    Xero's tokens are per user per app, and revoking one removes every connection that Xero
    user made to the app (Xero documents it so): when two CRM accounts were connected by the same
    Xero user, revoking one account's token would disconnect the other too. Xero's own list of
    the grant's connections decides; when it cannot be read while something here is in use,
    the grant is kept (an unused refresh token expires in Xero after 60 days).
    """
    result = Release()
    remaining: list[Any] | None = None
    if not access_token_fresh:
        try:
            token_set = oauth.refresh(refresh_token)
        except XeroError as exc:
            result.problems.append(f"Removing the connection in Xero failed: {exc}")
            access_token = ""
        else:
            access_token = token_set.access_token
            refresh_token = token_set.refresh_token or refresh_token
    if access_token:
        for connection_id in drop:
            try:
                oauth.delete_connection(access_token, connection_id)
            except NotFound:
                continue  # already gone in Xero
            except XeroError as exc:
                result.problems.append(f"Removing the connection in Xero failed: {exc}")
        if in_use:
            try:
                remaining = oauth.connections(access_token)
            except XeroError as exc:
                result.problems.append(f"Xero did not list the authorisation's connections: {exc}")
    if in_use and remaining is None:
        result.problems.append(
            "The Xero authorisation was kept, in case another account in this CRM uses it."
        )
        return result
    if remaining and any(c.tenant_id in in_use for c in remaining):
        result.kept_for_others = True
        return result
    try:
        oauth.revoke(refresh_token)
    except XeroError as exc:
        result.problems.append(f"Revoking the authorisation failed: {exc}")
    else:
        result.revoked = True
    return result


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
            # Ticked again in this consent, but connected before it (Xero moves
            # updatedDateUtc past createdDateUtc): never ours to remove. Unknown dates count as
            # connected before.
            "existed": not (c.created_at and c.updated_at and c.updated_at <= c.created_at),
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
    """Keep the chosen organisation, save the connection, and remove in Xero the other
    organisations this consent connected (never one connected before it, or one something
    else in this CRM uses)."""
    attempt = ConnectAttempt.objects.get(pk=attempt_id)
    if attempt.state != ConnectAttempt.State.FINISHING:
        return
    chosen = next((t for t in attempt.tenants if t["tenant_id"] == attempt.chosen_tenant_id), None)
    if chosen is None:
        _fail(attempt, "The chosen organisation is not one of those connected.")
        return
    if not attempt.access_token:  # cancelled as stale while the task waited
        _fail(attempt, EXPIRED_MESSAGE)
        return
    # One Xero organisation per CRM account, and one CRM account per organisation: webhooks
    # reach one account, and one account's disconnect must not end another's connection.
    taken = organisation_taken_message(chosen["tenant_name"])
    if chosen["tenant_id"] in tenants_taken(attempt.account_key):
        _fail(attempt, taken)
        return
    access_token = attempt.access_token
    before = XeroConnection.objects.filter(account_key=attempt.account_key).first()
    previous_status = before.status if before else ConnectionStatus.DISCONNECTED
    try:
        with transaction.atomic():
            connection = _save_connection(attempt, chosen)
    except IntegrityError:  # another account took the organisation a moment ago
        _fail(attempt, taken)
        return
    # Drop the other organisations ticked on the consent screen, so Xero's "connected apps"
    # list matches what the CRM shows.
    in_use = tenants_in_use(except_attempt=attempt.pk)
    oauth = services.oauth_client(attempt.redirect_uri)
    for tenant in attempt.tenants:
        if (
            tenant["tenant_id"] == chosen["tenant_id"]
            or tenant.get("existed", True)
            or tenant["tenant_id"] in in_use
        ):
            continue
        try:
            oauth.delete_connection(access_token, tenant["connection_id"])
        except XeroError as exc:
            logger.warning(
                "Could not remove extra Xero connection %s: %s", tenant["tenant_id"], exc
            )
    signals.connected.send(sender=XeroConnection, connection=connection)
    signals.connection_changed.send(
        sender=XeroConnection, connection=connection, previous=previous_status
    )
    load_reference_data(connection.pk)


def _save_connection(attempt: ConnectAttempt, chosen: dict[str, Any]) -> XeroConnection:
    connection, _ = XeroConnection.objects.select_for_update().get_or_create(
        account_key=attempt.account_key
    )
    if connection.tenant_id != chosen["tenant_id"]:
        # Another organisation: what was read from the previous one means nothing here.
        # Links and mappings are kept per organisation (history, and a switch back), and the
        # contact import starts afresh for this one.
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
    return connection


def expire_stale_attempts() -> int:
    """Cancel consents left unfinished for STALE_ATTEMPT_AFTER (abandoned at "choose an
    organisation", or whose task was lost): forget their code and tokens, remove in Xero the
    organisations they connected that nothing here uses, and revoke their authorisation when
    it serves nothing else. Returns how many were cancelled."""
    cutoff = timezone.now() - STALE_ATTEMPT_AFTER
    stale = ConnectAttempt.objects.filter(state__in=OPEN_ATTEMPT_STATES, updated_at__lt=cutoff)
    return sum(_expire(attempt_id, cutoff) for attempt_id in stale.values_list("pk", flat=True))


def _expire(attempt_id: Any, cutoff: Any) -> bool:
    with transaction.atomic():
        attempt = (
            ConnectAttempt.objects.select_for_update()
            .filter(pk=attempt_id, state__in=OPEN_ATTEMPT_STATES, updated_at__lt=cutoff)
            .first()
        )
        if attempt is None:  # finished or cancelled meanwhile
            return False
        access_token, refresh_token = attempt.access_token, attempt.refresh_token
        expires_at, tenants = attempt.access_token_expires_at, list(attempt.tenants)
        attempt.state = ConnectAttempt.State.FAILED
        attempt.error = EXPIRED_MESSAGE
        attempt.forget_secrets()
        attempt.save()
    if not refresh_token:
        return True
    in_use = tenants_in_use(except_attempt=attempt.pk)
    released = let_go(
        services.oauth_client(attempt.redirect_uri),
        access_token,
        refresh_token,
        access_token_fresh=bool(
            access_token and expires_at and expires_at - timedelta(seconds=60) > timezone.now()
        ),
        drop=[
            t["connection_id"]
            for t in tenants
            if not t.get("existed", True) and t["tenant_id"] not in in_use
        ],
        in_use=in_use,
    )
    SyncLog.objects.create(
        account_key=attempt.account_key,
        action="connect_expired",
        outcome=SyncLog.Outcome.FAILED if released.problems else SyncLog.Outcome.INFO,
        message=" ".join(
            ["An unfinished connection to Xero was cancelled after an hour.", *released.problems]
        ),
    )
    return True


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
        actions = client.organisation_actions()
    except (XeroError, ConnectionNotReady) as exc:
        found = outcomes.classify(exc)
        if found.kind == outcomes.Kind.CHECK_CONNECTION:
            confirm_still_connected(connection)
        elif found.kind != outcomes.Kind.RECONNECT:
            SyncLog.objects.create(
                connection=connection,
                account_key=connection.account_key,
                action="load_accounts",
                outcome=SyncLog.Outcome.FAILED,
                message=found.message,
            )
        return
    connection.tenant_name = organisation.get("Name") or connection.tenant_name
    connection.short_code = organisation.get("ShortCode") or ""
    connection.base_currency = organisation.get("BaseCurrency") or ""
    connection.country_code = organisation.get("CountryCode") or ""
    connection.period_lock_date = parse_date(organisation.get("PeriodLockDate"))
    connection.end_of_year_lock_date = parse_date(organisation.get("EndOfYearLockDate"))
    if actions.get("UseMulticurrency"):
        connection.multicurrency = actions["UseMulticurrency"] == "ALLOWED"
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
    previous_status = connection.status
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
    signals.connection_changed.send(
        sender=XeroConnection, connection=connection, previous=previous_status
    )


def disconnect_in_xero(connection_id: int, token_generation: int) -> None:
    """Remove the connection in Xero, revoke the authorisation unless another account in this
    CRM still relies on it, then wipe the tokens.

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
    in_use = tenants_in_use(except_connection=connection.pk)
    # A connection shared with another account (both connected the organisation before one
    # organisation per account was enforced) stays: deleting it would disconnect them too.
    shared = connection.tenant_id in in_use
    released = let_go(
        services.oauth_client(),
        access_token,
        refresh_token,
        access_token_fresh=access_token_fresh,
        drop=[connection.connection_id] if connection.connection_id and not shared else [],
        in_use=in_use,
    )
    message = f"Disconnected from {connection.tenant_name} in Xero."
    if released.kept_for_others:
        message += (
            " Xero's authorisation was kept: the same Xero user connected another account in "
            "this CRM, which still uses it."
        )
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action="disconnect",
        outcome=SyncLog.Outcome.FAILED if released.problems else SyncLog.Outcome.OK,
        message=" ".join(released.problems) or message,
    )
