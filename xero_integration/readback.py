"""Xero's side of each linked invoice, back in the CRM.

People work in Xero too: they record payments from the bank feed, void invoices, delete
drafts. INVOICE webhook events, a periodic ``If-Modified-Since`` read of invoices and payments
(the safety net for lost webhooks), and a daily drift check all end here: each linked invoice's
link learns Xero's status and amounts; payments recorded in Xero are handed to the host through
the adapter (and removed when they are removed in Xero); and what still differs once Xero's own
changes are in the CRM is flagged as drift. Nothing written here is pushed back to Xero.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from xero_integration import app_settings, connect, outbox, rules
from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.data import RecordedPayment
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.invoices import consistent_read
from xero_integration.models import InvoiceLink, PaymentLink, SyncJob, SyncLog, XeroConnection
from xero_integration.rules import plan
from xero_integration.xero.client import XeroClient
from xero_integration.xero.errors import XeroError
from xero_integration.xero.wire import parse_datetime

logger = logging.getLogger(__name__)

#: Invoices asked for by id in one call (Xero's ``IDs`` filter is bounded by URL length).
IDS_PER_CALL = 50
#: Re-read this much before the last change seen (a change in the same instant is not missed).
HIGH_WATER_OVERLAP = timedelta(seconds=1)


def apply_invoices(
    connection: XeroConnection,
    xero_invoices: Iterable[dict[str, Any]],
    adapter: DefaultXeroAdapter | None = None,
    read_started: datetime | None = None,
) -> int:
    """Take Xero's copies of invoices, read from ``read_started`` on: those linked to a CRM
    invoice update it. Returns how many were linked."""
    adapter = adapter or get_adapter()
    by_id = {
        str(invoice.get("InvoiceID")): invoice
        for invoice in xero_invoices
        if invoice.get("InvoiceID") and invoice.get("Type", "ACCREC") == "ACCREC"
    }
    if not by_id:
        return 0
    links = list(InvoiceLink.objects.of(connection).filter(xero_invoice_id__in=list(by_id)))
    for link in links:
        try:
            apply_invoice(connection, link, by_id[link.xero_invoice_id], adapter, read_started)
        except Exception:  # one invoice the CRM cannot take must not stop the others
            logger.exception("Could not take Xero's side of invoice %s", link.invoice_number)
            _log(
                connection,
                link,
                SyncLog.Outcome.FAILED,
                f"Invoice {link.invoice_number}: the CRM could not take Xero's changes.",
            )
    return len(links)


def apply_invoice(
    connection: XeroConnection,
    link: InvoiceLink,
    xero_invoice: dict[str, Any],
    adapter: DefaultXeroAdapter,
    read_started: datetime | None = None,
) -> None:
    """One invoice: Xero's status and amounts on its link, payments made or removed in Xero
    into the CRM, then the drift check."""
    with outbox.changes_from_xero(), transaction.atomic():
        link = InvoiceLink.objects.select_for_update().get(pk=link.pk)
        before = link.xero_status
        link.xero_status = str(xero_invoice.get("Status") or link.xero_status)
        for name, key in (
            ("xero_total", "Total"),
            ("xero_amount_due", "AmountDue"),
            ("xero_amount_paid", "AmountPaid"),
        ):
            if xero_invoice.get(key) is not None:
                setattr(link, name, rules.invoices.cents(Decimal(str(xero_invoice[key]))))
        updated = xero_invoice.get("UpdatedDateUTC")
        if updated:
            link.xero_updated_at = parse_datetime(updated)
        link.read_at = timezone.now()
        link.total_mismatch = bool(
            link.crm_total is not None
            and link.xero_total is not None
            and link.crm_total != link.xero_total
        )
        instance = adapter.load_invoice(link.host_model, link.host_id)
        added, removed = _payments_from_xero(
            connection, link, xero_invoice, adapter, instance, read_started
        )
        link.save()
        if link.removed_in_xero and before != link.xero_status:
            _log(
                connection,
                link,
                SyncLog.Outcome.INFO,
                f"Invoice {link.invoice_number} was {link.xero_status.lower()} in Xero.",
            )
        if added or removed:
            _log(
                connection,
                link,
                SyncLog.Outcome.INFO,
                f"Invoice {link.invoice_number}: {added} payment(s) recorded and {removed} "
                "removed in Xero, now in the CRM.",
            )
    if instance is not None:
        update_drift(link, instance, adapter)


def _payments_from_xero(
    connection: XeroConnection,
    link: InvoiceLink,
    xero_invoice: dict[str, Any],
    adapter: DefaultXeroAdapter,
    instance: Any,
    read_started: datetime | None,
) -> tuple[int, int]:
    """Payments someone recorded or removed in Xero, handed to the host. Ours are left alone,
    as are payments whose create of ours is still unanswered (the job settles those), and a
    payment linked after the read began is not judged by a copy older than it."""
    if "Payments" not in xero_invoice:
        return 0, 0
    in_xero = [p for p in plan.xero_payments(xero_invoice) if p.active]
    active_ids = {p.payment_id for p in in_xero}
    records = list(
        PaymentLink.objects.of(connection)
        .filter(invoice_host_id=link.host_id)
        .exclude(state=PaymentLink.State.DELETED)
    )
    known = {r.xero_payment_id for r in records if r.xero_payment_id}
    sending = [r for r in records if r.state == PaymentLink.State.SENDING]
    new = [
        p
        for p in in_xero
        if p.payment_id not in known
        and not any(plan.matches_sent(_as_record(r), p) for r in sending)
    ]
    gone = [
        r
        for r in records
        if r.state == PaymentLink.State.LINKED
        and r.xero_payment_id not in active_ids
        and (read_started is None or r.updated_at < read_started)
    ]
    added = removed = 0
    if new and instance is not None:
        recorded = adapter.record_xero_payments(
            instance,
            [
                RecordedPayment(
                    xero_payment_id=p.payment_id,
                    amount=p.amount,
                    date=p.date or timezone.localdate(),
                    reference=p.reference,
                )
                for p in new
            ],
        )
        host_model = adapter.payment_model_label()
        for payment in new:
            host_id = recorded.get(payment.payment_id)
            if not host_id:
                continue
            PaymentLink.objects.create(
                account_key=connection.account_key,
                tenant_id=connection.tenant_id,
                invoice_host_id=link.host_id,
                host_model=host_model,
                host_id=str(host_id),
                xero_payment_id=payment.payment_id,
                state=PaymentLink.State.LINKED,
                origin=PaymentLink.Origin.XERO,
                amount=payment.amount,
                date=payment.date or timezone.localdate(),
                reference=payment.reference[:255],
                account_id=payment.account_id,
            )
            added += 1
    mirrored = [r for r in gone if r.origin == PaymentLink.Origin.XERO]
    if mirrored and instance is not None:
        adapter.remove_xero_payments(instance, [r.host_id for r in mirrored])
        removed = len(mirrored)
    for record in gone:
        # Gone from Xero: removed there by someone (ours too; the difference shows as drift).
        record.state = PaymentLink.State.DELETED
        record.save(update_fields=["state", "updated_at"])
    return added, removed


def _as_record(link: PaymentLink) -> plan.PaymentRecord:
    return plan.PaymentRecord(
        host_model=link.host_model,
        host_id=link.host_id,
        xero_payment_id=link.xero_payment_id,
        state=link.state,
        origin=link.origin,
        amount=link.amount,
        date=link.date,
        reference=link.reference,
        account_id=link.account_id,
    )


def update_drift(link: InvoiceLink, instance: Any, adapter: DefaultXeroAdapter) -> None:
    """Compare Xero's figures with the CRM's (the totals, and drift) once nothing waits to be
    sent; a job still to run explains any difference."""
    job = SyncJob.objects.filter(
        account_key=link.account_key, host_model=link.host_model, host_id=link.host_id
    ).first()
    if job is not None and (job.state != SyncJob.State.DONE or job.change_seq != job.done_seq):
        return
    if link.xero_amount_paid is None and link.xero_total is None:
        return
    with consistent_read():
        if not adapter.should_sync(instance):
            return
        invoice = adapter.to_invoice(instance)
    # The total comparison too, from this one consistent read of the CRM's side.
    crm_total = rules.invoices.cents(invoice.total)
    mismatch = link.xero_total is not None and crm_total != link.xero_total
    if (crm_total, mismatch) != (link.crm_total, link.total_mismatch):
        InvoiceLink.objects.filter(pk=link.pk).update(crm_total=crm_total, total_mismatch=mismatch)
    detail = plan.drift(invoice, link.xero_status, link.xero_total, link.xero_amount_paid)
    if link.removed_in_xero and invoice.status.value != "void":
        detail = ""  # shown as voided or deleted in Xero, not as drift
    if detail != link.drift_detail:
        InvoiceLink.objects.filter(pk=link.pk).update(drift=bool(detail), drift_detail=detail)
        if detail:
            _log(
                None,
                link,
                SyncLog.Outcome.FAILED,
                f"Invoice {link.invoice_number}: Xero and the CRM differ ({detail}).",
            )


# ---- reading Xero ----------------------------------------------------------------------------


def read_by_ids(connection: XeroConnection, client: XeroClient, ids: list[str]) -> int:
    """Read invoices by InvoiceID (50 a call) and take Xero's side of them."""
    adapter = get_adapter()
    linked = 0
    for start in range(0, len(ids), IDS_PER_CALL):
        chunk = ids[start : start + IDS_PER_CALL]
        read_started = timezone.now()
        reply = client.get("/Invoices", {"IDs": ",".join(chunk), "unitdp": 4}) or {}
        linked += apply_invoices(
            connection, list(reply.get("Invoices") or []), adapter, read_started
        )
    return linked


def read_changes(connection: XeroConnection) -> int:
    """Invoices and payments changed in Xero since the last read (``If-Modified-Since``),
    applied to the linked invoices; the safety net for lost webhooks."""
    client = connect.api_client(connection)
    since = connection.xero_changes_read_until or connection.connected_at
    high_water = since
    adapter = get_adapter()
    seen: set[str] = set()
    linked = 0
    read_started = timezone.now()
    for page in client.paginate(
        "/Invoices", {"unitdp": 4}, key="Invoices", if_modified_since=since
    ):
        invoices = list(page.items)
        seen.update(str(i.get("InvoiceID")) for i in invoices)
        high_water = _later(high_water, invoices)
        linked += apply_invoices(connection, invoices, adapter, read_started)
        read_started = timezone.now()
    paid: set[str] = set()
    for page in client.paginate("/Payments", key="Payments", if_modified_since=since):
        high_water = _later(high_water, page.items)
        for payment in page.items:
            invoice_id = str((payment.get("Invoice") or {}).get("InvoiceID") or "")
            if invoice_id and invoice_id not in seen:
                paid.add(invoice_id)
    if paid:
        ours = set(
            InvoiceLink.objects.of(connection)
            .filter(xero_invoice_id__in=list(paid))
            .values_list("xero_invoice_id", flat=True)
        )
        linked += read_by_ids(connection, client, sorted(ours))
    if high_water and high_water != since:
        XeroConnection.objects.filter(pk=connection.pk).update(
            xero_changes_read_until=high_water - HIGH_WATER_OVERLAP
        )
    return linked


def _later(current: Any, items: Iterable[dict[str, Any]]) -> Any:
    for item in items:
        moment = parse_datetime(item.get("UpdatedDateUTC")) if item.get("UpdatedDateUTC") else None
        if moment and (current is None or moment > current):
            current = moment
    return current


def check_recent(connection: XeroConnection, days: int | None = None) -> int:
    """Read every invoice pushed in the last ``days`` (XERO_DRIFT_DAYS) and compare: drift is
    found, not waited for."""
    days = app_settings.DRIFT_DAYS if days is None else days
    since = timezone.now() - timedelta(days=days)
    ids = list(
        InvoiceLink.objects.of(connection)
        .exclude(xero_invoice_id="")
        .filter(pushed_at__gte=since)
        .values_list("xero_invoice_id", flat=True)
    )
    if not ids:
        return 0
    return read_by_ids(connection, connect.api_client(connection), ids)


def for_every_connection(work: Any, action: str) -> int:
    """Run ``work(connection)`` for every connected organisation; one that cannot be read now
    (rate limit, outage, a reconnect needed) waits for the next round."""
    done = 0
    for connection in XeroConnection.objects.filter(status="connected"):
        try:
            work(connection)
        except (XeroError, ConnectionNotReady) as exc:
            logger.info("%s for %s waits: %s", action, connection.account_key, exc)
            continue
        done += 1
    return done


def read_changes_everywhere() -> int:
    """The schedule's work: Xero's invoice and payment changes, for every organisation."""
    return for_every_connection(read_changes, "Reading Xero's changes")


def check_drift_everywhere() -> int:
    """The daily drift check, for every organisation."""
    return for_every_connection(check_recent, "The drift check")


def _log(connection: XeroConnection | None, link: InvoiceLink, outcome: str, message: str) -> None:
    SyncLog.objects.create(
        connection=connection,
        account_key=link.account_key,
        host_id=link.host_id,
        action="xero_changes",
        outcome=outcome,
        message=message,
    )
