"""The app's signal receivers: the host's model saves (connected to the adapter's models when
the app is ready) and the app's own signals. Cross-module reactions live here, so the modules
themselves need not import one another."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from xero_integration import contacts, outbox, signals
from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.models import XeroConnection

logger = logging.getLogger(__name__)


# ---- the host's models ---------------------------------------------------------------------


def invoice_saved(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    outbox.record_host_change(instance)


def invoice_deleted(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    outbox.record_host_change(instance, deleted=True)


def payment_changed(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """A payment changed: its invoice goes to Xero again."""
    try:
        invoice = get_adapter().invoice_for_payment(instance)
    except Exception:  # the invoice itself is being deleted; its own signal covers it
        return
    if invoice is not None and invoice.pk is not None:
        outbox.record_host_change(invoice)


def line_changed(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """A line saved or deleted on its own: its invoice goes to Xero again."""
    adapter = get_adapter()
    if _deleting_an_invoice(adapter, kwargs.get("origin")):
        return  # the invoice's own delete covers its lines
    try:
        invoice = adapter.invoice_for_line(instance)
    except ObjectDoesNotExist:
        return
    if invoice is not None and invoice.pk is not None:
        outbox.record_host_change(invoice, adapter=adapter)


def _deleting_an_invoice(adapter: DefaultXeroAdapter, origin: Any) -> bool:
    """Whether a delete started at an invoice (or a queryset of invoices)."""
    if origin is None:
        return False
    model = origin.model if isinstance(origin, QuerySet) else type(origin)
    return issubclass(model, tuple(adapter.invoice_models()))


def connect_host_models() -> None:
    """Watch the adapter's models (called once the app registry is ready)."""
    try:
        adapter = get_adapter()
        invoice_models = adapter.invoice_models()
        payment_models = adapter.payment_models()
        line_models = adapter.line_models()
    except Exception:  # a broken adapter is reported by the system check E001
        logger.exception("xero_integration: the adapter's models could not be read")
        return
    for model in invoice_models:
        post_save.connect(invoice_saved, sender=model, dispatch_uid=f"xero-inv-{model}")
        post_delete.connect(invoice_deleted, sender=model, dispatch_uid=f"xero-invdel-{model}")
    for model in payment_models:
        post_save.connect(payment_changed, sender=model, dispatch_uid=f"xero-pay-{model}")
        post_delete.connect(payment_changed, sender=model, dispatch_uid=f"xero-paydel-{model}")
    for model in line_models:
        post_save.connect(line_changed, sender=model, dispatch_uid=f"xero-line-{model}")
        post_delete.connect(line_changed, sender=model, dispatch_uid=f"xero-linedel-{model}")


# ---- the app's own signals -----------------------------------------------------------------


@receiver(signals.connected, dispatch_uid="xero_integration.import_contacts_on_connect")
def import_contacts_on_connect(sender: Any, connection: XeroConnection, **kwargs: Any) -> None:
    """Every ACTIVE Xero contact comes into the CRM on connect (changes only on a reconnect to
    the same organisation)."""
    contacts.start_import(connection)


@receiver(signals.connected, dispatch_uid="xero_integration.requeue_jobs_on_connect")
def requeue_jobs_on_connect(sender: Any, connection: XeroConnection, **kwargs: Any) -> None:
    """Invoices that waited for the connection are pushed once it is back."""
    outbox.requeue_account(connection.account_key)


@receiver(signals.sync_jobs_due, dispatch_uid="xero_integration.run_due_jobs")
def run_due_jobs(sender: Any, account_key: str, jobs: int, **kwargs: Any) -> None:
    """Jobs that became due outside a save run now."""
    outbox.run_account(account_key, jobs)
