"""Soak: several worker processes on PostgreSQL and Redis push 2,000 invoices with payments to
three organisations while the sandbox injects 5% faults. Afterwards every invoice is in Xero
exactly once with the right total, status and payments, no job is lost, and no call broke
Xero's rate limits.

Run by ``.ci/run`` (``make soak``) with DATABASE_URL and REDIS_URL set. The production sweeper
runs every minute; here the test sweeps every few seconds so that one short run covers many
rounds of retries.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection as db_connection
from django.db import transaction
from django_q.conf import Conf

from crm_demo.crm.models import Invoice
from tests.factories import (
    AccountFactory,
    ContactFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    PaymentFactory,
    tax_with,
)
from tests.integration.conftest import XeroApp, make_connection
from xero_integration import outbox, taskqueue
from xero_integration.models import SyncJob

pytestmark = [pytest.mark.soak, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(__file__).resolve().parents[2]
INVOICES = int(os.environ.get("SOAK_INVOICES", "2000"))
ORGANISATIONS = 3
WORKER_CLUSTERS, WORKERS_EACH = 2, 2
DEADLINE_SECONDS = 240
CLIENT_ID, CLIENT_SECRET = "crm-soak", "crm-soak-secret"
FAULTS = ("500", "503", "429", "timeout", "lost_response")


#: The worker clusters' name; the test process queues its tasks there too, as a CRM would.
CLUSTER = f"soak-{os.getpid()}"


def _workers(sandbox_url: str, encryption_key: str) -> list[subprocess.Popen]:
    database = db_connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DATABASE_URL": (
            f"postgres://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}"
            f":{database['PORT'] or 5432}/{database['NAME']}"
        ),
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
        "XERO_LIMITER_REDIS_URL": os.environ["REDIS_URL"],
    }
    return [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(WORKER_CLUSTERS)
    ]


def _crm_data(accounts: list) -> list[Invoice]:
    made = []
    per_account = {
        account.pk: (
            [ContactFactory(account=account) for _ in range(25)],
            tax_with(account, "GST 15%", ("GST", "15", False)),
        )
        for account in accounts
    }
    for n in range(INVOICES):
        account = accounts[n % len(accounts)]
        people, gst = per_account[account.pk]
        with transaction.atomic():
            invoice = InvoiceFactory(
                account=account,
                number=f"SOAK-{n:05d}",
                contact=people[n % len(people)],
                currency="USD" if n % 10 == 0 else "NZD",
                status=Invoice.Status.DRAFT,
            )
            InvoiceLineFactory(invoice=invoice, unit_price=Decimal("100") + n % 50, tax=gst)
            invoice.recalculate(save=False)
            invoice.status = Invoice.Status.SENT
            invoice.save()
            if n % 2 == 0:
                amount = invoice.total if n % 4 == 0 else Decimal("25.00")
                PaymentFactory(invoice=invoice, amount=amount, date=datetime.date(2026, 11, 20))
                invoice.recalculate()
        made.append(invoice)
    return made


def test_soak(xero_sandbox, settings, monkeypatch):
    if db_connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("the soak test needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    if "redis" not in django_settings.Q_CLUSTER:
        pytest.skip("django-q2 must use the Redis broker (REDIS_URL set before Django starts)")
    # Saves here queue their runs in the workers' queue, signed as the workers expect.
    monkeypatch.setattr(Conf, "PREFIX", CLUSTER)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", CLUSTER)
    taskqueue.forget_broker()
    started = time.monotonic()
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
        accounts.append(account)
        tenants[account.pk] = org["tenant_id"]
    for kind in FAULTS:
        xero_sandbox.add_fault("*", "/api.xro/2.0/*", kind, probability=0.01, hold_seconds=3)
    workers = _workers(xero_sandbox.url, settings.XERO_ENCRYPTION_KEYS[0])
    try:
        invoices = _crm_data(accounts)
        deadline = time.monotonic() + DEADLINE_SECONDS
        open_states = (SyncJob.State.PENDING, SyncJob.State.RUNNING, SyncJob.State.WAITING)
        while SyncJob.objects.filter(state__in=open_states).exists():
            assert time.monotonic() < deadline, (
                f"{SyncJob.objects.filter(state__in=open_states).count()} jobs still open"
            )
            time.sleep(5)
            outbox.sweep()
    finally:
        taskqueue.forget_broker()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    xero_sandbox.clear_faults()
    failed = list(SyncJob.objects.filter(state=SyncJob.State.FAILED).values("number", "error"))
    assert failed == []
    assert SyncJob.objects.filter(state=SyncJob.State.DONE).count() == INVOICES
    for account in accounts:
        state = xero_sandbox.organisation_state(tenants[account.pk])
        numbers = [i["InvoiceNumber"] for i in state["invoices"]]
        assert len(numbers) == len(set(numbers)), "an invoice is in Xero twice"
        by_number = {i["InvoiceNumber"]: i for i in state["invoices"]}
        payments: dict[str, int] = {}
        for payment in state["payments"]:
            if payment["Status"] == "AUTHORISED":
                number = payment["Invoice"]["InvoiceNumber"]
                payments[number] = payments.get(number, 0) + 1
        mine = [i for i in invoices if i.account_id == account.pk]
        assert sorted(by_number) == sorted(i.number for i in mine)
        for invoice in mine:
            invoice.refresh_from_db()
            xero = by_number[invoice.number]
            assert Decimal(str(xero["Total"])) == invoice.total, invoice.number
            assert Decimal(str(xero["AmountPaid"])) == invoice.amount_paid, invoice.number
            assert xero["Status"] == ("PAID" if invoice.amount_due == 0 else "AUTHORISED")
            assert payments.get(invoice.number, 0) == invoice.payments.count(), invoice.number
    assert xero_sandbox.sandbox.limit_refusals == [], "a call broke Xero's rate limits"
    assert time.monotonic() - started < 300
