"""How xero_integration reads and writes this CRM."""

import datetime
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Model, Q
from django.db.models.functions import Lower, Trim
from django.http import HttpRequest
from django.urls import reverse
from xero_integration.adapters import DefaultXeroAdapter
from xero_integration.data import (
    ContactLookup,
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

from mycrm.models import Customer, Invoice, InvoiceLine, Organisation, Payment

STATUSES = {
    Invoice.Status.DRAFT: InvoiceStatus.DRAFT,
    Invoice.Status.SENT: InvoiceStatus.SENT,
    Invoice.Status.PAID: InvoiceStatus.PAID,
    Invoice.Status.CANCELLED: InvoiceStatus.VOID,
}


class MyXeroAdapter(DefaultXeroAdapter):
    # Which models to watch -------------------------------------------------------------------

    def invoice_models(self) -> list[type[Model]]:
        return [Invoice]

    def payment_models(self) -> list[type[Model]]:
        return [Payment]

    def line_models(self) -> list[type[Model]]:
        # A line saved on its own (an inline formset, the API) re-sends its invoice.
        return [InvoiceLine]

    # Whose they are ----------------------------------------------------------------------------

    def get_account_key(self, obj: Model) -> str | None:
        return str(obj.organisation_id)

    def account_key_for_request(self, request: HttpRequest) -> str | None:
        organisation = request.user.organisations.first()
        return str(organisation.pk) if organisation else None

    def can_manage_connection(self, request: HttpRequest, account_key: str) -> bool:
        return request.user.organisations.filter(pk=account_key).exists()

    def account_label(self, account_key: str) -> str:
        organisation = Organisation.objects.filter(pk=account_key).first()
        return organisation.name if organisation else account_key

    def integrations_url(self, request: HttpRequest | None = None) -> str:
        return reverse("integrations")

    # Invoices as Xero must receive them ---------------------------------------------------------

    def to_invoice(self, invoice: Model) -> HostInvoice:
        return HostInvoice(
            host_model="mycrm.invoice",
            host_id=str(invoice.pk),
            account_key=str(invoice.organisation_id),
            number=invoice.number,
            contact=_host_contact(invoice.customer),
            currency=invoice.currency,
            issue_date=invoice.issued_on,
            due_date=invoice.due_on,
            tax_inclusive=False,
            status=STATUSES[invoice.status],  # a status with no match fails the sync visibly
            lines=tuple(
                HostLine(
                    item_name="",
                    description=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    tax=_tax(line.tax_rate),
                )
                for line in invoice.lines.all()
            ),
            total=invoice.total,
            payments=tuple(
                HostPayment(
                    host_model="mycrm.payment",
                    host_id=str(payment.pk),
                    amount=payment.amount,
                    date=payment.received_on,
                    reference=payment.reference,
                )
                for payment in invoice.payments.all()
            ),
        )

    def backfill_invoices(self, account_key: str, since: datetime.date | None) -> Iterable[Model]:
        invoices = Invoice.objects.filter(organisation_id=account_key)
        if since is not None:
            invoices = invoices.filter(issued_on__gte=since)
        return invoices.order_by("issued_on", "pk")

    # Contacts imported from Xero ---------------------------------------------------------------

    def contact_model(self) -> str:
        return "mycrm.customer"

    def contact_candidates(self, account_key: str, lookup: ContactLookup) -> Iterable[HostContact]:
        # Customers the CRM has already that may be the Xero contacts being imported: the app
        # links those it matches (contact number, email, name) instead of creating them again.
        ids = [int(pk) for pk in lookup.host_ids if pk.isdigit()]
        customers = (
            Customer.objects.filter(organisation_id=account_key)
            .annotate(email_key=Lower(Trim("email")), name_key=Lower(Trim("name")))
            .filter(Q(email_key__in=lookup.emails) | Q(name_key__in=lookup.names) | Q(pk__in=ids))
        )
        return [_host_contact(customer) for customer in customers]

    def upsert_contacts(
        self, account_key: str, contacts: Iterable[ImportedContact], linked: dict[str, str]
    ) -> dict[str, str]:
        # A linked customer may have been deleted since: it is created again.
        existing = Customer.objects.filter(organisation_id=account_key).in_bulk(
            [int(pk) for pk in linked.values()]
        )
        written: dict[str, str] = {}
        new: list[tuple[str, Customer]] = []
        changed: list[Customer] = []
        for contact in contacts:
            host_id = linked.get(contact.xero_contact_id)
            customer = existing.get(int(host_id)) if host_id else None
            if customer is None:
                customer = Customer(organisation_id=account_key)
                new.append((contact.xero_contact_id, customer))
            else:
                changed.append(customer)
                written[contact.xero_contact_id] = str(customer.pk)
            customer.name = contact.name[:255]
            customer.email = contact.email[:254]
            customer.phone = contact.phone[:50]
        Customer.objects.bulk_create([customer for _, customer in new])
        Customer.objects.bulk_update(changed, ["name", "email", "phone"])
        written.update({xero_id: str(customer.pk) for xero_id, customer in new})
        return written

    # Payments someone recorded in Xero ---------------------------------------------------------

    def record_xero_payments(
        self, invoice: Model, payments: list[RecordedPayment]
    ) -> dict[str, str]:
        recorded = {}
        for payment in payments:
            created = invoice.payments.create(
                amount=payment.amount,
                received_on=payment.date,
                reference=payment.reference[:255],
                from_xero=True,
            )
            recorded[payment.xero_payment_id] = str(created.pk)
        _settle(invoice)
        return recorded

    def remove_xero_payments(self, invoice: Model, host_ids: list[str]) -> None:
        invoice.payments.filter(pk__in=[int(pk) for pk in host_ids], from_xero=True).delete()
        _settle(invoice)


def _host_contact(customer: Customer) -> HostContact:
    return HostContact(
        host_model="mycrm.customer",
        host_id=str(customer.pk),
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
    )


def _tax(rate: Decimal) -> HostTax | None:
    if not rate:
        return None
    percent = f"{rate.normalize():f}"
    return HostTax(
        host_id=f"rate-{percent}",
        name=f"Tax {percent}%",
        components=(HostTaxComponent(name="Tax", rate=rate),),
    )


def _settle(invoice: Invoice) -> None:
    """An invoice paid in full is marked paid; one that is not any more, sent."""
    paid = sum((payment.amount for payment in invoice.payments.all()), Decimal("0"))
    if invoice.status in (Invoice.Status.SENT, Invoice.Status.PAID):
        invoice.status = Invoice.Status.PAID if paid >= invoice.total else Invoice.Status.SENT
        invoice.save(update_fields=["status"])
