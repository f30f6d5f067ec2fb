"""How xero_integration reads and writes this CRM."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from django.db.models import Model, Q
from django.db.models.functions import Lower, Trim
from django.http import HttpRequest
from django.urls import reverse

from crm_demo.crm.accounts import current_membership
from crm_demo.crm.models import Account, Contact, Invoice, InvoiceLine, Membership, Payment
from xero_integration.adapters import DefaultXeroAdapter
from xero_integration.data import (
    ContactLookup,
    HostAddress,
    HostContact,
    HostInvoice,
    HostLine,
    HostPayment,
    HostTax,
    HostTaxComponent,
    ImportedContact,
    InvoiceStatus,
    RecordedPayment,
)

CONTACT_MODEL = "crm.contact"
#: Contact fields an import may write, and the ImportedContact attribute each comes from.
IMPORTED_FIELDS = {
    "name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
}
ADDRESS_FIELDS = {
    "address_line1": "line1",
    "address_line2": "line2",
    "city": "city",
    "region": "region",
    "postal_code": "postal_code",
    "country": "country",
}


class CrmXeroAdapter(DefaultXeroAdapter):
    """The demo CRM's adapter."""

    def invoice_models(self) -> list[type[Model]]:
        return [Invoice]

    def payment_models(self) -> list[type[Model]]:
        return [Payment]

    def line_models(self) -> list[type[Model]]:
        """A line edited on its own (the invoice form's formset saves only the lines that
        changed) re-sends its invoice."""
        return [InvoiceLine]

    def get_account_key(self, obj: Model) -> str | None:
        account_id = getattr(obj, "account_id", None)
        if account_id is None and isinstance(obj, Payment):
            account_id = obj.invoice.account_id
        return str(account_id) if account_id is not None else None

    def account_label(self, account_key: str) -> str:
        account = Account.objects.filter(pk=account_key).first()
        return account.name if account else account_key

    def account_labels(self, account_keys: list[str]) -> dict[str, str]:
        ids = [key for key in account_keys if key.isdigit()]
        names = {
            str(pk): name
            for pk, name in Account.objects.filter(pk__in=ids).values_list("pk", "name")
        }
        return {key: names.get(key, key) for key in account_keys}

    def to_invoice(self, invoice: Model) -> HostInvoice:
        assert isinstance(invoice, Invoice)
        lines = []
        for line in invoice.lines.select_related("tax").prefetch_related("tax__components"):
            tax = None
            if line.tax_id:
                tax = HostTax(
                    host_id=str(line.tax_id),
                    name=line.tax.name,
                    components=tuple(
                        HostTaxComponent(name=c.name, rate=c.rate, compound=c.compound)
                        for c in line.tax.components.all()
                    ),
                )
            lines.append(
                HostLine(
                    item_name=line.item_name,
                    description=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    discount_percent=line.discount_percent,
                    discount_amount=line.discount_amount,
                    tax=tax,
                )
            )
        return HostInvoice(
            host_model="crm.invoice",
            host_id=str(invoice.pk),
            account_key=str(invoice.account_id),
            number=invoice.number,
            contact=host_contact(invoice.contact),
            currency=invoice.currency,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            tax_inclusive=invoice.tax_inclusive,
            status=InvoiceStatus(invoice.status),
            lines=tuple(lines),
            payments=tuple(
                HostPayment(
                    host_model="crm.payment",
                    host_id=str(p.pk),
                    amount=p.amount,
                    date=p.date,
                    reference=p.reference,
                )
                for p in invoice.payments.all()
            ),
            total=invoice.total,
            reference=invoice.reference,
        )

    def backfill_invoices(self, account_key: str, since: datetime.date | None) -> Iterable[Model]:
        invoices = Invoice.objects.filter(account_id=account_key)
        if since is not None:
            invoices = invoices.filter(issue_date__gte=since)
        return invoices.order_by("issue_date", "pk")

    def record_xero_payments(
        self, invoice: Model, payments: list[RecordedPayment]
    ) -> dict[str, str]:
        """Payments recorded in Xero become CRM payments marked so; the status follows."""
        assert isinstance(invoice, Invoice)
        recorded = {}
        for payment in payments:
            created = Payment.objects.create(
                invoice=invoice,
                amount=payment.amount,
                date=payment.date,
                reference=payment.reference[:255],
                recorded_in_xero=True,
            )
            recorded[payment.xero_payment_id] = str(created.pk)
        invoice.recalculate()
        return recorded

    def remove_xero_payments(self, invoice: Model, host_ids: list[str]) -> None:
        assert isinstance(invoice, Invoice)
        Payment.objects.filter(
            invoice=invoice, pk__in=[int(pk) for pk in host_ids], recorded_in_xero=True
        ).delete()
        invoice.recalculate()

    def contact_model(self) -> str:
        return CONTACT_MODEL

    def distinct_contact_name(self, contact: HostContact, contact_number: str) -> str:
        """A person whose name another Xero contact holds is told apart by their company
        ("John Smith (Acme Ltd)"), else as the app does by default."""
        company = contact.company.strip()
        if company and company.lower() not in contact.name.lower():
            return f"{contact.name.strip()} ({company})"
        return super().distinct_contact_name(contact, contact_number)

    def contact_candidates(self, account_key: str, lookup: ContactLookup) -> Iterable[HostContact]:
        """The account's contacts with one of the emails or names (ignoring case), or the
        primary key one of our contact numbers names: an import on connect links them instead
        of creating each customer a second time."""
        ids = [int(pk) for pk in lookup.host_ids if pk.isdigit()]
        found = (
            Contact.objects.filter(account_id=account_key)
            .annotate(email_key=Lower(Trim("email")), name_key=Lower(Trim("name")))
            .filter(Q(email_key__in=lookup.emails) | Q(name_key__in=lookup.names) | Q(pk__in=ids))
            .order_by("pk")
        )
        return [host_contact(contact) for contact in found]

    def upsert_contacts(
        self, account_key: str, contacts: Iterable[ImportedContact], linked: dict[str, str]
    ) -> dict[str, str]:
        """Create new contacts and refresh only the Xero-sourced fields of linked ones."""
        incoming = list(contacts)
        existing = {
            str(c.pk): c
            for c in Contact.objects.filter(
                account_id=account_key, pk__in=[int(pk) for pk in linked.values()]
            )
        }
        result: dict[str, str] = {}
        to_create: list[tuple[str, Contact]] = []
        to_update: list[Contact] = []
        for imported in incoming:
            values = {
                field: getattr(imported, attr) or "" for field, attr in IMPORTED_FIELDS.items()
            }
            values |= {
                field: getattr(imported.address, attr) or ""
                for field, attr in ADDRESS_FIELDS.items()
            }
            values = {field: value[: _max_length(field)] for field, value in values.items()}
            host_id = linked.get(imported.xero_contact_id)
            contact = existing.get(host_id) if host_id else None
            if contact is None:
                sourced = [field for field, value in values.items() if value]
                to_create.append(
                    (
                        imported.xero_contact_id,
                        Contact(account_id=account_key, source_fields=sourced, **values),
                    )
                )
                continue
            changed = False
            for field in contact.source_fields:
                if field in values and getattr(contact, field) != values[field]:
                    setattr(contact, field, values[field])
                    changed = True
            if changed:
                to_update.append(contact)
            result[imported.xero_contact_id] = str(contact.pk)
        created = Contact.objects.bulk_create([contact for _, contact in to_create])
        for (xero_id, _), contact in zip(to_create, created, strict=True):
            result[xero_id] = str(contact.pk)
        if to_update:
            Contact.objects.bulk_update(
                to_update, [*IMPORTED_FIELDS, *ADDRESS_FIELDS, "updated_at"]
            )
        return result

    def account_key_for_request(self, request: HttpRequest) -> str | None:
        membership = current_membership(request)
        return str(membership.account_id) if membership else None

    def can_manage_connection(self, request: HttpRequest, account_key: str) -> bool:
        membership = current_membership(request)
        return bool(
            membership and str(membership.account_id) == account_key and membership.can_manage
        )

    def integrations_url(self, request: HttpRequest | None = None) -> str:
        return reverse("crm:integrations")

    def alert_recipients(self, account_key: str) -> list[str]:
        """The account's owners and admins (those who may reconnect it)."""
        return list(
            Membership.objects.filter(
                account_id=account_key,
                role__in=(Membership.Role.OWNER, Membership.Role.ADMIN),
                user__is_active=True,
            )
            .exclude(user__email="")
            .order_by("user__email")
            .values_list("user__email", flat=True)
        )


def host_contact(contact: Contact) -> HostContact:
    """A CRM contact as the plain data the integration reads."""
    return HostContact(
        host_model=CONTACT_MODEL,
        host_id=str(contact.pk),
        name=contact.name,
        first_name=contact.first_name,
        last_name=contact.last_name,
        email=contact.email,
        phone=contact.phone,
        company=contact.company,
        address=HostAddress(
            line1=contact.address_line1,
            line2=contact.address_line2,
            city=contact.city,
            region=contact.region,
            postal_code=contact.postal_code,
            country=contact.country,
        ),
    )


def _max_length(field: str) -> int:
    return Contact._meta.get_field(field).max_length or 255
