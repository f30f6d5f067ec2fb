"""Shared set-up for the benchmarks: a sandbox in its own process, a fresh database, and a
CRM account connected to a sandbox organisation."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
CLIENT_ID = "crm-bench"
CLIENT_SECRET = "crm-bench-secret"


def setup_django(database_name: str) -> None:
    """Django with the demo CRM's settings on a throwaway database (PostgreSQL when
    DATABASE_URL is set, else a SQLite file under var/)."""
    VAR_DIR.mkdir(exist_ok=True)
    if "DATABASE_URL" not in os.environ:
        path = VAR_DIR / f"{database_name}.sqlite3"
        path.unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_demo.settings")
    os.environ.setdefault("XERO_ENCRYPTION_KEYS", "")
    import django

    sys.path.insert(0, str(BASE_DIR))
    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one line per task otherwise
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)
    if not settings.XERO_ENCRYPTION_KEYS:
        from cryptography.fernet import Fernet

        settings.XERO_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def control(url: str, method: str, path: str, body: dict | None = None) -> object:
    request = urllib.request.Request(
        f"{url}/_sandbox/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"null")


@contextmanager
def sandbox_process():
    """The sandbox as a separate process (so that its memory is not the importer's)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "xero_integration.sandbox", "--port", str(port)],
        cwd=BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                control(url, "GET", "organisations")
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def connect_account(url: str, tenant_id: str, account_name: str, account=None):
    """A CRM account whose XeroConnection holds tokens the sandbox issued."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from crm_demo.crm.models import Account
    from xero_integration.models import ConnectionStatus, XeroConnection

    control(
        url,
        "POST",
        "apps",
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": ["http://127.0.0.1/callback/"],
        },
    )
    tokens = control(
        url,
        "POST",
        "tokens",
        {
            "client_id": CLIENT_ID,
            "tenant_ids": [tenant_id],
            "scope": "openid profile email offline_access accounting.contacts accounting.settings "
            "accounting.invoices accounting.payments",
        },
    )
    settings.XERO_CLIENT_ID = CLIENT_ID
    settings.XERO_CLIENT_SECRET = CLIENT_SECRET
    settings.XERO_LOGIN_URL = settings.XERO_IDENTITY_URL = settings.XERO_API_URL = url
    account = account or Account.objects.create(name=account_name)
    connection = XeroConnection.objects.create(
        account_key=str(account.pk),
        status=ConnectionStatus.CONNECTED,
        tenant_id=tenant_id,
        tenant_name=account_name,
        connection_id=tokens["connections"][0]["id"],
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        access_token_expires_at=timezone.now() + timedelta(seconds=tokens["expires_in"]),
        scopes=tokens["scope"],
    )
    return account, connection


def reset_redis_markers() -> None:
    """Forget the "run queued" markers and queued tasks a previous benchmark left in this
    Redis database: account ids restart after a flush, so a stale marker would hold back a
    new account's first run."""
    from django.conf import settings

    if "redis" not in settings.Q_CLUSTER:
        return
    from xero_integration import taskqueue

    queue = taskqueue.broker()
    queue.purge_queue()
    redis = queue.connection
    for key in redis.scan_iter("xero_integration:queued:*"):
        redis.delete(key)


def new_organisation(url: str, name: str, contacts: int = 20) -> dict:
    """A multi-currency NZ organisation in the sandbox with ``contacts`` contacts."""
    return control(
        url,
        "POST",
        "organisations",
        {
            "name": name,
            "country_code": "NZ",
            "base_currency": "NZD",
            "multicurrency": True,
            "contacts": contacts,
        },
    )


def sent_invoice(account, number: str, contact, tax, unit_price, item_name: str = "Support"):
    """A sent NZD invoice of one line, its totals computed (one host save of each)."""
    import datetime

    from crm_demo.crm.models import Invoice, InvoiceLine

    invoice = Invoice.objects.create(
        account=account,
        number=number,
        contact=contact,
        currency="NZD",
        issue_date=datetime.date(2026, 11, 1),
        due_date=datetime.date(2026, 11, 30),
        status=Invoice.Status.SENT,
    )
    InvoiceLine.objects.create(
        invoice=invoice, item_name=item_name, quantity=1, unit_price=unit_price, tax=tax
    )
    invoice.recalculate()
    return invoice


def choose_default_accounts(url: str, connection) -> None:
    """What the guided set-up does: the organisation's bank account for payments, sales 200,
    and its NZD base currency."""
    state = control(url, "GET", f"organisations/{connection.tenant_id}")
    connection.payment_account_id = next(
        a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"
    )
    connection.revenue_account_code = "200"
    connection.base_currency, connection.country_code = "NZD", "NZ"
    connection.save()
