"""Contacts between the CRM and Xero: the import (full on connect, then incremental), and
finding or creating the Xero contact of a CRM contact at invoice time, exactly once.

Everything here runs in background tasks; it talks to Xero through ``connect.api_client``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Q
from django.utils import timezone

from xero_integration import app_settings, connect, outcomes, rules, signals, taskqueue
from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.data import HostContact, ImportedContact
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import ContactImport, ContactLink, SyncJob, SyncLog, XeroConnection
from xero_integration.xero.client import MAX_PAGE_SIZE, XeroClient
from xero_integration.xero.errors import (
    XeroError,
    element_errors,
)

logger = logging.getLogger(__name__)

#: An import that has not saved a page for this long is taken to have died and is resumed.
STALLED_AFTER = timedelta(minutes=10)
#: Re-read this much before the last change seen, so that a change made in the same instant as
#: the last read is not missed (re-reading a contact is harmless).
HIGH_WATER_OVERLAP = timedelta(seconds=1)
ACTIVE_IMPORT_STATES = (
    ContactImport.State.QUEUED,
    ContactImport.State.RUNNING,
    ContactImport.State.WAITING,
)


#: How a link was made, by the rule that matched (``rules.contacts.choose``).
MATCHED_BY = {
    "contact_number": ContactLink.MatchedBy.CONTACT_NUMBER,
    "email": ContactLink.MatchedBy.EMAIL,
    "name": ContactLink.MatchedBy.NAME,
}


@dataclass(frozen=True)
class Applied:
    """What one page of Xero contacts did in the CRM."""

    created: int
    linked: int
    archived: int
    high_water: object


class ContactRejected(Exception):
    """Xero refused to create the contact; the message is Xero's."""


# ---- import -------------------------------------------------------------------------------


def start_import(
    connection: XeroConnection, kind: str = ContactImport.Kind.CHANGES
) -> ContactImport:
    """Queue an import for the connection, unless one is already under way (that one is
    returned). An incremental import with nothing before it becomes a full one."""
    with transaction.atomic():
        XeroConnection.objects.select_for_update().filter(pk=connection.pk).first()
        active = connection.contact_imports.filter(state__in=ACTIVE_IMPORT_STATES).first()
        if active is not None:
            return active
        since = None
        if kind == ContactImport.Kind.CHANGES:
            last = (
                connection.contact_imports.filter(state=ContactImport.State.DONE)
                .order_by("-started_at")
                .first()
            )
            if last is None:
                kind = ContactImport.Kind.FULL
            elif last.high_water:
                since = last.high_water - HIGH_WATER_OVERLAP
            else:
                since = last.modified_since or (last.started_at - timedelta(minutes=5))
        job = ContactImport.objects.create(connection=connection, kind=kind, modified_since=since)
        taskqueue.dispatch(run_import, job.pk)
    return job


def _claim(job_id: int) -> bool:
    """Take the import for this worker: queued, waiting, or running but stalled."""
    now = timezone.now()
    claimable = ContactImport.objects.filter(pk=job_id).filter(
        state__in=(ContactImport.State.QUEUED, ContactImport.State.WAITING)
    ) | ContactImport.objects.filter(
        pk=job_id, state=ContactImport.State.RUNNING, updated_at__lt=now - STALLED_AFTER
    )
    return bool(claimable.update(state=ContactImport.State.RUNNING, updated_at=now, error=""))


def _wait(job: ContactImport, reason: str, seconds: float | None) -> None:
    job.state = ContactImport.State.WAITING
    job.error = reason
    job.resume_at = timezone.now() + timedelta(seconds=seconds) if seconds is not None else None
    job.save(update_fields=["state", "error", "resume_at", "updated_at"])


def run_import(job_id: int) -> None:
    """Import pages from ``next_page`` on; each page is one transaction, so a crash resumes at
    the first page not saved. Rate limits and outages make the import wait, never fail."""
    if not _claim(job_id):
        return
    job = ContactImport.objects.select_related("connection").get(pk=job_id)
    connection = job.connection
    if not connection.is_connected:
        _wait(job, "Waiting for the Xero connection.", None)
        return
    client = connect.api_client(connection)
    adapter = get_adapter()
    number = job.next_page
    while True:
        try:
            page = client.contacts_page(
                number,
                MAX_PAGE_SIZE,
                if_modified_since=job.modified_since,
                include_archived=job.kind == ContactImport.Kind.CHANGES,
            )
        except (XeroError, ConnectionNotReady) as exc:
            found = outcomes.classify(exc)
            if found.kind == outcomes.Kind.CHECK_CONNECTION:
                connect.confirm_still_connected(connection)
                _wait(job, "Xero refused access to the organisation.", None)
                return
            if found.kind == outcomes.Kind.OUT_OF_TIME:
                _wait(job, found.message, 0)
                return
            if found.passing:
                _wait(job, found.message, found.seconds)
                return
            job.state = ContactImport.State.FAILED
            job.error = found.message
            job.finished_at = timezone.now()
            job.save()
            _log(connection, "contact_import", SyncLog.Outcome.FAILED, found.message)
            return
        try:
            saved = _save_page(job, number, page.items, page.item_count, adapter)
        except Exception as exc:  # the CRM could not take the page: stop, visibly
            logger.exception("Contact import %s failed on page %s", job.pk, number)
            job.state = ContactImport.State.FAILED
            job.error = f"The CRM could not save page {number}: {exc.__class__.__name__}: {exc}"
            job.finished_at = timezone.now()
            job.save()
            _log(connection, "contact_import", SyncLog.Outcome.FAILED, job.error)
            return
        if not saved:
            return  # another worker took over this import
        if page.is_last:
            break
        number += 1
    job.state = ContactImport.State.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["state", "finished_at", "updated_at"])
    linked = linked_by_import(job)
    _log(
        connection,
        "contact_import",
        SyncLog.Outcome.OK,
        f"{job.get_kind_display()}: {job.imported:,} contacts from Xero, {linked:,} linked to "
        f"contacts the CRM had, {job.created:,} new in the CRM, {job.archived:,} archived or "
        "merged.",
        linked=linked,
        created=job.created,
    )
    signals.contacts_imported.send(
        sender=ContactImport,
        connection=connection,
        imported=job.imported,
        linked=linked,
        created=job.created,
        archived=job.archived,
    )


def _save_page(
    job: ContactImport,
    number: int,
    items: list[dict],
    item_count: int | None,
    adapter: DefaultXeroAdapter,
) -> bool:
    with transaction.atomic():
        current = ContactImport.objects.select_for_update().get(pk=job.pk)
        if current.next_page != number or current.state != ContactImport.State.RUNNING:
            return False
        applied = apply_contacts(job.connection, items, adapter, import_id=job.pk)
        job.next_page = number + 1
        job.imported += len(items)
        job.created += applied.created
        job.archived += applied.archived
        if item_count is not None:
            job.total = item_count
        high_water = applied.high_water
        if high_water and (job.high_water is None or high_water > job.high_water):
            job.high_water = high_water
        job.save()
    return True


def apply_contacts(
    connection: XeroConnection,
    items: list[dict],
    adapter: DefaultXeroAdapter,
    import_id: int | None = None,
) -> Applied:
    """Write one page of Xero contacts into the CRM and link them, with a fixed number of
    queries whatever the page's size: contacts the CRM has already are linked, the others
    created; invoices refused for an archived contact run again when the page shows it merged
    or restored."""
    account_key = connection.account_key
    host_model = adapter.contact_model()
    ids = [str(item.get("ContactID")) for item in items if item.get("ContactID")]
    links: dict[str, list[ContactLink]] = {}
    for link in ContactLink.objects.of(connection).filter(xero_contact_id__in=ids):
        links.setdefault(link.xero_contact_id or "", []).append(link)
    incoming = [rules.contacts.imported_contact(item) for item in items if item.get("ContactID")]
    active = [contact for contact in incoming if not contact.archived]
    linked = {
        xero_id: group[0].host_id
        for xero_id, group in links.items()
        if group[0].host_model == host_model and group[0].status != ContactLink.Status.MERGED
    }
    unlinked = [contact for contact in active if contact.xero_contact_id not in links]
    found = existing_contacts(connection, adapter, unlinked, items)
    linked.update({xero_id: host_id for xero_id, (host_id, _rule) in found.items()})
    written = adapter.upsert_contacts(account_key, active, linked) if active else {}
    by_id = {str(item.get("ContactID")): item for item in items}
    new_links, changed, archived, freed = [], [], 0, 0
    high_water = None
    for xero_id, item in by_id.items():
        updated = rules.contacts.updated_at(item)
        if updated and (high_water is None or updated > high_water):
            high_water = updated
        merged = rules.contacts.merged_into(item)
        status = ContactLink.Status.ACTIVE
        if merged:
            status = ContactLink.Status.MERGED
        elif item.get("ContactStatus") not in (None, "ACTIVE"):
            status = ContactLink.Status.ARCHIVED
        group = links.get(xero_id)
        if not group:
            if xero_id in written and status == ContactLink.Status.ACTIVE:
                new_links.append(
                    ContactLink(
                        account_key=account_key,
                        tenant_id=connection.tenant_id,
                        host_model=host_model,
                        host_id=written[xero_id],
                        xero_contact_id=xero_id,
                        xero_name=str(item.get("Name") or "")[:255],
                        matched_by=MATCHED_BY.get(
                            found.get(xero_id, ("", ""))[1], ContactLink.MatchedBy.IMPORTED
                        ),
                        xero_updated_at=updated,
                    )
                )
            continue
        if status != ContactLink.Status.ACTIVE and group[0].status == ContactLink.Status.ACTIVE:
            archived += 1
        if (status == ContactLink.Status.MERGED and group[0].merged_into != merged) or (
            status == ContactLink.Status.ACTIVE and group[0].status != ContactLink.Status.ACTIVE
        ):
            # Merged into another contact, or restored: invoices refused for it can go now.
            freed += 1
        followed = None
        if written.get(xero_id) and written[xero_id] != group[0].host_id:
            # The CRM contact was deleted and the adapter made it again: follow it.
            followed = group[0]
            group[0].host_id = written[xero_id]
        for link in group:
            now = (status, merged, str(item.get("Name") or link.xero_name)[:255], updated)
            if link is not followed and now == (
                link.status,
                link.merged_into,
                link.xero_name,
                link.xero_updated_at,
            ):
                continue  # unchanged: a re-import writes nothing for it
            link.status, link.merged_into, link.xero_name, link.xero_updated_at = now
            link.updated_at = timezone.now()
            changed.append(link)
    if new_links:
        ContactLink.objects.bulk_create(new_links, ignore_conflicts=True)
    if changed:
        ContactLink.objects.bulk_update(
            changed,
            ["host_id", "status", "merged_into", "xero_name", "xero_updated_at", "updated_at"],
        )
    if freed:
        rerun_jobs_refused_for_archived_contacts(account_key)
    joined = [link for link in new_links if link.xero_contact_id in found]
    if joined:
        _log_linked(connection, joined, import_id)
    return Applied(len(new_links) - len(joined), len(joined), archived, high_water)


def existing_contacts(
    connection: XeroConnection,
    adapter: DefaultXeroAdapter,
    unlinked: list[ImportedContact],
    items: list[dict],
) -> dict[str, tuple[str, str]]:
    """The Xero contacts of a page that are contacts the CRM has already, found among the
    adapter's ``contact_candidates`` by the rules an invoice's contact is matched with:
    ``{ContactID: (host id, rule)}``. A CRM contact linked in this organisation already is
    never linked a second time."""
    if not unlinked:
        return {}
    host_model = adapter.contact_model()
    prefix = app_settings.CONTACT_NUMBER_PREFIX
    lookup = rules.contacts.contact_lookup(unlinked, prefix)
    candidates = {
        candidate.host_id: candidate
        for candidate in adapter.contact_candidates(connection.account_key, lookup)
        if candidate.host_model == host_model
    }
    if not candidates:
        return {}
    taken = set(
        ContactLink.objects.of(connection)
        .filter(host_model=host_model, host_id__in=list(candidates))
        .values_list("host_id", flat=True)
    )
    wanted = {contact.xero_contact_id for contact in unlinked}
    xero_contacts = [item for item in items if str(item.get("ContactID")) in wanted]
    free = [candidate for host_id, candidate in candidates.items() if host_id not in taken]
    return {
        str(match.contact["ContactID"]): (host.host_id, match.rule)
        for host, match in rules.contacts.pair_imported(free, xero_contacts, prefix)
        if match.contact is not None
    }


def _log_linked(
    connection: XeroConnection, links: list[ContactLink], import_id: int | None
) -> None:
    """One entry for the contacts of a page linked to contacts the CRM had: which and why."""
    _log(
        connection,
        "contact_linked",
        SyncLog.Outcome.INFO,
        f"{len(links):,} Xero contact(s) linked to contacts the CRM already had (by contact "
        "number, email or name), instead of creating them again.",
        contact_import=import_id,
        linked=len(links),
        links=[
            {
                "host_id": link.host_id,
                "xero_contact_id": link.xero_contact_id,
                "xero_name": link.xero_name,
                "matched_by": link.matched_by,
            }
            for link in links
        ],
    )


def linked_by_import(job: ContactImport) -> int:
    """How many Xero contacts an import linked to contacts the CRM had (its pages' log)."""
    entries = SyncLog.objects.filter(
        connection=job.connection, action="contact_linked", details__contact_import=job.pk
    ).values_list("details", flat=True)
    return sum(int(details.get("linked", 0)) for details in entries)


def resume_imports() -> int:
    """Re-queue imports that wait for a time now past, or whose worker died."""
    now = timezone.now()
    due = list(
        ContactImport.objects.filter(
            state=ContactImport.State.WAITING,
            resume_at__lte=now,
            connection__status="connected",
        ).values_list("pk", flat=True)
    )
    due += list(
        ContactImport.objects.filter(
            state=ContactImport.State.WAITING,
            resume_at__isnull=True,
            connection__status="connected",
        ).values_list("pk", flat=True)
    )
    due += list(
        ContactImport.objects.filter(
            state__in=(ContactImport.State.RUNNING, ContactImport.State.QUEUED),
            updated_at__lt=now - STALLED_AFTER,
        ).values_list("pk", flat=True)
    )
    for job_id in due:
        if ContactImport.objects.filter(pk=job_id, state=ContactImport.State.QUEUED).exists():
            ContactImport.objects.filter(pk=job_id).update(updated_at=now)
        taskqueue.dispatch(run_import, job_id)
    return len(due)


def import_changes_everywhere() -> int:
    """The schedule's work: an incremental import for every connected organisation."""
    count = 0
    for connection in XeroConnection.objects.filter(status="connected"):
        start_import(connection, ContactImport.Kind.CHANGES)
        count += 1
    return count


def _log(connection: XeroConnection, action: str, outcome: str, message: str, **details) -> None:
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action=action,
        outcome=outcome,
        message=message,
        details=details,
    )


# ---- matching at invoice time ---------------------------------------------------------------

#: Xero's words when a document's contact is archived (merged contacts are archived too).
ARCHIVED_CONTACT = "has been archived"
#: Xero's words when a new contact's name belongs to another active contact.
NAME_TAKEN = "is already assigned to another contact"
#: How many of our contact numbers one lookup asks about (one ``where`` of ORs; short URLs).
NUMBERS_PER_CALL = 25
CREATES_PER_CALL = 50
#: A ``searchTerm`` answer is read this many contacts to a page, at most ``SEARCH_PAGES`` pages
#: (a very short name can be part of thousands of others).
SEARCH_PAGE_SIZE = 200
SEARCH_PAGES = 3


@dataclass
class _Settling:
    """One CRM contact on its way to its Xero contact: what Xero showed of it, the decision,
    and the contact linked or created (or why none)."""

    host: HostContact
    candidates: list[dict] = field(default_factory=list)
    match: rules.contacts.Match | None = None
    contact: dict | None = None
    error: str = ""


def _claim_link(connection: XeroConnection, host: HostContact) -> ContactLink:
    # Insert first: a transaction that starts by reading and then writes can be refused at once
    # by SQLite when another one does the same; one that starts with the write waits its turn.
    try:
        with transaction.atomic():
            return ContactLink.objects.create(
                account_key=connection.account_key,
                tenant_id=connection.tenant_id,
                host_model=host.host_model,
                host_id=host.host_id,
            )
    except IntegrityError:
        return ContactLink.objects.of(connection).get(
            host_model=host.host_model, host_id=host.host_id
        )


def _creation_key(connection: XeroConnection, host: HostContact, payload: dict) -> str:
    """The same CRM contact and payload always give the same Idempotency-Key, so two workers
    (or a retry after a lost response) creating it at once get one contact from Xero."""
    digest = hashlib.sha256(
        json.dumps(
            [connection.tenant_id, host.host_model, host.host_id, payload], sort_keys=True
        ).encode()
    ).hexdigest()
    return f"contact-{digest[:48]}"


def xero_contact_id(connection: XeroConnection, client: XeroClient, host: HostContact) -> str:
    """The Xero ContactID for a CRM contact: its link, else a match, else a new contact.

    On PostgreSQL the link row is locked while Xero is asked, so concurrent workers wait for the
    first; everywhere the creation carries a deterministic Idempotency-Key and a lookup by our
    ContactNumber comes first, so a retried or concurrent creation finds the contact instead of
    making another.
    """
    existing = (
        ContactLink.objects.of(connection)
        .filter(host_model=host.host_model, host_id=host.host_id)
        .exclude(xero_contact_id=None)
        .first()
    )
    if existing is not None:
        return existing.merged_into or existing.xero_contact_id or ""
    link = _claim_link(connection, host)
    locking = db_connection.features.has_select_for_update
    # SQLite has no row locks; a transaction spanning the calls would only hold its database
    # lock longer, so there the Idempotency-Key and the ContactNumber lookup do the work.
    with transaction.atomic() if locking else nullcontext():
        if locking:
            link = ContactLink.objects.select_for_update().get(pk=link.pk)
        else:
            link.refresh_from_db()
        if link.xero_contact_id:
            return link.merged_into or link.xero_contact_id
        try:
            (settled,) = _settle(connection, client, [host])
        except (XeroError, ConnectionNotReady) as exc:
            failure = exc  # raised once the transaction has kept the calls' log entries
        else:
            if settled.contact is None:
                raise ContactRejected(
                    settled.error or "Xero returned no contact for the one created."
                )
            _save_link(connection, link, settled)
            return settled.contact["ContactID"]
    raise failure


def xero_contact_ids(
    connection: XeroConnection, client: XeroClient, hosts: list[HostContact]
) -> dict[str, str]:
    """The Xero ContactIDs of many CRM contacts at once, for a batch of invoices: linked ones
    from their links, the others looked up by contact number many to a call, then by email (see
    ``_settle``), and the new ones created in one call.

    Contacts it cannot settle (a name twice in the batch, or one Xero refused) are left out;
    their invoices resolve them one by one with ``xero_contact_id``.
    """
    by_id = {host.host_id: host for host in hosts}
    result: dict[str, str] = {}
    for link in (
        ContactLink.objects.of(connection)
        .filter(host_id__in=list(by_id))
        .exclude(xero_contact_id=None)
    ):
        if by_id.get(link.host_id) and by_id[link.host_id].host_model == link.host_model:
            result[link.host_id] = link.merged_into or link.xero_contact_id or ""
    names: dict[str, int] = {}
    for host in by_id.values():
        names[host.name.strip().lower()] = names.get(host.name.strip().lower(), 0) + 1
    pending = [
        host
        for host_id, host in by_id.items()
        if host_id not in result and names[host.name.strip().lower()] == 1
    ]
    if not pending:
        return result
    locking = db_connection.features.has_select_for_update
    claims = [_claim_link(connection, host) for host in pending]
    with transaction.atomic() if locking else nullcontext():
        if locking:
            claims = list(
                ContactLink.objects.select_for_update()
                .filter(pk__in=[c.pk for c in claims])
                .order_by("pk")
            )
        else:
            claims = list(ContactLink.objects.filter(pk__in=[c.pk for c in claims]))
        links = {link.host_id: link for link in claims}
        for host_id, link in links.items():
            if link.xero_contact_id:
                result[host_id] = link.merged_into or link.xero_contact_id
        pending = [host for host in pending if host.host_id not in result]
        if not pending:
            return result
        try:
            settling = _settle(connection, client, pending)
        except (XeroError, ConnectionNotReady) as exc:
            failure = exc  # raised once the transaction has kept the calls' log entries
        else:
            for settled in settling:
                if settled.contact is not None:
                    _save_link(connection, links[settled.host.host_id], settled)
                    result[settled.host.host_id] = settled.contact["ContactID"]
            return result
    raise failure


def _settle(
    connection: XeroConnection, client: XeroClient, hosts: list[HostContact]
) -> list[_Settling]:
    """Find or create the Xero contacts of CRM contacts in as few calls as the rules allow.

    1. Our ContactNumbers, many to a call (our key: the only text that goes into a ``where``).
    2. For those not found, one ``searchTerm`` each by email (an email match beats a name); or,
       when the organisation is small enough that this costs fewer calls, every contact it has.
    3. Create the rest in one call under their own name. A name is not looked up beforehand:
       Xero refuses a taken one, and only then is it searched for, to link the contact by
       name or create it under a distinct name in a second call.
    """
    prefix = app_settings.CONTACT_NUMBER_PREFIX
    adapter = get_adapter()
    work = [_Settling(host) for host in hosts]
    found = _by_contact_numbers(
        client, [rules.contacts.contact_number(item.host, prefix) for item in work]
    )
    for item in work:
        number = rules.contacts.contact_number(item.host, prefix)
        item.candidates = [c for c in found if str(c.get("ContactNumber") or "") == number]
        item.match = rules.contacts.choose(
            item.host, item.candidates, prefix, _distinct_name(adapter, item.host, prefix)
        )
    unsettled = [item for item in work if item.match.contact is None]
    searches = sum(1 for item in unsettled if rules.contacts.email_for_xero(item.host.email))
    everyone = _every_contact(connection, client, searches) if searches > 1 else None
    for item in unsettled:
        email = rules.contacts.email_for_xero(item.host.email)
        if everyone is not None:
            item.candidates += _as_searched(item.host, everyone)
        elif email:
            item.candidates += _search(client, email)
        else:
            continue
        item.match = rules.contacts.choose(
            item.host, item.candidates, prefix, _distinct_name(adapter, item.host, prefix)
        )
    _create(connection, client, [item for item in work if item.match.contact is None])
    refused = [
        item
        for item in work
        if item.contact is None
        and item.match.contact is None
        and item.match.rule == "create"
        and NAME_TAKEN in item.error
    ]
    for item in refused:
        item.candidates += _search(client, item.host.name.strip())
        item.match = rules.contacts.choose(
            item.host,
            item.candidates,
            prefix,
            _distinct_name(adapter, item.host, prefix),
            name_taken=True,
        )
        item.error = ""
    _create(connection, client, [item for item in refused if item.match.contact is None])
    for item in work:
        if item.match.contact is not None:
            item.contact = item.match.contact
    return work


def _distinct_name(adapter: DefaultXeroAdapter, host: HostContact, prefix: str) -> str:
    return adapter.distinct_contact_name(host, rules.contacts.contact_number(host, prefix))


def _by_contact_numbers(client: XeroClient, numbers: list[str]) -> list[dict]:
    """The ACTIVE Xero contacts holding any of these contact numbers."""
    wanted = list(dict.fromkeys(numbers))
    safe = [number for number in wanted if rules.contacts.where_safe(number)]
    found: list[dict] = []
    for start in range(0, len(safe), NUMBERS_PER_CALL):
        where = rules.contacts.contact_numbers_filter(safe[start : start + NUMBERS_PER_CALL])
        found += list((client.get("/Contacts", {"where": where}) or {}).get("Contacts") or [])
    for number in wanted:
        if number not in safe:  # a prefix with characters a filter cannot hold
            found += _search(client, number)
    return found


def _every_contact(
    connection: XeroConnection, client: XeroClient, searches: int
) -> list[tuple[dict, str, str]] | None:
    """Every ACTIVE contact of the organisation with its lower-case name and email, when
    reading them all takes fewer calls than ``searches``; None when it would not (judged by the
    contacts linked so far, and given up when the pages outnumber the searches after all)."""
    known = ContactLink.objects.of(connection).exclude(xero_contact_id=None).count()
    if known // MAX_PAGE_SIZE + 1 >= searches:
        return None
    found: list[tuple[dict, str, str]] = []
    for page in client.paginate("/Contacts", None, MAX_PAGE_SIZE):
        found += [
            (
                contact,
                str(contact.get("Name") or "").strip().lower(),
                str(contact.get("EmailAddress") or "").strip().lower(),
            )
            for contact in page.items
        ]
        if not page.is_last and page.number + 1 >= searches:
            return None
    return found


def _as_searched(host: HostContact, everyone: list[tuple[dict, str, str]]) -> list[dict]:
    """Of every contact (with its lower-case name and email), those a search by the CRM
    contact's email or name would have found."""
    email = rules.contacts.email_for_xero(host.email).lower()
    name = host.name.strip().lower()
    return [
        contact
        for contact, xero_name, xero_email in everyone
        if (email and xero_email == email) or (name and name in xero_name)
    ]


def _search(client: XeroClient, term: str) -> list[dict]:
    """The ACTIVE contacts whose name, first or last name, contact number or email holds
    ``term`` (Xero's ``searchTerm``, case-insensitive; a plain parameter, never a filter)."""
    found: list[dict] = []
    if not term.strip():
        return found
    pages = client.paginate("/Contacts", {"searchTerm": term.strip()}, SEARCH_PAGE_SIZE)
    for page in pages:
        found += page.items
        if page.number >= SEARCH_PAGES:
            break
    return found


def _create(connection: XeroConnection, client: XeroClient, items: list[_Settling]) -> None:
    """Create the contacts decided on, up to 50 a call (as Xero asks of batches); each item
    gets its contact or Xero's refusal."""
    for start in range(0, len(items), CREATES_PER_CALL):
        _create_together(connection, client, items[start : start + CREATES_PER_CALL])


def _create_together(
    connection: XeroConnection, client: XeroClient, items: list[_Settling]
) -> None:
    if not items:
        return
    prefix = app_settings.CONTACT_NUMBER_PREFIX
    payloads = [
        rules.contacts.contact_payload(item.host, prefix, item.match.name) for item in items
    ]
    if len(items) == 1:
        key = _creation_key(connection, items[0].host, payloads[0])
    else:
        key = _creation_key(
            connection,
            HostContact("batch", ",".join(item.host.host_id for item in items), ""),
            {"contacts": payloads},
        )
    results = client.create_contacts(payloads, idempotency_key=key, summarize_errors=False)
    for index, item in enumerate(items):
        answer = results[index] if index < len(results) else {}
        errors = element_errors(answer) if answer else []
        if errors:
            item.error = "; ".join(str(error) for error in errors)
        elif answer.get("ContactID"):
            item.contact = answer
        else:
            item.error = "Xero returned no contact for the one created."


def _save_link(connection: XeroConnection, link: ContactLink, settled: _Settling) -> None:
    """Link the CRM contact to its Xero contact and log how it was found, and what of the CRM's
    data Xero could not take."""
    contact, match, host = settled.contact, settled.match, settled.host
    assert contact is not None and match is not None
    link.xero_contact_id = contact["ContactID"]
    link.xero_name = str(contact.get("Name") or host.name)[:255]
    link.status = ContactLink.Status.ACTIVE
    link.merged_into = ""
    link.matched_by = MATCHED_BY.get(match.rule, ContactLink.MatchedBy.CREATED)
    link.save()
    _log(
        connection,
        "contact_match",
        SyncLog.Outcome.INFO,
        f"{host.name}: {match.reason}",
        host_id=host.host_id,
        xero_contact_id=contact["ContactID"],
        rule=match.rule,
    )
    if (
        match.contact is None
        and host.email.strip()
        and not rules.contacts.email_for_xero(host.email)
    ):
        _log(
            connection,
            "contact_email",
            SyncLog.Outcome.INFO,
            f"{host.name}: the email address {host.email.strip()} was left off the new Xero "
            "contact, as Xero would refuse it (Xero takes only plain ASCII addresses such as "
            "name@example.com). Add an address Xero accepts to the contact in Xero for Xero "
            "to email it invoices.",
            host_id=host.host_id,
            xero_contact_id=contact["ContactID"],
            email=host.email.strip(),
        )


# ---- merged and archived contacts -----------------------------------------------------------


def follow_merge(connection: XeroConnection, client: XeroClient, contact_id: str) -> str:
    """Xero refused a document because its contact is archived: read that contact (one call)
    and, when it was merged into another, send the CRM contacts linked to it there from now on.

    Returns the ContactID it was merged into; "" when it is archived without a merge (Xero's
    refusal stands until someone restores or merges it in Xero, which an import then learns).
    """
    if not contact_id:
        return ""
    contact = client.contact(contact_id) or {}
    survivor = rules.contacts.merged_into(contact)
    if survivor and survivor != contact_id:
        changed = (
            ContactLink.objects.of(connection)
            .filter(Q(xero_contact_id=contact_id) | Q(merged_into=contact_id))
            .update(
                status=ContactLink.Status.MERGED, merged_into=survivor, updated_at=timezone.now()
            )
        )
        _log(
            connection,
            "contact_merged",
            SyncLog.Outcome.INFO,
            f"{contact.get('Name') or contact_id}: merged in Xero into contact {survivor}; "
            f"the invoices of the {changed} CRM contact(s) linked to it go there now.",
            xero_contact_id=contact_id,
            merged_into=survivor,
        )
        return survivor
    if contact and not rules.contacts.is_active(contact):
        ContactLink.objects.of(connection).filter(xero_contact_id=contact_id).update(
            status=ContactLink.Status.ARCHIVED, merged_into="", updated_at=timezone.now()
        )
    return ""


def rerun_jobs_refused_for_archived_contacts(account_key: str) -> int:
    """Invoice jobs that Xero refused, or that wait, because their contact was archived run
    again now: a contact of the account was just learnt to be merged or restored in Xero.
    Their writes get new Idempotency-Keys so that Xero does not replay the refusal."""
    jobs = SyncJob.objects.filter(
        account_key=account_key,
        state__in=(SyncJob.State.FAILED, SyncJob.State.WAITING),
        error__contains=ARCHIVED_CONTACT,
    )
    keys = jobs.retry()
    if keys:
        signals.sync_jobs_due.send(sender=SyncJob, account_key=account_key, jobs=len(keys))
    return len(keys)
