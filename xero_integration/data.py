"""Plain data exchanged between the host CRM's adapter and the sync rules.

The adapter turns host model instances into these frozen dataclasses, so the sync rules never
touch the host's models and can be tested with plain values.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class InvoiceStatus(StrEnum):
    """An invoice's status in the host CRM, as the integration understands it."""

    DRAFT = "draft"
    SENT = "sent"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"


@dataclass(frozen=True)
class HostAddress:
    """A postal address of a host contact."""

    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    def is_empty(self) -> bool:
        """True when every part of the address is blank."""
        return not any(
            (self.line1, self.line2, self.city, self.region, self.postal_code, self.country)
        )


@dataclass(frozen=True)
class HostContact:
    """A contact of the host CRM, as an invoice's recipient."""

    host_model: str
    host_id: str
    name: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    company: str = ""
    address: HostAddress = field(default_factory=HostAddress)


@dataclass(frozen=True)
class HostTaxComponent:
    """One component of a host tax: a rate in percent (up to 4 decimals) and its compound flag."""

    name: str
    rate: Decimal
    compound: bool = False


@dataclass(frozen=True)
class HostTax:
    """A named tax of the host CRM with one or more components."""

    host_id: str
    name: str
    components: tuple[HostTaxComponent, ...]


@dataclass(frozen=True)
class HostLine:
    """An invoice line. At most one of the two discounts is set."""

    item_name: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal | None = None
    discount_amount: Decimal | None = None
    tax: HostTax | None = None


@dataclass(frozen=True)
class HostPayment:
    """A payment recorded against an invoice in the host CRM."""

    host_model: str
    host_id: str
    amount: Decimal
    date: datetime.date
    reference: str = ""


@dataclass(frozen=True)
class HostInvoice:
    """A sales invoice of the host CRM with everything Xero must receive."""

    host_model: str
    host_id: str
    account_key: str
    number: str
    contact: HostContact
    currency: str
    issue_date: datetime.date
    due_date: datetime.date | None
    tax_inclusive: bool
    status: InvoiceStatus
    lines: tuple[HostLine, ...]
    #: The invoice's total as the CRM shows it, tax included. Required: the app compares it
    #: with Xero's total (a difference is flagged on the invoice) and decides from it whether
    #: the payments settle the invoice.
    total: Decimal
    payments: tuple[HostPayment, ...] = ()
    reference: str = ""


@dataclass(frozen=True)
class ImportedContact:
    """A Xero contact on its way into the host CRM."""

    xero_contact_id: str
    name: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    company_number: str = ""
    contact_number: str = ""
    address: HostAddress = field(default_factory=HostAddress)
    archived: bool = False


@dataclass(frozen=True)
class ContactLookup:
    """The Xero contacts an import is about to bring into the CRM, and what identifies them,
    for the adapter's ``contact_candidates`` to find the CRM contacts that may be the same
    people. Emails and names are in lower case without surrounding spaces (as the app compares
    them); ``host_ids`` are the primary keys that our contact numbers in Xero name (a contact
    the app once created in Xero from that CRM contact carries ``XERO_CONTACT_NUMBER_PREFIX``
    and its primary key)."""

    contacts: tuple[ImportedContact, ...]
    emails: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    host_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RecordedPayment:
    """A payment someone recorded in Xero (from the bank feed, say), on its way into the CRM."""

    xero_payment_id: str
    amount: Decimal
    date: datetime.date
    reference: str = ""
