"""Money never silently diverges: every payment reaches Xero exactly once whatever call fails,
an unanswered payment write is settled from Xero's side, the broker's trouble never breaks a
save, and a run ends inside its time whatever Xero does. Each test checks the sandbox's state
(Xero's ledger) against the CRM's afterwards."""

from __future__ import annotations

import datetime
import functools
import logging
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.urls import reverse

from crm_demo.crm.models import Invoice, InvoiceLine, Membership
from tests.factories import MembershipFactory
from tests.integration.invoicing import (
    API,
    assert_done,
    job_of,
    link_of,
    live_payments,
    make_invoice,
    money,
    pay,
    payment_links,
    run_due,
    unpay,
    xero_invoice,
)
from xero_integration import connect, invoices, outbox, readback, services, taskqueue
from xero_integration.models import InvoiceLink, PaymentLink, SyncJob, SyncLog, XeroConnection
from xero_integration.xero.client import XeroClient
from xero_integration.xero.ratelimit import NullLimiter
from xero_integration.xero.wire import parse_date

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("client_retries_at_once"),
]

FAULT_KINDS = ("500", "503", "429", "timeout", "lost_response")


@pytest.fixture
def quick_faults(settings, monkeypatch) -> None:
    """Timeouts and 429s cost no real waiting: a short request timeout, and the sandbox's own
    limits (not the shared limiter's pauses) decide."""
    settings.XERO_REQUEST_TIMEOUT = 0.5
    monkeypatch.setattr(services, "_limiter", NullLimiter())


def add_fault(sandbox: Any, method: str, path: str, kind: str, count: int = 20) -> None:
    extra = {"hold_seconds": 0.7} if kind == "timeout" else {}
    sandbox.add_fault(method, path, kind, count=count, **extra)


def assert_xero_matches_the_crm(sandbox: Any, tenant_id: str, invoice: Invoice) -> None:
    """Xero holds the invoice once, with the CRM's total, and exactly the CRM's payments."""
    invoice.refresh_from_db()
    found = xero_invoice(sandbox, tenant_id, invoice.number)
    assert money(found["Total"]) == invoice.total
    in_xero = sorted(
        (money(p["Amount"]), parse_date(p["Date"]))
        for p in live_payments(sandbox, tenant_id, found["InvoiceID"])
    )
    in_crm = sorted((p.amount, p.date) for p in invoice.payments.all())
    assert in_xero == in_crm
    assert money(found["AmountPaid"]) == invoice.amount_paid


# ---- a batch gives every job an outcome ---------------------------------------------------------


def test_a_refused_invoice_call_in_a_batch_still_sends_another_invoices_payment(
    xero_sandbox, connected, no_dispatch
):
    tenant_id, account, _ = connected
    existing = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert_done(existing)
    with no_dispatch():
        new = make_invoice(account, [{"unit_price": Decimal("10")}])
        pay(existing, "40.00")
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "500", count=20)

    invoices.run(str(account.pk), "crm.invoice", str(new.pk))

    # The new invoice waits for Xero; the payment went in its own shared call.
    assert job_of(new).state == SyncJob.State.WAITING
    assert_done(existing)
    assert money(xero_invoice(xero_sandbox, tenant_id, existing.number)["AmountPaid"]) == 40
    xero_sandbox.clear_faults()
    run_due(account)
    assert_done(new)
    for invoice in (existing, new):
        assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)


def batch_of_every_kind(account: Any, no_dispatch: Any) -> list[Invoice]:
    """Invoices whose jobs, run together, make every kind of write: a new contact and
    invoice, a new invoice with its payment, a payment on an invoice already in Xero, and a
    payment removed from another."""
    already = make_invoice(account, [{"unit_price": Decimal("100")}])
    refunded = make_invoice(account, [{"unit_price": Decimal("60")}])
    wrong = pay(refunded, "25.00")
    assert_done(already) and assert_done(refunded)
    with no_dispatch():
        fresh = make_invoice(account, [{"unit_price": Decimal("10")}])
        fresh_paid = make_invoice(account, [{"unit_price": Decimal("20")}])
        pay(fresh_paid, "5.00")
        pay(already, "40.00")
        unpay(wrong)
    return [already, refunded, fresh, fresh_paid]


BATCH_CALLS = [
    ("PUT", f"{API}/Contacts*"),
    ("PUT", f"{API}/Invoices*"),
    ("PUT", f"{API}/Payments*"),
    ("POST", f"{API}/Payments/*"),
]


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize(("method", "path"), BATCH_CALLS, ids=lambda v: v.split("/")[-1])
def test_a_fault_at_any_call_of_a_batch_leaves_no_job_done_with_work_left(
    xero_sandbox, connected, no_dispatch, quick_faults, method, path, kind
):
    tenant_id, account, _ = connected
    batch = batch_of_every_kind(account, no_dispatch)
    add_fault(xero_sandbox, method, path, kind)

    invoices.run_batch(str(account.pk))

    for invoice in batch:
        job = job_of(invoice)
        assert job.state in (SyncJob.State.DONE, SyncJob.State.WAITING), (job.state, job.error)
        if job.state == SyncJob.State.DONE:
            assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)
    xero_sandbox.clear_faults()
    run_due(account)
    for invoice in batch:
        assert_done(invoice)
        assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)


def test_a_short_answer_to_a_batch_makes_every_job_check_and_settles_without_duplicates(
    xero_sandbox, connected, no_dispatch
):
    tenant_id, account, _ = connected
    already = [make_invoice(account, [{"unit_price": Decimal(p)}]) for p in ("100", "80")]
    for invoice in already:
        assert_done(invoice)
    with no_dispatch():
        fresh = [make_invoice(account, [{"unit_price": Decimal(p)}]) for p in ("10", "20", "30")]
        pay(fresh[0], "4.00")
        pay(fresh[1], "5.00")
        pay(already[0], "40.00")
        pay(already[1], "30.00")
    # Xero applies both shared calls but its answers leave out the last invoice and payment.
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "short_answer", count=1)
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "short_answer", count=1)

    invoices.run_batch(str(account.pk))

    batch = already + fresh
    for invoice in batch:
        job = job_of(invoice)
        assert (job.state, job.reason) == (SyncJob.State.WAITING, SyncJob.Reason.UNANSWERED)
        assert "did not list every" in job.error
    run_due(account)

    for invoice in batch:
        assert_done(invoice)
        assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)
    state = xero_sandbox.organisation_state(tenant_id)
    numbers = [i["InvoiceNumber"] for i in state["invoices"] if i["Status"] != "DELETED"]
    assert sorted(numbers) == sorted(invoice.number for invoice in batch)
    assert len(live_payments(xero_sandbox, tenant_id)) == 4


# ---- unanswered payment writes are settled from Xero's side -------------------------------------


def test_a_payment_removed_in_the_crm_after_an_unanswered_create_is_removed_from_xero(
    xero_sandbox, connected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "lost_response", count=20)
    payment = pay(invoice, "30.00")
    assert job_of(invoice).state == SyncJob.State.WAITING
    xero_id = link_of(invoice).xero_invoice_id
    assert [money(p["Amount"]) for p in live_payments(xero_sandbox, tenant_id, xero_id)] == [30]

    unpay(payment)  # before the retry: Xero holds a payment the CRM no longer has
    xero_sandbox.clear_faults()
    run_due(account)

    assert_done(invoice)
    assert live_payments(xero_sandbox, tenant_id, xero_id) == []
    assert money(xero_invoice(xero_sandbox, tenant_id, invoice.number)["AmountPaid"]) == 0
    assert [p.state for p in payment_links(invoice)] == [PaymentLink.State.DELETED]


def test_an_unanswered_payment_create_is_linked_not_sent_again(xero_sandbox, connected):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "lost_response", count=20)
    pay(invoice, "30.00")
    (sending,) = payment_links(invoice)
    assert sending.state == PaymentLink.State.SENDING and not sending.xero_payment_id
    xero_sandbox.clear_faults()
    pay(invoice, "20.00")  # a new change: new Idempotency-Keys, so only our record can tell
    run_due(account)
    assert_done(invoice)
    assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)
    assert {p.state for p in payment_links(invoice)} == {PaymentLink.State.LINKED}


def test_an_unanswered_payment_delete_counts_as_done_and_the_replacement_follows(
    xero_sandbox, connected
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    first = pay(invoice, "45.00", date=datetime.date(2026, 11, 5))
    assert_done(invoice)
    xero_sandbox.add_fault("POST", f"{API}/Payments/*", "lost_response", count=20)
    with transaction.atomic():
        unpay(first)
        pay(invoice, "45.00", date=datetime.date(2026, 11, 6))  # entered again, right date
    assert job_of(invoice).state == SyncJob.State.WAITING
    xero_sandbox.clear_faults()

    # Staff retry (new Idempotency-Keys): Xero answers "already deleted" to the delete.
    outbox.retry(SyncJob.objects.filter(pk=job_of(invoice).pk))

    assert_done(invoice)
    assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)
    (payment,) = live_payments(xero_sandbox, tenant_id, link_of(invoice).xero_invoice_id)
    assert money(payment["Amount"]) == 45
    assert parse_date(payment["Date"]) == datetime.date(2026, 11, 6)


# ---- a write answered only on a retry ---------------------------------------------------------


def test_an_invoice_create_applied_then_refused_on_the_retry_is_adopted_not_made_twice(
    xero_sandbox, connected, quick_faults
):
    """The first attempt is applied but its answer lost; the client's retries of the same call
    are refused unread (a 429 storm): the create still went unanswered."""
    tenant_id, account, _ = connected
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "lost_response", count=1)
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "429", count=10)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert job_of(invoice).state == SyncJob.State.WAITING
    xero_sandbox.clear_faults()
    xero_sandbox.advance_clock(7 * 60)  # past Xero's idempotency window: no replay to lean on
    run_due(account)

    assert_done(invoice)
    numbers = [i["InvoiceNumber"] for i in xero_sandbox.organisation_state(tenant_id)["invoices"]]
    assert numbers == [invoice.number]
    assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)


def test_a_payment_applied_then_refused_on_the_retry_is_not_sent_twice(
    xero_sandbox, connected, quick_faults
):
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert_done(invoice)
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "lost_response", count=1)
    xero_sandbox.add_fault("PUT", f"{API}/Payments*", "429", count=10)
    pay(invoice, "30.00")
    assert job_of(invoice).state == SyncJob.State.WAITING
    xero_sandbox.clear_faults()
    xero_sandbox.advance_clock(7 * 60)
    run_due(account)

    assert_done(invoice)
    assert_xero_matches_the_crm(xero_sandbox, tenant_id, invoice)


def test_waits_for_xeros_budget_do_not_lengthen_the_backoff_after_a_lost_answer(
    xero_sandbox, connected, quick_faults, settings
):
    settings.XERO_RETRY_BASE_SECONDS = 10
    _, account, _ = connected
    xero_sandbox.add_fault("*", f"{API}/*", "429", count=1000)
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    for _ in range(5):
        run_due(account)
    job = job_of(invoice)
    assert (job.reason, job.attempts) == (SyncJob.Reason.RATE_LIMIT, 0)

    xero_sandbox.clear_faults()
    xero_sandbox.add_fault("PUT", f"{API}/Invoices*", "lost_response", count=10)
    SyncJob.objects.filter(pk=job.pk).update(not_before=job.updated_at)
    invoices.run_batch(str(account.pk))
    job = job_of(invoice)
    assert (job.reason, job.attempts) == (SyncJob.Reason.UNANSWERED, 1)
    # The first backoff (5 to 10 s), not the sixth (160 to 320 s).
    assert job.not_before - job.updated_at <= datetime.timedelta(seconds=10)


# ---- the broker --------------------------------------------------------------------------------


def test_a_save_commits_and_returns_while_the_broker_is_down(connected, monkeypatch, caplog):
    tenant_id, account, _ = connected

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    from django_q.conf import Conf

    broker_up = taskqueue.async_task
    monkeypatch.setattr(Conf, "SYNC", False)  # a real broker, not tasks run in the test
    monkeypatch.setattr(taskqueue, "async_task", broker_down)
    monkeypatch.setattr(taskqueue, "_broker_down", False)
    monkeypatch.setattr(taskqueue, "broker", lambda: None)
    later_hooks: list[str] = []
    with caplog.at_level(logging.ERROR, logger="xero_integration.taskqueue"):
        for number in range(3):
            with transaction.atomic():
                invoice = make_invoice(account, [{"unit_price": Decimal("10")}])
                transaction.on_commit(lambda n=number: later_hooks.append(f"host hook {n}"))

    assert later_hooks == ["host hook 0", "host hook 1", "host hook 2"]
    assert Invoice.objects.filter(account=account).count() == 3
    assert job_of(invoice).state == SyncJob.State.PENDING
    assert len([r for r in caplog.records if "broker refused" in r.getMessage()]) == 1

    monkeypatch.setattr(taskqueue, "async_task", broker_up)
    monkeypatch.setattr(Conf, "SYNC", True)
    SyncJob.objects.update(updated_at=job_of(invoice).updated_at - outbox.SWEEP_GRACE * 2)
    assert outbox.sweep() == 3
    for made in Invoice.objects.filter(account=account):
        assert_done(made)


# ---- a run ends inside its time ------------------------------------------------------------------


class FakeClock:
    """Time that passes only when someone waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_a_run_stops_calling_xero_at_its_deadline_and_hands_back_the_rest(
    xero_sandbox, connected, no_dispatch, monkeypatch, settings
):
    tenant_id, account, _ = connected
    settings.XERO_RUN_SECONDS = 60
    clock = FakeClock()
    monkeypatch.setattr(invoices, "clock", clock)
    monkeypatch.setattr(
        connect, "XeroClient", functools.partial(XeroClient, sleep=clock.sleep, clock=clock)
    )
    monkeypatch.setattr(services, "_limiter", NullLimiter())
    with no_dispatch():
        batch = [make_invoice(account, [{"unit_price": Decimal(n + 1)}]) for n in range(5)]
    # Xero keeps asking for 50 s more: a client that waited each time would take minutes.
    xero_sandbox.add_fault("*", f"{API}/*", "429", count=1000, retry_after=50)
    started = clock()

    invoices.run_batch(str(account.pk))

    assert clock() - started <= settings.XERO_RUN_SECONDS
    states = {job_of(invoice).state for invoice in batch}
    assert SyncJob.State.RUNNING not in states
    assert states <= {SyncJob.State.PENDING, SyncJob.State.WAITING}
    # Every call Xero received is in the sync log, written as it happened.
    received = [r for r in xero_sandbox.requests(tenant_id) if r["path"].startswith(API)]
    logged = SyncLog.objects.filter(account_key=str(account.pk), http_status=429).exclude(
        details__has_key="same_call_as"  # a shared call's entries for its other invoices
    )
    assert logged.count() == len(received) > 0


def test_the_task_timeout_must_leave_room_for_a_run(settings):
    from django.core import checks

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60, "retry": 90}
    settings.XERO_RUN_SECONDS = 60
    errors = [m for m in checks.run_checks() if m.id == "xero_integration.E004"]
    assert errors and "XERO_RUN_SECONDS" in errors[0].msg
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 120, "retry": 180}
    settings.XERO_RUN_SECONDS = 30
    assert not [m for m in checks.run_checks() if m.id == "xero_integration.E004"]


# ---- the CRM's total is read as of one moment ----------------------------------------------------


def test_a_save_during_the_read_never_leaves_a_false_total_mismatch(
    xero_sandbox, connected, monkeypatch
):
    if db_connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two connections committing while one reads")
    tenant_id, account, _ = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert_done(invoice)
    from crm_demo.crm import xero_adapter

    original = xero_adapter.CrmXeroAdapter.to_invoice
    raced = threading.Event()

    def edit_meanwhile() -> None:
        # Another user's save commits between our read of the invoice and of its lines.
        with transaction.atomic():
            InvoiceLine.objects.filter(invoice=invoice).update(unit_price=Decimal("200"))
            Invoice.objects.filter(pk=invoice.pk).update(
                subtotal=Decimal("200"), total=Decimal("200"), amount_due=Decimal("200")
            )
            outbox.enqueue(str(account.pk), "crm.invoice", str(invoice.pk), dispatch_task=False)
        db_connection.close()

    def to_invoice(self: Any, instance: Any) -> Any:
        if not raced.is_set():
            raced.set()
            thread = threading.Thread(target=edit_meanwhile)
            thread.start()
            thread.join()
        return original(self, instance)

    monkeypatch.setattr(xero_adapter.CrmXeroAdapter, "to_invoice", to_invoice)
    with transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(reference="PO 7")
        outbox.enqueue(str(account.pk), "crm.invoice", str(invoice.pk))

    assert raced.is_set()
    run_due(account)
    assert_done(invoice)
    link = link_of(invoice)
    assert link.xero_total == link.crm_total == Decimal("200.00")
    assert not link.total_mismatch


@pytest.mark.parametrize(
    ("crm_total", "xero_total"),
    [("200.00", "100.00"), ("100.00", "100.00")],
    ids=["crm-side-stale", "flag-stale"],
)
def test_a_stale_total_mismatch_clears_on_the_next_push_when_the_totals_agree(
    xero_sandbox, connected, client_factory, crm_total, xero_total
):
    _, account, _ = connected
    owner_client = client_factory(
        MembershipFactory(account=account, role=Membership.Role.OWNER).user
    )
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert_done(invoice)
    # A flag left by an earlier read (one side's figure out of date), then nothing changed.
    InvoiceLink.objects.filter(pk=link_of(invoice).pk).update(
        crm_total=Decimal(crm_total), xero_total=Decimal(xero_total), total_mismatch=True
    )
    page = reverse("crm:invoice_detail", args=[invoice.pk])
    assert "differs from the CRM" in owner_client.get(page).content.decode()

    outbox.sync_now(str(account.pk), "crm.invoice", str(invoice.pk), invoice.number)
    run_due(account)

    assert_done(invoice)
    link = link_of(invoice)
    assert link.crm_total == Decimal("100.00") and not link.total_mismatch
    assert "differs from the CRM" not in owner_client.get(page).content.decode()


@pytest.mark.parametrize(
    ("crm_total", "xero_total"),
    [("200.00", "100.00"), ("100.00", "200.00"), ("100.00", "100.00")],
    ids=["crm-side-stale", "xero-side-stale", "flag-stale"],
)
def test_a_stale_total_mismatch_clears_on_the_next_read_back_when_the_totals_agree(
    xero_sandbox, connected, crm_total, xero_total
):
    _, account, connection = connected
    invoice = make_invoice(account, [{"unit_price": Decimal("100")}])
    assert_done(invoice)
    InvoiceLink.objects.filter(pk=link_of(invoice).pk).update(
        crm_total=Decimal(crm_total), xero_total=Decimal(xero_total), total_mismatch=True
    )

    readback.check_recent(XeroConnection.objects.get(pk=connection.pk))

    link = link_of(invoice)
    assert link.xero_total == Decimal("100.00") and not link.total_mismatch


def test_a_shared_call_shows_in_the_log_of_every_invoice_it_carried(
    xero_sandbox, connected, no_dispatch
):
    _, account, _ = connected
    with no_dispatch():
        batch = [make_invoice(account, [{"unit_price": Decimal(n + 1)}]) for n in range(3)]
    invoices.run_batch(str(account.pk))

    creates = SyncLog.objects.filter(action=f"PUT {API}/Invoices")
    assert sorted(row.host_id for row in creates) == sorted(str(i.pk) for i in batch)
    (with_bodies,) = [row for row in creates if row.request_body]
    assert all(n.number in with_bodies.request_body for n in batch)
    others = [row for row in creates if row is not with_bodies and row.pk != with_bodies.pk]
    assert {row.details["same_call_as"] for row in others} == {with_bodies.pk}
