"""Xero's webhooks: verify the signature over the raw body, keep the events,
answer at once; a task then reads the changed contacts and writes them into the CRM.

CONTACT events refresh the contact the same way the incremental import does (so the schedule
and the webhook agree). INVOICE events bring Xero's side of linked invoices back to the CRM
(payments recorded in Xero, voids, deletions: see readback.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from xero_integration import connect, contacts, outcomes, readback, taskqueue
from xero_integration.adapters import get_adapter
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import ConnectionStatus, WebhookEvent, XeroConnection
from xero_integration.xero.errors import XeroError

logger = logging.getLogger(__name__)

#: Contacts read per call when events name several.
IDS_PER_CALL = 50


def signature_is_valid(key: str, body: bytes, signature: str) -> bool:
    """``x-xero-signature`` is base64(HMAC-SHA256(key, body)); compared in constant time."""
    if not key or not signature:
        return False
    try:
        given = signature.strip().encode("ascii")
    except UnicodeEncodeError:  # base64 is ASCII; anything else cannot be Xero's signature
        return False
    expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given)


def record(body: bytes) -> int:
    """Keep the payload's CONTACT and INVOICE events (repeats dropped); the number kept. The
    task that reads them runs after the commit."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return 0
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        return 0
    rows = [
        WebhookEvent(
            tenant_id=str(event.get("tenantId", ""))[:64],
            category=str(event.get("eventCategory", ""))[:20],
            event_type=str(event.get("eventType", ""))[:20],
            resource_id=str(event.get("resourceId", ""))[:64],
            event_date=str(event.get("eventDateUtc", ""))[:40],
        )
        for event in events
        if isinstance(event, dict) and event.get("eventCategory") in ("CONTACT", "INVOICE")
    ]
    if not rows:
        return 0
    with transaction.atomic():
        WebhookEvent.objects.bulk_create(rows, ignore_conflicts=True)
        taskqueue.dispatch(process)
    return len(rows)


def process() -> int:
    """Act on the events not processed yet: read the changed contacts of each connected
    organisation from Xero and write them into the CRM. Events of an organisation that cannot
    be read now stay for the next run."""
    pending = list(
        WebhookEvent.objects.filter(processed_at=None, given_up_at=None).order_by("pk")[:5000]
    )
    done: list[int] = []
    by_tenant: dict[tuple[str, str], list[WebhookEvent]] = {}
    for event in pending:
        if event.category not in ("CONTACT", "INVOICE"):
            done.append(event.pk)
            continue
        by_tenant.setdefault((event.tenant_id, event.category), []).append(event)
    adapter = get_adapter()
    for (tenant_id, category), events in by_tenant.items():
        connection = XeroConnection.objects.filter(
            tenant_id=tenant_id, status=ConnectionStatus.CONNECTED
        ).first()
        if connection is None:
            done.extend(event.pk for event in events)  # not ours (any more)
            continue
        ids = sorted({event.resource_id for event in events})
        try:
            if category == "CONTACT":
                _refresh(connection, ids, adapter)
            else:
                _refresh_invoices(connection, ids)
        except Exception as exc:  # kept with its error; tried again, then given up
            _failed(events, exc)
            continue
        done.extend(event.pk for event in events)
    WebhookEvent.objects.filter(pk__in=done).update(processed_at=timezone.now())
    return len(done)


def _failed(events: list[WebhookEvent], exc: Exception) -> None:
    """Keep why processing failed on each event; after MAX_ATTEMPTS give it up, loudly."""
    transient = isinstance(exc, XeroError | ConnectionNotReady) and outcomes.classify(exc).passing
    message = f"{exc.__class__.__name__}: {exc}"[:2000]
    now = timezone.now()
    given_up = 0
    for event in events:
        event.attempts += 1
        event.error = message
        if event.attempts >= WebhookEvent.MAX_ATTEMPTS:
            event.given_up_at = now
            given_up += 1
    WebhookEvent.objects.bulk_update(events, ["attempts", "error", "given_up_at"])
    log = logger.warning if transient and not given_up else logger.error
    log(
        "Xero webhook events (%s) could not be processed%s: %s",
        len(events),
        f"; {given_up} given up after {WebhookEvent.MAX_ATTEMPTS} tries" if given_up else "",
        message,
        exc_info=not transient,
    )


def _refresh(connection: XeroConnection, ids: list[str], adapter: Any) -> None:
    client = connect.api_client(connection)
    for start in range(0, len(ids), IDS_PER_CALL):
        chunk = ids[start : start + IDS_PER_CALL]
        reply = client.get("/Contacts", {"IDs": ",".join(chunk), "includeArchived": True}) or {}
        with transaction.atomic():
            contacts.apply_contacts(connection, list(reply.get("Contacts") or []), adapter)


def _refresh_invoices(connection: XeroConnection, ids: list[str]) -> None:
    """Xero's side of the linked invoices the events name (others are not the CRM's)."""
    from xero_integration.models import InvoiceLink

    linked = sorted(
        set(
            InvoiceLink.objects.of(connection)
            .filter(xero_invoice_id__in=ids)
            .values_list("xero_invoice_id", flat=True)
        )
    )
    if linked:
        readback.read_by_ids(connection, connect.api_client(connection), linked)
