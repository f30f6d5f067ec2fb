"""The adapter: how xero_integration reads and writes the host CRM.

A host CRM subclasses DefaultXeroAdapter and names it in ``XERO_ADAPTER``. The app never imports
the host's models directly; everything goes through these hooks (the django-allauth pattern).
The hooks' docstrings are the adapter reference: docs/integrating.md prints them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from xero_integration import app_settings
from xero_integration.data import (
    ContactLookup,
    HostContact,
    HostInvoice,
    ImportedContact,
    RecordedPayment,
)
from xero_integration.rules.contacts import disambiguated_name

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest


class DefaultXeroAdapter:
    """Base adapter. Hooks whose docstring starts with "Required." must be overridden by the
    host; the others have the default they describe. The app makes a new adapter for each use
    (with the request when there is one, as ``self.request``), so an adapter keeps no state."""

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
        """Required. The host models whose saves and deletes change an invoice in Xero.

        Each save (``post_save``) or delete writes a sync job in the same database transaction;
        a worker pushes the invoice once that transaction commits, reading it afresh through
        ``load_invoice`` and ``to_invoice``. Saves of an invoice's lines are watched through
        ``line_models``; a change no ``save()`` announces (a queryset ``update()``,
        ``bulk_create``, an import in SQL) is told with ``xero_integration.enqueue(invoice)``.
        Read once, when the app starts."""
        raise NotImplementedError

    def payment_models(self) -> list[type[Model]]:
        """Required. The host models that hold payments received against invoices; a save or
        delete of one re-syncs its invoice (found with ``invoice_for_payment``). Return an
        empty list when the CRM records no payments. Read once, when the app starts."""
        raise NotImplementedError

    def invoice_for_payment(self, payment: Model) -> Model:
        """The invoice a payment belongs to, an instance of one of ``invoice_models``.
        Default: the payment's ``invoice`` attribute. An exception here (the invoice is being
        deleted with its payments) skips the payment's change: the invoice's own delete
        covers it."""
        return payment.invoice  # type: ignore[attr-defined]

    def line_models(self) -> list[type[Model]]:
        """The host models of invoice lines (whatever ``to_invoice`` reads into
        ``HostInvoice.lines``): a line saved or deleted on its own, by an inline formset or an
        API, re-syncs its invoice (found with ``invoice_for_line``). The saves of one
        transaction make one change of the invoice, however many lines they touch, and one run
        of its account. Default: none, so only saves of the invoice itself are seen. Read once,
        when the app starts."""
        return []

    def invoice_for_line(self, line: Model) -> Model:
        """The invoice a line belongs to, an instance of one of ``invoice_models``. Default:
        the line's ``invoice`` attribute. When the invoice itself is being deleted, its own
        delete covers its lines and this is not asked."""
        return line.invoice  # type: ignore[attr-defined]

    # Ownership ------------------------------------------------------------------------------

    def get_account_key(self, obj: Model) -> str | None:
        """Required. The CRM account that owns ``obj`` (an instance of one of
        ``invoice_models``), as a string; None when it has none, and then nothing is synced.
        It must be the key ``account_key_for_request`` gives for that account's users and the
        ``account_key`` of the invoice's ``HostInvoice``: each account key has one Xero
        connection (a primary key as text, such as ``"42"``)."""
        raise NotImplementedError

    def account_label(self, account_key: str) -> str:
        """A human name for a CRM account, shown in admin beside its connection, jobs and
        log. Default: the account key itself."""
        return account_key

    def account_labels(self, account_keys: list[str]) -> dict[str, str]:
        """The names of several CRM accounts at once, for an admin list page (one query for
        the page rather than one per account). Default: ``account_label`` of each."""
        return {key: self.account_label(key) for key in account_keys}

    # Reading invoices -----------------------------------------------------------------------

    def invoice_number(self, invoice: Model) -> str:
        """The invoice's number, shown in admin and the sync log beside its job ("Invoice
        INV-7: …"); the same as ``HostInvoice.number``. Called when the invoice is saved, so it
        must not query much. Default: the ``number`` attribute, or ``""``."""
        return str(getattr(invoice, "number", "") or "")

    def load_invoice(self, host_model: str, host_id: str) -> Model | None:
        """The host invoice a sync job names, or None when it no longer exists (the job then
        removes the invoice from Xero). ``host_model`` is the model's ``"app_label.model"``
        label and ``host_id`` its primary key as text. Default: by primary key through the
        default manager of the one of ``invoice_models`` whose label is ``host_model``; None
        for an id that cannot be a primary key. Override it when the default manager hides
        invoices that must still sync, or to ``select_related`` what ``to_invoice`` reads."""
        for model in self.invoice_models():
            if model._meta.label_lower == host_model:
                try:
                    return model._default_manager.filter(pk=host_id).first()
                except (ValueError, TypeError, ValidationError):
                    return None
        return None

    def backfill_invoices(self, account_key: str, since: datetime.date | None) -> Iterable[Model]:
        """Required by ``manage.py xero_backfill`` (and only by it). The account's invoices
        that exist already, issued on or after ``since`` when it is given, oldest first, as an
        iterable of host invoices such as a queryset. Those already in Xero and those
        ``should_sync`` refuses are skipped. Default: raises NotImplementedError, which the
        command reports."""
        raise NotImplementedError(
            "Implement backfill_invoices() in your adapter to use xero_backfill."
        )

    def should_sync(self, invoice: Model) -> bool:
        """Whether this invoice belongs in Xero at all; asked before each push and by
        ``xero_backfill``. An invoice refused here is left alone: nothing is sent, and a copy
        already in Xero stays as it is. Default: every invoice."""
        return True

    def to_invoice(self, invoice: Model) -> HostInvoice:
        """Required. The invoice as plain data: a ``HostInvoice`` (``xero_integration.data``).

        ``host_model`` and ``host_id`` are the invoice's ``"app_label.model"`` and primary key
        as text; ``account_key`` as ``get_account_key`` gives it; ``number`` is the invoice
        number Xero shows; ``contact`` a ``HostContact`` whose ``host_model`` is
        ``contact_model()`` (so that contacts imported from Xero are recognised); ``currency``
        an ISO code; ``due_date`` may be None only for a draft; ``status`` an
        ``InvoiceStatus`` (draft, sent, partially_paid, paid, void; map the CRM's own values and
        raise for one that has no match); ``lines`` at least one ``HostLine`` (item name or
        description, quantity, unit price, at most one of the two discounts, and a ``HostTax``
        with its components when taxed); ``total`` the total the CRM shows, tax included
        (required: Xero's total is compared with it and a difference is flagged on the
        invoice); ``payments`` every payment the invoice has in the CRM now as ``HostPayment``s
        (one that disappears is removed from Xero). Called in workers and by ``xero_backfill``;
        the plain data is all the sync rules see of the invoice."""
        raise NotImplementedError

    # Writing imported contacts --------------------------------------------------------------

    def contact_model(self) -> str:
        """Required. The ``"app_label.model"`` label of the host model that contacts imported
        from Xero become (lower case, as ``Model._meta.label_lower``): the same as the
        ``host_model`` of the ``HostContact`` that ``to_invoice`` returns, so that an invoice to
        an imported contact uses its Xero contact instead of creating another."""
        raise NotImplementedError

    def contact_candidates(self, account_key: str, lookup: ContactLookup) -> Iterable[HostContact]:
        """The CRM contacts of ``account_key`` that may be among the Xero contacts an import is
        about to bring in, as ``HostContact``s of ``contact_model()``, so that a customer the
        CRM has already is linked to its Xero contact instead of being created a second time.

        Asked for each page of the import with the Xero contacts not linked yet
        (``lookup.contacts``) before ``upsert_contacts``. Return the contacts whose email or
        name, in lower case without surrounding spaces, is in ``lookup.emails`` or
        ``lookup.names``, and those whose primary key is in ``lookup.host_ids``; a few
        queries, not one per contact. The app decides with the rules an invoice's contact is
        matched by: our contact number, then the email, then the name when the Xero contact's
        email is empty or the same; contacts linked already, and a second claim on one Xero
        contact, are left out. Those it pairs reach ``upsert_contacts`` in ``linked``, and the
        import's log counts them apart from the contacts created. Returning more candidates
        than these costs time, not correctness. Default: none, so every Xero contact not
        linked yet becomes a new CRM contact."""
        return []

    def upsert_contacts(
        self, account_key: str, contacts: Iterable[ImportedContact], linked: dict[str, str]
    ) -> dict[str, str]:
        """Required. Create or update host contacts from Xero contacts, in bulk.

        Called on connect (every ACTIVE contact of the organisation), for the changes read
        every ``XERO_CONTACT_IMPORT_MINUTES`` and for webhook events, once per page of at most
        1,000 contacts, inside that page's database transaction: an exception rolls the page
        back and stops the import, with its message on the Xero settings page and in the sync
        log (pages saved before it stay saved). ``contacts`` holds ``ImportedContact``s for
        the account ``account_key``; archived and merged Xero contacts are left out before the
        call (the app marks their links; CRM contacts are never deleted), so a page may hold
        fewer than 1,000, and with none left the call is skipped.

        ``linked`` maps the Xero ContactID of those already linked to a CRM contact to that
        contact's primary key, as text, including those just found among
        ``contact_candidates``: update these (or leave fields staff edited as they are). A
        linked id may name a row deleted since: create the contact again and return the new
        id, and the link follows it. Contacts not in ``linked`` are new to the CRM: create
        them. Return ``{ContactID: host contact primary
        key}`` (both strings) for every contact written; one left out is not linked, and comes
        again when it next changes in Xero. Here the host decides which fields an import may
        overwrite (one that staff edited in the CRM, say) and keeps a page to a few queries
        (``bulk_create``, ``bulk_update``).
        """
        raise NotImplementedError

    # Contacts created in Xero ----------------------------------------------------------------

    def distinct_contact_name(self, contact: HostContact, contact_number: str) -> str:
        """The name to create a CRM contact under in Xero when its own name belongs to another
        customer there (Xero keeps names unique among active contacts, ignoring case).
        ``contact_number`` is what the contact carries in Xero's ContactNumber ("CRM-123").
        Default: the name with the email address ("Jane Smith (jane@example.com)"), or with the
        contact number when there is no email Xero can take ("John Smith (CRM-123)"). A name
        that is taken as well, or the same as the contact's own, is replaced by that default."""
        return disambiguated_name(contact, app_settings.CONTACT_NUMBER_PREFIX)

    # Xero's side of invoices -----------------------------------------------------------------

    def record_xero_payments(
        self, invoice: Model, payments: list[RecordedPayment]
    ) -> dict[str, str]:
        """Payments someone recorded against this invoice in Xero (from the bank feed, say),
        read back through webhooks and the changes read every ``XERO_CHANGES_MINUTES``, as
        ``RecordedPayment``s (Xero's PaymentID, amount, date, reference). Record each in the
        CRM, let the invoice's status follow (partially paid, paid), and return ``{PaymentID:
        host payment primary key}`` (strings) for those recorded, as instances of
        ``payment_model_label``. Saves made here create no sync job: they are never sent back
        to Xero, and the app never deletes them there. Default: record nothing; the
        difference shows as drift in admin."""
        return {}

    def remove_xero_payments(self, invoice: Model, host_ids: list[str]) -> None:
        """Payments recorded in Xero (see ``record_xero_payments``) that someone removed in
        Xero since: remove the CRM payments with these primary keys (strings) and let the
        invoice's status follow. Default: nothing (the difference shows as drift)."""

    def payment_model_label(self) -> str:
        """The ``"app_label.model"`` label of the payments ``record_xero_payments`` creates.
        Default: that of the first of ``payment_models``."""
        return self.payment_models()[0]._meta.label_lower

    # Who acts ---------------------------------------------------------------------------------

    def account_key_for_request(self, request: HttpRequest) -> str | None:
        """Required. The CRM account the signed-in user acts for in this request, as
        ``get_account_key`` spells it; None when the user has none (the Xero pages then answer
        404). Every Xero page and the tile show and change only this account's connection."""
        raise NotImplementedError

    def can_manage_connection(self, request: HttpRequest, account_key: str) -> bool:
        """Required. Whether this request's user may connect, disconnect or configure the Xero
        connection of ``account_key`` (choose its accounts, import contacts now). Others see
        the connection but not its buttons, and its actions answer 403."""
        raise NotImplementedError

    def integrations_url(self, request: HttpRequest | None = None) -> str:
        """The URL of the host's Settings → Integrations page, linked from the top of the Xero
        settings page. Default: ``"/"``."""
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
