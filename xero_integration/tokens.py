"""Access tokens for a connection: refreshed by exactly one worker at a time, saved before use.

Xero rotates the refresh token on every refresh, and two refreshes of the same token from two
places break the chain, so the refresh runs inside a transaction that first takes the
connection row's write lock. Whoever waited re-reads the row and uses the token just saved.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from xero_integration import services, signals
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import ConnectionStatus, SyncLog, XeroConnection
from xero_integration.xero.errors import OAuthError

logger = logging.getLogger(__name__)

#: Refresh this long before the access token expires (the official SDKs use 60 s).
REFRESH_MARGIN = timedelta(seconds=60)


def mark_needs_reconnect(connection: XeroConnection, reason: str) -> None:
    """Flag a connection whose authorisation Xero no longer honours; its work waits."""
    changed = XeroConnection.objects.filter(
        pk=connection.pk, status=ConnectionStatus.CONNECTED
    ).update(
        status=ConnectionStatus.NEEDS_RECONNECT, status_reason=reason, updated_at=timezone.now()
    )
    connection.status = ConnectionStatus.NEEDS_RECONNECT
    connection.status_reason = reason
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action="needs_reconnect",
        outcome=SyncLog.Outcome.FAILED,
        message=reason,
    )
    logger.warning("Xero connection %s needs reconnecting: %s", connection.pk, reason)
    if changed:
        signals.connection_changed.send(
            sender=XeroConnection, connection=connection, previous=ConnectionStatus.CONNECTED
        )


def access_token(connection_id: int) -> str:
    """A valid access token for the connection, refreshing it first when it is about to expire."""
    connection = XeroConnection.objects.get(pk=connection_id)
    if getattr(connection, "stored_as_connected", False):
        # Its tokens cannot be decrypted: record that it needs reconnecting, once, so that
        # its work waits for the reconnect instead of being tried again and again.
        mark_needs_reconnect(connection, XeroConnection.UNREADABLE_TOKENS_REASON)
    if not connection.is_connected:
        raise ConnectionNotReady(f"The Xero connection is {connection.get_status_display()}.")
    if connection.access_token_is_fresh(REFRESH_MARGIN):
        return connection.access_token
    return refresh_access_token(connection_id, stale=connection.access_token)


def refresh_access_token(connection_id: int, stale: str | None = None, force: bool = False) -> str:
    """Refresh the tokens unless another worker already did; return the current access token.

    ``stale`` is the access token the caller found unusable: if the stored token differs and is
    fresh, another worker refreshed meanwhile and no call to Xero is made.
    """
    invalid_grant: OAuthError | None = None
    with transaction.atomic():
        # The UPDATE takes the row lock (PostgreSQL) or the database write lock (SQLite) before
        # anything is read, so concurrent refreshers queue here rather than racing.
        XeroConnection.objects.filter(pk=connection_id).update(
            token_generation=F("token_generation")
        )
        connection = XeroConnection.objects.select_for_update().get(pk=connection_id)
        if not connection.is_connected or not connection.refresh_token:
            raise ConnectionNotReady(f"The Xero connection is {connection.get_status_display()}.")
        someone_else_refreshed = stale is not None and connection.access_token != stale
        if (
            not force
            and (someone_else_refreshed or stale is None)
            and connection.access_token_is_fresh(REFRESH_MARGIN)
        ):
            return connection.access_token
        try:
            token_set = services.oauth_client().refresh(connection.refresh_token)
        except OAuthError as exc:
            if exc.error != "invalid_grant":
                raise
            invalid_grant = exc
        else:
            connection.access_token = token_set.access_token
            connection.refresh_token = token_set.refresh_token or connection.refresh_token
            connection.access_token_expires_at = token_set.expires_at
            connection.tokens_refreshed_at = timezone.now()
            connection.token_generation += 1
            if token_set.scope:
                connection.scopes = " ".join(token_set.scope)
            connection.save(
                update_fields=[
                    "access_token",
                    "refresh_token",
                    "access_token_expires_at",
                    "tokens_refreshed_at",
                    "token_generation",
                    "scopes",
                    "updated_at",
                ]
            )
            return connection.access_token
    # Outside the transaction, so the status change is not rolled back with it.
    mark_needs_reconnect(
        connection,
        "Xero refused the stored authorisation (invalid_grant): it expired, was revoked, or the "
        "app was disconnected in Xero. Reconnect to resume syncing.",
    )
    raise ConnectionNotReady("The Xero connection needs reconnecting.") from invalid_grant


class ConnectionTokenSource:
    """The wire client's token source for one connection."""

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id

    def access_token(self) -> str:
        """A valid access token."""
        return access_token(self.connection_id)

    def refreshed_access_token(self, stale: str) -> str:
        """A new access token after Xero said ``stale`` expired."""
        return refresh_access_token(self.connection_id, stale=stale)


def keep_tokens_alive(unused_for: timedelta = timedelta(days=30)) -> int:
    """Refresh connections whose tokens were not refreshed for ``unused_for``; return how many.

    Xero's refresh tokens die after 60 days unused, so a quiet account would otherwise have to
    reconnect.
    """
    cutoff = timezone.now() - unused_for
    refreshed = 0
    stale_ids = XeroConnection.objects.filter(
        status=ConnectionStatus.CONNECTED, tokens_refreshed_at__lt=cutoff
    ).values_list("pk", flat=True)
    for connection_id in stale_ids:
        try:
            refresh_access_token(connection_id, force=True)
            refreshed += 1
        except ConnectionNotReady:
            continue
    return refreshed
