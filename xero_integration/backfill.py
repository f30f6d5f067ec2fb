"""Sending a CRM's existing invoices to Xero in batches, paced to the organisation's limits.

The engine of ``xero_backfill`` and of the settings page's "Send the invoices created before
connecting" (``history.py``): ``plan`` is the dry run, ``queue`` puts the invoices in the
outbox, ``step`` runs one batch and says what comes next, ``drain`` steps until done.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from xero_integration import app_settings, invoices, outbox, rules
from xero_integration.adapters import get_adapter
from xero_integration.models import (
    ContactLink,
    InvoiceLink,
    SyncJob,
    SyncLog,
    TaxRateMapping,
    XeroConnection,
)


@dataclass
class Plan:
    """What a backfill would send, and what it would cost in calls to Xero."""

    invoices: list[dict] = field(default_factory=list)
    new_contacts: set[str] = field(default_factory=set)
    unmapped_taxes: set[str] = field(default_factory=set)
    currencies: set[str] = field(default_factory=set)
    payments: int = 0

    @property
    def calls(self) -> int:
        batches = math.ceil(len(self.invoices) / invoices.BATCH_SIZE)
        payment_batches = math.ceil(self.payments / invoices.BATCH_SIZE)
        # A new contact costs a lookup and, at most, a create; taxes a read and a create each;
        # a currency a read, a check of the plan and an add.
        contacts = 2 * len(self.new_contacts)
        taxes = (1 if self.unmapped_taxes else 0) + len(self.unmapped_taxes)
        currencies = 3 * len(self.currencies)
        return batches + payment_batches + contacts + taxes + currencies

    def seconds(self) -> float:
        """How long sending it takes at the organisation's pace."""
        return seconds_for(self.calls)


#: Calls a day Xero allows one organisation (fewer on some plans; the limiter learns the rest).
DAY_LIMIT = 5000


def seconds_for(calls: int) -> float:
    """How long this many calls take at the organisation's pace: ``XERO_CALLS_PER_MINUTE``,
    and a day's wait for each 5,000 calls beyond the first."""
    days = (calls - 1) // DAY_LIMIT if calls else 0
    return days * 86400 + (calls - days * DAY_LIMIT) * 60 / app_settings.CALLS_PER_MINUTE


def plan(
    connection: XeroConnection, since: datetime.date | None, skip_queued: bool = False
) -> Plan:
    """The invoices of the account not yet in Xero, as a backfill would send them.

    With ``skip_queued``, invoices whose sync job is on its way, failed or was resolved by
    staff are left to that job (only those never sent, or sent to another organisation, count).
    """
    adapter = get_adapter()
    linked = set(
        InvoiceLink.objects.of(connection)
        .exclude(xero_invoice_id="")
        .values_list("host_id", flat=True)
    )
    if skip_queued:
        linked |= set(
            SyncJob.objects.filter(account_key=connection.account_key)
            .exclude(state=SyncJob.State.DONE)
            .values_list("host_id", flat=True)
        )
    contact_links = set(
        ContactLink.objects.of(connection)
        .exclude(xero_contact_id=None)
        .values_list("host_id", flat=True)
    )
    mapped = set(
        TaxRateMapping.objects.of(connection).exclude(tax_type="").values_list("host_id", flat=True)
    )
    result = Plan()
    for instance in adapter.backfill_invoices(connection.account_key, since):
        if str(instance.pk) in linked or not adapter.should_sync(instance):
            continue
        data = adapter.to_invoice(instance)
        if not rules.invoices.goes_to_xero(data, app_settings.SYNC_DRAFTS):
            continue
        result.invoices.append(
            {
                "host_model": instance._meta.label_lower,
                "host_id": str(instance.pk),
                "number": data.number,
                "contact": data.contact.name,
                "currency": data.currency,
                "total": data.total,
                "status": data.status.value,
                "payments": len(data.payments),
            }
        )
        result.payments += len(data.payments)
        if data.contact.host_id not in contact_links:
            result.new_contacts.add(data.contact.host_id)
        for line in data.lines:
            if line.tax and line.tax.host_id not in mapped:
                result.unmapped_taxes.add(line.tax.host_id)
        if data.currency not in {connection.base_currency, *connection.currencies}:
            result.currencies.add(data.currency)
    return result


def queue(connection: XeroConnection, backfill_plan: Plan) -> int:
    """Put the planned invoices in the outbox (no task each: the backfill drives them)."""
    count = 0
    for entry in backfill_plan.invoices:
        if outbox.enqueue(
            connection.account_key,
            entry["host_model"],
            entry["host_id"],
            entry["number"],
            dispatch_task=False,
        ):
            count += 1
    return count


def remaining(connection: XeroConnection) -> int:
    """The account's jobs still on their way to Xero."""
    return SyncJob.objects.filter(
        account_key=connection.account_key,
        state__in=(SyncJob.State.PENDING, SyncJob.State.WAITING, SyncJob.State.RUNNING),
    ).count()


@dataclass
class Step:
    """One batch of a backfill and what comes next.

    ``wait`` is how long until more can run (None: nothing will until the account is
    reconnected); ``waiting_for`` says why: ``workers`` (others hold the rest), ``connection``
    or ``limits`` (Xero's minute or day).
    """

    ran: int
    left: int
    wait: float | None = 0.0
    waiting_for: str = ""

    @property
    def note(self) -> str:
        """The command line's words for the wait."""
        if self.waiting_for == "workers":
            return "waiting for other workers"
        if self.waiting_for == "connection":
            return "waiting for the connection (reconnect in the CRM)"
        if self.waiting_for == "limits":
            return f"waiting {self.wait:,.0f} s for Xero's limits"
        return ""


def step(connection: XeroConnection, max_idle: float = 3600.0) -> Step:
    """Run one batch of the account's due jobs (up to 50, in shared calls)."""
    ran = invoices.run_batch(connection.account_key, queue_rest=False)
    left = remaining(connection)
    if ran or not left:
        return Step(ran, left)
    next_due = (
        SyncJob.objects.filter(account_key=connection.account_key, state=SyncJob.State.WAITING)
        .exclude(not_before=None)
        .order_by("not_before")
        .values_list("not_before", flat=True)
        .first()
    )
    if next_due is None:
        running = SyncJob.objects.filter(
            account_key=connection.account_key, state=SyncJob.State.RUNNING
        ).exists()
        connection.refresh_from_db()
        if running or connection.is_connected:
            # Other workers hold the rest, or a reconnect made them due: look again soon.
            return Step(0, left, 5.0, "workers")
        return Step(0, left, None, "connection")
    pause = max(1.0, min(max_idle, (next_due - timezone.now()).total_seconds()))
    return Step(0, left, pause, "limits")


def drain(
    connection: XeroConnection,
    progress: Callable[[int, int, str], None],
    sleep: Callable[[float], None] = time.sleep,
    max_idle: float = 3600.0,
) -> None:
    """Run the account's due jobs in batches until none is left. When Xero's limits (the
    minute, or the day's budget) make jobs wait, wait with them rather than fail."""
    total = remaining(connection)
    while True:
        done = step(connection, max_idle)
        if done.ran:
            progress(total - done.left, total, "")
            continue
        if not done.left:
            return
        progress(total - done.left, total, done.note)
        if done.wait is None:
            return
        sleep(done.wait)


def log(connection: XeroConnection, message: str) -> None:
    """A sync log entry about a backfill (shown in the settings page's recent activity)."""
    SyncLog.objects.create(
        connection=connection,
        account_key=connection.account_key,
        action="backfill",
        outcome=SyncLog.Outcome.INFO,
        message=message,
    )


def money(value: Decimal) -> str:
    """An amount as the command prints it."""
    return f"{value:,.2f}"
