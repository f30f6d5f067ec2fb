"""Chaos soak: two worker clusters (``manage.py qcluster``, two workers each) on PostgreSQL and
Redis push the CRM's invoices and payments to three organisations while the CRM keeps saving
and everything that can go wrong does. For the whole run:

- 40% of the invoice and payment writes (PUT and POST of ``/Invoices*`` and ``/Payments*``) are
  applied by Xero but their answer is lost;
- 1% of all API calls answer 500, 1% answer 503 and 1% time out (held 3 s, dropped).

And in rounds of about a minute, repeated while the invoices are being saved (at least one):

- three 429 storms: every API call answers 429 (``Retry-After: 2``) for 4 s;
- payments added in the CRM on a few invoices, half of them removed again 10 s later, others
  added and removed a second apart (while their writes' answers are being lost), and a few
  unpaid invoices voided;
- a worker process killed (kill -9) in the middle of a run, its jobs claimed; its sentinel
  starts another;
- a whole cluster killed (kill -9 of every process) while jobs are claimed, and started again
  3 s later; then at once
- the broker (a redis-server of the test's own; the rate limiter stays on the shared Redis)
  killed for 8 s while the CRM saves payments and new invoices (every save commits, the CRM
  process logs the broker's failure once), then started again on the same port, empty.

Afterwards every CRM invoice is in Xero once with the same total, status and amount paid,
exactly the CRM's payments are there (none twice, removed ones deleted), every job is done (none
failed), both clusters are alive, and no call broke Xero's rate limits.

``SOAK_INVOICES`` (2,000 by default, as ``make soak`` runs it; CI runs 400) invoices are saved,
half of them paid; ``SOAK_SEED`` seeds the sandbox's faults and the invoices changed;
``SOAK_MAX_SECONDS`` bounds the whole test. The production sweeper runs every minute; here the
test sweeps every 5 s so that one short run covers many rounds of retries.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection as db_connection
from django.db import connections, transaction
from django_q.conf import Conf

from crm_demo.crm.models import Invoice, Payment
from tests.factories import (
    AccountFactory,
    ContactFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from tests.integration.conftest import XeroApp, make_connection
from tests.soak.chaos import Cluster, PrivateRedis
from xero_integration import outbox, taskqueue
from xero_integration.models import PaymentLink, SyncJob, SyncLog
from xero_integration.xero.wire import parse_date

pytestmark = [pytest.mark.soak, pytest.mark.django_db(transaction=True)]

INVOICES = int(os.environ.get("SOAK_INVOICES", "2000"))
SEED = int(os.environ.get("SOAK_SEED", "1"))
#: The whole test (set-up, chaos, draining the queue) must end within this.
MAX_SECONDS = float(os.environ.get("SOAK_MAX_SECONDS", "900"))
ORGANISATIONS = 3
WORKER_CLUSTERS, WORKERS_EACH = 2, 2
CLIENT_ID, CLIENT_SECRET = "crm-soak", "crm-soak-secret"
LOST_ANSWERS = 0.4
WRITES = [
    (method, path)
    for path in ("/api.xro/2.0/Invoices*", "/api.xro/2.0/Payments*")
    for method in ("PUT", "POST")
]
BACKGROUND_FAULTS = ("500", "503", "timeout")
STORM_SECONDS, STORM_RETRY_AFTER = 4, 2
BROKER_DOWN_SECONDS = 8
SWEEP_EVERY = 5
#: Invoices whose payments change in each step of a round.
CHANGED = max(4, INVOICES // 50)
BROKER_REFUSED = "The task broker refused"

#: The worker clusters' name; the test process queues its tasks there too, as a CRM would.
CLUSTER = f"soak-{os.getpid()}"


class Chaos:
    """What the soak does to the system, and what it saw. Runs in a thread of its own."""

    def __init__(self, sandbox, clusters: list[Cluster], broker: PrivateRedis, accounts) -> None:
        self.sandbox = sandbox
        self.clusters = clusters
        self.broker = broker
        self.accounts = accounts
        self.random = random.Random(SEED)
        self.saving_done = threading.Event()
        self.error: BaseException | None = None
        self.rounds = 0
        self.seen: Counter[str] = Counter()
        self.extra_invoices = 0
        self.date = datetime.date(2026, 11, 21)

    # ---- the timeline ------------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                self.round()
                self.rounds += 1
                if self.saving_done.is_set():
                    break
        except BaseException as error:  # handed to the test's thread
            self.error = error
        finally:
            connections.close_all()

    def round(self) -> None:
        start = time.monotonic()

        def at(offset: float) -> None:
            time.sleep(max(0.0, start + offset - time.monotonic()))

        self.storm()
        at(5)
        added = self.add_payments(CHANGED)
        at(10)
        self.kill_worker()
        at(15)
        self.remove_payments(added[: len(added) // 2])
        self.remove_payments(self.paid_invoices(CHANGED // 2))
        self.void(CHANGED // 4)
        at(20)
        self.kill_cluster()
        self.broker_outage()
        at(36)
        self.storm()
        at(45)
        self.add_and_remove(CHANGED)
        at(55)
        self.storm()
        at(60)

    # ---- faults ------------------------------------------------------------------------
    def storm(self) -> None:
        """Every API call answers 429 for a few seconds."""
        self.set_faults(storm=True)
        time.sleep(STORM_SECONDS)
        self.set_faults(storm=False)
        self.seen["429 storms"] += 1

    def set_faults(self, storm: bool) -> None:
        self.sandbox.clear_faults()
        if storm:
            self.sandbox.add_fault(
                "*", "/api.xro/2.0/*", "429", probability=1.0, retry_after=STORM_RETRY_AFTER
            )
        for method, path in WRITES:
            self.sandbox.add_fault(method, path, "lost_response", probability=LOST_ANSWERS)
        for kind in BACKGROUND_FAULTS:
            self.sandbox.add_fault("*", "/api.xro/2.0/*", kind, probability=0.01, hold_seconds=3)

    def kill_worker(self) -> None:
        """kill -9 of a worker process in the middle of a run (its jobs claimed); its
        sentinel starts another."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Runs are short: look often (the other cluster is killed whole later on).
            if self.clusters[1].kill_worker_running("xero_integration.invoices.run_batch"):
                self.seen["workers killed mid-run"] += 1
                return
            time.sleep(0.05)

    def kill_cluster(self) -> None:
        """kill -9 of every process of a cluster while jobs are claimed, started again 3 s
        later."""
        self.wait_for_claims()
        claimed = set(
            SyncJob.objects.filter(state=SyncJob.State.RUNNING).values_list(
                "pk", "claim_token", "lease_until"
            )
        )
        self.clusters[0].kill()
        self.seen["clusters killed"] += 1
        time.sleep(3)
        runs = self.clusters[0].log().count(" running.")
        self.clusters[0].start()
        deadline = time.monotonic() + 30
        while self.clusters[0].log().count(" running.") == runs:
            assert time.monotonic() < deadline, "the cluster killed did not start again"
            time.sleep(0.2)
        still = set(
            SyncJob.objects.filter(pk__in=[pk for pk, _t, _l in claimed]).values_list(
                "pk", "claim_token", "lease_until"
            )
        )
        # Claims nobody renewed since the kill: the dead cluster's, left for the sweeper.
        self.seen["claims left by the killed cluster"] += len(claimed & still)

    def wait_for_claims(self, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if SyncJob.objects.filter(state=SyncJob.State.RUNNING).exists():
                return
            time.sleep(0.2)

    def broker_outage(self) -> None:
        """The broker dies; the CRM keeps saving (every save commits); it comes back empty."""
        self.broker.stop()
        self.seen["broker outages"] += 1
        down_until = time.monotonic() + BROKER_DOWN_SECONDS
        added = self.add_payments(CHANGED)
        self.remove_payments(added[: len(added) // 3])
        saved = self.new_invoices(CHANGED)
        for number in saved:  # committed, whatever the broker did
            assert Invoice.objects.filter(number=number).exists(), number
        self.seen["saves while the broker was down"] += len(added) + len(saved)
        time.sleep(max(0.0, down_until - time.monotonic()))
        self.broker.start()

    # ---- the CRM's changes -------------------------------------------------------------
    def next_date(self) -> datetime.date:
        self.date += datetime.timedelta(days=1)
        return self.date

    def open_invoices(self, count: int) -> list[int]:
        """Invoices with money still due (and not being voided)."""
        pks = list(
            Invoice.objects.filter(
                account__in=self.accounts,
                status__in=[Invoice.Status.SENT, Invoice.Status.PARTIALLY_PAID],
                amount_due__gte=Decimal("20.00"),
            ).values_list("pk", flat=True)
        )
        return self.random.sample(pks, min(count, len(pks)))

    def paid_invoices(self, count: int) -> list[int]:
        pks = list(
            Payment.objects.filter(invoice__account__in=self.accounts)
            .values_list("invoice_id", flat=True)
            .distinct()
        )
        return self.random.sample(pks, min(count, len(pks)))

    def add_payments(self, count: int) -> list[int]:
        """A payment of 10.00 on ``count`` invoices; returns the invoices."""
        date = self.next_date()
        done = []
        for pk in self.open_invoices(count):
            with transaction.atomic():
                invoice = Invoice.objects.select_for_update().get(pk=pk)
                if invoice.amount_due < Decimal("10.00"):
                    continue
                PaymentFactory(invoice=invoice, amount=Decimal("10.00"), date=date)
                invoice.recalculate()
            done.append(pk)
        self.seen["payments added"] += len(done)
        return done

    def remove_payments(self, invoice_pks: list[int]) -> None:
        """The newest payment of each invoice is removed in the CRM."""
        for pk in invoice_pks:
            with transaction.atomic():
                invoice = Invoice.objects.select_for_update().get(pk=pk)
                payment = invoice.payments.order_by("-pk").first()
                if payment is None:
                    continue
                payment.delete()
                invoice.recalculate()
            self.seen["payments removed"] += 1

    def add_and_remove(self, count: int) -> None:
        """Payments added, and a moment later (their writes under way) removed again."""
        added = self.add_payments(count)
        time.sleep(1)
        self.remove_payments(added[::2])

    def void(self, count: int) -> None:
        """Unpaid invoices voided in the CRM."""
        pks = list(
            Invoice.objects.filter(
                account__in=self.accounts, status=Invoice.Status.SENT, payments=None
            ).values_list("pk", flat=True)
        )
        for pk in self.random.sample(pks, min(count, len(pks))):
            with transaction.atomic():
                invoice = Invoice.objects.select_for_update().get(pk=pk)
                if invoice.payments.exists() or invoice.status != Invoice.Status.SENT:
                    continue
                invoice.status = Invoice.Status.VOID
                invoice.save()
            self.seen["invoices voided"] += 1

    def new_invoices(self, count: int) -> list[str]:
        numbers = []
        for _ in range(count):
            n = self.extra_invoices
            self.extra_invoices += 1
            account = self.accounts[n % len(self.accounts)]
            numbers.append(save_invoice(account, f"SOAK-X{n:05d}", n, paid=n % 2 == 0).number)
        return numbers


def save_invoice(account, number: str, n: int, paid: bool) -> Invoice:
    """A sent invoice (saved as a draft first, as the CRM does), paid in full or in part."""
    people = list(account.contacts.all()[:25])
    gst = account.taxes.get(name="GST 15%")
    with transaction.atomic():
        invoice = InvoiceFactory(
            account=account,
            number=number,
            contact=people[n % len(people)],
            currency="USD" if n % 10 == 0 else "NZD",
            status=Invoice.Status.DRAFT,
        )
        InvoiceLineFactory(invoice=invoice, unit_price=Decimal("100") + n % 50, tax=gst)
        invoice.recalculate(save=False)
        invoice.status = Invoice.Status.SENT
        invoice.save()
        if paid:
            amount = invoice.total if n % 4 == 0 else Decimal("25.00")
            PaymentFactory(invoice=invoice, amount=amount, date=datetime.date(2026, 11, 20))
            invoice.recalculate()
    return invoice


def _story(invoice, in_crm, in_xero) -> str:
    """What happened to an invoice whose payments differ: for whoever reads the failure."""
    lines = [f"{invoice.number} ({invoice.status}): CRM payments {in_crm}, Xero's {in_xero}"]
    job = SyncJob.objects.get(host_id=str(invoice.pk), account_key=str(invoice.account_id))
    lines.append(f"job: {job.state} seq {job.change_seq}/{job.done_seq} {job.error}")
    lines += [
        f"payment link: {link.host_id} {link.state} {link.xero_payment_id} {link.origin}"
        for link in PaymentLink.objects.filter(invoice_host_id=str(invoice.pk))
    ]
    lines += [
        f"CRM payment {p.pk}: {p.amount} {p.date} created {p.created_at:%H:%M:%S.%f}"
        for p in Payment.objects.filter(invoice=invoice)
    ]
    for entry in SyncLog.objects.filter(host_id=str(invoice.pk)).order_by("pk"):
        lines.append(
            f"{entry.created_at:%H:%M:%S.%f} {entry.action} {entry.http_status} "
            f"{entry.message[:160]} {entry.request_body[:300]} {entry.response_body[:300]}"
        )
    return "\n".join(lines)


def _worker_env(sandbox_url: str, encryption_key: str, broker_url: str) -> dict[str, str]:
    database = db_connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DATABASE_URL": (
            f"postgres://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}"
            f":{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "REDIS_URL": broker_url,
        # The rate limiter's budgets stay on the shared Redis, which never goes down.
        "XERO_LIMITER_REDIS_URL": os.environ["REDIS_URL"],
        "Q_NAME": CLUSTER,
        "Q_WORKERS": str(WORKERS_EACH),
        "XERO_ENCRYPTION_KEYS": encryption_key,
        "XERO_CLIENT_ID": CLIENT_ID,
        "XERO_CLIENT_SECRET": CLIENT_SECRET,
        "XERO_LOGIN_URL": sandbox_url,
        "XERO_IDENTITY_URL": sandbox_url,
        "XERO_API_URL": sandbox_url,
        "XERO_REQUEST_TIMEOUT": "2",
        "XERO_RETRY_BASE_SECONDS": "2",
    }


def _connect(xero_sandbox, settings) -> tuple[list, dict]:
    callback = "http://127.0.0.1/integrations/xero/callback/"
    xero_sandbox.register_app(CLIENT_ID, CLIENT_SECRET, [callback])
    app = XeroApp(CLIENT_ID, CLIENT_SECRET, callback)
    for name in ("XERO_LOGIN_URL", "XERO_IDENTITY_URL", "XERO_API_URL"):
        setattr(settings, name, xero_sandbox.url)
    settings.XERO_CLIENT_ID, settings.XERO_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.XERO_LIMITER_REDIS_URL = os.environ["REDIS_URL"]
    accounts, tenants = [], {}
    for n in range(ORGANISATIONS):
        org = xero_sandbox.create_organisation(name=f"Soak Company {n}", multicurrency=True)
        account = AccountFactory()
        connection = make_connection(xero_sandbox, app, org["tenant_id"], str(account.pk))
        state = xero_sandbox.organisation_state(org["tenant_id"])
        connection.payment_account_id = next(
            a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
        )
        connection.revenue_account_code = "200"
        connection.base_currency, connection.country_code = "NZD", "NZ"
        connection.save()
        for _ in range(25):
            ContactFactory(account=account)
        tax_with(account, "GST 15%", ("GST", "15", False))
        accounts.append(account)
        tenants[account.pk] = org["tenant_id"]
    return accounts, tenants


def test_soak(xero_sandbox, settings, monkeypatch, caplog, tmp_path: Path):
    if db_connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("the soak test needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    if "redis" not in django_settings.Q_CLUSTER:
        pytest.skip("django-q2 must use the Redis broker (REDIS_URL set before Django starts)")
    started = time.monotonic()
    caplog.set_level(logging.ERROR, logger="xero_integration.taskqueue")
    xero_sandbox.sandbox.random = random.Random(SEED)
    broker = PrivateRedis()
    broker.start()
    # Saves here queue their runs in the workers' queue on the soak's broker, signed as the
    # workers expect.
    monkeypatch.setattr(Conf, "PREFIX", CLUSTER)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", CLUSTER)
    monkeypatch.setattr(Conf, "REDIS", broker.url)
    taskqueue.forget_broker()
    accounts, tenants = _connect(xero_sandbox, settings)
    env = _worker_env(xero_sandbox.url, settings.XERO_ENCRYPTION_KEYS[0], broker.url)
    clusters = [Cluster(env, tmp_path / f"cluster-{n}.log") for n in range(WORKER_CLUSTERS)]
    chaos = Chaos(xero_sandbox, clusters, broker, accounts)
    chaos.set_faults(storm=False)
    thread = threading.Thread(target=chaos.run, name="soak-chaos", daemon=True)
    open_states = (SyncJob.State.PENDING, SyncJob.State.RUNNING, SyncJob.State.WAITING)
    try:
        for cluster in clusters:
            cluster.start()
        thread.start()
        swept = time.monotonic()
        for n in range(INVOICES):
            save_invoice(accounts[n % len(accounts)], f"SOAK-{n:05d}", n, paid=n % 2 == 0)
            if time.monotonic() - swept > SWEEP_EVERY:
                outbox.sweep()
                swept = time.monotonic()
        chaos.saving_done.set()
        while thread.is_alive():
            thread.join(SWEEP_EVERY)
            outbox.sweep()
        if chaos.error is not None:
            raise chaos.error
        created = time.monotonic() - started
        while SyncJob.objects.filter(state__in=open_states).exists():
            open_jobs = SyncJob.objects.filter(state__in=open_states).count()
            assert time.monotonic() - started < MAX_SECONDS, f"{open_jobs} jobs still open"
            time.sleep(SWEEP_EVERY)
            outbox.sweep()
        drained = time.monotonic() - started
        assert all(cluster.alive() for cluster in clusters), "a worker cluster died"
    finally:
        chaos.saving_done.set()
        taskqueue.forget_broker()
        for cluster in clusters:
            cluster.stop()
        broker.stop()
    xero_sandbox.clear_faults()
    requests = xero_sandbox.requests()
    writes = [r for r in requests if r["method"] in ("PUT", "POST")]
    chaos.seen["writes whose answer was lost"] = sum(1 for r in writes if r["status"] == 0)
    chaos.seen["429s answered"] = sum(1 for r in requests if r["status"] == 429)
    chaos.seen["payments deleted in Xero"] = sum(
        1
        for tenant in tenants.values()
        for payment in xero_sandbox.organisation_state(tenant)["payments"]
        if payment["Status"] == "DELETED"
    )
    logs = "".join(cluster.log() for cluster in clusters)
    chaos.seen["workers started again by their sentinel"] = logs.count("reincarnated worker")
    print(
        f"\nsoak: {INVOICES} invoices (+{chaos.extra_invoices}), seed {SEED}, "
        f"{chaos.rounds} chaos rounds, saved and chaos over at {created:.0f} s, "
        f"queue drained at {drained:.0f} s, {len(requests)} API calls"
    )
    for what, count in sorted(chaos.seen.items()):
        print(f"soak: {what}: {count}")

    # The chaos happened.
    assert chaos.seen["writes whose answer was lost"] > 0
    assert chaos.seen["429s answered"] > 0
    killed = chaos.seen["workers killed mid-run"]
    assert killed >= 1 and chaos.seen["clusters killed"] >= 1
    assert chaos.seen["workers started again by their sentinel"] >= killed
    assert chaos.seen["saves while the broker was down"] > 0
    # The CRM process logged each outage once, not once per save.
    refused = [r for r in caplog.records if r.getMessage().startswith(BROKER_REFUSED)]
    assert 1 <= len(refused) <= chaos.seen["broker outages"]

    # No job stuck, none failed.
    failed = list(SyncJob.objects.filter(state=SyncJob.State.FAILED).values("number", "error"))
    assert failed == []
    crm_invoices = Invoice.objects.filter(account__in=accounts)
    assert SyncJob.objects.filter(state=SyncJob.State.DONE).count() == crm_invoices.count()

    # Xero holds what the CRM holds, exactly once.
    for account in accounts:
        state = xero_sandbox.organisation_state(tenants[account.pk])
        numbers = [i["InvoiceNumber"] for i in state["invoices"]]
        assert len(numbers) == len(set(numbers)), "an invoice is in Xero twice"
        by_number = {i["InvoiceNumber"]: i for i in state["invoices"]}
        payments: dict[str, list] = {}
        for payment in state["payments"]:
            if payment["Status"] != "DELETED":
                number = payment["Invoice"]["InvoiceNumber"]
                payments.setdefault(number, []).append(
                    (Decimal(str(payment["Amount"])), parse_date(payment["Date"]))
                )
        mine = list(crm_invoices.filter(account=account).prefetch_related("payments"))
        # An invoice voided in the CRM before it ever reached Xero has nothing to void there.
        missing = [i for i in mine if i.number not in by_number and i.status != Invoice.Status.VOID]
        if missing:
            pytest.fail("\n\n".join(_story(i, "not in Xero", "") for i in missing[:3]))
        assert set(by_number) <= {i.number for i in mine}
        for invoice in mine:
            if invoice.number not in by_number:
                continue  # voided before it was sent
            xero = by_number[invoice.number]
            assert Decimal(str(xero["Total"])) == invoice.total, invoice.number
            if invoice.status == Invoice.Status.VOID:
                assert xero["Status"] == "VOIDED", invoice.number
                assert invoice.number not in payments, invoice.number
                continue
            in_crm = sorted((p.amount, p.date) for p in invoice.payments.all())
            in_xero = sorted(payments.get(invoice.number, []))
            if in_xero != in_crm or Decimal(str(xero["AmountPaid"])) != invoice.amount_paid:
                pytest.fail(_story(invoice, in_crm, in_xero))
            assert xero["Status"] == ("PAID" if invoice.amount_due == 0 else "AUTHORISED")
    assert xero_sandbox.sandbox.limit_refusals == [], "a call broke Xero's rate limits"
    assert time.monotonic() - started < MAX_SECONDS
