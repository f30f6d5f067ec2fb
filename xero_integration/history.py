"""The settings page's "Send the invoices created before connecting": counted by a task (the
backfill's dry run), sent by a task in batches (the backfill's own steps), and followed on the
page through the sync jobs it queued.

Each run of the sending task does one batch and queues the next while batches make progress;
jobs left waiting (Xero's limits, a reconnect) carry on through the outbox's sweeper, and the
progress is read from their state, so nothing depends on one long task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext, ngettext

from xero_integration import backfill, taskqueue
from xero_integration.models import HistoryBackfill, SyncJob, XeroConnection

State = HistoryBackfill.State
#: Host ids asked about in one query when reading the progress.
CHUNK = 500
#: A count or a sending that has not moved for this long has lost its task.
LOST_AFTER = timedelta(minutes=2)


def current(connection: XeroConnection | None) -> HistoryBackfill | None:
    """The connected organisation's sending of earlier invoices, if it was ever counted."""
    if connection is None or not connection.tenant_id:
        return None
    return HistoryBackfill.objects.of(connection).first()


def ensure_counted(connection: XeroConnection) -> HistoryBackfill | None:
    """The organisation's sending of earlier invoices; the first time it is asked for (once the
    connection has its default accounts), a task counts the invoices."""
    if not connection.is_connected or not connection.revenue_account_code:
        return current(connection)
    found, created = HistoryBackfill.objects.get_or_create(
        account_key=connection.account_key, tenant_id=connection.tenant_id
    )
    if created:
        taskqueue.dispatch(count, found.pk)
        found.refresh_from_db()  # a task that runs at once (django-q's sync mode) counted it
    return found


def recount(found: HistoryBackfill) -> None:
    """Count again (after a finished sending, or to see invoices added since)."""
    if (
        HistoryBackfill.objects.filter(pk=found.pk)
        .exclude(state=State.SENDING)
        .update(
            state=State.COUNTING,
            queued=[],
            waiting_for="",
            started_at=None,
            finished_at=None,
            updated_at=timezone.now(),
        )
    ):
        taskqueue.dispatch(count, found.pk)


def nudge(found: HistoryBackfill) -> None:
    """Queue again a count or a sending whose task seems lost (the broker was down, a worker
    was killed): nothing has moved for a while. The tasks check the state, so a second one
    that finds the work done does nothing."""
    if timezone.now() - found.updated_at < LOST_AFTER:
        return
    if found.state == State.COUNTING:
        taskqueue.dispatch(count, found.pk)
    elif found.state == State.SENDING:
        taskqueue.dispatch(send, found.pk)


def count(backfill_id: int) -> None:
    """The dry run: how many invoices the organisation lacks, and the calls they cost."""
    found = HistoryBackfill.objects.filter(pk=backfill_id, state=State.COUNTING).first()
    connection = _connection_of(found)
    if found is None or connection is None:
        return
    planned = backfill.plan(connection, None, skip_queued=True)
    HistoryBackfill.objects.filter(pk=found.pk, state=State.COUNTING).update(
        state=State.READY,
        invoices=len(planned.invoices),
        payments=planned.payments,
        calls=planned.calls,
        counted_at=timezone.now(),
        updated_at=timezone.now(),
    )


def start(found: HistoryBackfill, user: Any) -> bool:
    """Begin sending (once: a second press while it runs changes nothing)."""
    started = HistoryBackfill.objects.filter(pk=found.pk, state=State.READY, invoices__gt=0).update(
        state=State.SENDING,
        started_by=user if getattr(user, "pk", None) else None,
        started_at=timezone.now(),
        queued=[],
        waiting_for="",
        updated_at=timezone.now(),
    )
    if started:
        taskqueue.dispatch(send, found.pk)
    return bool(started)


def send(backfill_id: int) -> None:
    """One run of the sending: queue the invoices (first run), send one batch, then queue the
    next run while batches make progress."""
    found = HistoryBackfill.objects.filter(pk=backfill_id, state=State.SENDING).first()
    connection = _connection_of(found)
    if found is None or connection is None:
        return
    if not found.queued:
        planned = backfill.plan(connection, None, skip_queued=True)
        backfill.queue(connection, planned)
        found.queued = [[entry["host_model"], entry["host_id"]] for entry in planned.invoices]
        found.invoices = len(found.queued)
        if not found.queued:
            # They all reached Xero another way since they were counted.
            HistoryBackfill.objects.filter(pk=found.pk, state=State.SENDING).update(
                state=State.DONE, invoices=0, finished_at=timezone.now(), updated_at=timezone.now()
            )
            return
        found.save(update_fields=["queued", "invoices", "updated_at"])
        backfill.log(
            connection,
            f"Sending the {found.invoices:,} invoices created before connecting to "
            f"{connection.tenant_name}.",
        )
    done = backfill.step(connection)
    HistoryBackfill.objects.filter(pk=found.pk).update(
        waiting_for="" if done.ran else done.waiting_for, updated_at=timezone.now()
    )
    if finish_if_done(found):
        return
    if done.ran:
        taskqueue.dispatch(send, found.pk)
    # Otherwise the rest waits (Xero's limits, a reconnect, other workers): the outbox's
    # sweeper runs those jobs when they are due, and the progress follows their state.


@dataclass(frozen=True)
class Progress:
    """How far the sending has come."""

    total: int
    sent: int
    failed: int

    @property
    def finished(self) -> bool:
        return self.sent + self.failed >= self.total

    @property
    def percent(self) -> int:
        return 100 if not self.total else math.floor(100 * (self.sent + self.failed) / self.total)


def progress(found: HistoryBackfill) -> Progress:
    """Read from the state of the sync jobs of the invoices it queued."""
    by_model: dict[str, list[str]] = {}
    for host_model, host_id in found.queued:
        by_model.setdefault(host_model, []).append(host_id)
    sent = failed = 0
    for host_model, ids in by_model.items():
        for start_at in range(0, len(ids), CHUNK):
            states = SyncJob.objects.filter(
                account_key=found.account_key,
                host_model=host_model,
                host_id__in=ids[start_at : start_at + CHUNK],
            ).values_list("state", flat=True)
            for state in states:
                if state in (SyncJob.State.DONE, SyncJob.State.RESOLVED):
                    sent += 1
                elif state == SyncJob.State.FAILED:
                    failed += 1
    return Progress(total=len(found.queued), sent=sent, failed=failed)


def finish_if_done(found: HistoryBackfill) -> bool:
    """Mark a sending whose invoices have all arrived or failed as done (once)."""
    if found.state != State.SENDING or not found.queued:
        return found.state == State.DONE
    reached = progress(found)
    if not reached.finished:
        return False
    if HistoryBackfill.objects.filter(pk=found.pk, state=State.SENDING).update(
        state=State.DONE, finished_at=timezone.now(), waiting_for="", updated_at=timezone.now()
    ):
        connection = _connection_of(found)
        if connection is not None:
            backfill.log(
                connection,
                f"Invoices created before connecting: {reached.sent:,} sent to Xero, "
                f"{reached.failed:,} failed.",
            )
    found.refresh_from_db()
    return True


def duration(seconds: float) -> str:
    """A plain "about 3 minutes" for an estimate."""
    if seconds < 60:
        return gettext("under a minute")
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return ngettext("about %(n)d minute", "about %(n)d minutes", minutes) % {"n": minutes}
    hours = round(seconds / 3600)
    if hours < 36:
        return ngettext("about %(n)d hour", "about %(n)d hours", hours) % {"n": hours}
    days = math.ceil(seconds / 86400)
    return ngettext("about %(n)d day", "about %(n)d days", days) % {"n": days}


def estimate(found: HistoryBackfill) -> str:
    """How long the counted sending takes, in words."""
    return duration(backfill.seconds_for(found.calls))


def _connection_of(found: HistoryBackfill | None) -> XeroConnection | None:
    if found is None:
        return None
    connection = XeroConnection.objects.filter(
        account_key=found.account_key, tenant_id=found.tenant_id
    ).first()
    return connection if connection is not None and connection.is_connected else None
