"""Token refresh: exactly one refresh per expiry, however many workers need a token at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from xero_integration import tokens
from xero_integration.exceptions import ConnectionNotReady
from xero_integration.models import ConnectionStatus, XeroConnection

ROOT = Path(__file__).resolve().parents[2]


def token_refreshes(sandbox) -> list[dict]:
    return [
        entry
        for entry in sandbox.requests_log()
        if entry["path"].lower().endswith("/connect/token")
    ]


@pytest.fixture
def expiring_connection(xero_app, settings) -> XeroConnection:
    """A connected account whose access token expires within the refresh margin."""
    tenant = xero_app.create_organisation(
        name="Refresh Ltd", country_code="NZ", base_currency="NZD", multicurrency=True
    )
    issued = xero_app.issue_tokens(settings.XERO_CLIENT_ID, [tenant["tenant_id"]])
    return XeroConnection.objects.create(
        account_key="refresh-account",
        status=ConnectionStatus.CONNECTED,
        tenant_id=tenant["tenant_id"],
        tenant_name="Refresh Ltd",
        access_token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        access_token_expires_at=timezone.now() + timedelta(seconds=30),
        tokens_refreshed_at=timezone.now(),
    )


@pytest.mark.django_db
def test_a_fresh_token_is_used_without_calling_xero(xero_app, expiring_connection) -> None:
    expiring_connection.access_token_expires_at = timezone.now() + timedelta(minutes=20)
    expiring_connection.save()
    assert tokens.access_token(expiring_connection.pk) == expiring_connection.access_token
    assert token_refreshes(xero_app) == []


@pytest.mark.django_db
def test_refresh_rotates_and_saves_the_new_pair(xero_app, expiring_connection) -> None:
    old_access, old_refresh = expiring_connection.access_token, expiring_connection.refresh_token
    new_access = tokens.access_token(expiring_connection.pk)
    stored = XeroConnection.objects.get(pk=expiring_connection.pk)
    assert new_access != old_access
    assert stored.access_token == new_access
    assert stored.refresh_token != old_refresh
    assert stored.access_token_expires_at > timezone.now() + timedelta(minutes=25)
    assert len(token_refreshes(xero_app)) == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_at_expiry_make_one_refresh(xero_app, expiring_connection) -> None:
    barrier = threading.Barrier(20)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(tokens.access_token(expiring_connection.pk))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == 20 and len(set(results)) == 1
    assert len(token_refreshes(xero_app)) == 1
    assert all(entry["status"] == 200 for entry in token_refreshes(xero_app))


@pytest.mark.django_db(transaction=True)
def test_twenty_processes_at_expiry_make_one_refresh(xero_app, expiring_connection, settings):
    if db_connection.vendor != "postgresql":
        pytest.skip("cross-process row locking is exercised on PostgreSQL (DATABASE_URL)")
    start_at = time.time() + 4
    db = db_connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_demo.settings",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "XERO_CLIENT_ID": settings.XERO_CLIENT_ID,
        "XERO_CLIENT_SECRET": settings.XERO_CLIENT_SECRET,
        "XERO_LOGIN_URL": settings.XERO_LOGIN_URL,
        "XERO_IDENTITY_URL": settings.XERO_IDENTITY_URL,
        "XERO_API_URL": settings.XERO_API_URL,
        "XERO_ENCRYPTION_KEYS": ",".join(settings.XERO_ENCRYPTION_KEYS),
    }
    script = (
        "import django, time, sys; django.setup()\n"
        "from xero_integration.tokens import access_token\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        f"print(access_token({expiring_connection.pk}))\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 20, outputs
    assert len({stdout.strip() for stdout, _ in outputs}) == 1
    assert len(token_refreshes(xero_app)) == 1


@pytest.mark.django_db
def test_invalid_grant_marks_the_connection_for_reconnect(xero_app, expiring_connection) -> None:
    xero_app.disconnect(expiring_connection.tenant_id)
    with pytest.raises(ConnectionNotReady):
        tokens.access_token(expiring_connection.pk)
    stored = XeroConnection.objects.get(pk=expiring_connection.pk)
    assert stored.status == ConnectionStatus.NEEDS_RECONNECT
    assert "Reconnect" in stored.status_reason
    # Work for the connection now waits instead of calling Xero again.
    with pytest.raises(ConnectionNotReady):
        tokens.access_token(expiring_connection.pk)
    assert len(token_refreshes(xero_app)) == 1


@pytest.mark.django_db
def test_quiet_connections_are_kept_alive(xero_app, expiring_connection) -> None:
    XeroConnection.objects.filter(pk=expiring_connection.pk).update(
        tokens_refreshed_at=timezone.now() - timedelta(days=31),
        access_token_expires_at=timezone.now() + timedelta(minutes=20),
    )
    assert tokens.keep_tokens_alive() == 1
    assert len(token_refreshes(xero_app)) == 1
    assert tokens.keep_tokens_alive() == 0
