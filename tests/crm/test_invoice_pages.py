"""Invoice pages: create with lines, validation errors by field, actions, nothing saved half-way."""

from decimal import Decimal

import pytest
from django.urls import reverse

from crm_demo.crm.models import Invoice
from tests.factories import ContactFactory, InvoiceFactory, InvoiceLineFactory, TaxFactory, tax_with

pytestmark = pytest.mark.django_db


def invoice_data(contact_obj, **overrides) -> dict:
    data = {
        "number": "INV-2001",
        "contact": contact_obj.pk,
        "currency": "NZD",
        "issue_date": "2026-11-01",
        "due_date": "2026-11-20",
        "reference": "PO 77",
        "lines-TOTAL_FORMS": "2",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-item_name": "Design",
        "lines-0-description": "Logo",
        "lines-0-quantity": "2",
        "lines-0-unit_price": "150.00",
        "lines-0-discount_percent": "10",
        "lines-1-item_name": "Printing",
        "lines-1-quantity": "100",
        "lines-1-unit_price": "0.4500",
    }
    data.update(overrides)
    return data


@pytest.fixture
def contact(owner):
    return ContactFactory(account=owner.account)


def test_create_an_invoice_with_lines(owner_client, contact):
    tax = tax_with(contact.account, "GST", ("GST", "15", False))
    response = owner_client.post(
        reverse("crm:invoice_create"), invoice_data(contact, **{"lines-0-tax": tax.pk})
    )
    invoice = Invoice.objects.get()
    assert response.status_code == 302 and response["Location"] == invoice.get_absolute_url()
    assert invoice.lines.count() == 2
    # 2 x 150 less 10% = 270 + 40.50 tax; 100 x 0.45 = 45 untaxed
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        Decimal("315.00"),
        Decimal("40.50"),
        Decimal("355.50"),
    )
    page = owner_client.get(invoice.get_absolute_url()).content.decode()
    assert "INV-2001" in page and "355.50" in page


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"lines-0-quantity": "-1"}, "quantity", "cannot be negative"),
        ({"lines-0-discount_percent": "101"}, "discount_percent", "between 0% and 100%"),
        ({"lines-0-discount_amount": "5"}, "discount_amount", "not both"),
        ({"lines-1-item_name": ""}, "item_name", "item name or a description"),
        ({"lines-0-description": "x" * 4001}, "description", "at most 4000"),
    ],
)
def test_line_errors_name_the_field(owner_client, contact, overrides, field, text):
    response = owner_client.post(reverse("crm:invoice_create"), invoice_data(contact, **overrides))
    assert response.status_code == 200
    errors = [form.errors for form in response.context["lines"].forms if form.errors]
    assert errors and field in errors[0] and text in " ".join(errors[0][field])
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"currency": "XYZ"}, "currency", "valid choice"),
        ({"due_date": "2026-10-01"}, "due_date", "before the issue date"),
        ({"contact": ""}, "contact", "required"),
    ],
)
def test_header_errors_name_the_field(owner_client, contact, overrides, field, text):
    response = owner_client.post(reverse("crm:invoice_create"), invoice_data(contact, **overrides))
    assert response.status_code == 200
    assert text in " ".join(response.context["form"].errors[field])
    assert not Invoice.objects.exists()


def test_duplicate_number_is_refused(owner_client, contact):
    InvoiceFactory(account=contact.account, contact=contact, number="INV-2001")
    response = owner_client.post(reverse("crm:invoice_create"), invoice_data(contact))
    assert "already used" in " ".join(response.context["form"].errors["number"])
    assert Invoice.objects.count() == 1


def test_the_same_number_in_another_account_is_fine(owner_client, contact):
    InvoiceFactory(number="INV-2001")
    owner_client.post(reverse("crm:invoice_create"), invoice_data(contact))
    assert Invoice.objects.filter(number="INV-2001").count() == 2


def test_a_tax_of_another_account_is_refused(owner_client, contact):
    foreign = TaxFactory()
    response = owner_client.post(
        reverse("crm:invoice_create"), invoice_data(contact, **{"lines-0-tax": foreign.pk})
    )
    assert response.status_code == 200
    assert not Invoice.objects.exists()


def test_an_invoice_needs_a_line(owner_client, contact):
    data = invoice_data(contact, **{"lines-TOTAL_FORMS": "0"})
    response = owner_client.post(reverse("crm:invoice_create"), data)
    assert "at least one line" in str(response.context["lines"].non_form_errors())


def sent_invoice(account, amount="100") -> Invoice:
    invoice = InvoiceFactory(account=account)
    InvoiceLineFactory(invoice=invoice, unit_price=Decimal(amount))
    invoice.recalculate()
    return invoice


def test_send_pay_partly_pay_rest(owner_client, owner):
    invoice = sent_invoice(owner.account)
    owner_client.post(reverse("crm:invoice_send", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == "sent"
    pay = reverse("crm:payment_create", args=[invoice.pk])
    owner_client.post(pay, {"amount": "30.00", "date": "2026-11-05"})
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("partially_paid", Decimal("70.00"))
    over = owner_client.post(pay, {"amount": "70.01", "date": "2026-11-06"})
    assert over.status_code == 400
    assert "more than the amount due" in " ".join(over.context["payment_form"].errors["amount"])
    zero = owner_client.post(pay, {"amount": "0", "date": "2026-11-06"})
    assert "more than zero" in " ".join(zero.context["payment_form"].errors["amount"])
    owner_client.post(pay, {"amount": "70.00", "date": "2026-11-06"})
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("paid", Decimal("0.00"))
    payment = invoice.payments.first()
    owner_client.post(reverse("crm:payment_delete", args=[invoice.pk, payment.pk]))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("partially_paid", Decimal("30.00"))


def test_a_draft_takes_no_payment(owner_client, owner):
    invoice = sent_invoice(owner.account)
    response = owner_client.post(
        reverse("crm:payment_create", args=[invoice.pk]), {"amount": "10", "date": "2026-11-05"}
    )
    assert response.status_code == 400
    assert not invoice.payments.exists()


def test_void_closes_the_invoice(owner_client, owner, contact):
    invoice = sent_invoice(owner.account)
    owner_client.post(reverse("crm:invoice_void", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == "void"
    edit = owner_client.post(
        reverse("crm:invoice_edit", args=[invoice.pk]), invoice_data(contact, number="X")
    )
    assert edit.status_code == 302
    invoice.refresh_from_db()
    assert invoice.number != "X"
    paid = owner_client.post(
        reverse("crm:payment_create", args=[invoice.pk]), {"amount": "1", "date": "2026-11-05"}
    )
    assert paid.status_code == 400
    assert "void invoice cannot take payments" in paid.content.decode()


def test_a_paid_invoice_cannot_be_voided(owner_client, owner):
    invoice = sent_invoice(owner.account)
    invoice.status = "sent"
    invoice.save()
    owner_client.post(
        reverse("crm:payment_create", args=[invoice.pk]), {"amount": "100", "date": "2026-11-05"}
    )
    owner_client.post(reverse("crm:invoice_void", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == "paid"
