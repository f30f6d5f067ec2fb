"""What this app does when its own signals fire."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from xero_integration import signals
from xero_integration.models import XeroConnection


@receiver(signals.connected, dispatch_uid="xero_integration.import_contacts_on_connect")
def import_contacts_on_connect(sender: Any, connection: XeroConnection, **kwargs: Any) -> None:
    """Every ACTIVE Xero contact comes into the CRM on connect (changes only on a reconnect to
    the same organisation)."""
    from xero_integration import contacts

    contacts.start_import(connection)


@receiver(signals.connected, dispatch_uid="xero_integration.requeue_jobs_on_connect")
def requeue_jobs_on_connect(sender: Any, connection: XeroConnection, **kwargs: Any) -> None:
    """Invoices that waited for the connection are pushed once it is back."""
    from xero_integration import outbox

    outbox.requeue_account(connection.account_key)
