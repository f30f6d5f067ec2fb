"""Contacts between the CRM and Xero, through the sandbox over real HTTP: the import on connect
(progress, resume, incremental changes, rate limits) and finding or creating the Xero contact of
a CRM contact at invoice time, exactly once.

Background tasks run inline (see conftest).
"""

from __future__ import annotations

import contextlib
import math
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm_demo.crm.models import Contact
from tests.factories import ContactFactory, InvoiceFactory, MembershipFactory
from tests.integration.conftest import XeroApp, make_connection
from xero_integration import connect, contacts, services, signals
from xero_integration.adapters import get_adapter
from xero_integration.data import HostContact
from xero_integration.models import ContactImport, ContactLink, SyncLog, XeroConnection
from xero_integration.rules import contacts as rules
from xero_integration.xero.ratelimit import InMemoryLimiter

pytestmark = pytest.mark.django_db(transaction=True)

CONTACTS_PATH = "/api.xro/2.0/Contacts"


# ---- helpers --------------------------------------------------------------------------------


@pytest.fixture
def connect_org(xero_sandbox, xero_app: XeroApp, owner) -> Callable[..., XeroConnection]:
    """An organisation with ``contacts`` seeded contacts, connected to a CRM account (the
    owner's unless ``account_key`` says otherwise), without starting an import."""

    def make(contacts: int = 0, account_key: str | None = None, name: str = "Demo Company (NZ)"):
        org = xero_sandbox.create_organisation(name=name, contacts=contacts)
        return make_connection(
            xero_sandbox,
            xero_app,
            org["tenant_id"],
            account_key or str(owner.account_id),
            tenant_name=name,
        )

    return make


@pytest.fixture
def no_backoff(monkeypatch) -> None:
    """The API client retries without sleeping, so retried faults do not slow the tests."""
    original = connect.api_client

    def fast(*args: Any, **kwargs: Any):
        client = original(*args, **kwargs)
        client._sleep = lambda seconds: None
        return client

    monkeypatch.setattr(connect, "api_client", fast)


def xero_contacts(xero_sandbox, tenant_id: str, status: str | None = None) -> list[dict]:
    found = xero_sandbox.organisation_state(tenant_id)["contacts"]
    return [c for c in found if status is None or c["ContactStatus"] == status]


def contact_reads(xero_sandbox, tenant_id: str) -> list[dict]:
    """Every GET /Contacts (the list, not one contact) the sandbox received."""
    return [
        r
        for r in xero_sandbox.requests(tenant_id)
        if r["method"] == "GET" and r["path"].lower() == CONTACTS_PATH.lower()
    ]


def query_of(request: dict) -> dict[str, str]:
    """A recorded request's query as {lower-case name: value}."""
    query = request.get("query") or {}
    if isinstance(query, str):
        from urllib.parse import parse_qsl

        query = dict(parse_qsl(query))
    return {str(k).lower(): (v[0] if isinstance(v, list) else str(v)) for k, v in query.items()}


def page_numbers(requests: list[dict]) -> list[int]:
    return [int(query_of(r).get("page", 0)) for r in requests]


def only_job(connection: XeroConnection) -> ContactImport:
    (job,) = ContactImport.objects.filter(connection=connection)
    return job


def link_of(connection: XeroConnection, xero_id: str) -> ContactLink:
    return ContactLink.objects.get(account_key=connection.account_key, xero_contact_id=xero_id)


def crm_contact_of(connection: XeroConnection, xero_id: str) -> Contact:
    return Contact.objects.get(pk=int(link_of(connection, xero_id).host_id))


def new_import(connection: XeroConnection, kind: str = ContactImport.Kind.FULL) -> ContactImport:
    """A queued import, to be run by calling contacts.run_import directly."""
    return ContactImport.objects.create(connection=connection, kind=kind)


# ---- the import on connect -------------------------------------------------------------------


def test_connecting_imports_every_active_xero_contact_and_links_it(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=30)
    seeded = xero_contacts(xero_sandbox, connection.tenant_id)
    archived_ids = [seeded[0]["ContactID"], seeded[5]["ContactID"]]
    xero_sandbox.edit_contacts(
        connection.tenant_id, [{"ContactID": i, "ContactStatus": "ARCHIVED"} for i in archived_ids]
    )
    active = xero_contacts(xero_sandbox, connection.tenant_id, "ACTIVE")
    assert len(active) == 28

    # The app's receiver starts the import when the connection is made.
    signals.connected.send(sender=XeroConnection, connection=connection)

    job = only_job(connection)
    assert job.state == ContactImport.State.DONE, job.error
    assert job.kind == ContactImport.Kind.FULL
    assert (job.imported, job.total, job.created) == (28, 28, 28)
    assert job.progress == "28 of 28"

    crm = Contact.objects.filter(account=owner.account)
    assert sorted(crm.values_list("name", flat=True)) == sorted(c["Name"] for c in active)
    links = ContactLink.objects.filter(account_key=connection.account_key)
    assert links.count() == 28
    assert set(links.values_list("xero_contact_id", flat=True)) == {c["ContactID"] for c in active}
    assert set(links.values_list("matched_by", flat=True)) == {ContactLink.MatchedBy.IMPORTED}
    assert set(links.values_list("status", flat=True)) == {ContactLink.Status.ACTIVE}
    assert set(links.values_list("host_model", flat=True)) == {"crm.contact"}
    for xero_contact in active:
        crm_contact = crm_contact_of(connection, xero_contact["ContactID"])
        assert crm_contact.account_id == owner.account_id
        assert crm_contact.name == xero_contact["Name"]
        assert crm_contact.email == xero_contact["EmailAddress"]
    # Archived Xero contacts stay out of the CRM.
    assert not links.filter(xero_contact_id__in=archived_ids).exists()
    archived_names = {c["Name"] for c in seeded if c["ContactID"] in archived_ids}
    assert not crm.filter(name__in=archived_names).exists()

    assert SyncLog.objects.filter(
        connection=connection, action="contact_import", outcome=SyncLog.Outcome.OK
    ).exists()


def test_imported_contacts_keep_xeros_data_as_it_is(xero_sandbox, connect_org, owner) -> None:
    connection = connect_org(contacts=20)
    seeded = {c["ContactID"]: c for c in xero_contacts(xero_sandbox, connection.tenant_id)}

    contacts.start_import(connection)

    assert only_job(connection).state == ContactImport.State.DONE
    by_name = {c.name: c for c in Contact.objects.filter(account=owner.account)}
    # A very long name, a Japanese name, a contact without email (the seed has each).
    assert any(len(name) > 200 for name in by_name)
    assert any("株式会社" in name or "商店" in name or "事務所" in name for name in by_name)
    assert any(contact.email == "" for contact in by_name.values())
    for xero_id, xero_contact in seeded.items():
        crm_contact = crm_contact_of(connection, xero_id)
        default = next(p for p in xero_contact["Phones"] if p["PhoneType"] == "DEFAULT")
        pobox = next(a for a in xero_contact["Addresses"] if a["AddressType"] == "POBOX")
        assert crm_contact.phone == (
            f"+{default['PhoneCountryCode']} {default['PhoneAreaCode']} {default['PhoneNumber']}"
        )
        assert crm_contact.address_line1 == pobox["AddressLine1"]
        assert crm_contact.city == pobox["City"]
        assert crm_contact.postal_code == pobox["PostalCode"]
        assert (crm_contact.first_name, crm_contact.last_name) == (
            xero_contact["FirstName"],
            xero_contact["LastName"],
        )
    # Two Xero contacts sharing one email are both imported.
    emails = [c.email for c in by_name.values() if c.email]
    assert len(emails) > len(set(emails))


def test_a_newcomer_who_connects_sees_the_organisations_contacts(
    xero_sandbox, xero_app, owner, owner_client, connect_through_sandbox
) -> None:
    org = xero_sandbox.create_organisation(name="Demo Company (NZ)", contacts=40)

    connect_through_sandbox(owner_client)

    assert Contact.objects.filter(account=owner.account).count() == 40
    connection = XeroConnection.objects.get(account_key=str(owner.account_id))
    assert connection.tenant_id == org["tenant_id"]
    assert only_job(connection).progress == "40 of 40"


def test_import_reads_pages_of_1000_and_shows_progress(xero_sandbox, connect_org, owner) -> None:
    connection = connect_org(contacts=2500)
    seen: list[str] = []
    original = contacts._save_page

    def watch(job, number, items, item_count, adapter):
        saved = original(job, number, items, item_count, adapter)
        seen.append(ContactImport.objects.get(pk=job.pk).progress)
        return saved

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contacts, "_save_page", watch)
        contacts.start_import(connection)

    job = only_job(connection)
    assert job.state == ContactImport.State.DONE, job.error
    assert seen == ["1,000 of 2,500", "2,000 of 2,500", "2,500 of 2,500"]
    assert job.progress == "2,500 of 2,500"
    assert Contact.objects.filter(account=owner.account).count() == 2500
    reads = contact_reads(xero_sandbox, connection.tenant_id)
    assert page_numbers(reads) == [1, 2, 3]
    assert {query_of(r).get("pagesize") for r in reads} == {"1000"}


def test_an_outage_mid_import_waits_and_resumes_from_the_last_finished_page(
    xero_sandbox, connect_org, owner, no_backoff
) -> None:
    connection = connect_org(contacts=2500)
    original = contacts._save_page

    def break_after_first_page(job, number, items, item_count, adapter):
        saved = original(job, number, items, item_count, adapter)
        if number == 1:
            xero_sandbox.add_fault("GET", CONTACTS_PATH, "500", count=1000)
        return saved

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contacts, "_save_page", break_after_first_page)
        contacts.start_import(connection)

    job = only_job(connection)
    assert job.state == ContactImport.State.WAITING
    assert job.state != ContactImport.State.FAILED
    assert job.error
    assert job.resume_at is not None and job.resume_at > timezone.now()
    assert job.next_page == 2
    assert job.progress == "1,000 of 2,500"
    assert Contact.objects.filter(account=owner.account).count() == 1000

    xero_sandbox.clear_faults()
    contacts.run_import(job.pk)

    job.refresh_from_db()
    assert job.state == ContactImport.State.DONE, job.error
    assert job.progress == "2,500 of 2,500"
    crm = Contact.objects.filter(account=owner.account)
    assert crm.count() == 2500
    assert crm.values("name").distinct().count() == 2500
    assert ContactLink.objects.filter(account_key=connection.account_key).count() == 2500
    answered = [r for r in contact_reads(xero_sandbox, connection.tenant_id) if r["status"] == 200]
    assert page_numbers(answered) == [1, 2, 3]  # page 1 was not read again


def test_a_worker_that_died_mid_import_is_resumed_by_the_schedule(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=2500)
    job = new_import(connection)
    original = contacts._save_page

    class WorkerDied(BaseException):
        pass

    def die_on_second_page(job, number, items, item_count, adapter):
        if number == 2:
            raise WorkerDied
        return original(job, number, items, item_count, adapter)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contacts, "_save_page", die_on_second_page)
        with pytest.raises(WorkerDied):
            contacts.run_import(job.pk)

    job.refresh_from_db()
    assert (job.state, job.next_page, job.imported) == (ContactImport.State.RUNNING, 2, 1000)
    # Not taken over while the worker might still be alive...
    assert contacts.resume_imports() == 0
    # ...but once it has been silent long enough, the schedule resumes it.
    ContactImport.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - contacts.STALLED_AFTER - timedelta(minutes=1)
    )
    assert contacts.resume_imports() == 1

    job.refresh_from_db()
    assert job.state == ContactImport.State.DONE, job.error
    assert Contact.objects.filter(account=owner.account).count() == 2500
    assert Contact.objects.filter(account=owner.account).values("name").distinct().count() == 2500
    assert page_numbers(contact_reads(xero_sandbox, connection.tenant_id)) == [1, 2, 2, 3]


def _extra_bulk_batches(model: Any, count: int) -> int:
    """How many more INSERTs Django's bulk_create needs for ``count`` rows than for one batch
    (SQLite caps the parameters of one statement; PostgreSQL takes every row at once)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    size = db_connection.ops.bulk_batch_size(fields, [None] * count) or count
    return math.ceil(count / size) - 1


def test_database_queries_per_page_do_not_grow_with_the_contacts(
    xero_sandbox, connect_org, owner
) -> None:
    small = connect_org(contacts=10)
    other_account = MembershipFactory().account
    large = connect_org(contacts=1000, account_key=str(other_account.pk), name="Big Ltd")
    small_job, large_job = new_import(small), new_import(large)

    with CaptureQueriesContext(db_connection) as small_queries:
        contacts.run_import(small_job.pk)
    with CaptureQueriesContext(db_connection) as large_queries:
        contacts.run_import(large_job.pk)

    small_job.refresh_from_db()
    large_job.refresh_from_db()
    assert (small_job.state, small_job.imported) == (ContactImport.State.DONE, 10)
    assert (large_job.state, large_job.imported) == (ContactImport.State.DONE, 1000)
    allowance = _extra_bulk_batches(Contact, 1000) + _extra_bulk_batches(ContactLink, 1000)
    assert len(large_queries) <= len(small_queries) + allowance, (
        len(small_queries),
        len(large_queries),
        allowance,
    )
    assert len(large_queries) < 100  # nowhere near a query per contact


def test_a_second_full_import_of_unchanged_contacts_writes_nothing_for_them(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=300)
    contacts.run_import(new_import(connection).pk)
    again = new_import(connection)

    with CaptureQueriesContext(db_connection) as queries:
        contacts.run_import(again.pk)

    again.refresh_from_db()
    assert (again.state, again.imported, again.created) == (ContactImport.State.DONE, 300, 0)
    rewrites = [
        q["sql"][:60]
        for q in queries
        if q["sql"].startswith("UPDATE")
        and ("contactlink" in q["sql"] or "crm_contact" in q["sql"])
    ]
    assert rewrites == []


# ---- incremental imports -------------------------------------------------------------------


def test_changes_update_the_crm_and_mark_archived_and_merged_contacts(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=25)
    contacts.start_import(connection)
    assert only_job(connection).state == ContactImport.State.DONE
    ids = [c["ContactID"] for c in xero_contacts(xero_sandbox, connection.tenant_id)]
    edited, archived, merged, survivor = ids[1], ids[2], ids[4], ids[5]

    # Staff edit the phone in the CRM: it is no longer Xero's to change.
    staff_edited = crm_contact_of(connection, edited)
    assert "phone" in staff_edited.source_fields
    staff_edited.phone = "021 STAFF"
    staff_edited.source_fields = [f for f in staff_edited.source_fields if f != "phone"]
    staff_edited.save()

    xero_sandbox.advance_clock(5)
    xero_sandbox.edit_contacts(
        connection.tenant_id,
        [
            {
                "ContactID": edited,
                "Name": "Renamed In Xero Ltd",
                "EmailAddress": "new.address@example.com",
                "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "5551234"}],
            },
            {"ContactID": archived, "ContactStatus": "ARCHIVED"},
        ],
    )
    xero_sandbox.merge_contact(connection.tenant_id, merged, into=survivor)

    job = contacts.start_import(connection)

    job.refresh_from_db()
    assert job.kind == ContactImport.Kind.CHANGES
    assert job.state == ContactImport.State.DONE, job.error
    assert job.archived == 2
    assert job.modified_since is not None

    updated = crm_contact_of(connection, edited)
    assert updated.pk == staff_edited.pk
    assert updated.name == "Renamed In Xero Ltd"
    assert updated.email == "new.address@example.com"
    assert updated.phone == "021 STAFF"  # staff's value, not Xero's
    assert link_of(connection, edited).xero_name == "Renamed In Xero Ltd"

    archived_link = link_of(connection, archived)
    assert archived_link.status == ContactLink.Status.ARCHIVED
    merged_link = link_of(connection, merged)
    assert merged_link.status == ContactLink.Status.MERGED
    assert merged_link.merged_into == survivor
    assert link_of(connection, survivor).status == ContactLink.Status.ACTIVE
    # Nothing is deleted from the CRM, and nothing is imported twice.
    assert Contact.objects.filter(pk=int(archived_link.host_id)).exists()
    assert Contact.objects.filter(pk=int(merged_link.host_id)).exists()
    assert Contact.objects.filter(account=owner.account).count() == 25
    assert ContactLink.objects.filter(account_key=connection.account_key).count() == 25

    # The changes were asked for archived contacts too (the full import was not).
    reads = contact_reads(xero_sandbox, connection.tenant_id)
    assert query_of(reads[0]).get("includearchived", "false").lower() == "false"
    assert query_of(reads[-1]).get("includearchived", "").lower() == "true"


def test_changes_read_only_what_changed_since_the_last_import(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=25)
    contacts.start_import(connection)
    ids = [c["ContactID"] for c in xero_contacts(xero_sandbox, connection.tenant_id)]
    xero_sandbox.advance_clock(5)
    xero_sandbox.edit_contacts(connection.tenant_id, [{"ContactID": ids[0], "Name": "First"}])
    first = contacts.start_import(connection)
    first.refresh_from_db()
    assert first.state == ContactImport.State.DONE, first.error

    xero_sandbox.advance_clock(5)
    xero_sandbox.edit_contacts(connection.tenant_id, [{"ContactID": ids[3], "Name": "Second"}])
    second = contacts.start_import(connection)

    second.refresh_from_db()
    assert second.state == ContactImport.State.DONE, second.error
    assert second.modified_since is not None
    # If-Modified-Since: the one contact changed since, plus at most those re-read from the
    # overlap second before the previous import's latest change; never all 25.
    assert 1 <= second.imported <= 2, second.imported
    assert second.total == second.imported
    assert crm_contact_of(connection, ids[3]).name == "Second"
    assert crm_contact_of(connection, ids[0]).name == "First"


def test_a_rate_limit_makes_the_import_wait_not_fail(
    xero_sandbox, connect_org, owner, monkeypatch
) -> None:
    connection = connect_org(contacts=30)
    xero_sandbox.add_fault("GET", CONTACTS_PATH, "429", count=100, retry_after=120)

    contacts.start_import(connection)

    job = only_job(connection)
    assert job.state == ContactImport.State.WAITING
    assert "rate limit" in job.error.lower()
    assert job.resume_at is not None
    assert job.resume_at > timezone.now() + timedelta(seconds=60)
    assert not SyncLog.objects.filter(outcome=SyncLog.Outcome.FAILED).exists()
    # Not resumed before Xero's Retry-After...
    assert contacts.resume_imports() == 0
    # ...and resumed by the schedule once it has passed (the limiter that remembered Xero's
    # Retry-After is replaced by a fresh one, as if those 120 seconds had gone by).
    xero_sandbox.clear_faults()
    ContactImport.objects.filter(pk=job.pk).update(resume_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(services, "_limiter", InMemoryLimiter())
    assert contacts.resume_imports() == 1
    job.refresh_from_db()
    assert job.state == ContactImport.State.DONE, job.error
    assert Contact.objects.filter(account=owner.account).count() == 30


def test_the_schedule_imports_changes_for_every_connected_organisation(
    xero_sandbox, connect_org, owner
) -> None:
    first = connect_org(contacts=3)
    second = connect_org(
        contacts=4, account_key=str(MembershipFactory().account_id), name="Second Ltd"
    )

    assert contacts.import_changes_everywhere() == 2

    # With nothing imported before, "changes" means everything.
    for connection, count in ((first, 3), (second, 4)):
        job = only_job(connection)
        assert (job.kind, job.state, job.imported) == (
            ContactImport.Kind.FULL,
            ContactImport.State.DONE,
            count,
        )


# ---- matching at invoice time -----------------------------------------------------------------


@pytest.fixture
def matching(xero_sandbox, connect_org, owner) -> XeroConnection:
    """A connected organisation with no contacts, for matching at invoice time."""
    return connect_org(contacts=0)


def invoice_contact(owner, **fields: Any) -> HostContact:
    """The HostContact the adapter gives for an invoice to a new CRM contact."""
    fields.setdefault("name", "Jane Smith")
    fields.setdefault("email", "jane@example.com")
    crm_contact = ContactFactory(account=owner.account, **fields)
    invoice = InvoiceFactory(account=owner.account, contact=crm_contact)
    return get_adapter().to_invoice(invoice).contact


def match(connection: XeroConnection, host: HostContact) -> str:
    return contacts.xero_contact_id(connection, connect.api_client(connection), host)


def match_logs(connection: XeroConnection) -> list[SyncLog]:
    return list(SyncLog.objects.filter(connection=connection, action="contact_match"))


def in_xero(xero_sandbox, connection: XeroConnection, **fields: Any) -> str:
    (contact_id,) = xero_sandbox.edit_contacts(connection.tenant_id, [fields])
    return contact_id


def test_links_by_contact_number_before_email_and_name(xero_sandbox, matching, owner) -> None:
    host = invoice_contact(owner)
    in_xero(xero_sandbox, matching, Name="Jane Smith", EmailAddress="")
    in_xero(xero_sandbox, matching, Name="Smith & Co", EmailAddress="jane@example.com")
    ours = in_xero(xero_sandbox, matching, Name="J. Smith", ContactNumber=f"CRM-{host.host_id}")

    assert match(matching, host) == ours

    link = ContactLink.objects.get(host_id=host.host_id, host_model="crm.contact")
    assert (link.xero_contact_id, link.matched_by) == (ours, ContactLink.MatchedBy.CONTACT_NUMBER)
    (log,) = match_logs(matching)
    assert log.details["rule"] == "contact_number"
    assert log.details["xero_contact_id"] == ours
    assert "Jane Smith" in log.message
    assert len(xero_contacts(xero_sandbox, matching.tenant_id)) == 3


def test_links_by_email_whatever_its_case(xero_sandbox, matching, owner) -> None:
    host = invoice_contact(owner, email="Jane@Example.com")
    in_xero(xero_sandbox, matching, Name="Jane Smith", EmailAddress="")
    by_email = in_xero(xero_sandbox, matching, Name="Smith & Co", EmailAddress="JANE@example.COM")

    assert match(matching, host) == by_email

    link = ContactLink.objects.get(host_id=host.host_id)
    assert link.matched_by == ContactLink.MatchedBy.EMAIL
    assert [log.details["rule"] for log in match_logs(matching)] == ["email"]


def test_links_by_exact_name_when_xero_has_no_email(xero_sandbox, matching, owner) -> None:
    host = invoice_contact(owner)
    by_name = in_xero(xero_sandbox, matching, Name="Jane Smith", EmailAddress="")

    assert match(matching, host) == by_name

    assert ContactLink.objects.get(host_id=host.host_id).matched_by == ContactLink.MatchedBy.NAME
    assert [log.details["rule"] for log in match_logs(matching)] == ["name"]
    assert len(xero_contacts(xero_sandbox, matching.tenant_id)) == 1


def test_creates_the_contact_when_nothing_matches_and_only_once(
    xero_sandbox, matching, owner
) -> None:
    host = invoice_contact(
        owner,
        first_name="Jane",
        last_name="Smith",
        phone="+64 9 555 0101",
        address_line1="1 Queen Street",
        city="Auckland",
        postal_code="1010",
        country="New Zealand",
    )
    in_xero(xero_sandbox, matching, Name="Archived Jane", ContactNumber=f"CRM-{host.host_id}-x")

    created_id = match(matching, host)

    (created,) = [
        c for c in xero_contacts(xero_sandbox, matching.tenant_id) if c["ContactID"] == created_id
    ]
    assert created["ContactNumber"] == f"CRM-{host.host_id}"
    assert created["Name"] == "Jane Smith"
    assert (created["FirstName"], created["LastName"]) == ("Jane", "Smith")
    assert created["EmailAddress"] == "jane@example.com"
    assert any(p.get("PhoneNumber") == "+64 9 555 0101" for p in created["Phones"])
    (address,) = [a for a in created["Addresses"] if a.get("AddressLine1")]
    assert (address["AddressLine1"], address["City"], address["PostalCode"]) == (
        "1 Queen Street",
        "Auckland",
        "1010",
    )
    link = ContactLink.objects.get(host_id=host.host_id)
    assert (link.xero_contact_id, link.matched_by) == (created_id, ContactLink.MatchedBy.CREATED)
    assert [log.details["rule"] for log in match_logs(matching)] == ["create"]

    calls_before = len(xero_sandbox.requests(matching.tenant_id))
    assert match(matching, host) == created_id
    assert len(xero_sandbox.requests(matching.tenant_id)) == calls_before  # no Xero call
    assert len(match_logs(matching)) == 1
    puts = [r for r in xero_sandbox.requests(matching.tenant_id) if r["method"] == "PUT"]
    assert len(puts) == 1


def test_a_taken_name_with_another_email_is_created_under_a_readable_name(
    xero_sandbox, matching, owner
) -> None:
    host = invoice_contact(owner)
    other = in_xero(
        xero_sandbox, matching, Name="Jane Smith", EmailAddress="other.jane@example.com"
    )

    created_id = match(matching, host)

    assert created_id != other
    by_id = {c["ContactID"]: c for c in xero_contacts(xero_sandbox, matching.tenant_id)}
    assert by_id[created_id]["Name"] == "Jane Smith (jane@example.com)"
    assert by_id[created_id]["ContactNumber"] == f"CRM-{host.host_id}"
    assert by_id[other]["Name"] == "Jane Smith"
    assert by_id[other]["EmailAddress"] == "other.jane@example.com"
    (log,) = match_logs(matching)
    assert log.details["rule"] == "create_renamed"
    assert "other.jane@example.com" in log.message
    assert "Jane Smith (jane@example.com)" in log.message


def test_an_archived_contact_of_the_same_name_does_not_block_the_name(
    xero_sandbox, matching, owner
) -> None:
    host = invoice_contact(owner)
    old = in_xero(
        xero_sandbox,
        matching,
        Name="Jane Smith",
        EmailAddress="jane@example.com",
        ContactStatus="ARCHIVED",
    )

    created_id = match(matching, host)

    assert created_id != old
    by_id = {c["ContactID"]: c for c in xero_contacts(xero_sandbox, matching.tenant_id)}
    assert by_id[created_id]["Name"] == "Jane Smith"
    assert by_id[created_id]["ContactStatus"] == "ACTIVE"


def test_an_imported_contact_uses_its_link_without_asking_xero(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=5)
    contacts.start_import(connection)
    xero_id = xero_contacts(xero_sandbox, connection.tenant_id)[2]["ContactID"]
    crm_contact = crm_contact_of(connection, xero_id)
    invoice = InvoiceFactory(account=owner.account, contact=crm_contact)
    host = get_adapter().to_invoice(invoice).contact
    calls_before = len(xero_sandbox.requests(connection.tenant_id))

    assert match(connection, host) == xero_id
    assert len(xero_sandbox.requests(connection.tenant_id)) == calls_before


def test_a_lost_response_on_create_still_makes_one_contact(
    xero_sandbox, matching, owner, no_backoff
) -> None:
    host = invoice_contact(owner)
    xero_sandbox.add_fault("PUT", CONTACTS_PATH, "lost_response", count=1)

    created_id = match(matching, host)

    ours = [
        c
        for c in xero_contacts(xero_sandbox, matching.tenant_id)
        if c.get("ContactNumber") == f"CRM-{host.host_id}"
    ]
    assert [c["ContactID"] for c in ours] == [created_id]
    assert len(xero_contacts(xero_sandbox, matching.tenant_id)) == 1
    assert ContactLink.objects.get(host_id=host.host_id).xero_contact_id == created_id


def _race(connection: XeroConnection, host: HostContact, workers: int = 2) -> list[Any]:
    """``workers`` threads ask for the Xero contact of ``host`` at the same moment."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = match(XeroConnection.objects.get(pk=connection.pk), host)
        except BaseException as exc:  # reported by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.fixture
def slow_decision(monkeypatch) -> None:
    """Make two workers meet between reading Xero's candidates and creating: without the
    lock both have seen "no match" before either creates. With it the second is still
    waiting for the lock, so the first stops waiting for it after a while and goes on."""
    original = rules.choose
    meeting = threading.Barrier(2, timeout=3)

    def slow(*args: Any, **kwargs: Any):
        with contextlib.suppress(threading.BrokenBarrierError):
            meeting.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(rules, "choose", slow)


def _assert_one_contact_for(xero_sandbox, connection, host, results) -> list[dict]:
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, "\n".join("".join(traceback.format_exception(f)) for f in failures)
    ours = [
        c
        for c in xero_contacts(xero_sandbox, connection.tenant_id)
        if c.get("ContactNumber") == f"CRM-{host.host_id}"
    ]
    assert len(ours) == 1, ours
    assert results == [ours[0]["ContactID"]] * len(results)
    assert ContactLink.objects.filter(host_id=host.host_id).count() == 1
    assert ContactLink.objects.get(host_id=host.host_id).xero_contact_id == ours[0]["ContactID"]
    return ours


@pytest.mark.postgres
@pytest.mark.skipif(
    db_connection.vendor != "postgresql", reason="row locks across workers need PostgreSQL"
)
def test_two_workers_creating_one_new_contact_make_one_contact_postgresql(
    xero_sandbox, matching, owner, slow_decision
) -> None:
    host = invoice_contact(owner)

    results = _race(matching, host)

    _assert_one_contact_for(xero_sandbox, matching, host, results)
    # The second worker waited for the first instead of asking Xero to create it again.
    puts = [r for r in xero_sandbox.requests(matching.tenant_id) if r["method"] == "PUT"]
    assert len(puts) == 1
    assert len(match_logs(matching)) == 1


@pytest.mark.skipif(
    db_connection.vendor == "postgresql", reason="PostgreSQL: see the row-lock test"
)
def test_two_workers_creating_one_new_contact_make_one_contact_by_idempotency_key(
    xero_sandbox, matching, owner, slow_decision
) -> None:
    host = invoice_contact(owner)

    results = _race(matching, host)

    _assert_one_contact_for(xero_sandbox, matching, host, results)
    puts = [r for r in xero_sandbox.requests(matching.tenant_id) if r["method"] == "PUT"]
    assert len({r["idempotency_key"] for r in puts}) == 1


def test_an_invoice_for_a_contact_merged_in_xero_goes_to_the_surviving_contact(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=5)
    contacts.start_import(connection)
    ids = [c["ContactID"] for c in xero_contacts(xero_sandbox, connection.tenant_id)]
    merged, survivor = ids[1], ids[2]
    xero_sandbox.advance_clock(5)
    xero_sandbox.merge_contact(connection.tenant_id, merged, into=survivor)
    contacts.start_import(connection)
    invoice = InvoiceFactory(account=owner.account, contact=crm_contact_of(connection, merged))

    assert match(connection, get_adapter().to_invoice(invoice).contact) == survivor


def test_a_contact_deleted_in_the_crm_is_not_duplicated_by_later_changes_in_xero(
    xero_sandbox, connect_org, owner
) -> None:
    connection = connect_org(contacts=5)
    contacts.start_import(connection)
    xero_id = xero_contacts(xero_sandbox, connection.tenant_id)[1]["ContactID"]
    crm_contact_of(connection, xero_id).delete()  # staff removed it from the CRM
    assert Contact.objects.filter(account=owner.account).count() == 4

    for name in ("Changed Once Ltd", "Changed Twice Ltd"):
        xero_sandbox.advance_clock(5)
        xero_sandbox.edit_contacts(connection.tenant_id, [{"ContactID": xero_id, "Name": name}])
        job = contacts.start_import(connection)
        job.refresh_from_db()
        assert job.state == ContactImport.State.DONE, job.error

    # Whether the import respects the deletion or brings the contact back, it is there at most
    # once, and the link points at a CRM contact that exists.
    crm = Contact.objects.filter(account=owner.account)
    assert crm.count() <= 5, sorted(crm.values_list("name", flat=True))
    link = ContactLink.objects.filter(account_key=connection.account_key, xero_contact_id=xero_id)
    if crm.count() == 5:
        assert Contact.objects.filter(pk=int(link.get().host_id)).exists()
