"""The outbox: host saves become sync jobs in the save's own transaction, in one statement.

Connected to the models the adapter names (``invoice_models`` and ``payment_models``). A save
adds one statement (an upsert that only writes when the CRM account has a Xero connection); the
push itself runs in a django-q2 task after the transaction commits, one per account however
many of its invoices the transaction changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Min, Model, Q
from django.utils import timezone

from xero_integration import invoices
from xero_integration.adapters import DefaultXeroAdapter, get_adapter
from xero_integration.models import ConnectionStatus, Recorded, SyncJob, XeroConnection

logger = logging.getLogger(__name__)

#: A pending job whose task has not started after this long is queued again by the sweeper.
SWEEP_GRACE = timedelta(minutes=2)
SWEEP_ACCOUNTS = 1000


def enqueue(
    account_key: str,
    host_model: str,
    host_id: str,
    number: str = "",
    deleted: bool = False,
    dispatch_task: bool = True,
) -> bool:
    """Record that a host invoice changed; True when its account has a Xero connection, even
    a disconnected one (a job was added or bumped, and its push is queued for after the commit;
    while disconnected it waits for the reconnect). Within one transaction an invoice's change
    is written once, however many of its rows (the invoice, its lines, its payments) are
    saved: the push after the commit reads them all."""
    change = (account_key, host_model, host_id, number, deleted)
    queued = _recorded_in_transaction(change)
    if queued is None:
        queued = SyncJob.objects.record_change(account_key, host_model, host_id, number, deleted)
        _remember_in_transaction(change, queued)
    if queued == Recorded.NEW_WORK and dispatch_task:
        # One run for the account per transaction, however many of its invoices changed; none
        # when the job was pending already (a run is queued for it: no broker round trip).
        invoices.queue_run(account_key)
    return bool(queued)


class _Recorded:
    """Among a transaction's on-commit hooks, one per savepoint: the invoice changes recorded
    in it. Rolling the savepoint back drops the hook together with the statements it stands
    for, so a later save records its change again."""

    def __init__(self) -> None:
        self.changes: dict[tuple[str, str, str, str, bool], Recorded] = {}

    def __call__(self) -> None:
        """Nothing to do at the commit: the hook only remembers."""


def _recorded_in_transaction(change: tuple[str, str, str, str, bool]) -> Recorded | None:
    """What recording ``change`` gave earlier in this transaction; None when it was not."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return None
    for _savepoints, hook, _robust in connection.run_on_commit:
        if isinstance(hook, _Recorded) and change in hook.changes:
            return hook.changes[change]
    return None


def _remember_in_transaction(change: tuple[str, str, str, str, bool], queued: Recorded) -> None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return
    current = set(connection.savepoint_ids)
    for savepoints, hook, _robust in reversed(connection.run_on_commit):
        if isinstance(hook, _Recorded) and savepoints == current:
            hook.changes[change] = queued
            return
    hook = _Recorded()
    hook.changes[change] = queued
    transaction.on_commit(hook)


def enqueue_invoices(invoices: Iterable[Model]) -> int:
    """The public ``xero_integration.enqueue``: host invoices changed without a ``save()`` the
    app sees. Each goes to Xero as it is after the commit, one run per account whatever the
    number. Returns how many were recorded (invoices of accounts that never connected are
    not)."""
    adapter = get_adapter()
    watched = {model._meta.label_lower for model in adapter.invoice_models()}
    recorded = 0
    with transaction.atomic():
        for invoice in invoices:
            label = getattr(getattr(invoice, "_meta", None), "label_lower", None)
            if label not in watched:
                raise TypeError(
                    f"xero_integration.enqueue() takes instances of the adapter's "
                    f"invoice_models(), not {invoice!r}."
                )
            recorded += record_host_change(invoice, adapter=adapter)
    return recorded


#: Set while changes that came from Xero are written into the CRM: they must not echo back.
_from_xero: ContextVar[bool] = ContextVar("xero_integration_from_xero", default=False)


@contextmanager
def changes_from_xero() -> Iterator[None]:
    """Host saves inside come from Xero (a payment recorded there, say): no sync job."""
    token = _from_xero.set(True)
    try:
        yield
    finally:
        _from_xero.reset(token)


def record_host_change(
    instance: Model, deleted: bool = False, adapter: DefaultXeroAdapter | None = None
) -> bool:
    """A host invoice was saved or deleted: record it for Xero (unless the change came from
    Xero). True when a job was recorded."""
    if _from_xero.get():
        return False
    adapter = adapter or get_adapter()
    account_key = adapter.get_account_key(instance)
    if not account_key:
        return False
    return enqueue(
        account_key,
        instance._meta.label_lower,
        str(instance.pk),
        adapter.invoice_number(instance),
        deleted=deleted,
    )


#: What a job failed with before disconnected accounts' jobs waited instead.
LEGACY_DISCONNECTED = "This CRM account is not connected to Xero."


def requeue_account(
    account_key: str, reasons: tuple[str, ...] = (SyncJob.Reason.RECONNECT,)
) -> int:
    """After a reconnect (or once set-up is complete): jobs that waited for it, or failed only
    for want of it, run now."""
    jobs = SyncJob.objects.filter(account_key=account_key)
    stalled = Q(state=SyncJob.State.FAILED, reason__in=reasons)
    if SyncJob.Reason.RECONNECT in reasons:
        stalled |= Q(state=SyncJob.State.WAITING)
        stalled |= Q(state=SyncJob.State.FAILED, error=LEGACY_DISCONNECTED)
    jobs.filter(stalled).retry(new_keys=False)
    due = jobs.filter(state=SyncJob.State.PENDING).count()
    run_account(account_key, due)
    return due


def run_account(account_key: str, jobs: int) -> None:
    """Queue a run for the account's ``jobs`` due jobs: each run takes a batch and queues
    the next while some are left."""
    if jobs:
        invoices.queue_run(account_key)


def sweep() -> int:
    """Queue a run for every account with due jobs (pending whose task may be lost, waiting
    past its time, or running with an expired lease), the longest-waiting account first and
    one run each: a run that fills its batch queues the next behind the others. Returns how
    many jobs are due."""
    now = timezone.now()
    connected = XeroConnection.objects.filter(status=ConnectionStatus.CONNECTED).values(
        "account_key"
    )
    due = SyncJob.objects.filter(
        Q(state=SyncJob.State.PENDING, updated_at__lt=now - SWEEP_GRACE)
        | Q(state=SyncJob.State.WAITING, not_before__lte=now)
        # Waiting for a reconnect that has happened: due now.
        | Q(state=SyncJob.State.WAITING, not_before=None, account_key__in=connected)
        | Q(state=SyncJob.State.RUNNING, lease_until__lt=now)
    )
    accounts = list(
        due.values("account_key")
        .annotate(jobs=Count("pk"), oldest=Min("updated_at"))
        .order_by("oldest", "account_key")[:SWEEP_ACCOUNTS]
    )
    for account in accounts:
        invoices.queue_run(account["account_key"])
    return sum(account["jobs"] for account in accounts)


def retry(jobs: Any) -> int:
    """Staff's "Retry": run failed, waiting or resolved jobs again now, with new
    Idempotency-Keys."""
    with transaction.atomic():
        return invoices.retry(jobs)


def sync_now(account_key: str, host_model: str, host_id: str, number: str = "") -> None:
    """Push one invoice now (the invoice page's "Sync now"), even if nothing changed."""
    if not enqueue(account_key, host_model, host_id, number):
        return
    retry(SyncJob.objects.filter(account_key=account_key, host_model=host_model, host_id=host_id))
