"""The demo CRM's adapter: invoices as plain data, imported contacts written in bulk."""

from decimal import Decimal

import pytest

from crm_demo.crm.models import Contact
from crm_demo.crm.xero_adapter import CrmXeroAdapter
from tests.factories import (
    ContactFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from xero_integration.adapters import get_adapter
from xero_integration.data import HostAddress, ImportedContact, InvoiceStatus

pytestmark = pytest.mark.django_db


def test_get_adapter_returns_the_configured_adapter():
    assert isinstance(get_adapter(), CrmXeroAdapter)


def test_to_invoice_carries_lines_taxes_payments_and_contact():
    invoice = InvoiceFactory(currency="CAD", status="sent", reference="PO 9")
    tax = tax_with(invoice.account, "QC", ("GST", "5", False), ("QST", "9.975", True))
    InvoiceLineFactory(
        invoice=invoice, quantity=Decimal("2"), unit_price=Decimal("12.3456"),
        discount_percent=Decimal("10"), tax=tax,
    )  # fmt: skip
    invoice.recalculate()
    PaymentFactory(invoice=invoice, amount=Decimal("5.00"))
    data = CrmXeroAdapter().to_invoice(invoice)
    assert data.number == invoice.number and data.currency == "CAD"
    assert data.status is InvoiceStatus.SENT and data.reference == "PO 9"
    assert data.account_key == str(invoice.account_id)
    (line,) = data.lines
    assert line.unit_price == Decimal("12.3456") and line.discount_percent == Decimal("10")
    assert [(c.rate, c.compound) for c in line.tax.components] == [
        (Decimal("5"), False),
        (Decimal("9.975"), True),
    ]
    assert [p.amount for p in data.payments] == [Decimal("5.00")]
    assert data.contact.name == invoice.contact.name
    assert data.total == invoice.total


def imported(n: int, **values) -> ImportedContact:
    return ImportedContact(xero_contact_id=f"xero-{n}", name=f"Xero Contact {n}", **values)


def test_upsert_creates_in_bulk_not_one_query_per_contact(owner, django_assert_max_num_queries):
    adapter = CrmXeroAdapter()
    contacts = [imported(n, email=f"c{n}@example.com") for n in range(500)]
    # One read, then bulk inserts (SQLite caps a statement at 999 parameters, so a few batches).
    with django_assert_max_num_queries(12):
        links = adapter.upsert_contacts(str(owner.account_id), contacts, linked={})
    assert len(links) == 500
    assert Contact.objects.filter(account=owner.account).count() == 500


def test_upsert_updates_only_fields_that_came_from_xero(owner):
    adapter = CrmXeroAdapter()
    links = adapter.upsert_contacts(
        str(owner.account_id),
        [imported(1, email="old@example.com", address=HostAddress(city="Auckland"))],
        linked={},
    )
    contact = Contact.objects.get()
    contact.phone = "+64 21 000"  # typed by staff in the CRM
    contact.save()
    adapter.upsert_contacts(
        str(owner.account_id),
        [
            imported(
                1, email="new@example.com", phone="+64 9 999", address=HostAddress(city="Napier")
            )
        ],
        linked=links,
    )
    contact.refresh_from_db()
    assert contact.email == "new@example.com" and contact.city == "Napier"
    assert contact.phone == "+64 21 000"
    assert Contact.objects.count() == 1


def test_upsert_keeps_long_and_non_latin_names_within_the_columns(owner):
    adapter = CrmXeroAdapter()
    adapter.upsert_contacts(
        str(owner.account_id), [ImportedContact(xero_contact_id="x", name="株式会社" * 100)], {}
    )
    assert Contact.objects.get().name == ("株式会社" * 100)[:255]


def test_only_owners_and_admins_manage_the_connection(rf, owner):
    from tests.factories import MembershipFactory

    member = MembershipFactory(account=owner.account, role="member")
    adapter = CrmXeroAdapter()
    for membership, allowed in [(owner, True), (member, False)]:
        request = rf.get("/")
        request.user = membership.user
        request.session = {}
        key = adapter.account_key_for_request(request)
        assert key == str(owner.account_id)
        assert adapter.can_manage_connection(request, key) is allowed
        assert adapter.can_manage_connection(request, str(ContactFactory().account_id)) is False
