"""The import on connect links the customers the CRM has already to their Xero contacts, by
the rules an invoice's contact is matched with (our contact number, then the email, then the
name), instead of creating each one a second time. Through the sandbox over HTTP, with the demo
CRM's adapter."""

from __future__ import annotations

from typing import Any

import pytest

from crm_demo.crm.models import Contact
from tests.factories import ContactFactory
from tests.integration.conftest import XeroApp, make_connection
from tests.integration.invoicing import assert_done, make_invoice
from xero_integration import app_settings, contacts, signals
from xero_integration.models import ContactImport, ContactLink, SyncLog, XeroConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connection(xero_sandbox, xero_app: XeroApp, owner) -> XeroConnection:
    """An empty organisation connected to the owner's account, no import started yet."""
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)")
    return make_connection(xero_sandbox, xero_app, org["tenant_id"], str(owner.account_id))


def in_xero(xero_sandbox, connection: XeroConnection, *contacts: dict[str, Any]) -> list[str]:
    """Contacts someone made in Xero; their ContactIDs, in order."""
    return xero_sandbox.edit_contacts(connection.tenant_id, list(contacts))


def link_of(connection: XeroConnection, xero_id: str) -> ContactLink:
    return ContactLink.objects.of(connection).get(xero_contact_id=xero_id)


def connect(connection: XeroConnection) -> ContactImport:
    """What connecting does: the app's receiver imports every ACTIVE contact."""
    signals.connected.send(sender=XeroConnection, connection=connection)
    job = ContactImport.objects.filter(connection=connection).latest("started_at")
    assert job.state == ContactImport.State.DONE, job.error
    return job


def test_connecting_links_the_customers_the_crm_has_and_creates_only_the_others(
    xero_sandbox, connection, owner
) -> None:
    cafe_id, bakery_id, dockside_id, new_id = in_xero(
        xero_sandbox,
        connection,
        {"Name": "Harbour Cafe", "EmailAddress": "accounts@harbourcafe.example"},
        {"Name": "Quay Bakery Ltd", "EmailAddress": "bread@quay.example"},
        {"Name": "Dockside Ltd"},
        {"Name": "New In Xero", "EmailAddress": "new@xero.example"},
    )
    account = owner.account
    cafe = ContactFactory(
        account=account, name="Harbour Café", email="Accounts@HarbourCafe.example", phone="0955"
    )
    bakery = ContactFactory(account=account, name="Quay Bakery", email="bread@quay.example")
    dockside = ContactFactory(account=account, name="dockside ltd ", email="")
    ContactFactory(account=account, name="Only In The CRM", email="crm@example.com")

    job = connect(connection)

    assert (job.imported, job.created) == (4, 1)
    assert Contact.objects.filter(account=account).count() == 5  # one new: "New In Xero"
    assert (link_of(connection, cafe_id).host_id, link_of(connection, cafe_id).matched_by) == (
        str(cafe.pk),
        ContactLink.MatchedBy.EMAIL,
    )
    assert link_of(connection, bakery_id).host_id == str(bakery.pk)
    assert (
        link_of(connection, dockside_id).host_id,
        link_of(connection, dockside_id).matched_by,
    ) == (
        str(dockside.pk),
        ContactLink.MatchedBy.NAME,
    )
    created = Contact.objects.get(pk=int(link_of(connection, new_id).host_id))
    assert (created.name, link_of(connection, new_id).matched_by) == (
        "New In Xero",
        ContactLink.MatchedBy.IMPORTED,
    )
    # What staff typed in the CRM stays (the demo's import refreshes only Xero's own fields).
    cafe.refresh_from_db()
    assert (cafe.name, cafe.phone) == ("Harbour Café", "0955")

    log = SyncLog.objects.get(connection=connection, action="contact_import")
    assert "4 contacts from Xero, 3 linked to contacts the CRM had, 1 new in the CRM" in (
        log.message
    )
    (linked,) = SyncLog.objects.filter(connection=connection, action="contact_linked")
    assert {entry["xero_contact_id"] for entry in linked.details["links"]} == {
        cafe_id,
        bakery_id,
        dockside_id,
    }


def test_a_xero_contact_the_app_made_from_a_crm_contact_is_linked_back_by_its_number(
    xero_sandbox, connection, owner
) -> None:
    customer = ContactFactory(account=owner.account, name="Harbour Cafe", email="")
    number = f"{app_settings.CONTACT_NUMBER_PREFIX}{customer.pk}"
    (xero_id,) = in_xero(
        xero_sandbox,
        connection,
        {"Name": "Harbour Cafe & Bar", "EmailAddress": "bar@example.com", "ContactNumber": number},
    )
    connect(connection)
    assert link_of(connection, xero_id).host_id == str(customer.pk)
    assert link_of(connection, xero_id).matched_by == ContactLink.MatchedBy.CONTACT_NUMBER
    assert Contact.objects.filter(account=owner.account).count() == 1


def test_the_same_name_with_another_email_is_another_customer(
    xero_sandbox, connection, owner
) -> None:
    ContactFactory(account=owner.account, name="Jane Smith", email="jane@crm.example")
    (xero_id,) = in_xero(
        xero_sandbox, connection, {"Name": "Jane Smith", "EmailAddress": "jane@xero.example"}
    )
    job = connect(connection)
    assert job.created == 1
    assert Contact.objects.filter(account=owner.account, name="Jane Smith").count() == 2
    assert link_of(connection, xero_id).matched_by == ContactLink.MatchedBy.IMPORTED


def test_a_customer_linked_already_is_not_linked_to_a_second_xero_contact(
    xero_sandbox, connection, owner
) -> None:
    customer = ContactFactory(account=owner.account, name="Harbour Cafe", email="cafe@example.com")
    (first,) = in_xero(
        xero_sandbox, connection, {"Name": "Harbour Cafe", "EmailAddress": "cafe@example.com"}
    )
    connect(connection)
    assert link_of(connection, first).host_id == str(customer.pk)

    # Someone adds a second contact with the same email in Xero; the next import creates it.
    (second,) = in_xero(
        xero_sandbox, connection, {"Name": "Harbour Cafe (2)", "EmailAddress": "cafe@example.com"}
    )
    contacts.start_import(connection, ContactImport.Kind.CHANGES)
    assert link_of(connection, second).host_id != str(customer.pk)
    assert ContactLink.objects.of(connection).filter(host_id=str(customer.pk)).count() == 1


def test_an_invoice_to_a_linked_customer_goes_to_its_xero_contact(
    xero_sandbox, connection, owner
) -> None:
    customer = ContactFactory(account=owner.account, name="Harbour Cafe", email="cafe@example.com")
    (xero_id,) = in_xero(
        xero_sandbox, connection, {"Name": "Harbour Cafe", "EmailAddress": "cafe@example.com"}
    )
    connect(connection)
    state = xero_sandbox.organisation_state(connection.tenant_id)
    bank = next(a for a in state["accounts"] if a["Type"] == "BANK")
    XeroConnection.objects.filter(pk=connection.pk).update(
        payment_account_id=bank["AccountID"], revenue_account_code="200"
    )

    asked_before = len(xero_sandbox.requests(connection.tenant_id))

    invoice = make_invoice(owner.account, contact=customer)

    assert_done(invoice)
    asked = xero_sandbox.requests(connection.tenant_id)[asked_before:]
    # The link is used: Xero is not searched for the customer.
    assert not [r for r in asked if r["method"] == "GET" and "contacts" in r["path"].lower()]
    state = xero_sandbox.organisation_state(connection.tenant_id)
    (sent,) = state["invoices"]
    assert sent["Contact"]["ContactID"] == xero_id
    assert len(state["contacts"]) == 1


def test_the_host_hears_how_many_were_linked(xero_sandbox, connection, owner) -> None:
    ContactFactory(account=owner.account, name="Harbour Cafe", email="cafe@example.com")
    in_xero(
        xero_sandbox,
        connection,
        {"Name": "Harbour Cafe", "EmailAddress": "cafe@example.com"},
        {"Name": "Quay Bakery"},
    )
    heard: list[dict[str, Any]] = []

    def hear(sender: Any, **kwargs: Any) -> None:
        heard.append(kwargs)

    signals.contacts_imported.connect(hear, weak=False, dispatch_uid="test-linked")
    try:
        connect(connection)
    finally:
        signals.contacts_imported.disconnect(dispatch_uid="test-linked")
    assert [(h["imported"], h["linked"], h["created"]) for h in heard] == [(2, 1, 1)]
