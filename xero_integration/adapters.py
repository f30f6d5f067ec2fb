"""The adapter: how xero_integration reads and writes the host CRM.

A host CRM subclasses DefaultXeroAdapter and names it in ``XERO_ADAPTER``. The app never imports
the host's models directly; everything goes through these hooks (the django-allauth pattern).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from xero_integration import app_settings
from xero_integration.data import HostInvoice, ImportedContact, RecordedPayment

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest


class DefaultXeroAdapter:
    """Base adapter. Hooks marked "required" must be overridden by the host."""

    #: The hooks a host adapter must implement; the system check xero_integration.E001 lists
    #: any that are missing.
    required_hooks = (
        "invoice_models",
        "payment_models",
        "get_account_key",
        "to_invoice",
        "contact_model",
        "upsert_contacts",
        "account_key_for_request",
        "can_manage_connection",
    )

    def __init__(self, request: HttpRequest | None = None) -> None:
        self.request = request

    # Which host models to watch -------------------------------------------------------------

    def invoice_models(self) -> list[type[Model]]:
        """Required. The host models whose saves and deletes change an invoice in Xero."""
        raise NotImplementedError

    def payment_models(self) -> list[type[Model]]:
        """Required. The host models that hold payments; their invoice is resynced on change."""
        raise NotImplementedError

    def invoice_for_payment(self, payment: Model) -> Model:
        """The invoice a payment belongs to. Default: the payment's ``invoice`` attribute."""
        return payment.invoice  # type: ignore[attr-defined]

    # Ownership ------------------------------------------------------------------------------

    def get_account_key(self, obj: Model) -> str | None:
        """Required. The CRM account that owns ``obj``, as a string; None when it has none."""
        raise NotImplementedError

    def account_label(self, account_key: str) -> str:
        """A human name for a CRM account, shown in admin and logs."""
        return account_key

    # Reading invoices -----------------------------------------------------------------------

    def invoice_number(self, invoice: Model) -> str:
        """The invoice's number, shown in admin beside its sync job. Default: ``number``."""
        return str(getattr(invoice, "number", "") or "")

    def load_invoice(self, host_model: str, host_id: str) -> Model | None:
        """The host invoice for a sync job; None when it was deleted or ``host_id`` cannot be
        a primary key. Default: by primary key in the first of ``invoice_models`` whose label
        is ``host_model``."""
        for model in self.invoice_models():
            if model._meta.label_lower == host_model:
                try:
                    return model._default_manager.filter(pk=host_id).first()
                except (ValueError, TypeError, ValidationError):
                    return None
        return None

    def backfill_invoices(self, account_key: str, since: datetime.date | None) -> Iterable[Model]:
        """The account's existing invoices for ``xero_backfill`` (issued on or after ``since``
        when given), oldest first."""
        raise NotImplementedError(
            "Implement backfill_invoices() in your adapter to use xero_backfill."
        )

    def should_sync(self, invoice: Model) -> bool:
        """Whether this invoice belongs in Xero at all. Default: every invoice."""
        return True

    def to_invoice(self, invoice: Model) -> HostInvoice:
        """Required. The invoice as plain data (lines, taxes, payments, contact)."""
        raise NotImplementedError

    # Writing imported contacts --------------------------------------------------------------

    def contact_model(self) -> str:
        """Required. The "app_label.model" of the host contacts that imports create (the same
        as ``HostContact.host_model``)."""
        raise NotImplementedError

    def upsert_contacts(
        self, account_key: str, contacts: Iterable[ImportedContact], linked: dict[str, str]
    ) -> dict[str, str]:
        """Required. Create or update host contacts from Xero in bulk.

        ``linked`` maps the Xero ContactIDs already linked to a host contact id. Return the map of
        every Xero ContactID handled to its host contact id. A host decides here whether a field
        staff edited in the CRM may be overwritten.
        """
        raise NotImplementedError

    # Xero's side of invoices -----------------------------------------------------------------

    def record_xero_payments(
        self, invoice: Model, payments: list[RecordedPayment]
    ) -> dict[str, str]:
        """Payments someone recorded against this invoice in Xero. Record each in the CRM (and
        let the invoice's status follow: partially paid, paid) and return ``{PaymentID: host
        payment id}`` for those recorded. They are never sent back to Xero, and the app never
        deletes them there. Default: record nothing; the difference shows as drift in admin."""
        return {}

    def remove_xero_payments(self, invoice: Model, host_ids: list[str]) -> None:
        """Payments recorded in Xero (see ``record_xero_payments``) that were removed in Xero:
        remove them from the CRM. Default: nothing."""

    def payment_model_label(self) -> str:
        """The "app_label.model" of payments ``record_xero_payments`` creates. Default: the
        first of ``payment_models``."""
        return self.payment_models()[0]._meta.label_lower

    # Who acts ---------------------------------------------------------------------------------

    def account_key_for_request(self, request: HttpRequest) -> str | None:
        """Required. The CRM account a signed-in user acts for in this request."""
        raise NotImplementedError

    def can_manage_connection(self, request: HttpRequest, account_key: str) -> bool:
        """Required. Whether this user may connect, disconnect or configure the account's Xero."""
        raise NotImplementedError

    def integrations_url(self, request: HttpRequest | None = None) -> str:
        """Where the host's Settings → Integrations page lives (return after connecting)."""
        return "/"

    def alert_recipients(self, account_key: str) -> list[str]:
        """The email addresses that get the account's Xero alerts (a connection to reconnect,
        syncs failing for an hour, the daily digest): its managers. Default: the address of
        whoever connected the account."""
        from xero_integration.models import XeroConnection

        connection = (
            XeroConnection.objects.filter(account_key=account_key)
            .select_related("connected_by")
            .first()
        )
        email = getattr(connection.connected_by, "email", "") if connection else ""
        return [email] if email else []


def host_key(instance: Model) -> tuple[str, str]:
    """The ``(host_model, host_id)`` the integration records for a host object: the model's
    label and the primary key as the model gives them, never text from a URL or a form (``07``
    and ``+7`` load invoice 7 too, and would otherwise become a second record of it)."""
    return instance._meta.label_lower, str(instance.pk)


def find_invoice(adapter: DefaultXeroAdapter, host_model: str, host_id: str) -> Model | None:
    """The host invoice ``host_model`` and ``host_id`` name, if it is one of the adapter's
    invoice models; None for a malformed id or an unknown model."""
    try:
        invoice = adapter.load_invoice(host_model, host_id)
    except (ValueError, TypeError, ValidationError):
        return None
    if invoice is None:
        return None
    watched = {model._meta.label_lower for model in adapter.invoice_models()}
    return invoice if invoice._meta.label_lower in watched else None


def get_adapter(request: HttpRequest | None = None) -> DefaultXeroAdapter:
    """The host's adapter, resolved on every call so that ``override_settings`` takes effect."""
    adapter_class: Any = import_string(app_settings.ADAPTER)
    return adapter_class(request)
