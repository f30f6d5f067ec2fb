"""The demo on its default SQLite database never locks: the web server and two django-q
workers (separate processes, as ``make demo`` runs them) share one SQLite file while several
users save, send and pay invoices at once, and the workers push them to the Xero sandbox.

SQLite refuses at once ("database is locked"), whatever its busy timeout, a transaction that
read before it writes while another process writes; the demo's settings begin every
transaction with the write lock (``transaction_mode: IMMEDIATE``) and use write-ahead logging,
so writers wait their turn and readers never block.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "crm-load-test"
CLIENT_SECRET = "crm-load-test-secret-0123456789"
USERS = 4
INVOICES_EACH = 5

#: Run inside the test's own database by ``manage.py shell``: the account, its owners, contacts
#: and a connection holding the tokens the sandbox issued; prints each owner's session key.
SETUP = """
import json, os
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from crm_demo.crm.models import Account, Contact, Membership
from xero_integration.models import XeroConnection

given = json.loads(os.environ["LOAD_TEST_SETUP"])
account = Account.objects.create(name="Load Ltd", base_currency="NZD")
for n in range(3):
    Contact.objects.create(account=account, name=f"Customer {n} Ltd", email=f"c{n}@example.com")
sessions = []
for n in range(given["users"]):
    email = f"user{n}@example.com"
    user = get_user_model().objects.create_user(email, email, "pw")
    Membership.objects.create(user=user, account=account, role="owner")
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    sessions.append(session.session_key)
now = timezone.now()
XeroConnection.objects.create(
    account_key=str(account.pk), status="connected", tenant_id=given["tenant_id"],
    tenant_name="Load Ltd", connection_id=given["connection_id"], scopes=given["scope"],
    access_token=given["access_token"], refresh_token=given["refresh_token"],
    access_token_expires_at=now + timedelta(seconds=given["expires_in"]),
    tokens_refreshed_at=now, connected_at=now, base_currency="NZD", country_code="NZ",
    payment_account_id=given["bank"], revenue_account_code="200",
    accounts=given["accounts"], accounts_loaded_at=now,
)
print("SESSIONS=" + json.dumps(sessions))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_env(tmp_path: Path, sandbox_url: str) -> dict[str, str]:
    """The demo's settings as ``make demo`` has them, on a fresh SQLite file."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "SECRET_KEY": "load-test-secret-key-0123456789-abcdefghijklmnop",
        "DEBUG": "true",
        "REDIS_URL": "",
        "XERO_LIMITER_REDIS_URL": "",
        "Q_NAME": f"load-{os.getpid()}",
        "Q_WORKERS": "2",
        "Q_SYNC": "false",
        "XERO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "XERO_CLIENT_ID": CLIENT_ID,
        "XERO_CLIENT_SECRET": CLIENT_SECRET,
        "XERO_LOGIN_URL": sandbox_url,
        "XERO_IDENTITY_URL": sandbox_url,
        "XERO_API_URL": sandbox_url,
        "XERO_CALLS_PER_MINUTE": "6000",
        "XERO_WEBHOOK_KEY": "",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_for_web(base: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the web server stopped"
        try:
            requests.get(base + "/accounts/login/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError("the web server did not answer")


class User:
    """One signed-in person clicking through the CRM."""

    def __init__(self, base: str, session_key: str, index: int) -> None:
        self.base = base
        self.index = index
        self.http = requests.Session()
        self.http.cookies.set("sessionid", session_key, domain="127.0.0.1")
        self.statuses: list[tuple[str, int]] = []

    def get(self, path: str) -> requests.Response:
        response = self.http.get(self.base + path, timeout=60)
        self.statuses.append((f"GET {path}", response.status_code))
        return response

    def post(self, path: str, data: dict[str, Any]) -> requests.Response:
        data = {**data, "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", "")}
        response = self.http.post(
            self.base + path, data=data, timeout=60, headers={"Referer": self.base + path}
        )
        self.statuses.append((f"POST {path}", response.status_code))
        return response

    def work(self) -> None:
        for n in range(INVOICES_EACH):
            form = self.get("/invoices/new/")
            contact = re.search(r'name="contact"[^>]*>.*?<option value="(\d+)"', form.text, re.S)
            assert contact, form.text[:2000]
            created = self.post(
                "/invoices/new/",
                {
                    "number": f"LOAD-{self.index}-{n}",
                    "contact": contact.group(1),
                    "currency": "NZD",
                    "issue_date": "2026-11-01",
                    "due_date": "2026-11-30",
                    "reference": "",
                    "lines-TOTAL_FORMS": "1",
                    "lines-INITIAL_FORMS": "0",
                    "lines-MIN_NUM_FORMS": "0",
                    "lines-MAX_NUM_FORMS": "1000",
                    "lines-0-item_name": "Consulting",
                    "lines-0-description": "Load",
                    "lines-0-quantity": "1",
                    "lines-0-unit_price": "100",
                },
            )
            invoice = re.search(r"/invoices/(\d+)/$", created.url)
            assert invoice, (created.status_code, created.text[:2000])
            path = f"/invoices/{invoice.group(1)}/"
            self.post(path + "send/", {})
            self.get(path)
            self.post(path + "payments/", {"amount": "40.00", "date": "2026-11-05"})
            self.get("/integrations/xero/")
            self.get("/invoices/")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")
def test_the_web_server_and_two_workers_share_sqlite_without_locking(tmp_path, xero_sandbox):
    tenant_id = xero_sandbox.create_organisation(name="Load Ltd")["tenant_id"]
    xero_sandbox.set_limits(tenant_id, per_minute=6000, per_day=100_000, concurrent=10)
    xero_sandbox.register_app(
        CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=["http://127.0.0.1/integrations/xero/callback/"],
    )
    issued = xero_sandbox.issue_tokens(CLIENT_ID, [tenant_id])
    listed = requests.get(
        xero_sandbox.url + "/connections",
        headers={"Authorization": f"Bearer {issued['access_token']}"},
        timeout=10,
    ).json()
    state = xero_sandbox.organisation_state(tenant_id)
    env = demo_env(tmp_path, xero_sandbox.url)
    env["LOAD_TEST_SETUP"] = json.dumps(
        {
            "users": USERS,
            "tenant_id": tenant_id,
            "connection_id": listed[0]["id"],
            "scope": issued.get("scope", ""),
            "access_token": issued["access_token"],
            "refresh_token": issued["refresh_token"],
            "expires_in": int(issued["expires_in"]),
            "bank": next(a["AccountID"] for a in state["accounts"] if a["Type"] == "BANK"),
            "accounts": state["accounts"],
        }
    )
    manage(env, "migrate", "--noinput")
    sessions = json.loads(manage(env, "shell", "-c", SETUP).split("SESSIONS=")[1])

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("web", "workers")}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "runserver",
                f"127.0.0.1:{port}",
                "--noreload",
            ],
            env=env,
            cwd=ROOT,
            stdout=logs["web"],
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            env=env,
            cwd=ROOT,
            stdout=logs["workers"],
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        wait_for_web(base, processes[0])
        users = [User(base, key, n) for n, key in enumerate(sessions)]
        errors: list[BaseException] = []

        def run(user: User) -> None:
            try:
                user.work()
            except BaseException as exc:  # reported below, with the logs
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)

        # The workers bring every invoice and payment to Xero.
        expected = USERS * INVOICES_EACH
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            invoices = xero_sandbox.organisation_state(tenant_id)["invoices"]
            paid = [i for i in invoices if float(i.get("AmountPaid") or 0) == 40.0]
            if len(paid) == expected:
                break
            time.sleep(1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()

    text = {name: (tmp_path / f"{name}.log").read_text() for name in logs}
    report = "\n".join(f"--- {name}\n{body[-6000:]}" for name, body in text.items())
    assert not errors, f"{errors[0]!r}\n{report}"
    failures = [s for user in users for s in user.statuses if s[1] >= 500]
    assert failures == [], report
    for name, body in text.items():
        assert "database is locked" not in body, f"{name}: {report}"
        assert "Traceback" not in body, f"{name}: {report}"
    assert len(paid) == expected, (len(invoices), len(paid), report)
    assert len({i["InvoiceNumber"] for i in invoices}) == expected  # each once
