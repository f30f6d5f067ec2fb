"""Invoices whose contact Xero sees differently from the CRM, end to end against the sandbox:
names that differ only in case, quotes and other awkward characters, two customers of one
name, email addresses Xero refuses, and contacts merged in Xero.

Background tasks run inline (see conftest): saving an invoice pushes it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest

from crm_demo.crm.models import Contact
from tests.factories import ContactFactory
from tests.integration.invoicing import assert_done, job_of, make_invoice, rerun, xero_invoice
from xero_integration import contacts
from xero_integration.models import ContactLink, SyncJob, SyncLog

pytestmark = pytest.mark.django_db(transaction=True)

CONTACTS = "/api.xro/2.0/Contacts"


def xero_contacts(sandbox: Any, tenant_id: str) -> list[dict[str, Any]]:
    return sandbox.organisation_state(tenant_id)["contacts"]


def in_xero(sandbox: Any, tenant_id: str, **fields: Any) -> str:
    (contact_id,) = sandbox.edit_contacts(tenant_id, [fields])
    return contact_id


def invoiced_contact(sandbox: Any, tenant_id: str, invoice: Any) -> dict[str, Any]:
    """The Xero contact the invoice landed on."""
    contact_id = xero_invoice(sandbox, tenant_id, invoice.number)["Contact"]["ContactID"]
    (contact,) = [c for c in xero_contacts(sandbox, tenant_id) if c["ContactID"] == contact_id]
    return contact


def contact_requests(sandbox: Any, tenant_id: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(tenant_id) if r["path"].startswith(CONTACTS)]


def query_of(request: dict[str, Any]) -> dict[str, str]:
    """A recorded request's query, decoded, by lower-case name."""
    return {k.lower(): v for k, v in parse_qsl(str(request.get("query") or ""))}


def logs(action: str) -> list[SyncLog]:
    return list(SyncLog.objects.filter(action=action).order_by("pk"))


def crm_contact_of(connection: Any, xero_id: str) -> Contact:
    link = ContactLink.objects.of(connection).get(xero_contact_id=xero_id)
    return Contact.objects.get(pk=int(link.host_id))


# ---- names --------------------------------------------------------------------------------------


def test_a_crm_contact_whose_name_differs_only_in_case_is_invoiced_to_that_xero_contact(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    acme = in_xero(xero_sandbox, tenant_id, Name="Acme Ltd")
    crm_acme = ContactFactory(account=account, name="ACME Ltd", email="accounts@acme.example")

    invoice = make_invoice(account, contact=crm_acme)

    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] == acme
    assert [c["Name"] for c in xero_contacts(xero_sandbox, tenant_id)] == ["Acme Ltd"]
    (log,) = logs("contact_match")
    assert log.details["rule"] == "name"


def test_another_customer_whose_name_differs_only_in_case_gets_a_contact_of_its_own(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    acme = in_xero(xero_sandbox, tenant_id, Name="Acme Ltd", EmailAddress="accounts@acme.example")
    other = ContactFactory(account=account, name="ACME Ltd", email="billing@acme-two.example")

    invoice = make_invoice(account, contact=other)

    assert_done(invoice)
    created = invoiced_contact(xero_sandbox, tenant_id, invoice)
    assert created["ContactID"] != acme
    assert created["Name"] == "ACME Ltd (billing@acme-two.example)"
    (log,) = logs("contact_match")
    assert "accounts@acme.example" in log.message


AWKWARD_NAMES = [
    'Bob "The Builder" O\'Brien',
    "Smith & Sons + Partners",
    "Back\\slash \\\\ Ltd",
    "Café Zürich 株式会社",
    "50% Off (Outlet) Ltd.",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_a_new_contact_with_an_awkward_name_reaches_xero_under_that_name(
    xero_sandbox, connected, name: str
) -> None:
    tenant_id, account, _ = connected
    customer = ContactFactory(account=account, name=name, email="")

    invoice = make_invoice(account, contact=customer)

    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["Name"] == name
    assert len(xero_contacts(xero_sandbox, tenant_id)) == 1


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_an_existing_xero_contact_with_an_awkward_name_is_found_whatever_the_case(
    xero_sandbox, connected, name: str
) -> None:
    tenant_id, account, _ = connected
    existing = in_xero(xero_sandbox, tenant_id, Name=name)
    customer = ContactFactory(account=account, name=name.upper(), email="")

    invoice = make_invoice(account, contact=customer)

    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] == existing
    assert len(xero_contacts(xero_sandbox, tenant_id)) == 1


def test_a_contact_whose_name_and_email_hold_quotes_is_found_without_a_filter_on_them(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    by_email = in_xero(
        xero_sandbox, tenant_id, Name="Jane's Books", EmailAddress='"jane"@example.com'
    )
    customer = ContactFactory(
        account=account, name='Jane "Books" Smith', email='"Jane"@Example.com'
    )

    invoice = make_invoice(account, contact=customer)

    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] == by_email
    asked = [query_of(r) for r in contact_requests(xero_sandbox, tenant_id)]
    # Only our contact number went into a filter; the email was searched for.
    assert [q["where"] for q in asked if "where" in q] == [f'(ContactNumber=="CRM-{customer.pk}")']
    assert '"Jane"@Example.com' in [q.get("searchterm") for q in asked]


# ---- two customers of one name ----------------------------------------------------------------


def test_two_customers_of_one_name_without_email_get_two_xero_contacts(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    first = ContactFactory(account=account, name="John Smith", email="")
    second = ContactFactory(account=account, name="John Smith", email="")

    first_invoice = make_invoice(account, contact=first)
    second_invoice = make_invoice(account, contact=second)

    assert_done(first_invoice)
    assert_done(second_invoice)
    one = invoiced_contact(xero_sandbox, tenant_id, first_invoice)
    two = invoiced_contact(xero_sandbox, tenant_id, second_invoice)
    assert one["ContactID"] != two["ContactID"]
    assert (one["Name"], one["ContactNumber"]) == ("John Smith", f"CRM-{first.pk}")
    assert (two["Name"], two["ContactNumber"]) == (
        f"John Smith (CRM-{second.pk})",
        f"CRM-{second.pk}",
    )
    # The second invoice says why its contact has another name in Xero.
    why = logs("contact_match")[-1]
    assert why.details["rule"] == "create_renamed"
    assert f"CRM-{first.pk}" in why.message


def test_two_customers_of_one_name_in_one_batch_get_two_xero_contacts(
    xero_sandbox, connected, no_dispatch
) -> None:
    tenant_id, account, _ = connected
    with no_dispatch():
        made = [
            make_invoice(account, contact=ContactFactory(account=account, name=name, email=""))
            for name in ("John Smith", "Someone Else", "JOHN SMITH")
        ]
    rerun(made[0])

    for invoice in made:
        assert_done(invoice)
    ids = {invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] for invoice in made}
    assert len(ids) == 3
    names = sorted(c["Name"] for c in xero_contacts(xero_sandbox, tenant_id))
    assert names[0].lower().startswith("john smith (crm-")
    assert names[1:] == ["John Smith", "Someone Else"] or names[1:] == [
        "JOHN SMITH",
        "Someone Else",
    ]


# ---- email addresses --------------------------------------------------------------------------


def test_an_email_xero_cannot_take_is_left_off_the_contact_and_the_invoice_goes(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    jurgen = ContactFactory(account=account, name="Jürgen Müller", email="jurgen@müller.de")

    invoice = make_invoice(account, contact=jurgen)

    assert_done(invoice)
    created = invoiced_contact(xero_sandbox, tenant_id, invoice)
    assert created["Name"] == "Jürgen Müller"
    assert created["EmailAddress"] == ""
    (left_off,) = logs("contact_email")
    assert "jurgen@müller.de" in left_off.message
    assert left_off.details["xero_contact_id"] == created["ContactID"]
    # Xero was never asked about an address it cannot hold.
    asked = [query_of(r) for r in contact_requests(xero_sandbox, tenant_id)]
    assert not any("müller" in value for q in asked for value in q.values()), asked


# ---- contacts merged in Xero ------------------------------------------------------------------


@pytest.fixture
def imported_pair(xero_sandbox, connected) -> tuple[str, str, Contact]:
    """Two Xero contacts imported into the CRM: (the one to be merged, the one it goes into,
    the CRM contact of the first)."""
    tenant_id, account, connection = connected
    merged = in_xero(xero_sandbox, tenant_id, Name="Harbour Cafe", EmailAddress="")
    survivor = in_xero(xero_sandbox, tenant_id, Name="Harbour Cafe Ltd", EmailAddress="")
    job = contacts.start_import(connection)
    job.refresh_from_db()
    assert job.state == job.State.DONE, job.error
    xero_sandbox.advance_clock(5)
    return merged, survivor, crm_contact_of(connection, merged)


def test_an_invoice_for_a_contact_merged_since_the_last_import_goes_to_the_survivor(
    xero_sandbox, connected, imported_pair
) -> None:
    tenant_id, account, connection = connected
    merged, survivor, crm_contact = imported_pair
    xero_sandbox.merge_contact(tenant_id, merged, into=survivor)

    invoice = make_invoice(account, contact=crm_contact)

    # Xero refused the archived contact; one read learnt where it went.
    job = job_of(invoice)
    assert job.state == SyncJob.State.WAITING, (job.state, job.error)
    reads = [
        r
        for r in contact_requests(xero_sandbox, tenant_id)
        if r["method"] == "GET" and r["path"].endswith(merged)
    ]
    assert len(reads) == 1
    link = ContactLink.objects.of(connection).get(host_id=str(crm_contact.pk))
    assert (link.status, link.merged_into) == (ContactLink.Status.MERGED, survivor)
    rerun(invoice)  # the sweeper's next round
    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] == survivor


def test_an_invoice_refused_for_an_archived_contact_goes_once_an_import_learns_of_its_merge(
    xero_sandbox, connected, imported_pair
) -> None:
    tenant_id, account, connection = connected
    merged, survivor, crm_contact = imported_pair
    xero_sandbox.edit_contacts(tenant_id, [{"ContactID": merged, "ContactStatus": "ARCHIVED"}])
    invoice = make_invoice(account, contact=crm_contact)
    job = job_of(invoice)
    assert job.state == SyncJob.State.FAILED
    assert "archived" in job.error
    xero_sandbox.advance_clock(5)

    # Someone merges it in Xero; the next import of changes learns of it.
    xero_sandbox.merge_contact(tenant_id, merged, into=survivor)
    contacts.start_import(connection)

    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] == survivor


def test_an_invoice_refused_for_an_archived_contact_goes_once_it_is_restored_in_xero(
    xero_sandbox, connected, imported_pair
) -> None:
    tenant_id, account, connection = connected
    merged, _, crm_contact = imported_pair
    xero_sandbox.edit_contacts(tenant_id, [{"ContactID": merged, "ContactStatus": "ARCHIVED"}])
    invoice = make_invoice(account, contact=crm_contact)
    assert job_of(invoice).state == SyncJob.State.FAILED
    xero_sandbox.advance_clock(5)

    xero_sandbox.edit_contacts(tenant_id, [{"ContactID": merged, "ContactStatus": "ACTIVE"}])
    contacts.start_import(connection)

    assert_done(invoice)
    assert invoiced_contact(xero_sandbox, tenant_id, invoice)["ContactID"] == merged


def test_invoices_of_a_batch_for_a_merged_contact_go_to_the_survivor(
    xero_sandbox, connected, imported_pair, no_dispatch
) -> None:
    tenant_id, account, _ = connected
    merged, survivor, crm_contact = imported_pair
    xero_sandbox.merge_contact(tenant_id, merged, into=survivor)
    with no_dispatch():
        made = [make_invoice(account, contact=crm_contact) for _ in range(2)]
        made.append(make_invoice(account))
    rerun(made[0])
    for invoice in made:
        if job_of(invoice).state == SyncJob.State.WAITING:
            rerun(invoice)

    for invoice in made:
        assert_done(invoice)
    assert {invoiced_contact(xero_sandbox, tenant_id, i)["ContactID"] for i in made[:2]} == {
        survivor
    }


def test_the_crm_tells_a_customer_whose_name_is_taken_apart_by_their_company(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    in_xero(xero_sandbox, tenant_id, Name="John Smith", EmailAddress="john@one.example")
    at_acme = ContactFactory(
        account=account, name="John Smith", email="john@acme.example", company="Acme Ltd"
    )
    also_at_acme = ContactFactory(
        account=account, name="John Smith", email="smith@acme.example", company="Acme Ltd"
    )

    first = make_invoice(account, contact=at_acme)
    second = make_invoice(account, contact=also_at_acme)

    assert_done(first)
    assert_done(second)
    assert invoiced_contact(xero_sandbox, tenant_id, first)["Name"] == "John Smith (Acme Ltd)"
    # The company's name is taken by then: the email tells this one apart.
    assert (
        invoiced_contact(xero_sandbox, tenant_id, second)["Name"]
        == "John Smith (smith@acme.example)"
    )


# ---- calls to Xero ----------------------------------------------------------------------------


def test_a_new_customer_costs_a_lookup_by_number_a_search_by_email_and_a_create(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected

    invoice = make_invoice(account, contact=ContactFactory(account=account))

    assert_done(invoice)
    asked = [(r["method"], query_of(r)) for r in contact_requests(xero_sandbox, tenant_id)]
    assert [(method, sorted(query)) for method, query in asked] == [
        ("GET", ["where"]),
        ("GET", ["page", "pagesize", "searchterm"]),
        ("PUT", ["summarizeerrors"]),
    ]


def test_a_batch_of_new_customers_in_a_small_organisation_costs_three_calls(
    xero_sandbox, connected, no_dispatch
) -> None:
    tenant_id, account, _ = connected
    in_xero(xero_sandbox, tenant_id, Name="Customer Already There", EmailAddress="")
    with no_dispatch():
        made = [make_invoice(account, contact=ContactFactory(account=account)) for _ in range(20)]
        made.append(
            make_invoice(
                account,
                contact=ContactFactory(account=account, name="CUSTOMER ALREADY THERE", email=""),
            )
        )
    rerun(made[0])

    for invoice in made:
        assert_done(invoice)
    # Our contact numbers in one filter, every contact of the organisation in one page
    # (cheaper than 20 searches), the 20 new ones in one create.
    calls = [r["method"] for r in contact_requests(xero_sandbox, tenant_id)]
    assert calls == ["GET", "GET", "PUT"]
    assert len(xero_contacts(xero_sandbox, tenant_id)) == 21


def test_a_contact_lookup_refused_for_the_rate_limit_is_logged_and_the_invoice_waits(
    xero_sandbox, connected
) -> None:
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("GET", f"{CONTACTS}*", "429", count=100, retry_after=120)

    invoice = make_invoice(account, contact=ContactFactory(account=account))

    assert job_of(invoice).state == SyncJob.State.WAITING
    refused = [r for r in contact_requests(xero_sandbox, tenant_id) if r["status"] == 429]
    # Even when the lookup runs under the contact's row lock (PostgreSQL).
    logged = SyncLog.objects.filter(
        http_status=429, action__startswith="GET", action__endswith="/Contacts"
    )
    assert logged.count() == len(refused) > 0
