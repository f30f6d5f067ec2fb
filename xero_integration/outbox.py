"""The outbox: host saves become sync jobs in the save's own transaction, in one statement.

Connected to the models the adapter names (``invoice_models`` and ``payment_models``). A save
adds at most one query (an upsert that only writes when the CRM account has a Xero connection);
the push itself runs in a django-q2 task after the transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Model, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from xero_integration.adapters import get_adapter
from xero_integration.models import ConnectionStatus, SyncJob, XeroConnection

logger = logging.getLogger(__name__)

#: A pending job whose task has not started after this long is queued again by the sweeper.
SWEEP_GRACE = timedelta(minutes=2)
SWEEP_BATCH = 1000

_UPSERT = """
INSERT INTO {job} ({columns})
SELECT {placeholders}
WHERE EXISTS (SELECT 1 FROM {connection} WHERE account_key = %s)
ON CONFLICT (account_key, host_model, host_id) DO UPDATE SET
    change_seq = {job}.change_seq + 1,
    number = excluded.number,
    deleted = excluded.deleted,
    state = CASE WHEN {job}.state IN (%s, %s) THEN {job}.state ELSE %s END,
    updated_at = excluded.updated_at
"""


def _new_job_row(values: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Every column of a new sync job, with the model's own defaults for those not given, as
    the database wants them."""
    columns, params = [], []
    for model_field in SyncJob._meta.concrete_fields:
        if model_field.primary_key:
            continue
        value = (
            values[model_field.name] if model_field.name in values else model_field.get_default()
        )
        columns.append(db_connection.ops.quote_name(model_field.column))
        params.append(model_field.get_db_prep_save(value, db_connection))
    return columns, params


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
    while disconnected it waits for the reconnect)."""
    now = timezone.now()
    columns, params = _new_job_row(
        {
            "account_key": account_key,
            "host_model": host_model,
            "host_id": host_id,
            "number": number[:255],
            "state": SyncJob.State.PENDING,
            "deleted": deleted,
            "created_at": now,
            "updated_at": now,
        }
    )
    sql = _UPSERT.format(
        job=SyncJob._meta.db_table,
        connection=XeroConnection._meta.db_table,
        columns=", ".join(columns),
        placeholders=", ".join(["%s"] * len(columns)),
    )
    with db_connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                *params,
                account_key,
                SyncJob.State.RUNNING,
                SyncJob.State.WAITING,
                SyncJob.State.PENDING,
            ],
        )
        queued = cursor.rowcount > 0
    if queued and dispatch_task:
        from xero_integration.tasks import dispatch

        dispatch("xero_integration.tasks.push_invoice", account_key, host_model, host_id)
    return queued


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


def _invoice_changed(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    if _from_xero.get():
        return
    adapter = get_adapter()
    account_key = adapter.get_account_key(instance)
    if account_key:
        enqueue(
            account_key,
            instance._meta.label_lower,
            str(instance.pk),
            adapter.invoice_number(instance),
            deleted=kwargs.get("signal") is post_delete,
        )


def _invoice_deleted(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    _invoice_changed(sender, instance, signal=post_delete)


def _payment_changed(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    if _from_xero.get():
        return
    adapter = get_adapter()
    try:
        invoice = adapter.invoice_for_payment(instance)
    except Exception:  # the invoice itself is being deleted; its own signal covers it
        return
    if invoice is not None and invoice.pk is not None:
        _invoice_changed(type(invoice), invoice)


def connect_signals() -> None:
    """Watch the adapter's models (called once the app registry is ready)."""
    try:
        adapter = get_adapter()
        invoice_models = adapter.invoice_models()
        payment_models = adapter.payment_models()
    except Exception:  # a broken adapter is reported by the system check E001
        logger.exception("xero_integration: the adapter's models could not be read")
        return
    for model in invoice_models:
        post_save.connect(_invoice_changed, sender=model, dispatch_uid=f"xero-inv-{model}")
        post_delete.connect(_invoice_deleted, sender=model, dispatch_uid=f"xero-invdel-{model}")
    for model in payment_models:
        post_save.connect(_payment_changed, sender=model, dispatch_uid=f"xero-pay-{model}")
        post_delete.connect(_payment_changed, sender=model, dispatch_uid=f"xero-paydel-{model}")


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
    ids = list(
        jobs.filter(stalled | Q(state=SyncJob.State.PENDING)).values_list(
            "account_key", "host_model", "host_id"
        )
    )
    jobs.filter(stalled).update(
        state=SyncJob.State.PENDING, not_before=None, attempts=0, updated_at=timezone.now()
    )
    from xero_integration.tasks import dispatch

    with transaction.atomic():
        for key in ids:
            dispatch("xero_integration.tasks.push_invoice", *key)
    return len(ids)


def sweep() -> int:
    """Queue again every job that is due: pending (its task may be lost), waiting past its
    time, or running with an expired lease."""
    from xero_integration.tasks import dispatch

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
    ).values_list("account_key", "host_model", "host_id")[:SWEEP_BATCH]
    keys = list(due)
    for key in keys:
        dispatch("xero_integration.tasks.push_invoice", *key)
    return len(keys)


def retry(jobs: Any) -> int:
    """Staff's "Retry": run failed, waiting or resolved jobs again now."""
    from xero_integration.tasks import dispatch

    keys = list(
        jobs.exclude(state=SyncJob.State.RUNNING).values_list(
            "pk", "account_key", "host_model", "host_id"
        )
    )
    # New Idempotency-Keys: after staff fixed something in Xero, Xero must not replay the
    # refusal it gave the old ones.
    SyncJob.objects.filter(pk__in=[k[0] for k in keys]).exclude(state=SyncJob.State.RUNNING).update(
        state=SyncJob.State.PENDING,
        not_before=None,
        attempts=0,
        key_generation=F("key_generation") + 1,
        updated_at=timezone.now(),
    )
    with transaction.atomic():
        for _, *key in keys:
            dispatch("xero_integration.tasks.push_invoice", *key)
    return len(keys)


def sync_now(account_key: str, host_model: str, host_id: str, number: str = "") -> None:
    """Push one invoice now (the invoice page's "Sync now"), even if nothing changed."""
    if not enqueue(account_key, host_model, host_id, number):
        return
    retry(SyncJob.objects.filter(account_key=account_key, host_model=host_model, host_id=host_id))
