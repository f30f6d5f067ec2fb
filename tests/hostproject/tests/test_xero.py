"""This CRM and Xero, through the sandbox: what the CRM's users see happen."""

import datetime
from decimal import Decimal

import xero_integration
from django.core import checks
from django.db import transaction
from django.urls import reverse
from xero_integration.models import ConnectAttempt, ContactLink

from mycrm.models import Customer, Invoice, Payment

ISSUED = datetime.date(2026, 11, 2)
DUE = datetime.date(2026, 11, 30)


def make_invoice(organisation, customer, number: str, **fields) -> Invoice:
    """An invoice with its lines saved in one transaction, as the invoice form does."""
    with transaction.atomic():
        invoice = Invoice.objects.create(
            organisation=organisation,
            customer=customer,
            number=number,
            status=fields.pop("status", Invoice.Status.SENT),
            issued_on=ISSUED,
            due_on=DUE,
        )
        invoice.lines.create(
            description="Espresso machine service",
            quantity=Decimal("2"),
            unit_price=Decimal("150.00"),
            tax_rate=Decimal("15"),
        )
        invoice.lines.create(description="Descaling kit", unit_price=Decimal("24.50"))
    return invoice


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_a_sent_invoice_and_its_payments_reach_xero(organisation, owner_client, xero_connect):
    xero = xero_connect(owner_client)
    customer = Customer.objects.create(
        organisation=organisation, name="Harbour Cafe", email="accounts@harbourcafe.example"
    )
    invoice = make_invoice(organisation, customer, "INV-001")
    assert invoice.total == Decimal("369.50")

    in_xero = xero.invoice("INV-001")
    assert in_xero["Status"] == "AUTHORISED"
    assert money(in_xero["Total"]) == invoice.total
    assert money(in_xero["TotalTax"]) == Decimal("45.00")
    (contact,) = xero.contacts()
    assert (contact["Name"], contact["EmailAddress"]) == (
        "Harbour Cafe",
        "accounts@harbourcafe.example",
    )

    Payment.objects.create(invoice=invoice, amount=Decimal("100.00"), received_on=ISSUED)
    assert money(xero.invoice("INV-001")["AmountPaid"]) == Decimal("100.00")
    Payment.objects.create(invoice=invoice, amount=Decimal("269.50"), received_on=DUE)
    invoice.status = Invoice.Status.PAID
    invoice.save()

    assert xero.invoice("INV-001")["Status"] == "PAID"
    payments = xero.payments()
    assert sorted(money(p["Amount"]) for p in payments) == [Decimal("100.00"), Decimal("269.50")]
    assert {p["Account"]["AccountID"] for p in payments} == {xero.payment_account_id}


def test_a_cancelled_invoice_is_voided_in_xero(organisation, owner_client, xero_connect):
    xero = xero_connect(owner_client)
    customer = Customer.objects.create(organisation=organisation, name="Harbour Cafe")
    invoice = make_invoice(organisation, customer, "INV-002")
    invoice.status = Invoice.Status.CANCELLED
    invoice.save()
    assert xero.invoice("INV-002")["Status"] == "VOIDED"


def test_xero_contacts_become_customers_and_are_invoiced_as_themselves(
    organisation, owner_client, xero_connect
):
    xero = xero_connect(owner_client, contacts=3)

    customers = Customer.objects.filter(organisation=organisation)
    assert sorted(c.name for c in customers) == sorted(c["Name"] for c in xero.contacts())
    assert ContactLink.objects.filter(host_model="mycrm.customer").count() == 3
    customer = customers.first()
    make_invoice(organisation, customer, "INV-003")
    assert xero.invoice("INV-003")["Contact"]["Name"] == customer.name
    assert len(xero.contacts()) == 3  # the imported contact was used, none created


def test_the_pages_show_the_connection_and_the_invoice_in_the_host_layout(
    organisation, owner_client, xero_connect
):
    xero = xero_connect(owner_client, name="Harbour Supplies (NZ)")
    settings_page = owner_client.get(reverse("xero_integration:settings")).content.decode()
    # The host's base.html shows the messages the Xero pages leave.
    assert "Connected to Harbour Supplies (NZ)." in settings_page
    assert "Default accounts saved." in settings_page
    tile = owner_client.get(reverse("integrations")).content.decode()
    assert "Harbour Supplies (NZ)" in tile and "Manage" in tile

    customer = Customer.objects.create(organisation=organisation, name="Harbour Cafe")
    invoice = make_invoice(organisation, customer, "INV-004")
    page = owner_client.get(reverse("invoice_detail", args=[invoice.pk])).content.decode()
    assert "In Xero: <strong>Authorised</strong>" in page
    assert xero.invoice("INV-004")["InvoiceID"] in page  # "Open in Xero" links to it


def test_the_connecting_page_refreshes_itself_in_the_host_layout(
    owner, owner_client, xero_encryption_key
):
    attempt = ConnectAttempt.objects.create(
        account_key=str(owner.organisations.get().pk),
        user=owner,
        code="waiting-for-the-worker",
        redirect_uri="http://testserver/integrations/xero/callback/",
    )
    page = owner_client.get(reverse("xero_integration:attempt", args=[attempt.pk]))
    head = page.content.decode().split("</head>", 1)[0]
    assert '<meta http-equiv="refresh" content="1">' in head


def test_the_adapter_and_the_layout_pass_the_apps_checks(db):
    ids = {message.id for message in checks.run_checks(include_deployment_checks=False)}
    assert "xero_integration.E001" not in ids  # every required hook is there
    assert "xero_integration.W004" not in ids  # base.html renders content and extra_head


def test_a_line_edited_on_its_own_reaches_xero(organisation, owner_client, xero_connect):
    xero = xero_connect(owner_client)
    customer = Customer.objects.create(organisation=organisation, name="Harbour Cafe")
    invoice = make_invoice(organisation, customer, "INV-005")

    line = invoice.lines.get(description="Descaling kit")
    line.quantity = Decimal("3")
    line.save()  # as an inline formset saves the one line that changed

    assert invoice.total == Decimal("418.50")
    assert money(xero.invoice("INV-005")["Total"]) == invoice.total


def test_invoices_changed_by_a_bulk_update_are_sent_with_enqueue(
    organisation, owner_client, xero_connect
):
    xero = xero_connect(owner_client)
    customer = Customer.objects.create(organisation=organisation, name="Harbour Cafe")
    invoice = make_invoice(organisation, customer, "INV-006", status=Invoice.Status.DRAFT)

    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.SENT)  # no save()
    assert xero.invoice("INV-006")["Status"] == "DRAFT"
    xero_integration.enqueue(invoice)

    assert xero.invoice("INV-006")["Status"] == "AUTHORISED"


def test_customers_the_crm_has_are_linked_on_import_not_created_again(
    organisation, owner_client, xero_sandbox, xero_connect
):
    made = xero_sandbox.create_organisation(name="Harbour Supplies (NZ)")
    xero_sandbox.edit_contacts(
        made["tenant_id"],
        [
            {"Name": "Harbour Cafe", "EmailAddress": "accounts@harbourcafe.example"},
            {"Name": "Quay Bakery"},
        ],
    )
    cafe = Customer.objects.create(
        organisation=organisation, name="Harbour Cafe", email="Accounts@HarbourCafe.example"
    )

    xero = xero_connect(owner_client, tenant_id=made["tenant_id"])

    names = sorted(organisation.customers.values_list("name", flat=True))
    assert names == ["Harbour Cafe", "Quay Bakery"]  # the cafe was not created a second time
    link = ContactLink.objects.get(host_model="mycrm.customer", host_id=str(cafe.pk))
    assert link.matched_by == ContactLink.MatchedBy.EMAIL
    make_invoice(organisation, cafe, "INV-007")
    assert xero.invoice("INV-007")["Contact"]["ContactID"] == link.xero_contact_id
    assert len(xero.contacts()) == 2
