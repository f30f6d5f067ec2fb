"""One busy organisation never stalls the others: an account has at most one run queued, a run
takes one batch and queues the next behind everyone else's, and a worker never sleeps for
Xero's budget (the work waits in the database, the worker moves on)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from crm_demo.crm.models import Invoice
from tests.factories import InvoiceFactory, InvoiceLineFactory
from xero_integration import invoices, outbox, services, taskqueue
from xero_integration.models import SyncJob
from xero_integration.xero.ratelimit import RateLimitState

pytestmark = pytest.mark.django_db(transaction=True)

RUN_BATCH = "xero_integration.invoices.run_batch"


@dataclass
class Queue:
    """Tasks handed to the broker (``now``) and to a timer (``later``, with its seconds)."""

    now: list[tuple[str, tuple]] = field(default_factory=list)
    later: list[tuple[str, tuple, float]] = field(default_factory=list)


@pytest.fixture
def queued(monkeypatch) -> Queue:
    """Tasks go to lists instead of a worker: the test runs them as a worker would."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    queue = Queue()
    monkeypatch.setattr(taskqueue, "send", lambda path, *args, **kw: queue.now.append((path, args)))
    monkeypatch.setattr(
        taskqueue,
        "dispatch_later",
        lambda task, *args, seconds: queue.later.append((taskqueue.task_path(task), args, seconds)),
    )
    return queue


def sent_invoice(account: Any) -> Invoice:
    invoice = InvoiceFactory(account=account, status=Invoice.Status.DRAFT)
    InvoiceLineFactory(invoice=invoice, unit_price=Decimal("80"))
    invoice.recalculate()
    invoice.status = Invoice.Status.SENT
    invoice.save()
    return invoice


# ---- one run queued per account -------------------------------------------------------------


@pytest.fixture
def redis_broker(monkeypatch):
    """django-q2's Redis broker on a private Redis database and queue."""
    import redis
    from django_q.brokers.redis_broker import Redis
    from django_q.conf import Conf

    url = "redis://127.0.0.1:6379/13"
    try:
        redis.from_url(url).ping()
    except redis.ConnectionError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (the CI machine runs one)")
    monkeypatch.setattr(Conf, "REDIS", url)
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    monkeypatch.setattr(Conf, "SYNC", False)
    queue = Redis(list_key=f"fairness-{uuid.uuid4().hex}")
    monkeypatch.setattr(taskqueue, "_broker", queue)
    yield queue
    queue.delete_queue()


def account_keys(*names: str) -> list[str]:
    """Account keys no other test (in another process) shares, as the markers live in Redis."""
    return [f"{name}-{uuid.uuid4().hex}" for name in names]


def test_many_saves_of_a_busy_account_queue_one_run(redis_broker):
    busy, quiet = account_keys("busy", "quiet")
    for _ in range(3):
        with transaction.atomic():
            taskqueue.dispatch_unique(invoices.run_batch, busy)
    with transaction.atomic():
        taskqueue.dispatch_unique(invoices.run_batch, quiet)
    # The quiet account's run is second in the queue, not behind three of the busy one's.
    assert redis_broker.queue_size() == 2


def test_a_change_made_while_the_run_works_queues_the_next_run(redis_broker):
    (busy,) = account_keys("busy")
    with transaction.atomic():
        taskqueue.dispatch_unique(invoices.run_batch, busy)
    taskqueue.started(invoices.run_batch, busy)  # a worker took it
    with transaction.atomic():
        taskqueue.dispatch_unique(invoices.run_batch, busy)
    assert redis_broker.queue_size() == 2


def test_a_run_lost_by_the_broker_is_queued_again_once_its_marker_expires(redis_broker):
    (busy,) = account_keys("busy")
    with transaction.atomic():
        taskqueue.dispatch_unique(invoices.run_batch, busy)
    redis_broker.purge_queue()  # the broker lost it
    marker = taskqueue._marker(redis_broker.list_key, RUN_BATCH, (busy,))
    assert 0 < redis_broker.connection.ttl(marker) <= taskqueue.MARKER_SECONDS
    redis_broker.connection.delete(marker)  # as when it expires
    with transaction.atomic():
        taskqueue.dispatch_unique(invoices.run_batch, busy)
    assert redis_broker.queue_size() == 1


# ---- the sweeper and runs share workers fairly ----------------------------------------------


def _due_jobs(account_key: str, count: int, age: timedelta) -> None:
    stamp = timezone.now() - age
    SyncJob.objects.bulk_create(
        SyncJob(
            account_key=account_key,
            host_model="crm.invoice",
            host_id=str(n),
            number=f"INV-{n}",
            state=SyncJob.State.WAITING,
            not_before=stamp,
            updated_at=stamp,
        )
        for n in range(count)
    )


def test_the_sweeper_queues_one_run_per_account_longest_waiting_first(queued):
    _due_jobs("busy", 200, age=timedelta(minutes=5))
    _due_jobs("quiet", 1, age=timedelta(minutes=10))
    assert outbox.sweep() == 201
    assert queued.now == [(RUN_BATCH, ("quiet",)), (RUN_BATCH, ("busy",))]


def test_a_full_batch_queues_the_next_run_behind_the_others(connected, queued, no_dispatch):
    _, account, _ = connected
    with no_dispatch():
        for _ in range(invoices.BATCH_SIZE + 3):
            sent_invoice(account)
    assert invoices.run_batch(str(account.pk)) == invoices.BATCH_SIZE
    assert queued.now == [(RUN_BATCH, (str(account.pk),))]
    queued.now.clear()
    assert invoices.run_batch(str(account.pk)) == 3
    assert queued.now == []  # nothing left: no run queued
    assert not SyncJob.objects.exclude(state=SyncJob.State.DONE).exists()


def test_a_worker_does_not_sleep_for_xeros_minute_budget(connected, queued, no_dispatch):
    tenant_id, account, _ = connected
    with no_dispatch():
        invoice = sent_invoice(account)
    # Another worker spent this organisation's minute budget.
    services.limiter().observe(tenant_id, RateLimitState(minute_remaining=0, retry_after=30))
    before = timezone.now()
    assert invoices.run_batch(str(account.pk)) == 1
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    assert job.state == SyncJob.State.WAITING
    assert "rate limit" in job.error.lower()
    # Put back until the budget returns, and woken then rather than at the sweeper's pass.
    assert before + timedelta(seconds=25) <= job.not_before <= before + timedelta(seconds=35)
    ((path, args, seconds),) = queued.later
    assert (path, args) == (RUN_BATCH, (str(account.pk),))
    assert 25 <= seconds <= 35


def test_a_run_queued_for_another_cluster_does_not_hold_this_ones_back(redis_broker, monkeypatch):
    from django_q.brokers.redis_broker import Redis

    (busy,) = account_keys("busy")
    with transaction.atomic():
        taskqueue.dispatch_unique(invoices.run_batch, busy)
    other = Redis(list_key=f"fairness-{uuid.uuid4().hex}")
    monkeypatch.setattr(taskqueue, "_broker", other)
    try:
        with transaction.atomic():
            taskqueue.dispatch_unique(invoices.run_batch, busy)
        assert other.queue_size() == 1
    finally:
        other.delete_queue()


def test_saving_an_invoice_whose_run_is_queued_costs_no_broker_round_trip(connected, queued):
    _, account, _ = connected
    invoice = sent_invoice(account)
    assert queued.now == [(RUN_BATCH, (str(account.pk),))]
    job = SyncJob.objects.get(host_id=str(invoice.pk))
    first_queued_at = job.updated_at
    for n in range(3):
        with transaction.atomic():
            invoice.reference = f"edit {n}"
            invoice.save()
    assert len(queued.now) == 1  # the run queued for the first change takes these too
    job.refresh_from_db()
    assert job.state == SyncJob.State.PENDING and job.change_seq > 1
    # The sweeper's grace counts from when the job started waiting for its run.
    assert job.updated_at == first_queued_at

    invoices.run_batch(str(account.pk))
    assert SyncJob.objects.get(pk=job.pk).state == SyncJob.State.DONE
    invoice.reference = "after the push"
    invoice.save()
    assert len(queued.now) == 2  # done: the next change needs a run of its own
