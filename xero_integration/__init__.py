"""Connect a Django CRM to Xero: contacts in; invoices, taxes, currencies and payments out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.models import Model

__version__ = "0.1.0"


def enqueue(*invoices: Model) -> int:
    """Send these host invoices to Xero again, for changes no ``save()`` of a watched model
    announces: a queryset's ``update()``, ``bulk_create`` of lines, an import in SQL. They are
    pushed as they are once the current transaction commits, one run per account however
    many are given, through the same outbox as saves. Returns how many were recorded
    (invoices of accounts that never connected to Xero are not). Importing the package loads
    no models; this imports the app's modules when called."""
    from xero_integration.outbox import enqueue_invoices

    return enqueue_invoices(invoices)
